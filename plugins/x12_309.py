"""Source and mapper `x12-309`: ANSI X12 309 Customs Manifests (ACE truck eManifest).

The source streams files and yields one raw unit per bill of lading (an LX loop with
its M11), keyed `309:` + the bill number; a broken transaction set or envelope is a
unit with error findings and no payload. The mapper turns a bill into Consignment
fields (the mapping itself is `x12.manifest309`); docs/sources.md says which
element becomes which field.

A file can be read from any bill on (`read_span`, at a position the keys pass gave:
`read_key_positions`), so that `s321 preview`'s workers read their own bills.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import Finding, error
from s321.hookspecs import hookimpl
from s321.inputs import input_files
from s321.paths import ConfigPath

from . import enrichment
from .enrichment import EnrichmentOptions, TablePath
from .text_encoding import check_encoding_option, encoding_field, encoding_problem
from .x12.envelope import Problem, Resume, SetCursor, SetHeader, read_sets, resume_sets
from .x12.manifest309 import KEYS_ELEMENTS, Bill, BillBuilder, map_bill
from .x12.tokenizer import location

NAME = "x12-309"
DEFAULT_PATTERNS = ("*.edi", "*.x12", "*.txt")


class X12309Options(BaseModel):
    """The `[pipelines.NAME.source]` table of an `x12-309` source."""

    model_config = ConfigDict(extra="forbid")

    path: ConfigPath = Field(description="A 309 file, or a folder of them.")
    pattern: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PATTERNS),
        description="Glob pattern(s) of the files to read in a folder.",
    )
    encoding: Annotated[str, AfterValidator(check_encoding_option)] = encoding_field()
    sku_in_marks: bool = Field(
        default=False,
        description="N10-03 (Marks and Numbers) holds the item's SKU, as some e-commerce "
        "carriers send it: it becomes the item's `sku` and is looked up in `catalog`.",
    )
    catalog: TablePath | None = Field(
        default=None,
        description="CSV by SKU (see the enrichment tables): fills hts_code, country_of_origin, "
        "product_url, weight_kg and description. Needs `sku_in_marks`.",
    )

    @field_validator("pattern", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _catalog_needs_skus(self) -> X12309Options:
        # Accepting it alone would suggest an enrichment that never happens.
        if self.catalog is not None and not self.sku_in_marks:
            raise ValueError(
                "a 309 carries no SKU to look a catalog row up by unless the sender "
                "puts it in N10-03: set `sku_in_marks = true`, or remove `catalog`"
            )
        return self


# --------------------------------------------------------------------------- source


class X12309Source:
    """Reads 309 files; see the module docstring for what it yields."""

    def __init__(self, options: X12309Options, context: PipelineContext):
        self.options = options
        self.context = context
        self.acked: Any = None

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for target in self._files(paths):
            if isinstance(target, RawUnit):
                yield target
            else:
                yield from self._read_file(target)

    def read_keys(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        """The units of `read()` with the same keys, locations and checkpoints, without
        their bills' parties and lines (payload None): the pipeline's duplicate-key pass.
        Envelopes and sets are checked in full, since their problems are units too."""
        for target in self._files(paths):
            if isinstance(target, RawUnit):
                yield target
            else:
                yield from self._read_file(target, payload=False)

    # Spans (s321.parallel): workers read their own bills of a file.

    def read_key_positions(self, paths: Iterable[Path] | None = None
                           ) -> Iterator[tuple[RawUnit, tuple[int, BillStart] | None]]:
        """The units of `read_keys`, each bill with where `read_span` can start at it
        (the number of the file in this read, so that a file named twice is two
        readings, then its `BillStart`); None for every other unit (a problem, a file
        missing or refused whole), which is the whole of what `read()` yields there."""
        for reading, target in enumerate(self._files(paths)):
            if isinstance(target, RawUnit):
                yield target, None
                continue
            for unit, start in self._read_file_positions(target, payload=False, track=True):
                yield unit, None if start is None else (reading, start)

    def read_span(self, position: tuple[int, BillStart], count: int) -> Iterator[RawUnit]:
        """The `count` bills `read()` yields from the one at `position` on, the same in
        every field (the file's encoding and envelopes were checked by
        `read_key_positions`; a span holds bills only, nothing between them)."""
        return read_span(position[1], count, self.options.encoding)

    def ack(self, upto: Any) -> None:
        # The files are left where they are: the ledger makes a second reading a
        # no-op, so there is nothing to move or delete for delivery to be safe.
        self.acked = upto

    def _files(self, paths: Iterable[Path] | None) -> Iterator[Path | RawUnit]:
        targets = [Path(p) for p in paths] if paths is not None else [self.options.path]
        for target in input_files(targets, self.options.pattern):
            if target.is_file():
                yield target
            else:
                yield RawUnit(f"unparsed:{target}", str(target), None,
                              (error("input-not-found", "", f"{target}: no such file or directory"),))

    def _read_file(self, path: Path, payload: bool = True) -> Iterator[RawUnit]:
        for unit, _start in self._read_file_positions(path, payload):
            yield unit

    def _read_file_positions(self, path: Path, payload: bool = True, track: bool = False
                             ) -> Iterator[tuple[RawUnit, BillStart | None]]:
        """The units of a file, each bill with its start when `track` (else None)."""
        stat: os.stat_result | None = None
        try:
            stat = path.stat()
            problem = encoding_problem(path, self.options.encoding, field="")
        except OSError:
            problem = None  # read_sets names it
        if track and stat is None:  # no position can be taken: each unit whole
            payload, track = True, False
        if problem is not None:  # refused whole: no bill of it is filed
            yield RawUnit(f"unparsed:{problem.location}", problem.location or str(path), None,
                          (problem,), checkpoint=(str(path), 0)), None
            return
        cursor = SetCursor() if track else None
        starts: deque[BillStart] = deque()  # of the bill being read, and of one an LX ends
        builder: BillBuilder | None = None
        for item in read_sets(path, str(path), encoding=self.options.encoding, cursor=cursor,
                              elements_of=None if payload else KEYS_ELEMENTS):
            if isinstance(item, Problem):
                yield _broken(path, item.position, item.findings), None
                continue
            header, seg = item
            if seg.tag == "ST":
                starts.clear()
                builder = BillBuilder(header, keys_only=not payload) if header.type == "309" else None
                if builder is None:
                    yield _set_problem(path, header, "x12-309-not-309", "ST01",
                                       f"is a {header.type!r}, not a 309; skipped"), None
            if builder is None:
                continue
            if cursor is not None and seg.tag == "LX":
                assert stat is not None
                starts.append(BillStart(str(path), stat.st_size, stat.st_mtime_ns,
                                        cursor.resume_at(header, seg), builder.method,
                                        builder.conveyance, builder.port))
            bill = builder.feed(seg)
            if bill is not None:
                yield _unit(path, bill, payload), starts.popleft() if cursor is not None else None
            if seg.tag == "SE":
                for unit in _set_problems(path, builder):
                    yield unit, None
                builder = None


@dataclass(frozen=True, slots=True)
class BillStart:
    """Where `read_span` can start reading a bill: its file (with the size and time of
    change it had when the position was taken), where the reading of its LX resumes, and
    the set's M10 and P4 in force there."""

    file: str
    size: int
    mtime_ns: int
    resume: Resume
    method: str
    conveyance: str
    port: str


def read_span(start: BillStart, count: int, encoding: str = "utf-8") -> Iterator[RawUnit]:
    """The `count` bills the file's reading yields from the one at `start` on, with the
    same keys, locations, checkpoints and payloads; a file changed since `start` was
    taken, or that cannot be read, is one unit that says so (never fewer bills unsaid)."""
    path = Path(start.file)
    number = start.resume.mark.number + 1  # the LX
    try:
        stat = path.stat()
    except OSError as exc:
        yield _broken(path, number, (error("input-unreadable", "", f"reading stopped: "
                                           f"{exc.strerror or exc}", location(start.file, number)),))
        return
    if (stat.st_size, stat.st_mtime_ns) != (start.size, start.mtime_ns):
        yield _changed(path, number)
        return
    builder: BillBuilder | None = BillBuilder(start.resume.header)
    assert builder is not None
    builder.method, builder.conveyance, builder.port = start.method, start.conveyance, start.port
    done = 0
    first = True
    for item in resume_sets(path, start.resume, str(path), encoding=encoding):
        if isinstance(item, Problem):
            yield _broken(path, item.position, item.findings)
            return
        header, seg = item
        if first and (seg.tag != "LX" or seg.number != number):
            break
        first = False
        if seg.tag == "ST":
            builder = BillBuilder(header) if header.type == "309" else None
        if builder is None:
            continue
        bill = builder.feed(seg)
        if bill is not None:
            yield _unit(path, bill)
            done += 1
            if done == count:
                return
        if seg.tag == "SE":
            builder = None
    yield _changed(path, number)


def _changed(path: Path, number: int) -> RawUnit:
    return _broken(path, number, (error(
        "input-unreadable", "", f"{path} changed while it was read: read it again",
        location(str(path), number)),))


def _set_problems(path: Path, builder: BillBuilder) -> Iterator[RawUnit]:
    """What a finished 309 set held besides its bills: data outside any bill, or none."""
    header = builder.header
    if builder.orphans:
        first = builder.orphans[0]
        tags = ", ".join(f"{o.tag} (segment {o.number})" for o in builder.orphans)
        message = (f"transaction set ST02={header.control!r}: {tags} come before the first LX, "
                   "so they belong to no bill and are not filed")
        where = location(str(path), first.number)
        found = error("x12-309-outside-bill", first.tag, message, where)
        yield _broken(path, first.number, (found,))
    if builder.count == 0:
        yield _set_problem(path, header, "x12-309-no-bills", "LX", "holds no bill (no LX loop)")


def _set_problem(path: Path, header: SetHeader, code: str, field: str, what: str) -> RawUnit:
    message = f"transaction set ST02={header.control!r} {what}"
    return _broken(path, header.position, (error(code, field, message, header.location),))


def _unit(path: Path, bill: Bill, payload: bool = True) -> RawUnit:
    key = (
        f"309:{bill.house_bill}" if bill.house_bill else f"309:{path.name}:segment {bill.position}"
    )
    return RawUnit(
        key, location(bill.source, bill.position), bill if payload else None,
        checkpoint=(str(path), bill.position)
    )


def _broken(path: Path, position: int, findings: tuple[Finding, ...]) -> RawUnit:
    # Keyed by its place, like the other sources' broken units: stable between runs.
    where = location(str(path), position)
    return RawUnit(f"unparsed:{where}", where, None, findings, checkpoint=(str(path), position))


# --------------------------------------------------------------------------- mapper


class X12309Mapper:
    """Bill -> Consignment fields (`x12.manifest309.map_bill`). Pipeline settings fill
    originator code, filer type and mode; the pipeline's `defaults` fill what a 309
    does not carry."""

    def __init__(self, options: X12309Options, context: PipelineContext):
        self.options = options
        self.context = context
        # Read once, when the pipeline starts; refreshed when the file changes.
        self.tables = enrichment.load(EnrichmentOptions.model_construct(catalog=options.catalog))

    def map(self, unit: RawUnit) -> Mapped:
        bill = unit.payload
        if not isinstance(bill, Bill):
            # A broken unit: the source's findings already say why.
            return Mapped(
                findings=[
                    error("x12-309-payload", "", "the unit holds no parsed 309 bill", unit.location)
                ]
            )
        self.tables.refresh()
        return map_bill(bill, self.context, self.tables if self.options.sku_in_marks else None)


# --------------------------------------------------------------------------- hooks


@hookimpl
def register_sources(register: Any) -> None:
    register(
        NAME,
        X12309Source,
        options=X12309Options,
        description="ANSI X12 309 Customs Manifest (ACE truck eManifest) files, "
        "one consignment per bill",
    )


@hookimpl
def register_mappers(register: Any) -> None:
    register(NAME, X12309Mapper, options=X12309Options)

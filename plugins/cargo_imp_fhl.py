"""Source and mapper `cargo-imp-fhl`: IATA Cargo-IMP FHL messages (house waybills).

The source streams FHL files (one, or a folder of them) and yields one raw unit per
house waybill, keyed `fhl:` + master AWB + `/` + house number; what cannot be filed
comes out as a unit with error findings and no payload. The mapper turns a house into
Consignment fields; docs/sources.md says which line becomes which field.

A file can be read from any house on (`read_span`, at a position the keys pass gave:
`read_key_positions`), so that `s321 preview`'s workers read their own houses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import error
from s321.hookspecs import hookimpl
from s321.inputs import input_files
from s321.paths import ConfigPath
from s321.plugins.cargo_imp import fhl, mapping
from s321.plugins.cargo_imp.lines import is_line_compatible
from s321.plugins.cargo_imp.model import House
from s321.plugins.text_encoding import encoding_problem

NAME = "cargo-imp-fhl"
DEFAULT_PATTERNS = ("*.txt", "*.fhl")

_DEFAULTED = ("consignment_originator", "known_carrier_customer", "seller",
              "marketplace_seller_id", "identified_marketplace_merchant", "exemption_claimant")
"""Record fields an FHL may not carry, filled from the pipeline's `defaults`."""


class FhlOptions(BaseModel):
    """The `[pipelines.NAME.source]` table of a `cargo-imp-fhl` source."""

    model_config = ConfigDict(extra="forbid")

    path: ConfigPath = Field(description="An FHL file, or a folder of them.")
    pattern: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PATTERNS),
        description="Glob pattern(s) of the files to read in a folder ('**/*.txt' recurses).",
    )
    encoding: str = Field(
        default="utf-8",
        description="Text encoding of the files (utf-8 by default; latin-1, cp1252). A file "
        "that does not decode in it is refused whole, naming the line: no house of it is filed. "
        "Must keep CR, LF and '/' as single ASCII bytes.",
    )
    catalog: ConfigPath | None = Field(
        default=None,
        description="Reserved: the product catalog is looked up by SKU, which FHL house "
        "waybills do not carry, so it cannot be set for this source yet.",
    )

    @field_validator("pattern", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("encoding")
    @classmethod
    def _line_encoding(cls, value: str) -> str:
        if not is_line_compatible(value):
            raise ValueError(f"{value!r} is not an encoding this source can split into lines "
                             "(use utf-8, latin-1 or cp1252)")
        return value

    @field_validator("catalog")
    @classmethod
    def _no_catalog_yet(cls, value: Path | None) -> Path | None:
        # Accepting it silently would suggest an enrichment that never happens.
        if value is not None:
            raise ValueError("FHL house waybills carry no SKU to look a catalog row up by; "
                             "remove `catalog` from this source")
        return value


class FhlSource:
    """Reads FHL files; see the module docstring for what it yields."""

    def __init__(self, options: FhlOptions, context: PipelineContext):
        self.options = options
        self.context = context
        self.acked: Any = None

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        targets = [Path(p) for p in paths] if paths is not None else [self.options.path]
        for path in input_files(targets, self.options.pattern):
            yield from self._read_file(path)

    def read_keys(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        """The units of `read()` with the same keys, locations and checkpoints, without
        reading each house's own lines: the pipeline's duplicate-key pass."""
        targets = [Path(p) for p in paths] if paths is not None else [self.options.path]
        for path in input_files(targets, self.options.pattern):
            yield from self._read_file(path, payload=False)

    # Spans (s321.parallel): workers read their own houses of a file.

    def read_key_positions(self, paths: Iterable[Path] | None = None
                           ) -> Iterator[tuple[RawUnit, tuple[int, str, int, int, fhl.HouseStart] | None]]:
        """The units of `read_keys`, each house with where `read_span` can start at it
        (the number of the file in this read, so that a file named twice is two
        readings, then the file with its size and time of change, and the
        `fhl.HouseStart`); None for every other unit, which is the whole of what `read()`
        yields there (a problem of a message or master, a file refused whole)."""
        targets = [Path(p) for p in paths] if paths is not None else [self.options.path]
        for reading, path in enumerate(input_files(targets, self.options.pattern)):
            try:
                stat = path.stat()
            except OSError:
                for unit in self._read_file(path):  # says why, as read() does
                    yield unit, None
                continue
            for unit, start in self._read_file_positions(path):
                yield unit, None if start is None else (
                    reading, str(path), stat.st_size, stat.st_mtime_ns, start)

    def read_span(self, position: tuple[int, str, int, int, fhl.HouseStart], count: int
                  ) -> Iterator[RawUnit]:
        """The `count` units `read()` yields from the house at `position` on, the same in
        every field (the file's encoding was checked by `read_key_positions`); a file
        changed since, or that cannot be read, is one unit that says so."""
        _reading, file, size, mtime_ns, start = position
        path = Path(file)
        at = f"{file}:{start.line}"
        try:
            stat = path.stat()
            stream = path.open("rb")
        except OSError as exc:
            yield _unreadable(path, f"reading {path} stopped: {exc.strerror or exc}")
            return
        with stream:
            done = 0
            try:
                units = None
                if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns):
                    units = fhl.parse_span(stream, file, start, self.options.encoding)
                for unit in islice(units or (), count):
                    yield unit
                    done += 1
            except OSError as exc:  # the disk, not the content: name it, as read() does
                yield _unreadable(path, f"reading {path} failed: {exc.strerror or exc}")
                return
            if done < count:
                yield RawUnit(f"fhl-file:{path.name}", at, None, (error(
                    "fhl-unreadable-file", "", f"{path} changed while it was read: read it "
                    "again", at),), (file, start.line))

    def ack(self, upto: Any) -> None:
        # Files stay where they are: the ledger makes reading them again a no-op, so
        # nothing has to be moved or deleted for delivery to be safe.
        self.acked = upto

    def _read_file(self, path: Path, payload: bool = True) -> Iterator[RawUnit]:
        for unit, _start in self._read_file_positions(path, payload, track=False):
            yield unit

    def _read_file_positions(self, path: Path, payload: bool = False, track: bool = True
                             ) -> Iterator[tuple[RawUnit, fhl.HouseStart | None]]:
        """The units of a file, each house with its start when `track` (else None)."""
        try:
            stream = path.open("rb")
        except OSError as exc:
            yield _unreadable(path, f"cannot open {path}: {exc.strerror or exc}"), None
            return
        with stream:
            try:
                problem = encoding_problem(path, self.options.encoding)
            except OSError:
                problem = None  # the reading below names it
            if problem is not None:  # refused whole: no house of it is filed
                yield RawUnit(f"fhl-file:{path.name}", problem.location or str(path), None,
                              (problem,), (str(path), 0)), None
                return
            try:
                if track:
                    yield from fhl.parse_positions(stream, str(path), self.options.encoding)
                else:
                    for unit in fhl.parse(stream, str(path), self.options.encoding, payload):
                        yield unit, None
            except OSError as exc:  # the disk, not the content: name it and go on
                yield _unreadable(path, f"reading {path} failed: {exc.strerror or exc}"), None


def _unreadable(path: Path, message: str) -> RawUnit:
    return RawUnit(f"fhl-file:{path.name}", str(path), None,
                   (error("fhl-unreadable-file", "", message, str(path)),), (str(path), 0))


class FhlMapper:
    """House -> Consignment fields. The pipeline settings fill originator code, filer
    type and mode; its `defaults` fill what an FHL does not carry."""

    def __init__(self, options: FhlOptions, context: PipelineContext):
        self.options = options
        self.context = context

    def map(self, unit: RawUnit) -> Mapped:
        house = unit.payload
        if not isinstance(house, House):
            # The parser's findings on the unit say why; this one says it was not filed.
            return Mapped(findings=[error("fhl-no-house", "", "this unit holds no readable "
                                          "house waybill", unit.location)])
        record, findings = mapping.to_record(house, self.context)
        _fill_defaults(record, self.context)
        return Mapped(record=record, findings=findings, hints=_hints(house))


def _fill_defaults(record: dict[str, Any], context: PipelineContext) -> None:
    for name in _DEFAULTED:
        default = getattr(context.defaults, name)
        if record.get(name) is None and default is not None:
            record[name] = (default.model_dump(exclude_none=True)
                            if isinstance(default, BaseModel) else default)


_HINTS = {
    "consignment_originator": "the house's SHP block, or `defaults.consignment_originator` in the "
                              "pipeline's config",
    "ultimate_deliver_to": "the house's CNE block (name, street, LOC city and state, the country "
                           "line with the ZIP)",
    "items.*.description": "the house's TXT line (or the nature of goods on its HBS line)",
    "items.*.hts_code": "the house's HTS line",
    "items.*.listed_price": "the declared value for customs on the house's CVD line",
    "items.*.currency": "the currency on the house's CVD line",
    "security_scan": "add the house's OCI security lines (status SS, screening method SM, issuer "
                     "ISS); a carrier that screens everything at origin may state it once in "
                     "`defaults.security_scan` (docs/configuration.md)",
}
"""Where each record field comes from in an FHL, for the messages of findings on it."""


def _hints(house: House) -> dict[str, str]:
    """`_HINTS`; when no OCI line decides the security status but the HBS handling codes
    carry a secured status (SPX), the security hint says so."""
    seen = [code for code in house.special_handling if code in mapping.SECURED]
    if not seen or (house.security is not None and house.security.decides):
        return _HINTS
    return {**_HINTS, "security_scan": (
        f"the house's handling codes say {seen[0]} (secured) but no OCI line says how and by "
        f"whom it was screened: {_HINTS['security_scan']}")}


@hookimpl
def register_sources(register: Any) -> None:
    register(NAME, FhlSource, options=FhlOptions,
             description="IATA Cargo-IMP FHL house waybills (FHL/2 to FHL/5), from files")


@hookimpl
def register_mappers(register: Any) -> None:
    register(NAME, FhlMapper, options=FhlOptions)


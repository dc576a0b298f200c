"""X12 envelope checking: ISA/IEA, GS/GE and ST/SE pairing, control numbers and counts.

Promises: `read_sets` reads a file twice (check, then deliver), so memory is bounded by
the longest segment and the problems found; a broken transaction set is never half
delivered; nothing here raises on bad input: every problem becomes a `Problem`.
`resume_sets` delivers again from a segment of a sound set that `read_sets` delivered,
without the check (its caller knows what the check found).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from s321.findings import Finding, Severity, error

from .tokenizer import CHUNK_SIZE, Cursor, Mark, Segment, location, resume, segments


@dataclass(frozen=True, slots=True)
class SetHeader:
    """Where a transaction set sits: its ST and the group and interchange around it."""

    control: str  # ST02
    type: str  # ST01, e.g. "309"
    position: int  # segment number of the ST
    version: str  # GS08 (e.g. "004010"), or ISA12 when GS08 is empty
    functional_id: str  # GS01
    source: str

    @property
    def location(self) -> str:
        return location(self.source, self.position)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where `resume_sets` can deliver from: a segment of a sound transaction set, that
    set's header, and the version its interchange declares (ISA12), which a later group
    without a GS08 takes."""

    mark: Mark
    header: SetHeader
    isa_version: str


class SetCursor(Cursor):
    """A `Cursor` on the segments `read_sets` delivers, which also knows the version the
    interchange being read declares: `resume_at(header, segment)` is where delivery can
    start again at the segment delivered last."""

    def __init__(self) -> None:
        super().__init__()
        self.isa_version = ""

    def resume_at(self, header: SetHeader, segment: Segment) -> Resume:
        return Resume(self.mark(segment), header, self.isa_version)


@dataclass(frozen=True, slots=True)
class Problem:
    """Findings about one place in the file. `set_control` is set when they discard a
    whole transaction set (then `position` is its ST)."""

    position: int
    findings: tuple[Finding, ...]
    set_control: str | None = None


class EnvelopeChecker:
    """Checks ISA/IEA, GS/GE and ST/SE pairing, control numbers and counts.

    A transaction set with any problem of its own (SE missing, SE01 or SE02 wrong, a
    tokenizer error inside it, no GS around it) is broken and listed in
    `broken_sets`. Group and interchange trailer problems are findings of their own:
    the sets inside have their own SE check, so they still go through."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.broken_sets: set[int] = set()
        self.interchanges = 0
        self._isa: Segment | None = None
        self._groups = 0
        self._gs: Segment | None = None
        self._sets = 0
        self._st: Segment | None = None
        self._count = 0
        self._set_findings: list[Finding] = []
        self._stray: tuple[int, int, str] | None = None  # first position, count, first tag

    def _loc(self, number: int) -> str:
        return location(self.source, number)

    def _problem(self, number: int, code: str, field: str, message: str) -> None:
        self.problems.append(Problem(number, (error(code, field, message, self._loc(number)),)))

    def feed(self, item: Segment | Finding) -> None:
        if isinstance(item, Finding):
            self._flush_stray()
            if self._st is not None and item.severity is Severity.ERROR:
                self._set_findings.append(item)
                if item.code in _UNREADABLE_SEGMENT:
                    self._count += 1  # it was a segment, so SE01 counts it
            else:
                number = _position(item)
                self.problems.append(Problem(number, (item,)))
            return
        handler = _HANDLERS.get(item.tag)
        if handler is not None:
            self._flush_stray()
            handler(self, item)
        elif self._st is not None:
            self._count += 1
        elif self._stray is None:
            self._stray = (item.number, 1, item.tag)
        else:
            first, count, tag = self._stray
            self._stray = (first, count + 1, tag)

    def finish(self, last: int) -> None:
        """End of file after segment `last`: close whatever is still open."""
        self._flush_stray()
        self._close_interchange(last, "the file ends")
        if self.interchanges == 0 and not self.problems:
            self._problem(1, "x12-empty", "ISA", "the file holds no X12 interchange")

    # ------------------------------------------------------------------ structure

    def _on_isa(self, seg: Segment) -> None:
        self._close_interchange(seg.number, "another ISA starts")
        self._isa, self._groups = seg, 0
        self.interchanges += 1

    def _on_gs(self, seg: Segment) -> None:
        if self._isa is None:
            self._problem(
                seg.number,
                "x12-outside-interchange",
                "GS",
                "GS outside an interchange (no ISA before it)",
            )
        self._close_group(seg.number, "another GS starts")
        self._gs, self._sets = seg, 0

    def _on_st(self, seg: Segment) -> None:
        self._close_set(seg.number, "another ST starts")
        self._st, self._count, self._set_findings = seg, 1, []
        if self._gs is None:
            self._set_findings.append(
                error(
                    "x12-outside-group",
                    "GS",
                    f"transaction set ST02={seg.get(2)!r} is not inside a functional group "
                    "(no GS before it)",
                    self._loc(seg.number),
                )
            )

    def _on_se(self, seg: Segment) -> None:
        st = self._st
        if st is None:
            self._problem(seg.number, "x12-stray-trailer", "SE", "SE without an ST before it")
            return
        self._count += 1
        control = st.get(2)
        if seg.get(2) != control:
            self._set_findings.append(
                error(
                    "x12-se-control",
                    "SE02",
                    f"transaction set ST02={control!r} (ST at segment {st.number}) ends with "
                    f"SE02={seg.get(2)!r}",
                    self._loc(seg.number),
                )
            )
        if seg.get(1) != str(self._count):
            self._set_findings.append(
                error(
                    "x12-se-count",
                    "SE01",
                    f"transaction set ST02={control!r} (ST at segment {st.number}): SE01 says "
                    f"{seg.get(1)!r} segments, counted {self._count} from ST to SE",
                    self._loc(seg.number),
                )
            )
        self._end_set()

    def _on_ge(self, seg: Segment) -> None:
        self._close_set(seg.number, "GE comes first")
        gs = self._gs
        if gs is None:
            self._problem(seg.number, "x12-stray-trailer", "GE", "GE without a GS before it")
            return
        if seg.get(2) != gs.get(6):
            self._problem(
                seg.number,
                "x12-ge-control",
                "GE02",
                f"functional group GS06={gs.get(6)!r} (GS at segment {gs.number}) ends with "
                f"GE02={seg.get(2)!r}",
            )
        if seg.get(1) != str(self._sets):
            self._problem(
                seg.number,
                "x12-ge-count",
                "GE01",
                f"functional group GS06={gs.get(6)!r}: GE01 says {seg.get(1)!r} transaction "
                f"sets, counted {self._sets}",
            )
        self._gs = None
        self._groups += 1

    def _on_iea(self, seg: Segment) -> None:
        self._close_group(seg.number, "IEA comes first")
        isa = self._isa
        if isa is None:
            self._problem(seg.number, "x12-stray-trailer", "IEA", "IEA without an ISA before it")
            return
        if seg.get(2) != isa.get(13):
            self._problem(
                seg.number,
                "x12-iea-control",
                "IEA02",
                f"interchange ISA13={isa.get(13)!r} (ISA at segment {isa.number}) ends with "
                f"IEA02={seg.get(2)!r}",
            )
        if seg.get(1) != str(self._groups):
            self._problem(
                seg.number,
                "x12-iea-count",
                "IEA01",
                f"interchange ISA13={isa.get(13)!r}: IEA01 says {seg.get(1)!r} functional "
                f"groups, counted {self._groups}",
            )
        self._isa = None

    # ------------------------------------------------------------------ closing

    def _close_set(self, number: int, why: str) -> None:
        st = self._st
        if st is None:
            return
        self._set_findings.append(
            error(
                "x12-se-missing",
                "SE",
                f"transaction set ST02={st.get(2)!r} (ST at segment {st.number}) has no SE: {why}",
                self._loc(number),
            )
        )
        self._end_set()

    def _end_set(self) -> None:
        st = self._st
        assert st is not None
        if self._set_findings:
            self.broken_sets.add(st.number)
            self.problems.append(Problem(st.number, tuple(self._set_findings), st.get(2)))
        self._st, self._set_findings = None, []
        self._sets += 1

    def _close_group(self, number: int, why: str) -> None:
        self._close_set(number, why)
        gs = self._gs
        if gs is not None:
            self._problem(
                number,
                "x12-ge-missing",
                "GE",
                f"functional group GS06={gs.get(6)!r} (GS at segment {gs.number}) has no GE: {why}",
            )
            self._gs = None
            self._groups += 1

    def _close_interchange(self, number: int, why: str) -> None:
        self._close_group(number, why)
        isa = self._isa
        if isa is not None:
            self._problem(
                number,
                "x12-iea-missing",
                "IEA",
                f"interchange ISA13={isa.get(13)!r} (ISA at segment {isa.number}) has no IEA: "
                f"{why}",
            )
            self._isa = None

    def _flush_stray(self) -> None:
        if self._stray is None:
            return
        first, count, tag = self._stray
        self._stray = None
        what = f"segment {tag}" if count == 1 else f"{count} segments (from {tag})"
        self._problem(
            first, "x12-outside-set", tag, f"{what} outside any transaction set (no ST before)"
        )


_UNREADABLE_SEGMENT = frozenset({"x12-segment-too-long", "x12-bad-segment"})

_HANDLERS = {
    "ISA": EnvelopeChecker._on_isa,
    "GS": EnvelopeChecker._on_gs,
    "ST": EnvelopeChecker._on_st,
    "SE": EnvelopeChecker._on_se,
    "GE": EnvelopeChecker._on_ge,
    "IEA": EnvelopeChecker._on_iea,
}


def _position(finding: Finding) -> int:
    loc = finding.location or ""
    tail = loc.rpartition(":segment ")[2]
    return int(tail) if tail.isdigit() else 0


def scan(stream: BinaryIO, source: str, chunk_size: int = CHUNK_SIZE) -> EnvelopeChecker:
    """First pass: check the envelopes of a whole stream without keeping its segments."""
    checker = EnvelopeChecker(source)
    last = 0
    for item in segments(stream, source, chunk_size, envelope_only=True):
        if isinstance(item, Segment):
            last = item.number
        checker.feed(item)
    checker.finish(max(last, 1))
    return checker


def read_sets(
    path: Path, source: str | None = None, chunk_size: int = CHUNK_SIZE, encoding: str = "utf-8",
    cursor: SetCursor | None = None, elements_of: frozenset[str] | None = None,
) -> Iterator[tuple[SetHeader, Segment] | Problem]:
    """The segments of every sound transaction set of `path`, ST to SE, each with its
    header, and a `Problem` for everything else, in file order.

    Two passes over the file: the first checks the envelopes, the second hands out
    the segments of the sets that passed. So a broken set is never half delivered, and
    memory does not grow with the size of a set. Never raises: an unreadable file is a
    Problem. A `cursor` follows the second pass: where delivery can resume. With
    `elements_of`, only segments with these tags (and the envelope's) come with their
    elements: the others are tags and numbers, for a reader that needs no more."""
    name = source or str(path)
    try:
        with path.open("rb") as fh:
            checker = scan(fh, name, chunk_size)
        problems = sorted(checker.problems, key=lambda p: p.position)
        with path.open("rb") as fh:
            yield from _deliver(fh, name, chunk_size, checker.broken_sets, problems, encoding,
                                cursor, elements_of)
    except OSError as exc:
        yield _unreadable(name, 0, exc)


def _unreadable(name: str, number: int, exc: OSError) -> Problem:
    return Problem(number, (error("x12-read-error", "",
                                  f"the file could not be read: {exc.strerror or exc}",
                                  location(name, number)),))


def resume_sets(
    path: Path, at: Resume, source: str | None = None, chunk_size: int = CHUNK_SIZE,
    encoding: str = "utf-8",
) -> Iterator[tuple[SetHeader, Segment] | Problem]:
    """What `read_sets` delivers from the segment at `at` on, as long as it delivers
    sets: the same segments with the same headers, on the trust that every set read
    here is one `read_sets` delivered whole (the caller stops before a set it found
    broken, or any Problem: none is looked for here). A file that cannot be read is a
    Problem, as there."""
    name = source or str(path)
    try:
        with path.open("rb") as fh:
            yield from _redeliver(fh, name, chunk_size, at, encoding)
    except OSError as exc:
        yield _unreadable(name, at.mark.number + 1, exc)


def _redeliver(
    stream: BinaryIO, source: str, chunk_size: int, at: Resume, encoding: str
) -> Iterator[tuple[SetHeader, Segment] | Problem]:
    # _deliver's headers without its checks: the group's version and id are the set's.
    isa_version = at.isa_version
    current: SetHeader | None = at.header
    in_group = True
    version, functional_id = current.version, current.functional_id
    for item in resume(stream, source, at.mark, chunk_size, encoding):
        if not isinstance(item, Segment):
            if item.code == "x12-read-error":
                yield Problem(_position(item), (item,))
            continue
        tag = item.tag
        if tag == "ISA":
            isa_version, in_group, current = item.get(12), False, None
        elif tag == "GS":
            version, functional_id = item.get(8) or isa_version, item.get(1)
            in_group, current = True, None
        elif tag in ("GE", "IEA"):
            in_group, current = False, None
        elif tag == "ST":
            current = None
            if in_group:
                current = SetHeader(item.get(2), item.get(1), item.number, version,
                                    functional_id, source)
        if current is not None:
            yield current, item
            if tag == "SE":
                current = None


def read_sets_from_bytes(
    data: bytes, source: str, encoding: str = "utf-8"
) -> Iterator[tuple[SetHeader, Segment] | Problem]:
    """`read_sets` over a document held in memory (a transmission a serializer decodes):
    the same two passes, the same promises."""
    checker = scan(io.BytesIO(data), source)
    problems = sorted(checker.problems, key=lambda p: p.position)
    yield from _deliver(io.BytesIO(data), source, CHUNK_SIZE, checker.broken_sets, problems, encoding)


def _deliver(
    stream: BinaryIO, source: str, chunk_size: int, broken: set[int], problems: list[Problem],
    encoding: str = "utf-8", cursor: SetCursor | None = None,
    elements_of: frozenset[str] | None = None,
) -> Iterator[tuple[SetHeader, Segment] | Problem]:
    pending = iter(problems)
    nxt = next(pending, None)
    isa: Segment | None = None
    gs: Segment | None = None
    current: SetHeader | None = None
    for item in segments(stream, source, chunk_size, encoding=encoding, cursor=cursor,
                         elements_of=elements_of):
        if not isinstance(item, Segment):
            if item.code == "x12-read-error":  # the first pass read it, this one could not
                yield Problem(_position(item), (item,))
            continue  # everything else was reported by the first pass
        while nxt is not None and nxt.position <= item.number:
            yield nxt
            nxt = next(pending, None)
        tag = item.tag
        if tag == "ISA":
            isa, gs, current = item, None, None
            if cursor is not None:
                cursor.isa_version = item.get(12)
        elif tag == "GS":
            gs, current = item, None
        elif tag in ("GE", "IEA"):
            gs, current = None, None
        elif tag == "ST":
            current = None
            if item.number not in broken and gs is not None:
                version = gs.get(8) or (isa.get(12) if isa else "")
                current = SetHeader(
                    item.get(2), item.get(1), item.number, version, gs.get(1), source
                )
        if current is not None:
            yield current, item
            if tag == "SE":
                current = None
    while nxt is not None:
        yield nxt
        nxt = next(pending, None)

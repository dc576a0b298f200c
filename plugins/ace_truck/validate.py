"""Structural validation of an ACE truck transmission against the guide's tables (guide.py):
the envelope, segment order and loops, max use, mandatory elements, types, lengths, codes.

`validate(data)` never raises on bad input: every problem is a `Problem` naming the segment
(its number in the file), the loop, the element reference and the guide's rule, with the
X12 syntax code a 997 reports and, where CBP has one, the error code a 355 reports.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date

from s321.findings import Finding, error

from ..x12.tokenizer import Segment, location, segments
from . import guide
from .guide import Element, Loop, SegmentSpec, TransactionSpec

INTERCHANGE = "interchange"
TRIP = "trip"
SHIPMENT = "shipment"
"""Scopes: what a problem takes down. An interchange problem rejects the whole transmission
(997); a trip problem rejects the trip and so every shipment on it (355); a shipment problem
rejects that shipment only (355)."""

GENERIC = "006"
"""The 355 code for a problem CBP's error dictionary (as read) has no code of its own for:
Appendix H 006 INVALID RECORD TYPE (a record not valid for the transaction set)."""

# CBP's error code where one names the rule broken (guide.ERROR_CODES): by element ref,
# and by missing segment.
_ELEMENT_CODES = {"M1001": "009", "M1002": "010", "M1003": "011", "M1006": "012", "M1101": "017",
                  "M1112": "017", "M1106": "021", "N1007": "021", "P401": "033", "VEH21": "401",
                  "VEH22": "401", "VEH11": "402"}
_MISSING_CODES = {"M10": "001", "P4": "002", "M11": "003", "N10": "007"}
_ISA_PADDED = frozenset({"ISA02", "ISA04", "ISA06", "ISA08"})
_MAX_SEGMENTS = 200_000  # a 309 of 9999 shipments stays far below this

_N0 = re.compile(r"-?[0-9]+\Z")
_R = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)\Z")
_TM = re.compile(r"([01][0-9]|2[0-3])[0-5][0-9](?:[0-5][0-9](?:[0-9]{1,2})?)?\Z")


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a transmission breaks the guide."""

    number: int  # segment number in the file (ISA is 1)
    segment: str  # segment id
    loop: str  # loop path in the set ("P4/LX/N1"), "" for the heading, "envelope"
    element: str | None  # element reference ("M1101"), None for a segment problem
    reason: str  # what the guide says and what was found
    scope: str  # INTERCHANGE, TRIP or SHIPMENT
    syntax: str  # X12 code: AK304 for a segment, AK403 for an element, AK502/AK905 envelope
    cbp: str = GENERIC  # CBP error code for the 355
    shipment: int | None = None  # index (0-based) of the LX loop it is in
    set_position: int | None = None  # position in the set, ST = 1 (AK302)

    def finding(self, source: str) -> Finding:
        where = self.element or self.segment
        return error(f"ace309-{self.scope}-{self.cbp}", where, self.reason, location(source, self.number))


@dataclass(slots=True)
class Shipment:
    """One LX loop: a shipment as the 309 files it."""

    index: int
    number: int  # segment number of its LX
    control_number: str = ""  # M1101
    action: str = "add"  # guide.AMENDMENT_ACTIONS value (M1303), "add" without M13
    segments: list[Segment] = field(default_factory=list)


@dataclass(slots=True)
class Transmission:
    """What `validate` found: the problems and the parts the answers need."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    interchange_control: str = ""  # ISA13
    group_control: str = ""  # GS06
    set_control: str = ""  # ST02
    set_id: str = ""  # ST01
    sender: str = ""  # GS02
    receiver: str = ""  # GS03
    scac: str = ""  # M1001
    trip: str = ""  # M1006
    port: str = ""  # P401
    shipments: list[Shipment] = field(default_factory=list)

    @property
    def syntax_ok(self) -> bool:
        """No interchange-scope problem: the 997 accepts the transaction set."""
        return not any(p.scope == INTERCHANGE for p in self.problems)

    @property
    def trip_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.scope == TRIP]

    def shipment_problems(self, index: int) -> list[Problem]:
        return [p for p in self.problems if p.scope == SHIPMENT and p.shipment == index]

    def findings(self) -> list[Finding]:
        return [p.finding(self.source) for p in self.problems]


def validate(data: bytes, source: str = "transmission", spec: TransactionSpec = guide.TS309) -> Transmission:
    """Check one transmission (bytes of one interchange) against `spec` and the envelope."""
    result = Transmission(source)
    checker = _Checker(result, spec)
    for item in segments(io.BytesIO(data), source):
        if isinstance(item, Finding):
            result.problems.append(Problem(_number(item), "", "envelope", None, item.message,
                                           INTERCHANGE, "1"))
            continue
        checker.feed(item)
        if item.number > _MAX_SEGMENTS:
            result.problems.append(Problem(item.number, item.tag, "envelope", None,
                                           f"more than {_MAX_SEGMENTS} segments", INTERCHANGE, "5"))
            break
    checker.finish()
    return result


def _number(finding: Finding) -> int:
    match = re.search(r"segment (\d+)", finding.location or "")
    return int(match.group(1)) if match else 0


# --------------------------------------------------------------------------- the checker


@dataclass(slots=True)
class _Frame:
    nodes: tuple[SegmentSpec | Loop, ...]
    loop: Loop | None
    path: str
    index: int = 0
    uses: dict[int, int] = field(default_factory=dict)


class _Checker:
    """Walks the segments once: envelope pairing and counts, then the set's table."""

    def __init__(self, result: Transmission, spec: TransactionSpec):
        self.r = result
        self.spec = spec
        self.isa: Segment | None = None
        self.gs: Segment | None = None
        self.st: Segment | None = None
        self.counts = {"ISA": 0, "GS": 0, "ST": 0, "IEA": 0, "GE": 0, "SE": 0}
        self.sets_in_group = 0
        self.set_count = 0
        self.stack: list[_Frame] = []
        self.shipment: Shipment | None = None
        self.last = 0
        self.spec_ids = {seg.id for _, seg in spec.segments()}

    # ------------------------------------------------------------------ problems

    def _env(self, seg: Segment | None, number: int, reason: str, syntax: str, element: str | None = None) -> None:
        self.r.problems.append(Problem(number, seg.tag if seg else "", "envelope", element, reason,
                                       INTERCHANGE, syntax))

    def _set_problem(self, seg: Segment | None, seg_id: str, path: str, element: str | None, reason: str,
                     syntax: str, cbp: str = GENERIC, number: int | None = None) -> None:
        in_shipment = self.shipment is not None and path.startswith("P4/LX") and seg_id != "SE"
        scope = SHIPMENT if in_shipment else TRIP
        if element is None and syntax in {"6", "7"} and not in_shipment:
            scope = INTERCHANGE  # a set whose heading cannot be read is refused whole
        at = number if number is not None else (seg.number if seg else self.last)
        position = at - self.st.number + 1 if self.st is not None else None
        self.r.problems.append(Problem(at, seg_id, path, element, reason, scope, syntax, cbp,
                                       self.shipment.index if in_shipment and self.shipment else None,
                                       position))

    # ------------------------------------------------------------------ feeding

    def feed(self, seg: Segment) -> None:
        self.last = seg.number
        tag = seg.tag
        if tag in self.counts:
            self.counts[tag] += 1
        handler = getattr(self, f"_on_{tag.lower()}", None) if tag in self.counts else None
        if handler is not None:
            handler(seg)
            return
        if self.st is None:
            self._env(seg, seg.number, f"{tag} outside a transaction set (ST..SE)", "2")
            return
        self.set_count += 1
        self._body(seg)

    def _on_isa(self, seg: Segment) -> None:
        if self.counts["ISA"] > 1:
            self._env(seg, seg.number, f"a second ISA: {guide.G309} allows one interchange per transmission", "2")
            return
        self.isa = seg
        self.r.interchange_control = seg.get(13)
        self._elements(seg, guide.ISA, "envelope", envelope=True)

    def _on_gs(self, seg: Segment) -> None:
        if self.isa is None:
            self._env(seg, seg.number, "GS before any ISA", "2")
        if self.counts["GS"] > 1:
            self._env(seg, seg.number, f"a second GS: {guide.G309} allows one functional group per transmission", "2")
            return
        self.gs = seg
        self.r.group_control, self.r.sender, self.r.receiver = seg.get(6), seg.get(2), seg.get(3)
        self._elements(seg, guide.GS, "envelope", envelope=True)
        if seg.get(1) != self.spec.functional_id:
            self._env(seg, seg.number, f"GS01 is {seg.get(1)!r}: a {self.spec.id} travels in functional "
                      f"group {self.spec.functional_id!r} ({self.spec.source})", "1", "GS01")
        if seg.get(8) != self.spec.version:
            self._env(seg, seg.number, f"GS08 is {seg.get(8)!r}: the guide is built on X12 "
                      f"{self.spec.version} ({self.spec.source})", "2", "GS08")

    def _on_st(self, seg: Segment) -> None:
        if self.gs is None:
            self._env(seg, seg.number, "ST outside a functional group (no GS before it)", "18")
        if self.counts["ST"] > 1:
            self._env(seg, seg.number, f"a second transaction set: {guide.G309} allows one "
                      f"{self.spec.id} per transmission", "5")
            self.st = None
            return
        self.st, self.set_count, self.sets_in_group = seg, 1, self.sets_in_group + 1
        self.r.set_control, self.r.set_id = seg.get(2), seg.get(1)
        root = self.spec.body
        self.stack = [_Frame(root, None, "", 0, {0: 1})]
        self._elements(seg, root[0], "")  # type: ignore[arg-type]
        if seg.get(1) != self.spec.id:
            self._env(seg, seg.number, f"ST01 is {seg.get(1)!r}, not {self.spec.id!r}", "6", "ST01")

    def _on_se(self, seg: Segment) -> None:
        st = self.st
        if st is None:
            if self.counts["ST"] <= 1:
                self._env(seg, seg.number, "SE without an ST before it", "2")
            return
        self.set_count += 1
        self._close_to(1, seg.number)
        self._end_shipment()
        if self.stack:
            root = self.stack[0]
            for k in range(root.index + 1, len(root.nodes) - 1):  # SE itself is here
                self._missing(root, k, seg.number)
        se_spec = self.spec.body[-1]
        assert isinstance(se_spec, SegmentSpec)
        self._elements(seg, se_spec, "")
        if seg.get(1) != str(self.set_count):
            self._env(seg, seg.number, f"SE01 says {seg.get(1)!r} but the set has {self.set_count} "
                      "segments, ST and SE included", "4", "SE01")
        if seg.get(2) != st.get(2):
            self._env(seg, seg.number, f"SE02 {seg.get(2)!r} does not match ST02 {st.get(2)!r}", "3", "SE02")
        self.st = None

    def _on_ge(self, seg: Segment) -> None:
        if self.st is not None:
            self._env(self.st, seg.number, "the transaction set has no SE before GE", "2")
            self.st = None
        if self.gs is None:
            self._env(seg, seg.number, "GE without a GS", "3")
            return
        self._elements(seg, guide.GE, "envelope", envelope=True)
        if seg.get(1) != str(self.sets_in_group):
            self._env(seg, seg.number, f"GE01 says {seg.get(1)!r} but the group holds "
                      f"{self.sets_in_group} transaction sets", "5", "GE01")
        if seg.get(2) != self.gs.get(6):
            self._env(seg, seg.number, f"GE02 {seg.get(2)!r} does not match GS06 {self.gs.get(6)!r}", "4", "GE02")

    def _on_iea(self, seg: Segment) -> None:
        if self.isa is None:
            self._env(seg, seg.number, "IEA without an ISA", "2")
            return
        self._elements(seg, guide.IEA, "envelope", envelope=True)
        groups = min(self.counts["GS"], 1) if self.counts["GS"] else 0
        if seg.get(1) != str(groups):
            self._env(seg, seg.number, f"IEA01 says {seg.get(1)!r} but the interchange holds {groups} "
                      "functional groups", "5", "IEA01")
        if seg.get(2) != self.isa.get(13):
            self._env(seg, seg.number, f"IEA02 {seg.get(2)!r} does not match ISA13 {self.isa.get(13)!r}",
                      "4", "IEA02")

    def finish(self) -> None:
        for tag, trailer in (("ISA", "IEA"), ("GS", "GE"), ("ST", "SE")):
            if self.counts[tag] and not self.counts[trailer]:
                self._env(None, self.last, f"{tag} has no {trailer}: the transmission is cut short", "2", trailer)
        if not self.counts["ISA"]:
            self._env(None, 1, "no ISA: this is not an X12 interchange", "1", "ISA")
        elif not self.counts["ST"]:
            self._env(None, self.last, f"no transaction set: a transmission carries one {self.spec.id}", "1", "ST")

    # ------------------------------------------------------------------ the set's table

    def _body(self, seg: Segment) -> None:
        tag = seg.tag
        for depth in range(len(self.stack) - 1, -1, -1):
            frame = self.stack[depth]
            hit = _find(frame, tag)
            if hit is None and frame.loop is not None and frame.loop.id == tag:
                hit = -1  # the loop starts over: handled by its parent
            if hit is None:
                continue
            if hit == -1:
                self._close_to(depth, seg.number)
                self._enter(self.stack[-1], tag, seg)
            else:
                self._close_to(depth + 1, seg.number)
                self._enter(frame, tag, seg)
            return
        known = tag in self.spec_ids
        path = self.stack[-1].path if self.stack else ""
        self._set_problem(seg, tag, path, None,
                          f"{tag} is not in proper sequence here ({path or 'heading'})" if known else
                          f"{tag} is not a segment of the {self.spec.id} as the guide defines it",
                          "7" if known else "6")

    def _enter(self, frame: _Frame, tag: str, seg: Segment) -> None:
        j = _find(frame, tag)
        assert j is not None
        self._missing_between(frame, j, seg.number)
        node = frame.nodes[j]
        frame.index = j
        frame.uses[j] = frame.uses.get(j, 0) + 1
        if isinstance(node, Loop):
            path = f"{frame.path}/{node.id}" if frame.path else node.id
            if frame.uses[j] > node.repeat:
                self._set_problem(seg, tag, path, None, f"loop {node.id} repeats more than "
                                  f"{node.repeat} times ({node.source})", "4")
            if node.id == "LX" and path == "P4/LX":
                self._start_shipment(seg)
            self.stack.append(_Frame(node.body, node, path, 0, {0: 1}))
            self._elements(seg, node.header, path)
        else:
            if frame.uses[j] > node.max_use:
                self._set_problem(seg, tag, frame.path, None, f"{tag} is used {frame.uses[j]} times; "
                                  f"the guide allows {node.max_use} ({node.source})", "5")
            self._elements(seg, node, frame.path)

    def _missing_between(self, frame: _Frame, j: int, number: int) -> None:
        for k in range(frame.index + 1, j):
            self._missing(frame, k, number)

    def _close_to(self, keep: int, number: int) -> None:
        """Close the frames above the first `keep`, reporting mandatory segments never seen."""
        while len(self.stack) > keep:
            frame = self.stack.pop()
            for k in range(frame.index + 1, len(frame.nodes)):
                self._missing(frame, k, number)
            if frame.loop is not None and frame.path == "P4/LX":
                self._end_shipment()

    def _missing(self, frame: _Frame, k: int, number: int) -> None:
        node = frame.nodes[k]
        if node.req != guide.M or frame.uses.get(k):
            return
        seg_id = node.id
        path = frame.path if isinstance(node, SegmentSpec) else (f"{frame.path}/{node.id}" if frame.path else node.id)
        source = node.source
        self._set_problem(None, seg_id, path, None,
                          f"mandatory segment {seg_id} is missing ({source})", "3",
                          _MISSING_CODES.get(seg_id, GENERIC), number)

    # ------------------------------------------------------------------ shipments

    def _start_shipment(self, seg: Segment) -> None:
        self._end_shipment()
        self.shipment = Shipment(len(self.r.shipments), seg.number)
        self.r.shipments.append(self.shipment)

    def _end_shipment(self) -> None:
        shipment = self.shipment
        if shipment is None:
            return
        parties = {s.get(1) for s in shipment.segments if s.tag == "N1"}
        if shipment.action in {"add", "change"} and self.spec is guide.TS309:
            for code, cbp, who in ((guide.PARTY_SHIPPER, "004", "shipper"), (guide.PARTY_CONSIGNEE, "005", "consignee")):
                if code not in parties:
                    self._set_problem(None, "N1", "P4/LX/N1", "N101",
                                      f"the shipment has no {who} (N1 with N101 {code!r}; {guide.APPX_L} "
                                      f"error {cbp})", "3", cbp, shipment.segments[-1].number if shipment.segments else shipment.number)
        self.shipment = None

    # ------------------------------------------------------------------ elements

    def _elements(self, seg: Segment, spec: SegmentSpec, path: str, envelope: bool = False) -> None:
        if self.shipment is not None and path.startswith("P4/LX"):
            self.shipment.segments.append(seg)
            if seg.tag == "M11":
                self.shipment.control_number = seg.get(1)
            elif seg.tag == "M13":
                self.shipment.action = guide.AMENDMENT_ACTIONS.get(seg.get(3), "change")
        if path == "" and seg.tag == "M10":
            self.r.scac, self.r.trip = seg.get(1), seg.get(6)
        elif path == "P4" and seg.tag == "P4":
            self.r.port = seg.get(1)
        removed = self.shipment is not None and self.shipment.action in {"delete", "delink"}
        for problem in _element_problems(seg, spec, removed):
            ref, reason, syntax = problem
            if envelope:
                self._env(seg, seg.number, reason, syntax, ref)
            else:
                self._set_problem(seg, seg.tag, path, ref, reason, syntax, _ELEMENT_CODES.get(ref or "", GENERIC))


def _find(frame: _Frame, tag: str) -> int | None:
    """The first node at or after the frame's position whose segment (or loop header) is
    `tag`. A loop's own header never matches inside it: seen again, the loop starts over."""
    for j in range(frame.index, len(frame.nodes)):
        if j == 0 and frame.loop is not None:
            continue
        if frame.nodes[j].id == tag:
            return j
    return None


def _element_problems(seg: Segment, spec: SegmentSpec, removed: bool) -> list[tuple[str | None, str, str]]:
    out: list[tuple[str | None, str, str]] = []
    if len(seg.elements) > len(spec.elements):
        out.append((None, f"{seg.tag} has {len(seg.elements)} elements; the guide defines "
                    f"{len(spec.elements)} ({spec.source})", "3"))
    for element in spec.elements:
        value = seg.get(element.position)
        if element.ref in _ISA_PADDED:
            # Fixed width, blank padded: the tokenizer has stripped the padding (and
            # checked the ISA's fixed layout); blank is "no information" here.
            if len(value) > element.max:
                out.append((element.ref, f"{element.ref} is longer than {element.max}", "5"))
            continue
        required = element.req == guide.M or (element.ref in spec.required_unless_removed and not removed)
        if not value:
            if required:
                kind = "mandatory" if element.req == guide.M else "required for an add or change"
                out.append((element.ref, f"{element.ref} ({element.name}) is {kind} "
                            f"({_rule(element)}, {element.source})", "1" if element.req == guide.M else "2"))
            continue
        if element.req == guide.X:
            out.append((element.ref, f"{element.ref} ({element.name}) is not used by CBP, yet it holds "
                        f"a value ({element.source})", "I10"))
            continue
        problem = _value_problem(element, value)
        if problem:
            out.append((element.ref, f"{element.ref} ({element.name}) {problem[0]} "
                        f"({_rule(element)}, {element.source})", problem[1]))
    for first, second in spec.exclusive:
        if seg.get(int(first[-2:])) and seg.get(int(second[-2:])):
            out.append((second, f"only one of {first} or {second} may be present ({guide.CH2})", "10"))
    return out


def _rule(element: Element) -> str:
    return f"{element.req} {element.type} {element.min}/{element.max}"


def _value_problem(element: Element, value: str) -> tuple[str, str] | None:
    """What is wrong with a present value. Only codes (ID) are quoted: any other element
    may hold personal data (a name, a date of birth, a document number)."""
    kind = element.type
    size = len(value)
    shown = repr(value) if kind == "ID" else f"{len(value)} characters"
    if kind in {"N0", "N2", "R"}:
        size = len(value.replace("-", "").replace(".", ""))
        pattern = _R if kind == "R" else _N0
        if not pattern.match(value):
            return f"is not a number ({shown})", "6"
    if size < element.min:
        return f"is shorter than {element.min} ({shown})", "4"
    if size > element.max:
        return f"is {size} characters long, longer than {element.max}", "5"
    if kind == "DT" and not _valid_date(value):
        return "is not a date (CCYYMMDD)", "8"
    if kind == "TM" and not _TM.match(value):
        return "is not a time (HHMM)", "9"
    if element.codes and value not in element.codes:
        return f"is {shown}; the guide's codes are {', '.join(sorted(element.codes))}", "7"
    if kind in {"AN", "ID"} and any(ord(ch) < 32 for ch in value):
        return "holds a control character", "6"
    return None


def _valid_date(value: str) -> bool:
    if not (value.isascii() and value.isdigit()) or len(value) not in (6, 8):
        return False
    year = int(value[:-4]) + (2000 if len(value) == 6 else 0)
    try:
        date(year, int(value[-4:-2]), int(value[-2:]))
    except ValueError:
        return False
    return True

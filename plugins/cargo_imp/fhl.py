"""FHL messages -> raw units, one per house waybill (HBS), streaming line by line.

Every line lands somewhere: in the house it follows, as a finding, or in a unit of its
own that says why it could not be filed (lines before any HBS, a message that is not
an FHL, a master with no houses). Nothing raises for content and nothing is dropped
without a finding. Memory holds one house at a time, with bounded lines per house.

A reading can start again at any house (`parse_positions` notes where, `parse_span`
reads from there): the same units from that house on, in every field.
"""

from __future__ import annotations

import copy
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from s321.contracts import RawUnit
from s321.findings import Finding, error, warning

from . import segments
from .lines import ChunkStart, Chunks, Line, read_lines
from .model import CustomsInfo, House, SecurityDeclaration

KNOWN_VERSIONS = frozenset({"2", "3", "4", "5"})
MAX_REPEATS = 99
"""Lines of one kind kept per house (TXT, HTS, OCI, party lines): far above what a
real house carries, and a bound on the memory a malformed file can take."""
MAX_TEXT = 99 * segments.TXT_LINE_WIDTH
MAX_FINDINGS = 50

_ENVELOPE = re.compile(
    r"(?:ZCZC.*|NNNN|Q[A-Z] [A-Z0-9]{7}(?: [A-Z0-9]{7})*|\.[A-Z0-9]{7}(?: .*)?"
    r"|=.*|STX,.*|UN[BHTZ]\+.*|[-=&$#*_]+)",
    re.IGNORECASE,
)
"""Type B teletype headers (priority and originator lines, ZCZC/NNNN), SITA/EDIFACT
wrappers and separator lines: not message content, they only close the open house."""

OTHER_MESSAGES = frozenset({
    "FWB", "FFM", "FSU", "FSA", "FSR", "FMA", "FNA", "FFR", "FFA", "FBL", "FBR", "FWR",
    "FDA", "FAD", "FVR", "FVA", "CSN", "CIR", "CSI", "FRI", "FRC", "FRX", "FXI", "FXC",
    "FXX", "FCC", "FCA", "FMB", "FWM", "FZB",
})
PARTY_TAGS = {"SHP": "consignment_originator", "CNE": "ultimate_deliver_to"}
IGNORED = frozenset({"AGT", "SSR", "NFY", "OSI", "SPH", "REF", "ISU", "FTR", "CER", "ACC",
                     "COR", "SRI", "OTH", "PPD", "COL", "RTD", "FLT", "RTG"})
"""Lines an FHL may carry that no record field needs: skipped with their continuations."""


def _tagged(text: str) -> tuple[str | None, str]:
    """("HBS", rest) for "HBS/rest", "hbs / rest" or a bare "SHP"; (None, "") for a
    continuation ("/...") or a line that is not a Cargo-IMP line at all."""
    head, _, rest = text.partition("/")
    head = head.rstrip()
    if len(head) == 3 and head.isascii() and head.isalpha():
        return head.upper(), rest.strip()
    return None, ""


def parse(stream: BinaryIO, name: str, encoding: str = "utf-8", payload: bool = True) -> Iterator[RawUnit]:
    """Yield one RawUnit per house waybill in `stream`; `name` labels locations.
    Without `payload`, the same units (keys, locations, checkpoints) without their
    houses: a house's own lines are not read, since none of them ends or names a unit."""
    return _Reader(name, payload).units(read_lines(stream, encoding))


@dataclass(frozen=True, slots=True)
class Context:
    """What a reader knows of the message and master around a house, as the house starts:
    what `parse_span` gives a reader that starts there. One is shared by the houses of a
    master (the message's and master's lines all come before the first house)."""

    version: str | None
    message_findings: list[Finding]
    in_message: bool
    master: segments.MasterBill | None
    master_at: str
    master_findings: list[Finding]
    master_oci: list[CustomsInfo]
    master_security: segments.SecurityLines
    master_security_findings: list[Finding]
    master_shared: tuple[tuple[CustomsInfo, ...], SecurityDeclaration | None] | None


@dataclass(frozen=True, slots=True)
class HouseStart:
    """Where `parse_span` can start: the chunk the house's HBS line ends in, that line's
    number, the context, and the reader's counts of houses so far."""

    chunk: ChunkStart
    line: int
    context: Context
    master_houses: int
    message_houses: int


def parse_positions(stream: BinaryIO, name: str, encoding: str = "utf-8"
                    ) -> Iterator[tuple[RawUnit, HouseStart | None]]:
    """The units of `parse(stream, name, encoding, payload=False)`, each house with where
    `parse_span` can start at it; None for the other units (a problem of the file, a
    message or a master)."""
    reader = _Reader(name, payload=False)
    chunks = Chunks()
    reader.track(chunks)
    return reader.positioned(read_lines(stream, encoding, chunks))


def parse_span(stream: BinaryIO, name: str, start: HouseStart, encoding: str = "utf-8"
               ) -> Iterator[RawUnit] | None:
    """The units `parse(stream, name, encoding)` yields from the house at `start` on, the
    same in every field; None when the line there is not that house's HBS line (the
    file has changed since `start` was taken)."""
    lines = read_lines(stream, encoding, Chunks(start.chunk))
    for line in lines:
        if line.number == start.line:
            break
    else:
        return None
    if _tagged(line.text)[0] != "HBS":
        return None
    reader = _Reader(name)
    reader.resume(start)

    def rest() -> Iterator[Line]:
        yield line
        yield from lines

    return reader.units(rest())


@dataclass(slots=True)
class _Party:
    tag: str
    first: str
    at: str
    keep: bool
    lines: list[tuple[str | None, str]] = field(default_factory=list)


class _Reader:
    def __init__(self, name: str, payload: bool = True) -> None:
        self.name = name
        self.payload = payload
        self.file = os.path.basename(name)  # keys must not depend on how the path was given
        self.line = 0
        self.version: str | None = None
        self.message_findings: list[Finding] = []
        self.master: segments.MasterBill | None = None
        self.master_at = ""
        self.master_findings: list[Finding] = []
        self.master_houses = 0
        self.house: House | None = None
        self.house_ok = True
        self.house_findings: list[Finding] = []
        self.block: str | None = None
        self.last_txt_width = 0
        self.party: _Party | None = None
        self.full: set[str] = set()
        self.house_security: segments.SecurityLines | None = None
        self.foreign = False
        self.in_message = False
        self.message_houses = 0
        # OCI lines between the FHL/MBI lines and the first HBS apply to every house
        # of the master; read once, they are shared by its houses.
        self.master_oci: list[CustomsInfo] = []
        self.master_security = segments.SecurityLines()
        self.master_security_findings: list[Finding] = []
        self.master_oci_open = False
        self.master_shared: tuple[tuple[CustomsInfo, ...], SecurityDeclaration | None] | None = None
        self.stray_from: int | None = None
        self.stray_count = 0
        self.ready: list[tuple[RawUnit, HouseStart | None]] = []
        """Units finished by the current line (each house with its start, when tracked),
        handed out before the next is read."""
        self.chunks: Chunks | None = None
        self.starts: deque[HouseStart] = deque()  # of the house open, and one ending
        self.context: tuple[tuple[Any, ...], Context] | None = None  # the last one made

    # ------------------------------------------------------------------ positions

    def track(self, chunks: Chunks) -> None:
        """Note where each house starts, following a reading of lines with `chunks`."""
        self.chunks = chunks

    def _note_start(self) -> None:
        assert self.chunks is not None
        # The context is made anew only when the message or master has changed since
        # the last one: the objects themselves (kept alive by the key) and their sizes.
        key = (self.version, self.message_findings, len(self.message_findings),
               self.in_message, self.master, self.master_at, self.master_findings,
               len(self.master_findings), self.master_oci, len(self.master_oci),
               self.master_security, self.master_security_findings,
               len(self.master_security_findings), self.master_shared)
        if self.context is None or not _same(self.context[0], key):
            context = Context(self.version, list(self.message_findings), self.in_message,
                              self.master, self.master_at, list(self.master_findings),
                              list(self.master_oci), copy.deepcopy(self.master_security),
                              list(self.master_security_findings), self.master_shared)
            self.context = (key, context)
        self.starts.append(HouseStart(self.chunks.at, self.line, self.context[1],
                                      self.master_houses, self.message_houses))

    def resume(self, start: HouseStart) -> None:
        """Be the reader that `start` was noted in, as its house's HBS line comes."""
        c = copy.deepcopy(start.context)  # this reader's own lists, as the first had
        self.version, self.message_findings, self.in_message = (
            c.version, c.message_findings, c.in_message)
        self.master, self.master_at, self.master_findings = c.master, c.master_at, c.master_findings
        self.master_oci, self.master_security = c.master_oci, c.master_security
        self.master_security_findings, self.master_shared = (
            c.master_security_findings, c.master_shared)
        self.master_houses, self.message_houses = start.master_houses, start.message_houses

    def positioned(self, lines: Iterator[Line]) -> Iterator[tuple[RawUnit, HouseStart | None]]:
        handed = False
        for line in lines:
            self.line = line.number
            if line.text:
                self._line(line)
                if self.ready:
                    handed = True
                    yield from self.ready
                    self.ready = []
        self._flush_stray()
        self._end_master()
        if not handed and not self.ready:
            # Nothing in the file made a unit, not even a finding: an empty upload, or a
            # file whose blocks were lost (zeros), is said, never read as "no houses".
            self._broken(f"fhl-empty:{self.file}", f"{self.name}:1", error(
                "fhl-empty", "", "the file holds no master or house waybill (no MBI or HBS "
                f"line in its {self.line} line(s)): it may have arrived empty or lost its "
                "content"))
        yield from self.ready

    # ------------------------------------------------------------------ dispatch

    def units(self, lines: Iterator[Line]) -> Iterator[RawUnit]:
        for unit, _start in self.positioned(lines):
            yield unit

    def _line(self, line: Line) -> None:
        text = line.text
        if text[0] == "/" and self.house is not None and not self.foreign:
            # A continuation inside a house (most of its lines) is no envelope line,
            # message or house start: it only adds to the house, and changes no key or
            # location (keys only: nothing to do).
            if self.payload:
                self._continuation(text[1:].strip())
                self._note_repaired(line)
            return
        tag, rest = _tagged(text)
        if tag is None and _ENVELOPE.fullmatch(text):  # no envelope line looks tagged
            self.foreign = False
            self.master_oci_open = False
            self._end_house()
            return
        if tag == "FHL":
            self._flush_stray()
            self._start_message(rest)
            return
        if tag in OTHER_MESSAGES and re.fullmatch(r"\d{0,3}", rest):
            self._flush_stray()
            self._end_master()
            self._reset_message_oci()
            self.foreign = True
            self.in_message = False
            at = self.at
            self._broken(f"fhl-skipped:{self.file}:{line.number}", at, error(
                "fhl-not-fhl", "", f"a {text.upper()} message: this source reads FHL "
                "messages only, so it is skipped up to the next FHL line", at))
            return
        if self.foreign:
            return
        if tag == "MBI":
            self._flush_stray()
            self._start_master(rest)
        elif tag == "HBS":
            self._flush_stray()
            self._start_house(rest)
        elif self.house is None:
            if not self._message_oci(tag, rest, text):
                self._stray()
            return
        elif not self.payload:  # keys only: the house's own lines change no key or location
            return
        elif tag is None and not text.startswith("/"):
            self._end_party()
            # It may have been anything, even the HBS of another house: filing this
            # house as if the line were not there could lose that one silently.
            self._note(error("fhl-unreadable-line", "",
                             "a line that is neither a Cargo-IMP line nor a continuation "
                             "(starting with /): it may hold this house's data or start "
                             "another house, so this house is not filed; correct the line",
                             self.at))
        elif tag is None:
            self._continuation(text[1:].strip())
        else:
            self._house_line(tag, rest)
        self._note_repaired(line)

    def _note_repaired(self, line: Line) -> None:
        """A house's line that is not exactly what the file holds is said on the house."""
        if line.repaired and self.house is not None:
            self._note(warning("fhl-repaired-line", "", f"this line was {line.repaired}",
                               self.at))

    # ------------------------------------------------------------------ structure

    def _start_message(self, rest: str) -> None:
        self._end_master()
        self._reset_message_oci()
        self.foreign = False
        self.in_message = True
        self.message_houses = 0
        self.version = rest.upper() or None
        self.message_findings = []
        if self.version not in KNOWN_VERSIONS:
            self.message_findings.append(warning(
                "fhl-version", "", f"FHL/{self.version or ''}: this source knows FHL/2 to "
                "FHL/5 and reads the message as FHL/4", self.at))

    def _start_master(self, rest: str) -> None:
        self._end_master()
        self.master_oci_open = False
        self.master_findings = []
        self.master = segments.parse_mbi(rest, self.at, self.master_findings)
        self.master_at = self.at
        self.master_houses = 0

    def _end_master(self) -> None:
        self._end_house()
        if self.master is not None:
            # A second MBI starts another master: the first one's OCI lines are not its.
            # OCI lines between FHL and the first MBI stay for that MBI's houses.
            self._reset_message_oci(keep_findings=self.master_houses == 0)
        if self.master is not None and self.master_houses == 0:
            findings = self.master_findings + self.master_security_findings + [error(
                "fhl-master-without-houses", "master_bill_number",
                "an MBI line with no HBS line after it: no house waybill to file",
                self.master_at)]
            line = self.master_at.rsplit(":", 1)[-1]
            self._broken(f"fhl-empty:{self.file}:{line}", self.master_at, *findings)
        self.master = None
        self.master_findings = []
        self.master_security_findings = []

    def _start_house(self, rest: str) -> None:
        self._end_house()
        shared = self._master_shared()  # made once per master, before its first house
        if self.chunks is not None:
            self._note_start()
        at = self.at
        self.house = House(number=None, location=at, version=self.version)
        self.house_findings = []
        self.full = set()
        self.house_security = None
        self.master_oci_open = False
        self.message_houses += 1
        self.house.master_customs_info, _ = shared
        if self.master is None:
            self.house_findings.append(warning(
                "fhl-no-master", "master_bill_number",
                "no MBI line before this HBS: the house is filed without its master AWB", at))
        else:
            self.house.master = self.master.number
            self.master_houses += 1
        self.house_ok = segments.parse_hbs(rest, self.house, at, self.house_findings)
        self.block = "HBS"

    def _end_house(self) -> None:
        if self.house is None:
            return
        self._end_party()
        house, self.house = self.house, None
        house.free_text = [text for text in house.free_text if text]
        house.security = self._house_security()
        master_key = self.master.key if self.master else "?"
        findings = (self.message_findings + self.master_findings
                    + self.master_security_findings + self.house_findings)
        if self.house_ok and house.number:
            key, payload = f"fhl:{master_key}/{house.number}", house if self.payload else None
        else:
            line = house.location.rsplit(":", 1)[-1]
            key, payload = f"fhl:{master_key}/?{self.file}:{line}", None
        self.block = None
        self.ready.append((RawUnit(key, house.location, payload, tuple(findings),
                                   self._checkpoint()),
                           self.starts.popleft() if self.chunks is not None else None))

    # ------------------------------------------------------------------ house lines

    def _house_line(self, tag: str, rest: str) -> None:
        assert self.house is not None
        if self.party is not None and tag in ("NAM", "ADR", "LOC"):
            self._party_line(tag, rest)
            return
        self._end_party()
        self.block = tag
        house = self.house
        if tag == "TXT":
            # An empty TXT line still opens an entry, so its continuations do not join
            # the previous TXT line; empty entries are dropped when the house ends.
            if self._room(house.free_text, "TXT"):
                house.free_text.append(rest)
            self.last_txt_width = len(rest)
        elif tag == "HTS":
            self._extend(house.hts_codes, segments.parse_hts(rest), "HTS")
        elif tag == "OCI":
            self._add_customs_info(rest)
        elif tag in PARTY_TAGS:
            taken = house.shipper if tag == "SHP" else house.consignee
            if taken is not None:
                self._note(warning("fhl-repeated-block", PARTY_TAGS[tag],
                                   f"a second {tag} block for this house; the first is kept",
                                   self.at))
            self.party = _Party(tag, rest, self.at, keep=taken is None)
        elif tag == "CVD":
            if house.charges is not None:
                self._note(warning("fhl-repeated-block", "items.0.listed_price",
                                   "a second CVD line for this house; the first is kept",
                                   self.at))
            else:
                house.charges = segments.parse_cvd(rest, self.at, self.house_findings)
        elif tag not in IGNORED:
            self._note(warning("fhl-unknown-line", "",
                               f"{tag} is not an FHL line this source reads; ignored", self.at))

    def _continuation(self, text: str) -> None:
        assert self.house is not None
        house, block = self.house, self.block
        if self.party is not None:
            self._party_line(None, text)
        elif block == "HBS":
            codes = [c.strip().upper() for c in text.split("/") if c.strip()]
            self._extend(house.special_handling, codes, "special handling")
        elif block == "TXT":
            if house.free_text and self._text_room(house.free_text[-1]):
                house.free_text[-1] = segments.join_free_text(
                    house.free_text[-1], self.last_txt_width, text)
            self.last_txt_width = len(text)
        elif block == "HTS":
            self._extend(house.hts_codes, segments.parse_hts(text), "HTS")
        elif block == "OCI":
            self._add_customs_info(text)
        elif block is None or block == "CVD":
            self._note(warning("fhl-orphan-continuation", "",
                               "a continuation line (starting with /) that continues no "
                               "line; ignored", self.at))

    def _add_customs_info(self, text: str) -> None:
        assert self.house is not None
        entry = segments.parse_oci(text)
        if entry is None or not self._room(self.house.customs_info, "OCI"):
            return
        self.house.customs_info.append(entry)
        security = self.house_security or segments.SecurityLines()
        found: list[Finding] = []
        if security.add(entry, self.at, found):
            self.house_security = security
        for finding in found:
            self._note(finding)

    def _house_security(self) -> SecurityDeclaration | None:
        """The house's own declaration when it decides (a status, method or exemption),
        else the master's when that decides; an undecided one is reported."""
        own = None
        if self.house_security is not None:
            found: list[Finding] = []
            own = self.house_security.declaration("house", found)
            for finding in found:
                self._note(finding)
        _, shared = self._master_shared()
        if own is not None and own.decides:
            return own
        if shared is not None and shared.decides:
            return shared
        chosen = own or shared
        if chosen is not None:
            where = (self.house_security if own is not None else self.master_security).location
            self._note(warning(
                "fhl-security-incomplete", "security_scan",
                f"the OCI lines name {chosen.issuer or 'a security entity'} but give no "
                "security status (SS), screening method (SM) or exemption (L): "
                "security_scan is left empty", where))
        return None

    # ------------------------------------------------------------------ master lines

    def _message_oci(self, tag: str | None, rest: str, text: str) -> bool:
        """Take an OCI line (or its continuation) that comes before the master's first
        HBS; False for any other line, which is then reported as outside a house."""
        before_houses = (self.master_houses == 0 if self.master is not None
                         else self.in_message and self.message_houses == 0)
        if tag == "OCI" and before_houses:
            self._flush_stray()
            self.master_oci_open = True
            entry = segments.parse_oci(rest)
        elif tag is None and text.startswith("/") and self.master_oci_open and before_houses:
            entry = segments.parse_oci(text[1:].strip())
        else:
            self.master_oci_open = False
            return False
        if entry is None:
            return True
        if len(self.master_oci) >= MAX_REPEATS:
            if "master OCI" not in self.full:
                self.full.add("master OCI")
                self.master_security_findings.append(warning(
                    "fhl-too-many-lines", "", f"more than {MAX_REPEATS} OCI lines for the "
                    "master; the rest are ignored", self.at))
            return True
        self.master_oci.append(entry)
        self.master_shared = None
        found: list[Finding] = []
        self.master_security.add(entry, self.at, found)
        # Every house of the master carries these: bounded like a house's own findings.
        room = MAX_FINDINGS - len(self.master_security_findings)
        self.master_security_findings += found[:max(room, 0)]
        return True

    def _master_shared(self) -> tuple[tuple[CustomsInfo, ...], SecurityDeclaration | None]:
        """The master's OCI entries and declaration, made once for all its houses (no
        master OCI line is read after its first HBS)."""
        if self.master_shared is None:
            declaration = self.master_security.declaration(
                "master", self.master_security_findings)
            self.master_shared = (tuple(self.master_oci), declaration)
        return self.master_shared

    def _reset_message_oci(self, keep_findings: bool = False) -> None:
        self.master_oci = []
        self.master_security = segments.SecurityLines()
        self.master_oci_open = False
        self.master_shared = None
        self.full.discard("master OCI")
        if not keep_findings:
            self.master_security_findings = []

    def _party_line(self, tag: str | None, text: str) -> None:
        assert self.party is not None
        if self._room(self.party.lines, self.party.tag):
            self.party.lines.append((tag, text))

    def _end_party(self) -> None:
        party, self.party = self.party, None
        if party is None or self.house is None:
            return
        role = PARTY_TAGS[party.tag]
        lines = segments.parse_party(party.first, party.lines, role, party.at,
                                     self.house_findings if party.keep else [])
        if not party.keep:
            return
        if party.tag == "SHP":
            self.house.shipper = lines
        else:
            self.house.consignee = lines

    # ------------------------------------------------------------------ helpers

    def _room(self, kept: list[Any], what: str) -> bool:
        if len(kept) < MAX_REPEATS:
            return True
        if what not in self.full:
            self.full.add(what)
            self._note(warning("fhl-too-many-lines", "",
                               f"more than {MAX_REPEATS} {what} lines for one house; "
                               "the rest are ignored", self.at))
        return False

    def _text_room(self, text: str) -> bool:
        if len(text) < MAX_TEXT:
            return True
        if "text" not in self.full:
            self.full.add("text")
            self._note(warning("fhl-too-many-lines", "items.0.description",
                               f"a TXT text longer than {MAX_TEXT} characters; the rest "
                               "is ignored", self.at))
        return False

    def _extend(self, kept: list[str], values: list[str], what: str) -> None:
        for value in values:
            if not self._room(kept, what):
                return
            kept.append(value)

    def _note(self, finding: Finding) -> None:
        if len(self.house_findings) < MAX_FINDINGS:
            self.house_findings.append(finding)
        elif "findings" not in self.full:
            self.full.add("findings")
            self.house_findings.append(warning(
                "fhl-too-many-findings", "", f"more than {MAX_FINDINGS} findings for this "
                "house; the rest are not listed", finding.location))

    def _stray(self) -> None:
        if self.stray_from is None:
            self.stray_from = self.line
        self.stray_count += 1

    def _flush_stray(self) -> None:
        if self.stray_from is None:
            return
        first, count = self.stray_from, self.stray_count
        self.stray_from, self.stray_count = None, 0
        at = f"{self.name}:{first}"
        self._broken(f"fhl-unparsed:{self.file}:{first}", at, error(
            "fhl-outside-house", "",
            f"{count} line(s) from line {first} belong to no house waybill: house details "
            "must follow an HBS line (FHL/4, MBI, HBS, then TXT, HTS, OCI, SHP, CNE, CVD); "
            "not filed", at))

    def _broken(self, key: str, at: str, *findings: Finding) -> None:
        """A unit that cannot be filed: no payload, and the findings that say why."""
        self.ready.append((RawUnit(key, at, None, findings, self._checkpoint()), None))

    @property
    def at(self) -> str:
        """Location of the line being read; made only when a finding needs it."""
        return f"{self.name}:{self.line}"

    def _checkpoint(self) -> tuple[str, int]:
        return (self.name, self.line)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(x is y or (type(x) in (int, str) and x == y) for x, y in zip(a, b, strict=True))

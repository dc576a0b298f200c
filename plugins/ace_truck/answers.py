"""ACE's answers to a 309, both ways: the 997 (syntax), the 355 (accept or reject, per trip
and per shipment, with CBP's error codes) and the 350 (later events), written for the
sandbox and read back into s321's `Ack` for the ledger.

What each answer moves (docs/ace-truck.md): a 997 that accepts decides nothing (an Ack
without results); a 997 that rejects rejects every record of the transmission; a 355
accepts or rejects each shipment it names (a trip rejection rejects every shipment on
it; "already on file" is `duplicate`); a 350 only adds events to records' history.
Reading raises `AnswerError` naming the segment for bytes that are not such an answer.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from s321.contracts import Ack, AckError, AckStatus, RecordAck, RecordEvent
from s321.errors import S321Error
from s321.logs import get_logger

from ..x12.tokenizer import Segment, segments
from . import guide
from .validate import Transmission

log = get_logger(__name__)

ELEMENT, TERMINATOR = "*", "~"
ISA_VERSION = "00502"
GROUP_PREFIX = "ace-group:"
"""`resolve(GROUP_PREFIX + GS06)` asks for the records of the transmission whose group
control number a 997 names (AK102): a 997 names no shipments."""
DUPLICATE = "duplicate"
UNKNOWN_TRANSACTION = "unknown-transaction"
NOT_ON_FILE = "SHIPMENT NOT ON FILE"
"""The sandbox's text for an update or delete of a shipment ACE does not hold (S321: the
guide's own code was not read); read back as `unknown-transaction`."""
ALREADY_ON_FILE_CODE = "AOF"
NOT_ON_FILE_CODE = "NOF"
"""K101 codes the sandbox uses for those two (S321 codes: CBP's numbers were not read; the
reader goes by the text, as carriers' software does)."""

Resolver = Callable[[str], list[dict[str, Any]]]
"""Shipment control number (or GROUP_PREFIX + group control number) -> the ledger rows
it names (`Ledger.get` dicts: transaction_id, batch_id, state, wire_version...)."""


class AnswerError(S321Error):
    """Bytes that are not an ACE 997, 355 or 350."""


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class ShipmentAnswer:
    control_number: str
    errors: list[tuple[str, str]] = field(default_factory=list)  # (K101, K102)


@dataclass(slots=True)
class Answer:
    """One answer as read: which kind, and what it says."""

    kind: str  # "997", "355" or "350"
    interchange_control: str = ""
    # 997
    group: str = ""  # AK102: the group control number of the 309 answered
    accepted: bool = True
    syntax_errors: list[str] = field(default_factory=list)
    # 355 and 350
    scac: str = ""
    trip: str = ""
    trip_errors: list[tuple[str, str]] = field(default_factory=list)
    shipments: list[ShipmentAnswer] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (SCN, disposition, date)


def read(data: bytes, source: str = "answer") -> Answer:
    """Parse one answer; raises AnswerError naming the segment when it is not one."""
    items = list(segments(io.BytesIO(data), source))
    segs = [s for s in items if isinstance(s, Segment)]
    if len(segs) != len(items) or not segs or segs[0].tag != "ISA":
        bad = next((i for i in items if not isinstance(i, Segment)), None)
        raise AnswerError(f"{source}: not an X12 interchange" + (f" ({bad.location}: {bad.message})" if bad else ""))
    st = next((s for s in segs if s.tag == "ST"), None)
    if st is None or st.get(1) not in {"997", "355", "350"}:
        raise AnswerError(f"{source}: not an ACE answer: ST01 is "
                          f"{st.get(1) if st else 'missing'!r} (expected 997, 355 or 350)")
    answer = Answer(st.get(1), segs[0].get(13))
    if answer.kind == "997":
        _read_997(answer, segs)
    elif answer.kind == "355":
        _read_355(answer, segs)
    else:
        _read_350(answer, segs)
    return answer


def _read_997(answer: Answer, segs: list[Segment]) -> None:
    note = ""
    for seg in segs:
        if seg.tag == "AK1":
            answer.group = seg.get(2)
        elif seg.tag == "AK3":
            note = f"{seg.get(1)} at position {seg.get(2)}: {guide.SEGMENT_ERRORS.get(seg.get(4), seg.get(4))}"
            answer.syntax_errors.append(note)
        elif seg.tag == "AK4":
            answer.syntax_errors.append(f"element {seg.get(2) or seg.get(1)}: "
                                        f"{guide.ELEMENT_ERRORS.get(seg.get(3), seg.get(3))}")
        elif seg.tag == "AK5":
            if seg.get(1) not in {"A", "E"}:
                answer.accepted = False
            answer.syntax_errors += [guide.SET_ERRORS.get(c, c) for c in seg.elements[1:] if c]
        elif seg.tag == "AK9":
            if seg.get(1) not in {"A", "E", "P"}:
                answer.accepted = False
            answer.syntax_errors += [guide.GROUP_ERRORS.get(c, c) for c in seg.elements[4:] if c]
    if not answer.group:
        raise AnswerError("997 without AK1: it names no functional group")


def _read_355(answer: Answer, segs: list[Segment]) -> None:
    current: list[tuple[str, str]] = answer.trip_errors
    for seg in segs:
        if seg.tag == "M10":
            answer.scac, answer.trip = seg.get(1), seg.get(6)
        elif seg.tag == "M11":
            shipment = ShipmentAnswer(seg.get(1))
            answer.shipments.append(shipment)
            current = shipment.errors
        elif seg.tag == "P4":
            current = answer.trip_errors
        elif seg.tag == "LX":
            current = []  # remarks under an LX before its M11 name no shipment
        elif seg.tag == "K1":
            current.append((seg.get(1), seg.get(2)))


def _read_350(answer: Answer, segs: list[Segment]) -> None:
    for seg in segs:
        if seg.tag == "M10":
            answer.scac, answer.trip = seg.get(1), seg.get(6)
        elif seg.tag == "X4":
            answer.events.append((seg.get(1), seg.get(3), seg.get(6)))


def errors_of(pairs: Iterable[tuple[str, str]]) -> list[AckError]:
    """K1 pairs as s321 errors: already on file is `duplicate`, not on file is
    `unknown-transaction`, anything else `ace-CODE` with CBP's text."""
    out = []
    for code, text in pairs:
        upper = text.upper()
        if "ALREADY ON FILE" in upper:
            out.append(AckError(code=DUPLICATE, message=f"ACE {code}: {text}"))
        elif "NOT ON FILE" in upper:
            out.append(AckError(code=UNKNOWN_TRANSACTION, message=f"ACE {code}: {text}"))
        else:
            known = guide.ERROR_CODES.get(code)
            out.append(AckError(code=f"ace-{code.lower() or 'error'}",
                                message=f"ACE {code}: {text or (known[0] if known else 'rejected')}"))
    return out


def decode_ack(data: bytes, resolve: Resolver, source: str = "answer") -> Ack:
    """An answer as s321's Ack, its shipments named by transaction id through `resolve`."""
    answer = read(data, source)
    now = datetime.now(UTC)
    if answer.kind == "997":
        if answer.accepted:  # syntax only: decides nothing
            return Ack(batch_id=f"ace-997-{answer.group}", received_at=now, results=[])
        rows = resolve(GROUP_PREFIX + answer.group)
        if not rows:
            log.warning("ACE 997 rejected a transmission no record is known for; its records wait "
                        "for the resend", group=answer.group)
        message = "; ".join(answer.syntax_errors) or "the transmission was rejected (997)"
        errors = [AckError(code="ace-997-rejected", message=f"ACE 997: {message}")]
        return _ack(rows and [(row, AckStatus.REJECTED, errors) for row in rows], now, f"ace-997-{answer.group}")
    if answer.kind == "350":
        events = []
        for scn, code, day in answer.events:
            what = guide.DISPOSITIONS.get(code, "status notification")
            for row in resolve(scn):
                events.append(RecordEvent(transaction_id=row["transaction_id"], event=f"ace-{code.lower()}",
                                          detail=f"ACE 350 for shipment {scn}: {code} {what}"
                                          + (f" ({day})" if day else "")))
        return Ack(batch_id=f"ace-350-{answer.interchange_control}", received_at=now, results=[],
                   events=events or None)
    trip_errors = errors_of(answer.trip_errors)
    decided: list[tuple[dict[str, Any], AckStatus, list[AckError]]] = []
    for shipment in answer.shipments:
        errors = trip_errors + errors_of(shipment.errors)
        rows = resolve(shipment.control_number)
        if not rows:
            log.warning("ACE 355 names a shipment no record is known for", shipment=shipment.control_number)
        status = AckStatus.REJECTED if errors else AckStatus.ACCEPTED
        decided += [(row, status, errors) for row in rows]
    return _ack(decided, now, f"ace-355-{answer.interchange_control}")


def _ack(decided: Sequence[tuple[dict[str, Any], AckStatus, list[AckError]]] | Any, now: datetime,
         fallback: str) -> Ack:
    """Results for the ledger. ACE knows no versions: a result names none and the ledger
    matches it to the record sent in this batch (the batch most rows were sent in); a
    row sent in another batch is named by the version on the wire, unless the answer is
    `duplicate` (which would then claim a version ACE never vouched for)."""
    decided = list(decided or [])
    batches = Counter(row.get("batch_id") for row, _, _ in decided if row.get("batch_id"))
    batch_id = batches.most_common(1)[0][0] if batches else fallback
    results = []
    for row, status, errors in decided:
        version = None
        if row.get("batch_id") != batch_id:
            if any(e.code == DUPLICATE for e in errors) or row.get("wire_version") is None:
                continue
            version = row["wire_version"]
        results.append(RecordAck(transaction_id=row["transaction_id"], status=status, version=version,
                                 errors=errors))
    return Ack(batch_id=batch_id, received_at=now, results=results)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class Envelope:
    """The answer's envelope: the 309's sender and receiver swapped."""

    sender: str
    receiver: str
    control: int
    at: datetime
    production: bool = False


def interchange(env: Envelope, spec: guide.TransactionSpec, body: list[list[str]]) -> bytes:
    """ISA, GS, ST, `body`, SE, GE, IEA as bytes (one segment a line)."""
    at = env.at.astimezone(UTC)
    st = f"{env.control % 10000:04d}"
    isa = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", env.sender[:15].ljust(15), "ZZ",
           env.receiver[:15].ljust(15), at.strftime("%y%m%d"), at.strftime("%H%M"), "^", ISA_VERSION,
           f"{env.control:09d}", "0", "P" if env.production else "T", ":"]
    lines = [isa, ["GS", spec.functional_id, env.sender[:15], env.receiver[:15], at.strftime("%Y%m%d"),
                   at.strftime("%H%M"), str(env.control), "X", spec.version],
             ["ST", spec.id, st], *body, ["SE", str(len(body) + 2), st], ["GE", "1", str(env.control)],
             ["IEA", "1", f"{env.control:09d}"]]
    return "".join(_line(parts) + "\n" for parts in lines).encode("ascii", "replace")


def _line(parts: list[str]) -> str:
    while len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    return ELEMENT.join(parts) + TERMINATOR


def _k1(code: str, text: str) -> list[str]:
    return ["K1", _clean(code)[:30] or "ERR", _clean(text)[:30]]


def _clean(text: str) -> str:
    return " ".join("".join(" " if ch in "*~:^" or not ch.isprintable() else ch for ch in text).split()) \
        .encode("ascii", "replace").decode("ascii")


def encode_997(transmission: Transmission, env: Envelope) -> bytes:
    """The 997 for one transmission: AK5/AK9 R when it has interchange-scope problems
    (each reported in AK3/AK4), A otherwise (what the 355 decides is not syntax)."""
    body: list[list[str]] = [["AK1", guide.TS309.functional_id, transmission.group_control or "0"]]
    accepted = transmission.syntax_ok
    if transmission.set_control:
        body.append(["AK2", transmission.set_id or guide.TS309.id, transmission.set_control])
        set_codes: list[str] = []
        for problem in transmission.problems:
            if problem.scope != "interchange":
                continue
            if problem.loop == "envelope":
                if problem.segment == "SE" and problem.syntax in guide.SET_ERRORS:
                    set_codes.append(problem.syntax)
                continue
            if problem.element is None:
                body.append(["AK3", problem.segment, str(problem.set_position or 0), "", problem.syntax])
            else:
                body.append(["AK3", problem.segment, str(problem.set_position or 0), "", "8"])
                body.append(["AK4", str(int(problem.element[-2:])), "", problem.syntax])
        codes = list(dict.fromkeys(set_codes))[:5] or ([] if accepted else ["5"])
        body.append(["AK5", "A" if accepted else "R", *codes])
    group_codes = [p.syntax for p in transmission.problems
                   if p.scope == "interchange" and p.segment in {"GE", "GS"} and p.syntax in guide.GROUP_ERRORS]
    sets = 1 if transmission.set_control else 0
    body.append(["AK9", "A" if accepted else "R", str(sets), str(sets), str(sets if accepted else 0),
                 *list(dict.fromkeys(group_codes))[:5]])
    return interchange(env, guide.TS997, body)


@dataclass(slots=True)
class Decision:
    """What the sandbox decided for one shipment: no errors is accepted."""

    control_number: str
    errors: list[tuple[str, str]] = field(default_factory=list)  # (K101 code, K102 text)


def encode_355(transmission: Transmission, trip_errors: Sequence[tuple[str, str]], decisions: Sequence[Decision],
               env: Envelope) -> bytes:
    """The 355 for one trip: K1 under M10 for the trip, K1 under each shipment's M11."""
    body: list[list[str]] = [["M10", transmission.scac, guide.TRANSPORT_MOTOR, "", "", "", transmission.trip]]
    body += [_k1(code, text) for code, text in trip_errors]
    body.append(["P4", transmission.port or "0000"])
    for n, decision in enumerate(decisions, 1):
        body += [["LX", str(n)], ["M11", decision.control_number]]
        body += [_k1(code, text) for code, text in decision.errors]
    return interchange(env, guide.TS355, body)


def encode_350(env: Envelope, scac: str, trip: str, port: str,
               events: Sequence[tuple[str, str, datetime]]) -> bytes:
    """A 350: one X4 per (shipment control number, disposition code, when)."""
    body: list[list[str]] = [["M10", scac, guide.TRANSPORT_MOTOR, "", "", "", trip], ["P4", port]]
    for scn, code, when in events:
        body.append(["X4", scn, "", code, "", "", when.strftime("%Y%m%d"), when.strftime("%H%M")])
    return interchange(env, guide.TS350, body)


def encode_ack(ack: Ack) -> bytes:
    """A 355 from an Ack whose transaction ids are shipment control numbers (what the
    ace-truck-309 serializer's `decode_batch` names them): the s321/1 sandbox's review,
    answered the ACE way."""
    decisions = [Decision(r.transaction_id, [(_code(e.code), e.message) for e in r.errors])
                 for r in ack.results]
    scac = decisions[0].control_number[:4] if decisions else ""
    transmission = Transmission("ack", scac=scac, trip=ack.batch_id[:25])
    env = Envelope("CBPACE", scac or "S321", _control(ack.batch_id), ack.received_at)
    return encode_355(transmission, [], decisions, env)


def _code(code: str) -> str:
    if code == DUPLICATE:
        return ALREADY_ON_FILE_CODE
    if code == UNKNOWN_TRANSACTION:
        return NOT_ON_FILE_CODE
    return code.removeprefix("ace-").upper()


def _control(batch_id: str) -> int:
    digits = "".join(ch for ch in batch_id if "0" <= ch <= "9")[-9:]
    return int(digits) if digits and int(digits) else 1

"""The sandbox's ACE truck desk: a 309 transmission validated against the guide's tables
(plugins/ace_truck/validate.py) and answered as ACE answers, with a 997 and a 355.

Promises: a transmission whose syntax fails gets a 997 that rejects it and no 355; any
other gets a 997 that accepts it and a 355 that accepts or rejects the trip and each
shipment with CBP's error codes. Shipments are held by shipment control number in the
sandbox store, each acceptance once: an add of a shipment on file is answered "already on
file", an update, delete or delink of one not on file "not on file". Fault injection
(`--reject-fraction`) rejects shipments the desk would accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from s321.logs import get_logger
from s321.plugins.ace_truck import answers, guide
from s321.plugins.ace_truck.answers import Decision, Envelope
from s321.plugins.ace_truck.validate import Shipment, Transmission, validate
from s321.sandbox.faults import FaultState
from s321.sandbox.store import ACTIVE, SandboxStore

log = get_logger(__name__)

RECEIVER = "CBPACE"
"""The sandbox's interchange id when a 309 names none (GS03)."""
INJECTED_CODE = "INJ"
INJECTED_TEXT = "INJECTED REJECTION"
_X12_START = b"ISA"
_LEADING = b"\xef\xbb\xbf \t\r\n"


def is_x12(body: bytes) -> bool:
    """Whether a dropped file is X12 (an ACE 309) rather than an s321/1 JSON batch."""
    return body.lstrip(_LEADING).startswith(_X12_START)


@dataclass(frozen=True, slots=True)
class Answered:
    """The answer files for one transmission: (kind, bytes), the 997 first."""

    files: list[tuple[str, bytes]]
    transmission: Transmission


class AceDesk:
    def __init__(self, store: SandboxStore, faults: FaultState | None = None):
        self.store = store
        self.faults = faults

    def answer(self, body: bytes, source: str) -> Answered:
        checked = validate(body, source)
        isa13 = checked.interchange_control  # ASCII digits only: '²'.isdigit() holds too
        control = int(isa13) if isa13.isascii() and isa13.isdigit() else 1
        env = Envelope(checked.receiver or RECEIVER, checked.sender or "UNKNOWN", control or 1, datetime.now(UTC))
        files = [("997", answers.encode_997(checked, env))]
        if not checked.syntax_ok:
            log.info("ace 309 refused by the 997", source=source, problems=len(checked.problems))
            return Answered(files, checked)
        trip_errors = _pairs(checked.trip_problems)
        decisions = self._decide(checked, trip_errors, batch_id=checked.interchange_control or source)
        files.append(("355", answers.encode_355(checked, trip_errors, decisions, env)))
        log.info("ace 309 answered", source=source, shipments=len(decisions),
                 accepted=sum(1 for d in decisions if not d.errors), trip_rejected=bool(trip_errors))
        return Answered(files, checked)

    def _decide(self, checked: Transmission, trip_errors: list[tuple[str, str]], batch_id: str) -> list[Decision]:
        decisions: list[Decision] = []
        with self.store.session() as session:
            for shipment in checked.shipments:
                scn = shipment.control_number
                errors = trip_errors + _pairs(checked.shipment_problems(shipment.index))
                if not errors:
                    errors = self._on_file(session.state(scn), shipment)
                if not errors and self.faults is not None and self.faults.reject():
                    errors = [(INJECTED_CODE, INJECTED_TEXT)]
                if errors:
                    if scn:
                        session.reject(scn, batch_id, [code for code, _ in errors])
                else:
                    text = "\n".join("*".join((s.tag, *s.elements)) for s in shipment.segments)
                    session.accept_shipment(scn, shipment.action, batch_id, text,
                                            removed=shipment.action == "delete")
                # The trip's K1 stand under M10 once: a reader applies them to every shipment.
                decisions.append(Decision(scn, [e for e in errors if e not in trip_errors]))
        return decisions

    @staticmethod
    def _on_file(state: str | None, shipment: Shipment) -> list[tuple[str, str]]:
        if shipment.action == "add" and state == ACTIVE:
            return [(answers.ALREADY_ON_FILE_CODE, guide.ALREADY_ON_FILE)]
        if shipment.action != "add" and state != ACTIVE:
            return [(answers.NOT_ON_FILE_CODE, answers.NOT_ON_FILE)]
        return []


def _pairs(problems: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """Problems as 355 K1 pairs: CBP's code and a 30-character text naming the element."""
    out = []
    for p in problems:
        known = guide.ERROR_CODES.get(p.cbp)
        text = f"{p.element or p.segment} {known[0] if known else p.reason}"
        out.append((p.cbp, text[:30]))
    return list(dict.fromkeys(out))

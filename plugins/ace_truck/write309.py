"""Writing one ACE truck 309: a trip and its shipments as one interchange, one functional
group and one transaction set, laid out as `guide.TS309` says.

Promises: every segment written is checked against the guide's table as it is made
(element count, mandatory elements, lengths, code lists), so a value that would break
the guide raises `EncodeError` naming the record (transaction id), the record field and
the element, never a personal value; text is reduced to what X12 can carry (ASCII, no
separator characters) and wrapped where the guide allows continuation (N10 text).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from s321.errors import FatalError
from s321.record import Action, Consignment, Item, Party

from . import guide
from .guide import Element, SegmentSpec
from .trip import CrewMember, LicensePlate, Trip

ELEMENT = "*"
COMPONENT = ">"
REPETITION = "^"
TERMINATOR = "~"
SEPARATORS = frozenset(ELEMENT + COMPONENT + REPETITION + TERMINATOR)
ISA_VERSION = "00502"
"""ISA12 for an X12 5020 interchange (the guide's base release; s321's reading of X12)."""
INTERCHANGE_QUALIFIER = "ZZ"
"""ISA05/ISA07: mutually defined ids (the filer code and CBP's receiver id)."""
DESCRIPTION_MAX = guide.TS309.segment("N10").element("N1002").max
CREW_CODE = {"driver": "DR", "passenger": "PA"}
"""NM101 per trip role (guide.CREW_ROLES)."""
GENDER = {"M": "M", "F": "F", "X": "U"}
"""DMG03 for the trip file's gender (the guide's list is F, M, U)."""
DOCUMENT_QUALIFIER = {
    "fast_card": "FC", "passport": "PP", "passport_card": "PC", "enhanced_drivers_license": "ED",
    "nexus": "NX", "sentri": "SN", "permanent_resident_card": "PR", "drivers_license": "DL",
}
"""REF01 per travel document type. The guide's qualifier list could not be read: these
are s321's placeholders (docs/ace-truck.md), to be replaced from the guide before CBP's
certification testing."""
AMENDMENT = {Action.REPLACE: "C", Action.DELETE: "D"}
"""M1303 for s321's replace and delete (an add goes without M13): guide.AMENDMENT_ACTIONS."""
REFERENCE_MASTER_BILL = "MB"
REFERENCE_TRACKING = "2I"
"""N901 qualifiers for the master bill and the tracking number (X12 element 128)."""
HTS_QUALIFIER = "A"
"""N1004: the commodity code is an HTSUS number."""


class EncodeError(FatalError):
    """A record or trip the 309 cannot carry as the guide says; the message names the
    record's transaction id, its field and the element, never the value."""


@dataclass(frozen=True, slots=True)
class Shipment:
    """One record on the trip with its shipment control number."""

    scn: str
    record: Consignment


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # ISA06 / GS02: the filer code
    receiver: str  # ISA08 / GS03
    control: int  # ISA13 / GS06 / ST02
    at: datetime  # ISA09/10, GS04/05 (UTC)
    production: bool  # ISA15 P, else T


# --------------------------------------------------------------------------- text


def x12_text(value: str) -> str:
    """`value` as X12 can carry it: ASCII letters for accented ones, no separator or
    control characters (each becomes a space), runs of spaces as one."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    cleaned = "".join(" " if ch in SEPARATORS or not ch.isprintable() else ch for ch in ascii_text)
    return " ".join(cleaned.split())


def wrap(text: str, width: int) -> list[str]:
    """Pieces of at most `width` characters, cut at spaces where one is near (the
    reader joins pieces with a space), else mid-word at `width` (the reader joins a piece
    that fills its element to the next one without a space)."""
    pieces: list[str] = []
    rest = text
    while len(rest) > width:
        # A piece cut at a space stays shorter than `width`: one that fills it is read
        # as cut mid-word, and joined to the next without the space.
        cut = rest.rfind(" ", 0, width)
        if cut <= width // 2:
            pieces.append(rest[:width])
            rest = rest[width:].lstrip(" ")  # a word of exactly `width` loses the space after it
        else:
            pieces.append(rest[:cut])
            rest = rest[cut + 1:]
    if rest:
        pieces.append(rest)
    return pieces


# --------------------------------------------------------------------------- segments


class SegmentWriter:
    """Makes segments of one transaction set, each checked against its guide row."""

    def __init__(self, txid: str = ""):
        self.segments: list[str] = []
        self.txid = txid

    def add(self, spec: SegmentSpec, values: dict[int, str], what: dict[int, str] | None = None) -> None:
        """Write `spec` with `values` by element position; `what` names the record
        field behind a position, for the message when the value breaks the guide."""
        elements: list[str] = []
        last = max((p for p, v in values.items() if v), default=0)
        for element in spec.elements:
            if element.position > last:
                break
            value = values.get(element.position, "")
            _check(spec, element, value, self.txid, (what or {}).get(element.position))
            elements.append(value)
        for element in spec.elements[len(elements):]:
            if element.req == guide.M:
                _check(spec, element, "", self.txid, (what or {}).get(element.position))
        self.segments.append(ELEMENT.join([spec.id, *elements]))


def _check(spec: SegmentSpec, element: Element, value: str, txid: str, field: str | None) -> None:
    def fail(why: str) -> None:
        about = f"record {txid}: " if txid else ""
        source = f" ({field})" if field else ""
        raise EncodeError(f"{about}{element.ref}{source}: {why} ({spec.id}, {element.name}; "
                          f"source: {element.source})")

    if not value:
        if element.req == guide.M:
            fail("is required by the guide and empty")
        return
    if element.req == guide.X:
        fail("is not used by the guide")
    if len(value) < element.min:
        fail(f"is {len(value)} characters, the guide wants at least {element.min}")
    if len(value) > element.max:
        fail(f"is {len(value)} characters, the guide allows {element.max}")
    if element.codes and value not in element.codes:
        fail(f"{value!r} is not one of the guide's codes {sorted(element.codes)}")
    if element.type == "N0" and not (value.isascii() and value.isdigit()):
        fail("must be digits")


# --------------------------------------------------------------------------- the 309


def interchange(trip: Trip, shipments: Sequence[Shipment], env: Envelope) -> bytes:
    """The whole transmission: ISA, GS, the 309 of `trip` with `shipments`, GE, IEA."""
    if not shipments:
        raise EncodeError(f"trip {trip.trip_number}: a 309 needs at least one shipment")
    body = transaction_set(trip, shipments, env.control)
    lines = [*_envelope_head(env), *body,
             ELEMENT.join(["GE", "1", str(env.control)]),
             ELEMENT.join(["IEA", "1", f"{env.control:09d}"])]
    return ("".join(line + TERMINATOR + "\n" for line in lines)).encode("ascii")


def _envelope_head(env: Envelope) -> Iterator[str]:
    if not 0 < env.control < 10 ** 9:
        raise EncodeError(f"interchange control number {env.control} does not fit ISA13 (9 digits)")
    sender, receiver = x12_text(env.sender), x12_text(env.receiver)
    for ref, value in (("ISA06", sender), ("ISA08", receiver)):
        if not value or len(value) > 15:
            raise EncodeError(f"{ref}: {value!r} must be 1 to 15 characters (the filer code, the receiver id)")
    at = env.at.astimezone(UTC)
    isa = ["ISA", "00", " " * 10, "00", " " * 10, INTERCHANGE_QUALIFIER, sender.ljust(15),
           INTERCHANGE_QUALIFIER, receiver.ljust(15), at.strftime("%y%m%d"), at.strftime("%H%M"),
           REPETITION, ISA_VERSION, f"{env.control:09d}", "0", "P" if env.production else "T", COMPONENT]
    for element, value in zip(guide.ISA.elements, isa[1:], strict=True):
        _check(guide.ISA, element, value, "", None)
    yield ELEMENT.join(isa)
    gs = SegmentWriter()
    gs.add(guide.GS, {1: guide.TS309.functional_id, 2: sender, 3: receiver, 4: at.strftime("%Y%m%d"),
                      5: at.strftime("%H%M"), 6: str(env.control), 7: "X", 8: guide.TS309.version},
           {2: "the pipeline's originator_code (filer code)", 3: "the trip's receiver_id"})
    yield from gs.segments


def transaction_set(trip: Trip, shipments: Sequence[Shipment], control: int) -> list[str]:
    """ST to SE of the 309 (SE01 counts them)."""
    spec = guide.TS309
    st = f"{control:04d}"
    out = SegmentWriter()
    out.add(spec.segment("ST"), {1: "309", 2: st})
    out.add(spec.segment("M10"), {1: trip.scac, 2: guide.TRANSPORT_MOTOR, 6: x12_text(trip.trip_number)},
            {1: "trip scac", 6: "trip trip_number"})
    _vehicles(out, trip)
    for member in trip.crew:
        _crew(out, member)
    arrival = trip.estimated_arrival
    out.add(spec.segment("P4"), {1: trip.port_of_arrival, 2: arrival.strftime("%Y%m%d"), 5: arrival.strftime("%H%M")},
            {1: "trip port_of_arrival", 2: "trip estimated_arrival", 5: "trip estimated_arrival"})
    for n, shipment in enumerate(shipments, start=1):
        _shipment(out, trip, shipment, n)
    segments = out.segments
    count = len(segments) + 1
    segments.append(ELEMENT.join(["SE", str(count), st]))
    return segments


def _vehicles(out: SegmentWriter, trip: Trip) -> None:
    veh = guide.TS309.segment("VEH")
    units = [(trip.conveyance.number, trip.conveyance.vin, trip.conveyance.license_plate, guide.EQUIPMENT_CONVEYANCE,
              "trip conveyance")]
    units += [(e.number, None, e.license_plate, guide.EQUIPMENT_TRAILER, f"trip equipment.{i}")
              for i, e in enumerate(trip.equipment)]
    if len(units) > veh.max_use:
        raise EncodeError(f"trip {trip.trip_number}: {len(units)} vehicles, the guide allows {veh.max_use} VEH")
    for number, vin, plate, code, field in units:
        values = {2: x12_text(vin or ""), 9: x12_text(number), 20: code, **_plate(plate)}
        out.add(veh, values, {2: f"{field}.vin", 9: f"{field}.number", 11: f"{field}.license_plate"})


def _plate(plate: LicensePlate | None) -> dict[int, str]:
    if plate is None:
        return {}
    return {10: plate.state_or_province or "", 11: x12_text(plate.number), 17: plate.country}


def _crew(out: SegmentWriter, member: CrewMember) -> None:
    spec = guide.TS309
    # Crew data is personal: `what` names fields, and _check never quotes a value of AN type.
    out.add(spec.segment("NM1"), {1: CREW_CODE[member.role], 2: "1", 3: x12_text(member.last_name),
                                  4: x12_text(member.first_name)},
            {3: "crew last_name", 4: "crew first_name"})
    out.add(spec.segment("DMG"), {1: "D8", 2: member.date_of_birth.strftime("%Y%m%d"),
                                  3: GENDER[member.gender] if member.gender else ""})
    out.add(spec.segment("DMA"), {2: member.citizenship})
    ref = spec.segment("REF", "NM1")
    for doc in member.documents[:ref.max_use]:
        issuer = doc.country + (f"-{doc.state_or_province}" if doc.state_or_province else "")
        out.add(ref, {1: DOCUMENT_QUALIFIER[doc.type], 2: x12_text(doc.number), 3: issuer},
                {2: "crew documents number"})


def _shipment(out: SegmentWriter, trip: Trip, shipment: Shipment, line: int) -> None:
    spec = guide.TS309
    record = shipment.record
    out.txid = record.transaction_id
    out.add(spec.segment("LX"), {1: str(line)})
    amendment = AMENDMENT.get(record.action)
    if amendment is not None:
        out.add(spec.segment("M13"), {1: trip.scac, 2: trip.port_of_arrival, 3: amendment, 4: shipment.scn})
    pieces = sum(item.quantity or 0 for item in record.items)
    weights = [item.weight_kg for item in record.items]
    if record.action is not Action.DELETE and (not record.items or any(w is None for w in weights)):
        raise EncodeError(f"record {record.transaction_id}: items.*.weight_kg: M1105 (shipment weight) is "
                          "required by the guide: give every item its weight (a catalog's weight_kg column)")
    weight = sum((_line_weight(item) or Decimal(0) for item in record.items), Decimal(0))
    out.add(spec.segment("M11"), {1: shipment.scn, 3: str(max(pieces, 1)), 5: _decimal(weight, 3), 6: "K"},
            {1: "shipment control number", 3: "items.*.quantity", 5: "items.*.weight_kg"})
    n9 = spec.segment("N9")
    if record.master_bill_number:
        out.add(n9, {1: REFERENCE_MASTER_BILL, 2: x12_text(record.master_bill_number)}, {2: "master_bill_number"})
    if record.tracking_number and record.tracking_number != shipment.scn:
        out.add(n9, {1: REFERENCE_TRACKING, 2: x12_text(record.tracking_number)}, {2: "tracking_number"})
    shipper = record.consignment_originator or record.seller
    for code, party, field in ((guide.PARTY_SHIPPER, shipper, "consignment_originator"),
                               (guide.PARTY_CONSIGNEE, record.ultimate_deliver_to, "ultimate_deliver_to"),
                               ("BY", record.customer, "customer"),
                               ("SE", record.seller if record.consignment_originator else None, "seller")):
        if party is None:
            if code in (guide.PARTY_SHIPPER, guide.PARTY_CONSIGNEE) and record.action is not Action.DELETE:
                raise EncodeError(f"record {record.transaction_id}: {field}: the guide needs an N1*{code} "
                                  "party for every shipment")
            continue
        _party(out, code, party, field)
    out.add(spec.segment("VID"), {1: guide.EQUIPMENT_TRAILER if trip.equipment else guide.EQUIPMENT_CONVEYANCE,
                                  3: x12_text(trip.equipment[0].number if trip.equipment else trip.conveyance.number)},
            {3: "trip equipment.0.number" if trip.equipment else "trip conveyance.number"})
    for i, item in enumerate(record.items):
        _item(out, record, i)
    out.txid = ""


def _party(out: SegmentWriter, code: str, party: Party, field: str) -> None:
    spec = guide.TS309
    name = x12_text(party.name or "")
    out.add(spec.segment("N1", "P4/LX/N1"), {1: code, 2: name}, {2: f"{field}.name"})
    address = party.address
    if address is None:
        return
    lines = [x12_text(line) for line in (address.line1, address.line2) if line]
    if lines:
        out.add(spec.segment("N3", "P4/LX/N1"), dict(enumerate(lines[:2], start=1)), {1: f"{field}.address.line1",
                                                                                     2: f"{field}.address.line2"})
    state = address.state_or_province or ""
    out.add(spec.segment("N4", "P4/LX/N1"), {1: x12_text(address.city or ""), 2: state if len(state) == 2 else "",
                                             3: x12_text(address.postal_code or ""), 4: address.country or ""},
            {1: f"{field}.address.city", 3: f"{field}.address.postal_code"})


def _item(out: SegmentWriter, record: Consignment, index: int) -> None:
    spec = guide.TS309.segment("N10")
    item = record.items[index]
    at = f"items.{index}"
    pieces = wrap(x12_text(item.description or ""), DESCRIPTION_MAX)
    if not pieces:
        raise EncodeError(f"record {record.transaction_id}: {at}.description: N1002 is required by the guide")
    value = item.line_value if item.line_value is not None else (
        item.listed_price * item.quantity if item.listed_price is not None and item.quantity else None)
    if value is not None and (item.currency or "USD") != "USD":
        raise EncodeError(f"record {record.transaction_id}: {at}.currency: N1006 is a value in US dollars; "
                          f"this item is in {item.currency}: file it converted")
    values = {
        1: str(item.quantity) if item.quantity else "",
        2: pieces[0],
        3: x12_text(item.sku or ""),
        4: HTS_QUALIFIER if item.hts_code else "",
        5: item.hts_code or "",
        6: str(int(value.quantize(Decimal(1), ROUND_HALF_UP))) if value is not None else "",
        7: "K" if item.weight_kg is not None else "",
        8: _decimal(_line_weight(item) or Decimal(0), 3) if item.weight_kg is not None else "",
    }
    what = {1: f"{at}.quantity", 2: f"{at}.description", 3: f"{at}.sku", 5: f"{at}.hts_code",
            6: f"{at}.line_value", 8: f"{at}.weight_kg"}
    out.add(spec, values, what)
    for piece in pieces[1:]:  # continuation lines: no quantity, the reader appends them
        out.add(spec, {2: piece}, {2: f"{at}.description"})


def _line_weight(item: Item) -> Decimal | None:
    """The line's weight: `weight_kg` is per unit (docs/record.md, the catalog's column),
    N1008 and M1105 weigh what is on the truck."""
    if item.weight_kg is None:
        return None
    return item.weight_kg * (item.quantity or 1)


def _decimal(value: Decimal, places: int) -> str:
    """A plain decimal, no exponent, no trailing zeros (X12 type R)."""
    text = f"{value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text

"""The X12 309 Customs Manifest mapping: LX/M11/N1/N10 loops to bills, bills to records.

`BillBuilder` collects the bills of one sound transaction set; `map_bill` turns a bill
into Consignment fields, reporting what it cannot read as findings, never raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel
from s321.contracts import Mapped, PipelineContext
from s321.findings import Finding, error, warning
from s321.record import ModeOfTransport

from ..enrichment import Enrichment, country_code, parse_decimal
from .envelope import SetHeader
from .tokenizer import Segment, location

CENT = Decimal("0.01")
FINE = Decimal("0.0001")
POUND_KG = Decimal("0.45359237")
GRAM = Decimal("0.001")
MAX_DIGITS = 15

# Maximum lengths (X12 004010-006050) of the text elements a sender wraps over several
# segments: a piece that fills its element was cut there, often mid-word.
N10_DESCRIPTION_MAX = 45  # N10-02
NAME_MAX = 60  # N1-02, N2-01, N2-02
ADDRESS_MAX = 55  # N3-01, N3-02


def join_wrapped(pieces: list[str], width: int) -> list[str]:
    """Pieces of wrapped text rejoined: a piece that follows one filling `width` (the
    element's maximum length) continues it without a space, as the sender cut it there;
    other pieces stay separate (the caller joins those with a space)."""
    out: list[str] = []
    full = False
    for piece in pieces:
        if full and out:
            out[-1] += piece
        else:
            out.append(piece)
        full = len(piece) >= width
    return out


# --------------------------------------------------------------------------- bills


@dataclass(slots=True)
class PartyLoop:
    """An N1 loop: N1 with the N2, N3, N4 and PER that follow it."""

    entity: str
    position: int
    name: str = ""
    more_names: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""
    email: str = ""


@dataclass(slots=True)
class ItemLine:
    """An N10 with the continuation N10s (no quantity) that follow it."""

    position: int
    quantity: str
    descriptions: list[str]
    commodity_qualifier: str = ""
    commodity_code: str = ""
    value: str = ""
    weight_unit: str = ""
    weight: str = ""
    currency: str = ""
    marks: str = ""


@dataclass(slots=True)
class Bill:
    """One bill of lading of a 309, as the source read it: the mapper's payload."""

    source: str
    set_control: str
    version: str
    position: int  # segment number of its LX
    transport_method: str = ""
    conveyance: str = ""
    port: str = ""
    house_bill: str = ""
    master_bill: str = ""
    tracking_number: str = ""
    m11_position: int = 0
    parties: list[PartyLoop] = field(default_factory=list)
    items: list[ItemLine] = field(default_factory=list)


class BillBuilder:
    """Collects the bills of one sound 309 transaction set, segment by segment.

    The M10 and P4 in force when an LX starts apply to its bill. Segments the
    mapping does not use (M13, VID, M12, H1...) are passed over."""

    def __init__(self, header: SetHeader, keys_only: bool = False):
        self.header = header
        self.keys_only = keys_only  # the duplicate-key pass: each bill's M11 and nothing else
        self.method = self.conveyance = self.port = ""
        self.bill: Bill | None = None
        self.party: PartyLoop | None = None
        self.count = 0
        self.orphans: list[Segment] = []  # bill segments before any LX (first few kept)
        self.in_trip_loop = False  # inside the heading's VEH or NM1 (crew) loops

    def feed(self, seg: Segment) -> Bill | None:
        """Take one segment; return the bill it completed, if any."""
        tag = seg.tag
        if tag in ("LX", "P4", "SE"):
            self.in_trip_loop = False
            done = self._close()
            if tag == "LX":
                self.bill = Bill(
                    self.header.source,
                    self.header.control,
                    self.header.version,
                    seg.number,
                    self.method,
                    self.conveyance,
                    self.port,
                )
            elif tag == "P4":
                self.port = seg.get(1)
            return done
        if tag == "M10":
            self.method = seg.get(2)
            self.conveyance = seg.get(4) or seg.get(5) or seg.get(6)
            return None
        bill = self.bill
        if bill is None:
            if tag in _TRIP_TAGS:
                self.in_trip_loop = True  # an ACE truck 309's truck and crew: not a bill's
                return None
            if self.in_trip_loop and tag in _TRIP_LOOP_TAGS:
                return None
            if tag in _BILL_TAGS and len(self.orphans) < 3:
                self.orphans.append(seg)
            return None
        if self.keys_only and tag != "M11":
            return None
        if tag == "M11":
            bill.house_bill, bill.master_bill, bill.m11_position = (
                seg.get(1),
                seg.get(11),
                seg.number,
            )
        elif tag == "N9":
            self._reference(bill, seg.get(1), seg.get(2))
        elif tag == "N1":
            self.party = PartyLoop(seg.get(1), seg.number, seg.get(2))
            bill.parties.append(self.party)
        elif tag in ("N2", "N3", "N4", "PER") and self.party is not None:
            _party_segment(self.party, seg)
        elif tag == "N10":
            self._item(bill, seg)
        return None

    def _close(self) -> Bill | None:
        bill, self.bill, self.party = self.bill, None, None
        if bill is not None:
            self.count += 1
        return bill

    @staticmethod
    def _reference(bill: Bill, qualifier: str, value: str) -> None:
        # N9 qualifiers: 2I tracking number, MB master bill of lading.
        if qualifier == "2I" and not bill.tracking_number:
            bill.tracking_number = value
        elif qualifier == "MB" and not bill.master_bill:
            bill.master_bill = value

    @staticmethod
    def _item(bill: Bill, seg: Segment) -> None:
        quantity, text = seg.get(1), seg.get(2)
        previous = bill.items[-1] if bill.items else None
        if not quantity and previous is not None:
            # A continuation line: its text goes on the description above, and any
            # code or value it carries fills what that line left empty.
            if text:
                previous.descriptions.append(text)
            for attr, index in _ITEM_ELEMENTS:
                if not getattr(previous, attr):
                    setattr(previous, attr, seg.get(index))
            return
        line = ItemLine(seg.number, quantity, [text] if text else [])
        for attr, index in _ITEM_ELEMENTS:
            setattr(line, attr, seg.get(index))
        bill.items.append(line)


_BILL_TAGS = frozenset({"M11", "N9", "N1", "N2", "N3", "N4", "PER", "N10"})

KEYS_ELEMENTS = frozenset({"M10", "P4", "M11"})
"""The segments whose elements a `keys_only` builder reads (with the envelope's, which
make the header): a reading for it may leave every other segment without elements."""

# The heading of an ACE truck 309 (guide.TS309): the truck (VEH) and each crew member's
# NM1 loop (NM1, DMG, DMA, REF, N3, N4) come before the port's P4: trip data, no bill's.
_TRIP_TAGS = frozenset({"VEH", "NM1"})
_TRIP_LOOP_TAGS = frozenset({"DMG", "DMA", "REF", "N3", "N4", "PER"})

# N10 elements besides quantity (01) and description (02); N10-13 exists from 004020 on.
_ITEM_ELEMENTS = (
    ("marks", 3),
    ("commodity_qualifier", 4),
    ("commodity_code", 5),
    ("value", 6),
    ("weight_unit", 7),
    ("weight", 8),
    ("currency", 13),
)


def _party_segment(party: PartyLoop, seg: Segment) -> None:
    tag = seg.tag
    if tag == "N2":
        party.more_names += [n for n in (seg.get(1), seg.get(2)) if n]
    elif tag == "N3":
        party.lines += [line for line in (seg.get(1), seg.get(2)) if line]
    elif tag == "N4":
        party.city, party.state, party.postal_code, party.country = (
            seg.get(1),
            seg.get(2),
            seg.get(3),
            seg.get(4),
        )
    else:  # PER: pairs of communication qualifier and number from PER03 on
        for index in (3, 5, 7):
            qualifier, number = seg.get(index), seg.get(index + 1)
            if qualifier == "TE" and not party.phone:
                party.phone = number
            elif qualifier == "EM" and not party.email:
                party.email = number


# --------------------------------------------------------------------------- record

_PARTY_FIELDS = {
    "SH": "consignment_originator",
    "CN": "ultimate_deliver_to",
    "BY": "customer",
    "SE": "seller",
}

# Transportation Method/Type Code (M10-02) values whose mode is not in doubt.
_METHOD_MODES = {
    "J": ModeOfTransport.TRUCK,
    "M": ModeOfTransport.TRUCK,
    "E": ModeOfTransport.TRUCK,
    "A": ModeOfTransport.AIR,
    "AE": ModeOfTransport.AIR,
    "AF": ModeOfTransport.AIR,
    "R": ModeOfTransport.RAIL,
    "O": ModeOfTransport.OCEAN,
    "Q": ModeOfTransport.OCEAN,
    "7": ModeOfTransport.MAIL,
}

_DEFAULTED = (
    "seller",
    "consignment_originator",
    "marketplace_seller_id",
    "identified_marketplace_merchant",
    "known_carrier_customer",
    "exemption_claimant",
)


def map_bill(bill: Bill, context: PipelineContext, catalog: Enrichment | None) -> Mapped:
    """Consignment fields of one bill. Pipeline settings fill originator code, filer type
    and mode; the pipeline's `defaults` fill what a 309 does not carry. With `catalog`
    (N10-03 holds the SKU), each item gets its `sku` and that SKU's catalog row."""
    ctx = context
    findings: list[Finding] = []
    record: dict[str, Any] = {
        "originator_code": ctx.originator_code,
        "filer_type": ctx.filer_type,
        "mode_of_transport": ctx.mode_of_transport,
        "house_bill_number": bill.house_bill or None,
        "master_bill_number": bill.master_bill or None,
        "tracking_number": bill.tracking_number or None,
        "port_of_entry": bill.port or None,
        "conveyance": bill.conveyance or None,
    }
    if not bill.m11_position:
        findings.append(
            error(
                "x12-309-no-m11",
                "house_bill_number",
                "the LX loop has no M11, so the bill has no bill of lading number",
                location(bill.source, bill.position),
            )
        )
    method_mode = _METHOD_MODES.get(bill.transport_method)
    if method_mode is not None and method_mode != ctx.mode_of_transport:
        findings.append(
            warning(
                "x12-309-mode",
                "mode_of_transport",
                f"M10-02 {bill.transport_method!r} means {method_mode.value}, the pipeline "
                f"says {ctx.mode_of_transport.value}; the pipeline's mode is used",
                location(bill.source, bill.position),
            )
        )
    placed: dict[str, str] = {}  # where each party and item was read, for the findings on it
    for party in bill.parties:
        target = _PARTY_FIELDS.get(party.entity)
        if target is None:
            continue
        if target in record:
            findings.append(
                warning(
                    "x12-309-party-repeated",
                    target,
                    f"a second N1*{party.entity} in this bill is ignored",
                    location(bill.source, party.position),
                )
            )
            continue
        record[target] = _party(party)
        placed[target] = location(bill.source, party.position)
    record["items"] = [
        _item(line, f"items.{i}", location(bill.source, line.position), findings, ctx, catalog)
        for i, line in enumerate(bill.items)
    ]
    for name in _DEFAULTED:
        default = getattr(ctx.defaults, name)
        if record.get(name) is None and default is not None:
            is_model = isinstance(default, BaseModel)
            record[name] = default.model_dump(exclude_none=True) if is_model else default
    placed.update((f"items.{i}", location(bill.source, line.position))
                  for i, line in enumerate(bill.items))
    return Mapped(record=record, findings=findings, hints=_HINTS, locations=placed)


_HINTS = {
    "house_bill_number": "the bill's M11 segment (M11-01, the bill of lading number)",
    "consignment_originator": "the bill's N1*SH loop (N1, N3, N4), or `defaults.consignment_originator`",
    "ultimate_deliver_to": "the bill's N1*CN loop (N1 name, N3 street, N4 city, state, ZIP and country)",
    "customer": "the bill's N1*BY loop",
    "seller": "the bill's N1*SE loop, or `defaults.seller`",
    "items.*.description": "the N10-02 description of the line",
    "items.*.quantity": "N10-01, the line's quantity",
    "items.*.hts_code": "N10-05, with the HTSUSA qualifier A in N10-04",
    "items.*.listed_price": "N10-06, the line's value in whole dollars",
    "items.*.weight_kg": "N10-08 (the line's weight, unit in N10-07: K or L) divided by N10-01",
}
"""Where each record field comes from in a 309, for the messages of findings on it."""


def _item(
    line: ItemLine,
    at: str,
    where: str,
    findings: list[Finding],
    context: PipelineContext,
    catalog: Enrichment | None,
) -> dict[str, Any]:
    """Item fields of one N10 line (with its continuations); findings name `at`
    (items.N) and the N10's segment."""
    found: list[Finding] = []
    item: dict[str, Any] = {
        "description": " ".join(join_wrapped(line.descriptions, N10_DESCRIPTION_MAX)) or None,
        **_quantity_and_price(line, at, found),
        "hts_code": _hts_code(line, at, found),
        "weight_kg": _weight_kg(line, at, found),
    }
    if item["weight_kg"] is not None and item.get("quantity"):
        item["weight_kg"] = _per_unit_weight(item["weight_kg"], item["quantity"])
    if catalog is not None:
        item["sku"] = line.marks or None
        found += catalog.apply_catalog(item, at)
    if not item.get("country_of_origin"):
        item["country_of_origin"] = context.defaults.country_of_origin
    findings.extend(f.at(where) for f in found)
    return {k: v for k, v in item.items() if v is not None}


def _quantity_and_price(line: ItemLine, at: str, found: list[Finding]) -> dict[str, Any]:
    """quantity from N10-01 and listed_price per unit: N10-06 is the customs value of
    the whole line in whole dollars, so it is divided by the quantity, in USD unless
    N10-13 names another currency."""
    quantity = _number(line.quantity)
    whole = quantity is not None and quantity == quantity.to_integral_value()
    if line.quantity and not whole:
        found.append(error("x12-309-quantity", f"{at}.quantity",
                           f"N10-01 {line.quantity!r} is not a whole number of pieces"))
    out: dict[str, Any] = {"quantity": int(quantity) if quantity is not None and whole else None}
    if not line.value:
        return out
    value = _number(line.value)
    if value is None or value < 0:
        found.append(error("x12-309-value", f"{at}.listed_price",
                           f"N10-06 {line.value!r} is not an amount in whole dollars"))
        return out
    out["line_value"] = value  # the declared truth: the total sums it, never price x quantity
    out["currency"] = line.currency or "USD"
    if quantity is not None and whole and quantity > 0:
        out["listed_price"] = _per_unit(value, quantity)
    # else the quantity's own finding says what to fix (missing, 0 or not whole): one
    # problem, one finding, and the declared value still counts toward the total
    return out


def _per_unit(value: Decimal, quantity: Decimal) -> Decimal:
    """To the cent when the value divides evenly, else to 1/100 cent, so that price x
    quantity stays within a cent of the declared value (as the FHL source does)."""
    cents = (value / quantity).quantize(CENT, ROUND_HALF_UP)
    if cents * quantity == value:
        return cents
    return (value / quantity).quantize(FINE, ROUND_HALF_UP)


def _hts_code(line: ItemLine, at: str, found: list[Finding]) -> str | None:
    if not line.commodity_code:
        return None
    if line.commodity_qualifier in ("A", ""):  # A: Harmonized Tariff Schedule (HTSUSA)
        return "".join(ch for ch in line.commodity_code if ch.isalnum())
    found.append(warning("x12-309-commodity-code", f"{at}.hts_code",
                         f"N10-04 {line.commodity_qualifier!r} is not the HTSUSA qualifier 'A'; "
                         "the commodity code is not used as hts_code"))
    return None


def _weight_kg(line: ItemLine, at: str, found: list[Finding]) -> Decimal | None:
    if not line.weight:
        return None
    weight = _number(line.weight)
    factor = {"K": Decimal(1), "L": POUND_KG}.get(line.weight_unit)
    if weight is None or factor is None:
        found.append(warning("x12-309-weight", f"{at}.weight_kg",
                             f"N10-07/N10-08 {line.weight_unit!r} {line.weight!r} is not a weight "
                             "in K (kilograms) or L (pounds)"))
        return None
    return (weight * factor).quantize(GRAM, ROUND_HALF_UP)


def _per_unit_weight(line_kg: Decimal, quantity: int) -> Decimal:
    """N10-08 weighs the whole line (390 tyres: 14404 K, as the line's M11-05); a record's
    `weight_kg` is per unit (docs/record.md). To the gram when the line divides evenly,
    else to the fewest places whose product with the quantity rounds back to the line's
    weight to the gram, so that writing the item again gives the same N10-08."""
    for places in range(3, 13):
        step = Decimal(1).scaleb(-places)
        unit = (line_kg / quantity).quantize(step, ROUND_HALF_UP)
        if (unit * quantity).quantize(GRAM, ROUND_HALF_UP) == line_kg:
            return unit
    return unit


def _number(text: str) -> Decimal | None:
    """A plain decimal of at most 15 digits (the longest numeric X12 element here);
    anything longer or with an exponent is refused, so no computation can explode."""
    value = parse_decimal(text)
    if value is None or len(value.as_tuple().digits) > MAX_DIGITS:
        return None
    return value


def _party(loop: PartyLoop) -> dict[str, Any]:
    lines = join_wrapped(loop.lines, ADDRESS_MAX)
    address = {
        "line1": lines[0] if lines else None,
        "line2": " ".join(lines[1:]) or None,
        "city": loop.city or None,
        "state_or_province": loop.state or None,
        "postal_code": loop.postal_code or None,
        # X12 country codes may be alpha-3; an unknown code is kept for the rules to report.
        "country": (country_code(loop.country) or loop.country) if loop.country else None,
    }
    party: dict[str, Any] = {
        "name": " ".join(join_wrapped([n for n in (loop.name, *loop.more_names) if n],
                                      NAME_MAX)) or None,
        "address": {k: v for k, v in address.items() if v is not None} or None,
        "phone": loop.phone or None,
        "email": loop.email or None,
    }
    return {k: v for k, v in party.items() if v is not None}

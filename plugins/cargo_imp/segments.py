"""The FHL line types, one reader each: MBI, HBS, TXT, HTS, OCI, SHP/CNE blocks, CVD,
and the security declaration that OCI entries carry.

Each reader takes the text after the line identifier and returns plain values; what is
wrong is appended to `findings` as a finding on the record field it would have filled,
at the line's location. No reader raises for content, however malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from s321.findings import Finding, error, warning

from .model import Charges, CustomsInfo, House, PartyLines, SecurityDeclaration

LB_TO_KG = Decimal("0.45359237")
TXT_LINE_WIDTH = 65
"""A TXT line holds 65 characters; a full one was wrapped by the sender, possibly in the
middle of a word, so its continuation joins without a space."""

# Bounded so that no amount can overflow Decimal arithmetic (28 significant digits).
_NUMBER = r"(?:\d{1,12}(?:\.\d{0,6})?|\.\d{1,6})"
# ASCII: \d must not take other scripts' digits for an AWB number or an amount.
_AWB = re.compile(r"(\d{3})-?(\d{8})(?:([A-Z]{3})([A-Z]{3}))?", re.ASCII)
_AWB_PREFIX = re.compile(r"(\d{3})-?(\d{8})", re.ASCII)
_QUANTITY = re.compile(rf"([TSPD]?)(\d{{1,9}})([KL])({_NUMBER})(.*)", re.ASCII)
_WEIGHT = re.compile(rf"([KL])({_NUMBER})", re.ASCII)
_AIRPORTS = re.compile(r"([A-Z]{3})([A-Z]{3})")
_COUNTRY_LINE = re.compile(r"[A-Za-z]{2}(?:/.*)?")
_AMOUNT = re.compile(_NUMBER, re.ASCII)
_PHONE_IDS = frozenset({"TE", "TEL", "PH", "PHONE"})
_EMAIL_IDS = frozenset({"EM", "EML", "EMAIL"})


@dataclass(frozen=True, slots=True)
class MasterBill:
    number: str | None
    """"PPP-SSSSSSSS" when the line holds a readable master AWB number."""
    key: str
    """What identifies the master in unit keys, even when the number is unreadable."""
    origin: str | None = None
    destination: str | None = None


def shown(text: str, limit: int = 20) -> str:
    """A field's text quoted for a message, cut short: a broken line can be long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def awb_check_digit(serial: str) -> int:
    """The check digit of an 8-digit AWB serial: its first seven digits modulo 7."""
    return int(serial[:7]) % 7


def parse_mbi(rest: str, at: str, findings: list[Finding]) -> MasterBill:
    fields = rest.split("/")
    head = re.sub(r"\s", "", fields[0]).upper()
    match = _AWB.fullmatch(head) or _AWB_PREFIX.match(head)
    if match is None:
        findings.append(error(
            "fhl-bad-master-number", "master_bill_number",
            "the MBI line must start with the master AWB number as PPP-SSSSSSSS followed "
            "by origin and destination airports (e.g. MBI/006-96667465DFWFRA/T4K245)", at))
        return MasterBill(None, head or "?")
    prefix, serial = match.group(1), match.group(2)
    number = f"{prefix}-{serial}"
    expected = awb_check_digit(serial)
    if int(serial[7]) != expected:
        findings.append(error(
            "awb-check-digit", "master_bill_number",
            f"master AWB {number}: the check digit is {serial[7]} but should be {expected} "
            f"(the first seven digits of the serial modulo 7)", at))
    origin = destination = None
    if match.re is _AWB and match.group(3):
        origin, destination = match.group(3), match.group(4)
    elif match.end() < len(head):
        findings.append(warning(
            "fhl-bad-airports", "",
            "after the master AWB number the MBI line expects origin and destination "
            "airport codes (e.g. DFWFRA)", at))
    if len(fields) < 2 or not _QUANTITY.fullmatch(re.sub(r"\s", "", fields[1]).upper()):
        findings.append(warning(
            "fhl-bad-master-quantity", "",
            "the MBI line's second field should be T, pieces, K or L and the weight "
            "(e.g. T4K245)", at))
    return MasterBill(number, number, origin, destination)


def parse_hbs(rest: str, house: House, at: str, findings: list[Finding]) -> bool:
    """Fill `house` from an HBS line. False when the line names no house number, so
    that the house cannot be filed at all."""
    fields = [f.strip() for f in rest.split("/")]
    house.number = fields[0].upper() or None
    if house.number is None:
        findings.append(error(
            "fhl-missing-house-number", "house_bill_number",
            "the HBS line has no house waybill number (HBS/NUMBER/ORGDST/PIECES/K WEIGHT/"
            "SLAC/NATURE OF GOODS)", at))
        return False
    fields += [""] * (4 - len(fields))
    airports = re.sub(r"\s", "", fields[1]).upper()
    if m := _AIRPORTS.fullmatch(airports):
        house.origin, house.destination = m.group(1), m.group(2)
    elif airports:
        findings.append(warning("fhl-bad-airports", "",
                                "the HBS origin and destination should be two airport "
                                f"codes (e.g. HKGLAX), not {shown(airports)}", at))
    combined = _QUANTITY.fullmatch(fields[2].replace(" ", "").upper())
    if combined and not combined.group(5):
        # Some senders write pieces and weight as one field, like the MBI line.
        house.pieces = _pieces(combined.group(2), at, findings)
        house.weight_kg = to_kg(combined.group(3), combined.group(4))
        tail = fields[3:]
    else:
        house.pieces = _pieces(fields[2], at, findings)
        house.weight_kg = _weight(fields[3], at, findings)
        tail = fields[4:]
    if tail and _count(tail[0]) is not None:
        house.slac = _count(tail[0])
        tail = tail[1:]
    elif tail and not tail[0]:
        tail = tail[1:]
    elif len(tail) == 1 and tail[0]:
        pass  # no SLAC field at all (older versions): the last field is the nature of goods
    elif tail:
        findings.append(warning("fhl-bad-slac", "",
                                "the HBS SLAC (shipper's load and count) must be a number", at))
        tail = tail[1:]
    house.nature_of_goods = "/".join(tail).strip() or None
    return True


def _count(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


def _pieces(text: str, at: str, findings: list[Finding]) -> int | None:
    text = text.replace(" ", "")
    if (count := _count(text)) is not None and count > 0:
        return count
    findings.append(error("fhl-bad-pieces", "items.0.quantity",
                          f"the HBS number of pieces must be a whole number above 0, "
                          f"not {shown(text)}", at))
    return None


def _weight(text: str, at: str, findings: list[Finding]) -> Decimal | None:
    m = _WEIGHT.fullmatch(text.replace(" ", "").upper())
    if m is None:
        findings.append(warning("fhl-bad-weight", "items.0.weight_kg",
                                "the HBS weight must be K (kilograms) or L (pounds) and a "
                                f"number, like K12.5, not {shown(text)}", at))
        return None
    return to_kg(m.group(1), m.group(2))


def to_kg(code: str, amount: str) -> Decimal:
    value = Decimal(amount)
    if code == "L":
        value *= LB_TO_KG
    return value.quantize(Decimal("0.001"))


def join_free_text(previous: str, previous_width: int, continuation: str) -> str:
    """Join a TXT continuation line to the text so far; `previous_width` is the length
    of the physical line before it."""
    if not previous or not continuation:
        return previous or continuation
    separator = "" if previous_width >= TXT_LINE_WIDTH else " "
    return previous + separator + continuation


def parse_hts(rest: str) -> list[str]:
    """Harmonised codes, one or several to a line ("HTS/610910/611020"); the dots and
    spaces some senders write (6109.10.0012) are dropped."""
    codes = (re.sub(r"[.\s-]", "", part).upper() for part in rest.split("/"))
    return [code for code in codes if code]


def parse_oci(rest: str) -> CustomsInfo | None:
    """One OCI entry from the text after "OCI/" or after the "/" of a continuation:
    country/information id/control id/value, e.g. "GB/ISS/RA/00012-01" or "//SM/XRY"."""
    fields = [f.strip().upper() for f in rest.split("/", 3)]
    if not any(fields):
        return None
    fields += [""] * (4 - len(fields))
    country, information, control, value = fields
    if (not control and not value and country in _SECURITY_DETAILS
            and information not in _INFORMATION_IDS):
        # "/SM/XRY": the sender left out the empty country and information fields.
        country, information, control, value = "", "", country, information
    if control in _PERSONAL:
        value = ""  # dropped here so that no later step can file or log it
    return CustomsInfo(country, information, control, value)


# ------------------------------------------------------------------ security (e-CSD)

SECURITY_STATUSES = frozenset({"SPX", "SCO", "SHR", "NSC"})
"""Secure for passenger and all-cargo aircraft; for all-cargo aircraft only; for all
aircraft to high-risk requirements; not secured (yet)."""
_ENTITIES = frozenset({"RA", "KC", "AC", "AO", "RC"})
"""Regulated agent, known consignor, account consignor, aircraft operator, regulated
carrier: each starts a group of the details that follow it."""
_STATUS_IDS = frozenset({"SS", "SSD"})
"""SS is the standard identifier; some senders write SSD."""
_SECURITY_DETAILS = frozenset({"ED", "SM", "SD", "SN", "ST", "L"}) | _STATUS_IDS
_PERSONAL = frozenset({"SN"})
_INFORMATION_IDS = frozenset({
    "ISS", "OSS", "AGT", "SHP", "CNE", "IMP", "EXP", "TRA", "DOC", "DNR", "HWB", "ULD",
    "MAL", "DCL", "BRK", "AIR", "NFY", "TID"})
_MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
# The digits after the month tell the forms apart: YY, YYYY, YY+HHMM or YYYY+HHMM; a
# four-digit year must be 20xx, so that a short time (28OCT2514) is not year 2514.
_SCREENING_DATE = re.compile(r"(\d{2})([A-Z]{3})(20\d{2}|\d{2})(\d{4})?", re.ASCII)


def parse_screening_date(text: str) -> datetime | None:
    """SD as DDMMMYYHHMM or DDMMMYY (12OCT251200, 12OCT25); also with a four-digit year
    and with the dashes, spaces or colon some systems add (12-OCT-2025 12:00). None when
    it is no such date. The time is local to the place of screening."""
    compact = re.sub(r"[\s:.-]", "", text.upper())
    match = _SCREENING_DATE.fullmatch(compact)
    if match is None or match.group(2) not in _MONTHS:
        return None
    day, month, year, clock = match.groups()
    clock = clock or "0000"
    try:
        return datetime(int(year) if len(year) == 4 else 2000 + int(year), _MONTHS[month],
                        int(day), int(clock[:2]), int(clock[2:]))
    except ValueError:  # 31FEB25, 2460
        return None


@dataclass(slots=True)
class _Entity:
    """An entity entry (ISS/RA/00012-01) and the detail entries that follow it."""

    information: str = ""
    category: str = ""
    identifier: str = ""
    statuses: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    exemptions: list[str] = field(default_factory=list)
    screened_at: datetime | None = None


class SecurityLines:
    """Collects the security entries of a run of OCI entries, one entry at a time, and
    tells whether an entry was one. Details (ED, SM, SD, SN, SS, L, ST) belong to the
    entity entry before them; the entity that issued the status (ISS) is the reference."""

    __slots__ = ("entities", "location")

    def __init__(self) -> None:
        self.entities: list[_Entity] = []
        self.location: str | None = None
        """The first security entry: where a finding on the whole declaration points."""

    def add(self, entry: CustomsInfo, at: str, findings: list[Finding]) -> bool:
        control, value = entry.customs_information, entry.value
        bare = [f for f in (entry.country, entry.information, control, value) if f]
        if len(bare) == 1 and bare[0] in SECURITY_STATUSES:
            control, value = "SS", bare[0]  # "/SPX": a status on its own
        elif control in _ENTITIES:
            self.entities.append(_Entity(entry.information, control, value))
            self.location = self.location or at
            return True
        elif control not in _SECURITY_DETAILS:
            return False
        if not self.entities:  # "OCI///SS/SPX" with no entity entry before it
            self.entities.append(_Entity())
        self.location = self.location or at
        self._detail(self.entities[-1], control, value, at, findings)
        return True

    @staticmethod
    def _detail(entity: _Entity, control: str, value: str, at: str,
                findings: list[Finding]) -> None:
        if not value:
            return  # "///SD/" and the like: a field left empty says nothing
        if control in _STATUS_IDS:
            status = value.split("/")[0].strip()
            if status in SECURITY_STATUSES:
                entity.statuses.append(status)
            else:
                findings.append(warning(
                    "fhl-unknown-security-status", "security_scan",
                    f"the security status {shown(status)} is none of SPX, SCO, SHR and "
                    "NSC; ignored", at))
        elif control == "SM":
            entity.methods.append(value)
        elif control == "L":
            entity.exemptions.append(value)
        elif control == "SD" and entity.screened_at is None:
            entity.screened_at = parse_screening_date(value)
            if entity.screened_at is None:
                findings.append(warning(
                    "fhl-bad-screening-date", "security_scan.scanned_at",
                    f"the screening date {shown(value)} is not DDMMMYYHHMM or DDMMMYY "
                    "(e.g. 12OCT251200); filed without it", at))
        # ED (expiry of the entity's approval) and ST (a free statement) file nothing;
        # SN (the screener's name) is personal data and is never kept.

    def declaration(self, scope: str, findings: list[Finding]) -> SecurityDeclaration | None:
        if not self.entities:
            return None
        issuer = next((e for e in self.entities if e.information == "ISS"), None) or next(
            (e for e in self.entities if e.category), self.entities[0])
        # The issuer's details first: its status and date are the declaration's, while
        # an OSS entity that screened the cargo still contributes its methods and date.
        ordered = [issuer] + [e for e in self.entities if e is not issuer]
        statuses = list(dict.fromkeys(s for e in ordered for s in e.statuses))
        methods = tuple(dict.fromkeys(m for e in ordered for m in e.methods))
        status = statuses[0] if statuses else None
        if len(statuses) > 1:
            findings.append(warning(
                "fhl-security-conflict", "security_scan.performed",
                f"the OCI lines give the security statuses {', '.join(statuses)}; the "
                f"issuer's {status} is filed", self.location))
        elif status == "NSC" and methods:
            findings.append(warning(
                "fhl-security-conflict", "security_scan.performed",
                "the OCI lines give a screening method but the status NSC (not secured); "
                "filed as not performed", self.location))
        reference = " ".join(p for p in (issuer.category, issuer.identifier) if p) or None
        return SecurityDeclaration(
            scope=scope, status=status, methods=methods,
            exemptions=tuple(dict.fromkeys(x for e in ordered for x in e.exemptions)),
            issuer=reference,
            screened_at=next((e.screened_at for e in ordered if e.screened_at), None))


def parse_cvd(rest: str, at: str, findings: list[Finding]) -> Charges:
    """CVD/currency[/charge code][/PP or CC]/carriage value/customs value/insurance.

    Senders differ in the fields between the currency and the three declared values,
    so the values are read from the right."""
    fields = [f.strip().upper() for f in rest.split("/")]
    if len(fields) < 4:
        findings.append(error(
            "fhl-bad-charges", "items.0.listed_price",
            "the CVD line needs currency, declared value for carriage, declared value "
            "for customs and insurance (e.g. CVD/USD/PP/NVD/125.00/XXX)", at))
        return Charges(currency=fields[0] or None)
    charges = Charges(
        currency=fields[0] or None,
        payment="/".join(f for f in fields[1:-3] if f) or None,
        carriage_value=fields[-3] or None,
        insurance_value=fields[-1] or None,
    )
    customs = fields[-2].replace(" ", "")
    if customs == "NCV":
        charges.no_customs_value = True
    elif _AMOUNT.fullmatch(customs):
        try:
            charges.customs_value = Decimal(customs)
        except InvalidOperation:  # the pattern admits only plain decimals; belt and braces
            charges.customs_value = None
    elif customs:
        findings.append(error(
            "fhl-bad-customs-value", "items.0.listed_price",
            "the CVD declared value for customs must be an amount or NCV, "
            f"not {shown(customs)}", at))
    return charges


def parse_party(first: str, lines: list[tuple[str | None, str]], role: str, at: str,
                findings: list[Finding]) -> PartyLines:
    """An SHP or CNE block, written either way it occurs:

    tagged   SHP[/ACCOUNT]  NAM/name  ADR/street  LOC/place/state  /CC/postcode/TE/phone
    by place SHP/name  /street  /place/state  /CC/postcode/TE/phone

    `lines` are the block's further lines as (tag or None, text after it)."""
    if any(tag for tag, _ in lines):
        party = _tagged_party(first, lines)
    else:
        party = _positional_party(([first] if first else []) + [text for _, text in lines])
    party.street = [s for s in party.street if s]
    if party.country is None:
        make = error if role == "ultimate_deliver_to" else warning
        findings.append(make(
            "fhl-missing-country", f"{role}.address.country",
            "the address has no country line (/CC/POSTCODE/TE/PHONE after the place)", at))
    return party


def _tagged_party(first: str, lines: list[tuple[str | None, str]]) -> PartyLines:
    party = PartyLines()
    last_tag: str | None = None
    for tag, text in lines:
        if tag is None and party.country is None and _COUNTRY_LINE.fullmatch(text):
            _country_line(text, party)
            continue
        tag = tag or last_tag  # an untagged line continues the line before it
        if tag == "NAM":
            party.name = f"{party.name} {text}" if party.name else text
        elif tag == "ADR":
            party.street.append(text)
        elif tag == "LOC" and party.city is None:
            _place(text, party)
        last_tag = tag
    # SHP/x before NAM lines is an account number; without NAM lines it is the name.
    if party.name is None:
        party.name = first or None
    else:
        party.account = first or None
    return party


def _positional_party(items: list[str]) -> PartyLines:
    party = PartyLines()
    if len(items) > 1 and _COUNTRY_LINE.fullmatch(items[-1]):
        _country_line(items.pop(), party)
    if items:
        party.name = items.pop(0)
    # name, street(s), place: a lone line after the name is the place only if it
    # has the place/state form, else it is the street.
    if len(items) >= 2 or (items and "/" in items[-1]):
        _place(items.pop(), party)
    party.street = items
    return party


def _place(text: str, party: PartyLines) -> None:
    city, _, state = text.partition("/")
    party.city = city.strip() or None
    party.state = state.split("/")[0].strip().upper() or None


def _country_line(text: str, party: PartyLines) -> None:
    fields = [f.strip() for f in text.split("/")]
    party.country = fields[0].upper()
    if len(fields) > 1:
        party.postal_code = fields[1].upper() or None
    contacts = fields[2:]
    for kind, number in zip(contacts[::2], contacts[1::2]):
        kind = kind.upper()
        if kind in _PHONE_IDS and party.phone is None and number:
            party.phone = number
        elif kind in _EMAIL_IDS and party.email is None and number:
            party.email = number

"""The FHL line types, one reader each: MBI, HBS, TXT, HTS, OCI, SHP/CNE blocks, CVD.

Each reader takes the text after the line identifier and returns plain values; what is
wrong is appended to `findings` as a finding on the record field it would have filled,
at the line's location. No reader raises for content, however malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from s321.findings import Finding, error, warning

from .model import Charges, CustomsInfo, House, PartyLines

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
    fields = [f.strip().upper() for f in rest.split("/", 3)]
    if not any(fields):
        return None
    fields += [""] * (4 - len(fields))
    return CustomsInfo(fields[0], fields[1], fields[2], fields[3])


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

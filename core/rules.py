"""The rules every consignment is held to, beyond presence: ISO codes, at least one
bill, a US deliver-to, quantities, prices, HTS codes, URLs and the Section 321 value
limit. `derive` fills the derived fields first (total_value_usd, normalised codes).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from operator import attrgetter
from urllib.parse import urlsplit

import pycountry

from s321.findings import Finding, error, warning
from s321.record import Consignment

US_CUSTOMS_TERRITORY = frozenset({"US", "PR"})
_HTS = re.compile(r"[0-9]{6}([0-9]{2}){0,2}")  # 6, 8 or 10 ASCII digits (\d takes any script's)
_SCIENTIFIC = re.compile(r"[0-9](?:[.,][0-9]+)?[eE]\+[0-9]{1,3}")
"""A number a spreadsheet rewrote for display (9400111899223197428490 -> 9.40011E+21):
the digits past the first few are gone, so no bill or tracking number looks so."""
_NUMBERS = ("house_bill_number", "master_bill_number", "tracking_number")
_HTS_SEPARATORS = re.compile(r"[.\s-]")


@lru_cache(maxsize=512)
def is_country(code: str) -> bool:
    return len(code) == 2 and pycountry.countries.get(alpha_2=code.upper()) is not None


@lru_cache(maxsize=256)
def is_currency(code: str) -> bool:
    return len(code) == 3 and pycountry.currencies.get(alpha_3=code.upper()) is not None


def normalise_hts(code: str) -> str:
    """HTS codes are often written with dots or spaces (6109.10.0012)."""
    return _HTS_SEPARATORS.sub("", code)


def derive(consignment: Consignment, rates: dict[str, Decimal]) -> Consignment:
    """Normalise codes and compute total_value_usd (None when a value or a rate is
    missing; `check` reports why).

    The total is exact arithmetic on what the source declared: each item's `line_value`
    (else listed price x quantity), summed per currency, each sum converted once at its
    configured rate, and the result rounded once to cents with ROUND_HALF_UP. A unit
    price a mapper derived from a line value is never multiplied back."""
    # A value is assigned only when it changes: a pydantic assignment costs several
    # microseconds, and most inputs are normalised already.
    sums: dict[str, Decimal] | None = {}
    for item in consignment.items:
        currency = item.currency
        if currency and currency != currency.upper():
            item.currency = currency = currency.upper()
        origin = item.country_of_origin
        if origin and origin != origin.upper():
            item.country_of_origin = origin.upper()
        hts = item.hts_code
        if hts and not (hts.isascii() and hts.isdigit()):
            item.hts_code = normalise_hts(hts)
        if sums is None:
            continue
        value = item.line_value
        if value is None:
            price, quantity = item.listed_price, item.quantity
            value = None if price is None or quantity is None else price * quantity
        if value is None or (currency or "") not in rates:
            sums = None
            continue
        sums[currency] = sums.get(currency, Decimal(0)) + value  # type: ignore[index]
    for party in _PARTIES(consignment):
        address = party.address if party is not None else None
        if address is not None and address.country and address.country != address.country.upper():
            address.country = address.country.upper()
    if sums is None:
        consignment.total_value_usd = None
    else:
        total = sum((amount * rates[code] for code, amount in sums.items()), Decimal(0))
        try:
            consignment.total_value_usd = total.quantize(_CENTS, ROUNDING)
        except InvalidOperation:  # more digits than the context holds: far over any limit
            consignment.total_value_usd = total
    return consignment


ROUNDING = ROUND_HALF_UP
"""How total_value_usd is rounded to cents, once, after conversion: half a cent goes up."""
_PARTY_FIELDS = ("consignment_originator", "ultimate_deliver_to", "seller", "customer", "exemption_claimant")
_PARTIES = attrgetter(*_PARTY_FIELDS)
_CENTS = Decimal("0.01")


def check(c: Consignment, rates: dict[str, Decimal], value_limit_usd: Decimal | None) -> list[Finding]:
    """Findings of the value rules. Presence is the profile's business (`s321.validation`)."""
    out: list[Finding] = []
    for pname, party in zip(_PARTY_FIELDS, _PARTIES(c)):
        if party and party.address and party.address.country and not is_country(party.address.country):
            out.append(error("invalid-country", f"{pname}.address.country",
                             "not an ISO 3166-1 alpha-2 country code (e.g. US, CN, DE)"))
    deliver = c.ultimate_deliver_to
    if deliver and deliver.address and deliver.address.country and is_country(deliver.address.country):
        if deliver.address.country.upper() not in US_CUSTOMS_TERRITORY:
            out.append(error("deliver-to-not-us", "ultimate_deliver_to.address.country",
                             f"the deliver-to address must be in the US (US or PR), "
                             f"not {deliver.address.country}"))
    for name in _NUMBERS:
        number = getattr(c, name)
        if number and "+" in number and _SCIENTIFIC.fullmatch(number.strip()):
            out.append(error("number-in-scientific-notation", name,
                             f"{number.strip()!r} is a number a spreadsheet rewrote in scientific "
                             "notation: its digits are lost. Take the number from the carrier "
                             "again, and keep the column as text when a spreadsheet opens the file"))
    if c.security_scan is not None and not c.security_scan.performed:
        out.append(warning("security-scan-not-performed", "security_scan.performed",
                           "the consignment declares no foreign security scan"))
    priced = True
    for i, item in enumerate(c.items):
        quantity, price, currency, hts = item.quantity, item.listed_price, item.currency, item.hts_code
        if quantity is not None and quantity <= 0:
            out.append(error("invalid-quantity", f"items.{i}.quantity", "quantity must be greater than 0"))
        if price is not None and price < 0:
            out.append(error("negative-price", f"items.{i}.listed_price", "a price cannot be negative"))
        if item.line_value is not None and item.line_value < 0:
            out.append(error("negative-price", f"items.{i}.line_value", "a line value cannot be negative"))
        if item.weight_kg is not None and item.weight_kg < 0:
            out.append(error("negative-weight", f"items.{i}.weight_kg", "a weight cannot be negative"))
        if currency and not is_currency(currency):
            out.append(error("invalid-currency", f"items.{i}.currency",
                             "not an ISO 4217 currency code (e.g. USD, EUR, CAD)"))
        elif (price is not None or item.line_value is not None) and (currency or "") not in rates:
            priced = False
            out.append(error("unknown-currency-rate", f"items.{i}.currency",
                             f"no rate for {currency}; add it under [currency_rates] "
                             f"(known: {', '.join(sorted(rates))})" if currency else
                             "the item gives a value but no currency to convert it from; give "
                             "the currency in the input, or set `defaults.currency`"))
        if item.country_of_origin and not is_country(item.country_of_origin):
            out.append(error("invalid-country", f"items.{i}.country_of_origin",
                             "not an ISO 3166-1 alpha-2 country code (e.g. CN, DE)"))
        # (ASCII digits only, 6, 8 or 10 of them, is what the pattern accepts, quicker.)
        if hts and not (hts.isascii() and hts.isdecimal() and len(hts) in (6, 8, 10)) \
                and not _HTS.fullmatch(normalise_hts(hts)):
            out.append(error("invalid-hts", f"items.{i}.hts_code",
                             "an HTS code has 6, 8 or 10 digits (e.g. 610910, 61091000 or 6109100012)"))
        if item.product_url and not is_url(item.product_url):
            out.append(error("invalid-url", f"items.{i}.product_url",
                             "not a valid http(s) URL with a host name"))
    if (priced and value_limit_usd is not None and c.total_value_usd is not None
            and c.total_value_usd > value_limit_usd):
        out.append(error("not-section-321", "total_value_usd",
                         f"total value {c.total_value_usd} USD is over the Section 321 limit "
                         f"of {value_limit_usd} USD"))
    elif priced and value_limit_usd is not None and c.total_value_usd is None:
        known = _declared_usd(c, rates)  # a line without a value must not hide the others
        if known > value_limit_usd:
            out.append(error("not-section-321", "total_value_usd",
                             f"the lines that declare a value already total {known} USD, over "
                             f"the Section 321 limit of {value_limit_usd} USD"))
    return out


def _declared_usd(c: Consignment, rates: dict[str, Decimal]) -> Decimal:
    """The USD sum of the non-negative values the items declare (line value, else price x
    quantity), skipping items without a value or a rate: a lower bound of the total."""
    sums: dict[str, Decimal] = {}
    for item in c.items:
        value = item.line_value
        if value is None and item.listed_price is not None and item.quantity is not None:
            value = item.listed_price * item.quantity
        currency = item.currency or ""
        if value is not None and value > 0 and currency in rates:
            sums[currency] = sums.get(currency, Decimal(0)) + value
    total = sum((amount * rates[code] for code, amount in sums.items()), Decimal(0))
    try:
        return total.quantize(_CENTS, ROUNDING)
    except InvalidOperation:
        return total


@lru_cache(maxsize=4096)  # product URLs repeat: they come from a catalog
def is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and "." in host and " " not in value

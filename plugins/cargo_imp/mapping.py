"""One FHL house waybill -> the fields of a Consignment (docs/sources.md).

The mapper only rearranges what the parser read: it invents no value. Where the FHL
gives one figure for several HTS codes (value, weight) it splits it evenly and says so
in a warning. Money stays Decimal; weights are already in kilograms.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Any

from s321.contracts import PipelineContext
from s321.findings import Finding, warning

from .model import House, PartyLines, SecurityDeclaration

CENT = Decimal("0.01")
GRAM = Decimal("0.001")

SCREENING_METHODS = {
    "XRY": "x-ray", "EDS": "explosive detection system", "EDD": "explosive detection dogs",
    "ETD": "explosive trace detection", "PHS": "physical inspection or hand search",
    "VCK": "visual check", "CMD": "cargo metal detection", "AOM": "other means",
    # codes of earlier editions, still sent by older systems
    "RES": "remote explosive scent tracing", "FRD": "free-running explosive detection dogs",
    "VPT": "vapour trace", "PRT": "particle trace", "MDE": "metal detection equipment",
    "SIM": "flight simulation",
}
"""Readable names of the screening method codes (SM); an unknown code is filed as written."""
SECURED = frozenset({"SPX", "SCO", "SHR"})
"""Statuses that say the consignment was secured (SCO: for all-cargo aircraft only)."""


def to_record(house: House, context: PipelineContext) -> tuple[dict[str, Any], list[Finding]]:
    """Record fields (without transaction_id) and the findings of the mapping."""
    findings: list[Finding] = []
    record: dict[str, Any] = {
        "originator_code": context.originator_code,
        "filer_type": context.filer_type,
        "mode_of_transport": context.mode_of_transport,
        "master_bill_number": house.master,
        "house_bill_number": house.number,
        "consignment_originator": party(house.shipper),
        "ultimate_deliver_to": party(house.consignee),
        "items": items(house, context, findings),
        "security_scan": security_scan(house.security),
    }
    return {k: v for k, v in record.items() if v is not None}, findings


def party(lines: PartyLines | None) -> dict[str, Any] | None:
    if lines is None:
        return None
    address = _without_none({
        "line1": lines.street[0] if lines.street else None,
        "line2": " ".join(lines.street[1:]) or None,
        "city": lines.city,
        "state_or_province": lines.state,
        "postal_code": lines.postal_code,
        "country": lines.country,
    })
    return _without_none({"name": lines.name, "address": address or None,
                          "phone": lines.phone, "email": lines.email}) or None


def security_scan(security: SecurityDeclaration | None) -> dict[str, Any] | None:
    """A secured status or a screening method: performed; NSC or a screening exemption:
    not performed; nothing that decides: left out, for the profile to report."""
    if security is None:
        return None
    if security.status == "NSC":
        performed = False
    elif security.status in SECURED or security.methods:
        performed = True
    elif security.exemptions:
        performed = False  # exempt (mail, diplomatic bags, ...) is not screened
    else:
        return None
    if not performed:
        return _without_none({"performed": False, "reference": security.issuer})
    return _without_none({
        "performed": True,
        "method": ", ".join(dict.fromkeys(map(method_name, security.methods))) or None,
        "reference": security.issuer,
        "scanned_at": security.screened_at,
    })


def method_name(code: str) -> str:
    """"XRY" -> "x-ray"; "AOM-SNIFFER CHAMBER" -> "other means (SNIFFER CHAMBER)", the
    text an AOM code may carry."""
    head, _, detail = code.partition("-")
    name = SCREENING_METHODS.get(head.strip())
    if name is None:
        return code
    detail = detail.strip()
    return f"{name} ({detail})" if detail and head.strip() == "AOM" else name


def description(house: House) -> str | None:
    """TXT is the full description when there is one; the HBS nature of goods is only
    15 characters, a manifest summary."""
    text = " ".join(house.free_text) or house.nature_of_goods or ""
    return re.sub(r"\s+", " ", text).strip() or None


def items(house: House, context: PipelineContext, findings: list[Finding]) -> list[dict[str, Any]]:
    charges = house.charges
    currency = (charges.currency if charges else None) or context.defaults.currency
    value = charges.customs_value if charges else None  # None for NCV: the rules decide
    common = {"description": description(house), "currency": currency,
              "country_of_origin": context.defaults.country_of_origin}
    codes = house.hts_codes
    if len(codes) <= 1:
        return [_without_none({
            **common,
            "quantity": house.pieces,
            "listed_price": per_unit(value, house.pieces),
            "line_value": value,
            "hts_code": codes[0] if codes else None,
            "weight_kg": house.weight_kg,
        })]
    findings.append(warning(
        "fhl-value-split", "items",
        f"the house declares one value and one weight for {len(codes)} HTS codes; they are "
        f"split evenly over {len(codes)} items of quantity 1", house.location))
    prices = split(value, len(codes), CENT)
    weights = split(house.weight_kg, len(codes), GRAM)
    return [_without_none({**common, "quantity": 1, "listed_price": price, "line_value": price,
                           "hts_code": code, "weight_kg": weight})
            for code, price, weight in zip(codes, prices, weights)]


def per_unit(value: Decimal | None, quantity: int | None) -> Decimal | None:
    """Price per unit, to the cent when it divides evenly, else to 1/100 cent so that
    price x quantity still comes back to the declared value after rounding."""
    if value is None or not quantity:
        return None
    price = value / quantity
    cents = price.quantize(CENT)
    return cents if cents == price else price.quantize(Decimal("0.0001"))


def split(total: Decimal | None, parts: int, step: Decimal) -> list[Decimal | None]:
    """`total` in `parts` shares of whole `step`s; the last share takes the remainder so
    the shares add up to exactly `total`."""
    if total is None:
        return [None] * parts
    share = (total / parts).quantize(step, rounding=ROUND_DOWN)
    return [share] * (parts - 1) + [total - share * (parts - 1)]


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}

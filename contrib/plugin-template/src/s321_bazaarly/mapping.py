"""Mapping a Bazaarly order to Section 321 record fields.

What the export does not carry (the seller, its marketplace seller id) comes from the
pipeline's `defaults`. A value that cannot be used becomes a finding on the record
field and the row's FILE:LINE; an empty one is left out, for the regime profile to
report if it is required. The mapper never raises.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import Finding, error

from .source import BazaarlyOptions, Order, Row

WHOLE = re.compile(r"[0-9]{1,9}")


class BazaarlyMapper:
    def __init__(self, options: BazaarlyOptions, context: PipelineContext):
        self.context = context

    def map(self, unit: RawUnit) -> Mapped:
        order: Order = unit.payload
        first = order.rows[0].cells
        findings: list[Finding] = []
        buyer = {
            "name": first["buyer_name"] or None,
            "address": {"line1": first["ship_to_line1"] or None, "line2": first["ship_to_line2"] or None,
                        "city": first["ship_to_city"] or None,
                        "state_or_province": first["ship_to_state"] or None,
                        "postal_code": first["ship_to_postal_code"] or None,
                        "country": first["ship_to_country"].upper() or None},
        }
        defaults = self.context.defaults
        record: dict[str, Any] = {
            "originator_code": self.context.originator_code,
            "filer_type": self.context.filer_type.value,
            "mode_of_transport": self.context.mode_of_transport.value,
            "tracking_number": first["tracking_number"] or None,
            "ultimate_deliver_to": buyer,
            "customer": buyer,
            "seller": defaults.seller.model_dump(exclude_none=True) if defaults.seller else None,
            "marketplace_seller_id": defaults.marketplace_seller_id,
            "identified_marketplace_merchant": defaults.identified_marketplace_merchant,
            "items": [self._item(i, row, order.file, findings) for i, row in enumerate(order.rows)],
        }
        return Mapped(record=record, findings=findings)

    def _item(self, i: int, row: Row, file: str, findings: list[Finding]) -> dict[str, Any]:
        cells, where, at = row.cells, f"{file}:{row.line}", f"items.{i}"
        quantity = _whole_number(cells["qty"])
        if quantity is None and cells["qty"]:
            findings.append(error("invalid-quantity", f"{at}.quantity",
                                  f"qty {cells['qty']!r} is not a whole number of pieces", where))
        price = _money(cells["unit_price"])
        if price is None and cells["unit_price"]:
            findings.append(error("invalid-price", f"{at}.listed_price",
                                  f"unit_price {cells['unit_price']!r} is not an amount like 18.50", where))
        return {
            "description": cells["item_title"] or None,
            "quantity": quantity,
            "listed_price": price,
            "currency": cells["currency"].upper() or None,
            "product_url": cells["product_link"] or None,
            "hts_code": cells["hs_code"] or None,
            "country_of_origin": cells["origin"].upper() or None,
        }


def _whole_number(text: str) -> int | None:
    # ASCII digits only: str.isdigit() also says yes to "²", which int() refuses.
    return int(text) if WHOLE.fullmatch(text) else None


def _money(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    # "NaN" and "Infinity" parse as Decimals, and 1E+999 is one too: none is a price.
    if not value.is_finite() or abs(value) >= 10**9:
        return None
    return value

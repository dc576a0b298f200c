"""The values the real-world files declare, read straight from the files with nothing of
s321: the corpus test compares s321's `total_value_usd` with these, so that a total s321
computed wrongly cannot be its own reference.

    python tests/realworld/declared_totals.py FILE...    prints unit -> declared total

Per format: a Shopify order's lines that require shipping, price x quantity (the shop
declares a unit price); an X12 309 bill (LX loop), the sum of N10-06 of its N10s that
carry a quantity (N10-06 is the line's value); an FHL house, its CVD customs value (None
for NCV, no value declared). Amounts in the declared currency, USD here for all.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path


def shopify_json(path: Path) -> dict[str, Decimal]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    orders = doc.get("orders") or [doc.get("order") or doc]
    out = {}
    for order in orders:
        lines = order.get("line_items") or []
        out[order["name"]] = sum((Decimal(str(line["price"])) * int(line["quantity"])
                                  for line in lines if line.get("requires_shipping", True)),
                                 Decimal(0))
    return out


def x12_309(path: Path) -> list[tuple[str, Decimal]]:
    """(M11-01 bill number, declared value) of every LX loop, in file order (a bill
    number may repeat: both are listed)."""
    text = path.read_text(encoding="utf-8")
    terminator = text[105]  # ISA is 106 characters; its last is the segment terminator
    element = text[3]
    bills: list[list] = []
    for raw in text.split(terminator):
        parts = raw.strip().split(element)
        tag = parts[0]
        if tag == "LX":
            bills.append(["", Decimal(0)])
        elif tag == "M11" and bills:
            bills[-1][0] = parts[1]
        elif tag == "N10" and bills and len(parts) > 6 and parts[1] and parts[6]:
            bills[-1][1] += Decimal(parts[6])
    return [(number, value) for number, value in bills]


def fhl(path: Path) -> dict[str, Decimal | None]:
    """House number -> its CVD customs value (the fifth field after the currency)."""
    out: dict[str, Decimal | None] = {}
    house = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("HBS/"):
            house = line.split("/")[1]
            out[house] = None
        elif line.startswith("CVD/") and house is not None:
            fields = line.split("/")
            value = fields[-2]  # CVD/currency/[charge code/]PP|CC/carriage/customs/insurance
            out[house] = None if value == "NCV" else Decimal(value)
    return out


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        reader = {".json": shopify_json, ".x12": x12_309}.get(path.suffix, fhl)
        print(path.name, reader(path))

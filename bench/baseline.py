"""The hand-written baseline of the preview benchmark: what a competent engineer would
write to do the preview's work for one Shopify export without the framework.

It uses the csv module, the same pydantic record model (`s321.record.Consignment`) and
json, and nothing else of s321: it reads the export, groups rows into orders, enriches
them from the catalog, vendor and tracking tables, skips what is not a Section 321
consignment, validates the pilot-2019 online-marketplace element set and the value
rules, and writes one JSON outcome a line, as `s321 preview --json` does. Its verdicts
match the framework's (the benchmark compares the counts). Usage:

    python bench/baseline.py SHOP_DIR [--out FILE]   # prints "records valid invalid skipped"
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pycountry
from pydantic import ValidationError
from s321.record import Consignment

ORIGINATOR = "NWG321"
LIMIT = Decimal(800)
RATES = {"USD": Decimal(1), "CAD": Decimal("0.73"), "EUR": Decimal("1.08")}
DEFAULT_SELLER = {"name": "Northwind Goods Ltd", "address": {
    "line1": "1200 Waterfront Road", "city": "Vancouver", "state_or_province": "BC",
    "postal_code": "V6B 1A1", "country": "CA"}}
COUNTRIES = {c.alpha_2 for c in pycountry.countries}
CURRENCIES = {c.alpha_3 for c in pycountry.currencies}
NAMES = {c.name.casefold(): c.alpha_2 for c in pycountry.countries}
HTS = re.compile(r"\d{6}(\d{4})?")


def read_table(path: Path, key: str) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get(key):
                yield {k: (v or "").strip() for k, v in row.items()}


def country(value: str) -> str | None:
    if not value:
        return None
    return value.upper() if value.upper() in COUNTRIES else NAMES.get(value.casefold(), value)


def load_tables(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    catalog = {}
    for row in read_table(folder / "catalog.csv", "sku"):
        catalog.setdefault(row["sku"], {
            "hts_code": re.sub(r"[.\s-]", "", row["hts_code"]) or None,
            "country_of_origin": country(row["country_of_origin"]),
            "product_url": row["product_url"] or None,
            "weight_kg": Decimal(row["weight_kg"]) if row["weight_kg"] else None,
            "description": row["description"] or None})
    vendors = {}
    for row in read_table(folder / "vendors.csv", "vendor"):
        address = {k: row[k] for k in ("line1", "line2", "city", "state_or_province",
                                       "postal_code") if row[k]}
        if row["country"]:
            address["country"] = country(row["country"])
        vendors.setdefault(row["vendor"].casefold(), {
            "seller": {"name": row["seller_name"], "address": address},
            "marketplace_seller_id": row["marketplace_seller_id"] or None,
            "identified_marketplace_merchant": row["identified_merchant"].lower() == "true"})
    tracking = {}
    for row in read_table(folder / "tracking.csv", "Order Name"):
        tracking.setdefault(row["Order Name"].lstrip("#").casefold(), row["Tracking Number"])
    return catalog, vendors, tracking


def orders(path: Path) -> Iterator[tuple[int, list[dict[str, str]]]]:
    """(line of its first row, its rows) for each order: consecutive rows, same Name."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows: list[dict[str, str]] = []
        start = 2
        line = reader.line_num + 1
        for cells in reader:
            row = dict(zip(header, cells))
            if rows and row["Name"] != rows[0]["Name"]:
                yield start, rows
                rows, start = [], line
            rows.append(row)
            line = reader.line_num + 1
        if rows:
            yield start, rows


def party(row: dict[str, str], kind: str) -> dict[str, Any]:
    address = {
        "line1": row[f"{kind} Address1"] or None, "line2": row[f"{kind} Address2"] or None,
        "city": row[f"{kind} City"] or None, "state_or_province": row[f"{kind} Province"] or None,
        "postal_code": row[f"{kind} Zip"].lstrip("'") or None,
        "country": country(row[f"{kind} Country"])}
    return {"name": row[f"{kind} Name"] or None,
            "address": {k: v for k, v in address.items() if v} or None,
            "phone": row[f"{kind} Phone"].lstrip("'") or None}


def to_record(name: str, rows: list[dict[str, str]], tables: tuple[Any, Any, Any]
              ) -> tuple[dict[str, Any] | None, str | None, list[dict[str, str]]]:
    """(record fields, skip reason, findings) of one order."""
    catalog, vendors, tracking = tables
    first = rows[0]
    if first["Cancelled at"]:
        return None, "cancelled order", []
    shipped = [r for r in rows if r["Lineitem requires shipping"].lower() != "false"]
    if not shipped:
        return None, "nothing to ship: no line item requires shipping", []
    deliver = party(first, "Shipping")
    where = (deliver["address"] or {}).get("country")
    if where and where not in ("US", "PR"):
        return None, f"ships to {where}, outside the US customs territory", []
    findings = []
    items = []
    for i, row in enumerate(shipped):
        item = {"description": row["Lineitem name"] or None,
                "quantity": int(row["Lineitem quantity"]),
                "listed_price": Decimal(row["Lineitem price"]).quantize(Decimal("0.01")),
                "currency": first["Currency"].upper(), "sku": row["Lineitem sku"] or None}
        entry = catalog.get(item["sku"])
        if entry is None:
            findings.append({"code": "not-in-catalog", "field": f"items.{i}.sku",
                             "severity": "warning"})
        else:
            item.update({k: v for k, v in entry.items() if v is not None})
        items.append({k: v for k, v in item.items() if v is not None})
    # The seller is that of the first vendor (in item order) the vendor table knows.
    vendor = next((vendors[v] for v in (r["Vendor"].casefold() for r in shipped)
                   if v in vendors), None)
    customer = party(first, "Billing")
    customer["email"] = first["Email"] or None
    record = {
        "transaction_id": "T" + base64.b32encode(hashlib.sha256(
            f"{ORIGINATOR}\x1fshopify\x1fshopify:{name}".encode()).digest()[:15]).decode(),
        "originator_code": ORIGINATOR, "filer_type": "online_marketplace",
        "mode_of_transport": "air",
        "tracking_number": tracking.get(name.lstrip("#").casefold()),
        "ultimate_deliver_to": deliver, "customer": customer,
        "seller": vendor["seller"] if vendor else DEFAULT_SELLER,
        "marketplace_seller_id": vendor["marketplace_seller_id"] if vendor else "NWG-HOUSE",
        "identified_marketplace_merchant":
            vendor["identified_marketplace_merchant"] if vendor else True,
        "items": items,
    }
    return record, None, findings


def check(c: Consignment) -> list[dict[str, str]]:
    """The pilot-2019 online-marketplace element set and the value rules."""
    out = []

    def missing(field: str) -> None:
        out.append({"code": "missing-required", "field": field, "severity": "error"})

    if not (c.master_bill_number or c.house_bill_number or c.tracking_number):
        out.append({"code": "missing-one-of", "field": "tracking_number", "severity": "error"})
    for name in ("seller", "ultimate_deliver_to"):
        p = getattr(c, name)
        if p is None or not p.name:
            missing(f"{name}.name" if p else name)
        if p is not None and p.address is None:
            missing(f"{name}.address")
    if c.identified_marketplace_merchant is None:
        missing("identified_marketplace_merchant")
    if not c.marketplace_seller_id:
        missing("marketplace_seller_id")
    if not c.items:
        missing("items")
    total = Decimal(0)
    for i, item in enumerate(c.items):
        for field in ("description", "quantity", "listed_price", "currency", "product_url"):
            if getattr(item, field) in (None, ""):
                missing(f"items.{i}.{field}")
        if item.quantity is not None and item.quantity <= 0:
            out.append({"code": "invalid-quantity", "field": f"items.{i}.quantity",
                        "severity": "error"})
        if item.currency and item.currency not in CURRENCIES:
            out.append({"code": "invalid-currency", "field": f"items.{i}.currency",
                        "severity": "error"})
        if item.hts_code and not HTS.fullmatch(item.hts_code):
            out.append({"code": "invalid-hts", "field": f"items.{i}.hts_code", "severity": "error"})
        if item.product_url:
            host = urlsplit(item.product_url).hostname or ""
            if not item.product_url.startswith(("http://", "https://")) or "." not in host:
                out.append({"code": "invalid-url", "field": f"items.{i}.product_url",
                            "severity": "error"})
        if item.listed_price is not None and item.quantity is not None:
            total += item.listed_price * item.quantity * RATES.get(item.currency or "", Decimal(0))
    for name in ("seller", "ultimate_deliver_to", "customer"):
        p = getattr(c, name)
        if p and p.address and p.address.country and p.address.country not in COUNTRIES:
            out.append({"code": "invalid-country", "field": f"{name}.address.country",
                        "severity": "error"})
    c.total_value_usd = total.quantize(Decimal("0.01"))
    if c.total_value_usd > LIMIT:
        out.append({"code": "not-section-321", "field": "total_value_usd", "severity": "error"})
    return out


def run(folder: Path, out_path: str) -> dict[str, int]:
    tables = load_tables(folder)
    counts = {"valid": 0, "invalid": 0, "skipped": 0}
    export = folder / "orders_export.csv"
    with open(out_path, "w", encoding="utf-8") as out:
        for line, rows in orders(export):
            name = rows[0]["Name"]
            source = f"{export}:{line}"
            record, reason, findings = to_record(name, rows, tables)
            consignment = None
            if record is not None:
                try:
                    consignment = Consignment.model_validate(record)
                    findings += check(consignment)
                except (ValidationError, InvalidOperation, ValueError) as exc:
                    findings.append({"code": "invalid", "field": "", "severity": "error",
                                     "message": str(exc)[:200]})
            status = ("skipped" if reason else
                      "invalid" if any(f["severity"] == "error" for f in findings) else "valid")
            counts[status] += 1
            out.write(json.dumps({
                "ref": f"shopify:{name}", "status": status, "source": source, "reason": reason,
                "record": consignment.model_dump(mode="json", exclude_none=True)
                if consignment else None,
                "findings": findings}, ensure_ascii=False) + "\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder written by `generate.py shop`")
    parser.add_argument("--out", default="/dev/null", help="where the JSON lines go")
    args = parser.parse_args(argv)
    counts = run(args.folder, args.out)
    print(sum(counts.values()), counts["valid"], counts["invalid"], counts["skipped"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The hand-written baselines of the carrier preview benchmarks: what a competent engineer
would write, without the framework, to do the preview's work for an X12 309 manifest
file or a Cargo-IMP FHL file as `bench/generate.py` writes them.

Each reads its file by hand (segments split at `~` and `*`; FHL lines at `/`), builds the
same record the framework files (the same pydantic model, `s321.record.Consignment`),
checks the pilot-2019 carrier element set and the value rule, and writes one JSON
outcome a line as `s321 preview --json` does. It knows only what the generator writes:
no envelopes checked, no continuation rules beyond the generator's, no findings with
locations; that is what a hand-written script gets away with. Usage:

    python bench/baseline_carrier.py x12-309 FILE [--out OUT]        # prints "records valid invalid skipped"
    python bench/baseline_carrier.py cargo-imp-fhl FILE [--out OUT]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from s321.record import Consignment

ORIGINATOR = "CAR321"
LIMIT = Decimal(800)
CENTS = Decimal("0.01")
GRAMS = Decimal("0.001")
ISO2 = {"CHN": "CN", "CAN": "CA", "USA": "US", "MEX": "MX", "HKG": "HK", "GBR": "GB", "TWN": "TW"}
SCAN_METHODS = {"XRY": "x-ray", "ETD": "explosive trace detection", "PHS": "physical search",
                "VCK": "visual check", "EDD": "explosive detection dog", "CMD": "cargo metal detection"}
MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG",
                                      "SEP", "OCT", "NOV", "DEC"), 1)}


def transaction_id(source: str, key: str) -> str:
    return "T" + base64.b32encode(hashlib.sha256(
        f"{ORIGINATOR}\x1f{source}\x1f{key}".encode()).digest()[:15]).decode()


# --------------------------------------------------------------------------- X12 309


def x12_bills(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(segment number of its LX, record fields) for each bill of lading."""
    port = conveyance = None
    bill: dict[str, Any] | None = None
    start = 0
    party: dict[str, Any] | None = None
    for number, segment in enumerate(_segments(path), 1):
        e = segment.strip().split("*")
        tag = e[0]
        if tag == "LX":
            if bill is not None:
                yield start, bill
            start, bill, party = number, None, None
        elif tag == "M11":
            bill = {"house_bill_number": e[1], "master_bill_number": e[11] or None,
                    "port_of_entry": port, "conveyance": conveyance, "items": []}
        elif bill is None:
            if tag == "M10":
                conveyance = e[4]
            elif tag == "P4":
                port = e[1]
            continue
        elif tag == "N9" and e[1] == "2I":
            bill["tracking_number"] = e[2]
        elif tag == "N1":
            party = {"name": e[2]}
            bill["consignment_originator" if e[1] == "SH" else "ultimate_deliver_to"] = party
        elif tag == "N3" and party is not None:
            party.setdefault("address", {})["line1"] = e[1]
        elif tag == "N4" and party is not None:
            address = party.setdefault("address", {})
            address.update(city=e[1], state_or_province=e[2], postal_code=e[3],
                           country=ISO2.get(e[4], e[4]))
        elif tag == "PER" and party is not None:
            party["phone"] = e[4]
        elif tag == "N10":
            quantity, value = int(e[1]), Decimal(e[6])
            bill["items"].append({
                "description": e[2], "quantity": quantity,
                "listed_price": (value / quantity).quantize(CENTS), "line_value": value,
                "currency": "USD", "hts_code": e[5].replace(".", ""),
                "weight_kg": Decimal(e[8]).quantize(GRAMS)})
        elif tag == "SE":
            if bill is not None:
                yield start, bill
            bill = party = None
            port = conveyance = None


def _segments(path: Path, chunk: int = 1 << 16) -> Iterator[str]:
    """The file's segments (ended by `~`), streaming."""
    rest = ""
    with path.open(encoding="utf-8", newline="") as fh:
        while data := fh.read(chunk):
            *segments, rest = (rest + data).split("~")
            yield from segments
    if rest.strip():
        yield rest


def run_x12(path: Path, out_path: str) -> dict[str, int]:
    def records() -> Iterator[tuple[str, str, dict[str, Any]]]:
        for start, bill in x12_bills(path):
            key = f"309:{bill['house_bill_number']}"
            yield key, f"{path}:segment {start}", {
                "transaction_id": transaction_id("x12-309", key), "mode_of_transport": "truck",
                **bill}
    return _write(records(), out_path)


# --------------------------------------------------------------------------- FHL


def fhl_houses(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line of its HBS, record fields) for each house waybill."""
    master = None
    house: dict[str, Any] | None = None
    start = 0
    block = ""
    lines: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if line.startswith("MBI/"):
                master = line[4:16]
            elif line.startswith("HBS/"):
                if house is not None:
                    yield start, _house(house, lines)
                f = line.split("/")
                start, block, lines = number, "HBS", []
                house = {"master_bill_number": master, "house_bill_number": f[1],
                         "pieces": int(f[3]), "weight": f[4], "nature": f[6]}
            elif line == "NNNN":
                if house is not None:
                    yield start, _house(house, lines)
                house = None
            elif house is not None:
                if not line.startswith("/"):
                    block = line[:3]
                lines.append(f"{block}{line}" if line.startswith("/") else line)
    if house is not None:
        yield start, _house(house, lines)


def _house(house: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    shp: list[list[str]] = []
    cne: list[list[str]] = []
    text = hts = None
    scan: dict[str, Any] = {"performed": True}
    value = currency = None
    for line in lines:
        tag, _, rest = line.partition("/")
        f = rest.split("/")
        if tag == "TXT":
            text = rest
        elif tag == "HTS":
            hts = rest
        elif tag == "OCI":
            if f[1] == "ISS":
                scan["reference"] = f"{f[2]} {f[3]}"
            elif f[2] == "SM":
                scan["method"] = SCAN_METHODS.get(f[3], f[3])
            elif f[2] == "SD":
                d = f[3]
                scan["scanned_at"] = datetime(2000 + int(d[5:7]), MONTHS[d[2:5]], int(d[:2]),
                                              int(d[7:9]), int(d[9:11]))
        elif tag == "SHP":
            shp.append(f)
        elif tag == "CNE":
            cne.append(f)
        elif tag == "CVD":
            currency, value = f[0], Decimal(f[4])
    pieces = house["pieces"]
    return {
        "master_bill_number": house["master_bill_number"],
        "house_bill_number": house["house_bill_number"],
        "consignment_originator": _fhl_party(shp),
        "ultimate_deliver_to": _fhl_party(cne),
        "security_scan": scan,
        "items": [{"description": text, "quantity": pieces,
                   "listed_price": (value / pieces).quantize(CENTS) if value is not None else None,
                   "line_value": value, "currency": currency, "hts_code": hts,
                   "weight_kg": Decimal(house["weight"][1:]).quantize(GRAMS)}],
    }


def _fhl_party(lines: list[list[str]]) -> dict[str, Any]:
    """Name; street; city/state; country/postal[/TE/phone] (the generator's four lines)."""
    name, street, place, where = (lines + [[], [], [], []])[:4]
    address = {"line1": street[0] if street else None, "city": place[0] if place else None,
               "state_or_province": place[1] if len(place) > 1 and place[1] else None,
               "country": where[0] if where else None,
               "postal_code": where[1] if len(where) > 1 and where[1] else None}
    party = {"name": name[0] if name else None,
             "address": {k: v for k, v in address.items() if v}}
    if len(where) > 3 and where[2] == "TE":
        party["phone"] = where[3]
    return party


def run_fhl(path: Path, out_path: str) -> dict[str, int]:
    def records() -> Iterator[tuple[str, str, dict[str, Any]]]:
        for start, house in fhl_houses(path):
            key = f"fhl:{house['master_bill_number']}/{house['house_bill_number']}"
            yield key, f"{path}:{start}", {
                "transaction_id": transaction_id("cargo-imp-fhl", key), "mode_of_transport": "air",
                **house}
    return _write(records(), out_path)


# --------------------------------------------------------------------------- both


def check(c: Consignment) -> list[dict[str, str]]:
    """The pilot-2019 carrier element set and the value rule."""
    out = []

    def missing(field: str) -> None:
        out.append({"code": "missing-required", "field": field, "severity": "error"})

    if not (c.master_bill_number or c.house_bill_number or c.tracking_number):
        out.append({"code": "missing-one-of", "field": "tracking_number", "severity": "error"})
    for name in ("consignment_originator", "ultimate_deliver_to"):
        p = getattr(c, name)
        if p is None or not p.name:
            missing(f"{name}.name" if p else name)
        if p is not None and p.address is None:
            missing(f"{name}.address")
    address = c.ultimate_deliver_to.address if c.ultimate_deliver_to else None
    if address is not None and (address.country != "US" or not address.line1 or not address.city
                                or not address.state_or_province or not address.postal_code):
        out.append({"code": "not-a-us-address", "field": "ultimate_deliver_to.address",
                    "severity": "error"})
    if c.known_carrier_customer is None:
        missing("known_carrier_customer")
    if c.mode_of_transport == "air" and c.security_scan is None:
        missing("security_scan")
    if not c.items:
        missing("items")
    total = Decimal(0)
    for i, item in enumerate(c.items):
        for field in ("description", "quantity"):
            if getattr(item, field) in (None, ""):
                missing(f"items.{i}.{field}")
        if item.hts_code and not (item.hts_code.isdigit() and len(item.hts_code) in (6, 8, 10)):
            out.append({"code": "invalid-hts", "field": f"items.{i}.hts_code", "severity": "error"})
        if item.line_value is not None and item.currency == "USD":
            total += item.line_value
    c.total_value_usd = total.quantize(CENTS)
    if c.total_value_usd > LIMIT:
        out.append({"code": "not-section-321", "field": "total_value_usd", "severity": "error"})
    return out


def _write(records: Iterator[tuple[str, str, dict[str, Any]]], out_path: str) -> dict[str, int]:
    counts = {"valid": 0, "invalid": 0, "skipped": 0}
    with open(out_path, "w", encoding="utf-8") as out:
        for key, source, fields in records:
            fields.update(originator_code=ORIGINATOR, filer_type="carrier",
                          known_carrier_customer=True)
            findings: list[dict[str, str]] = []
            consignment = None
            try:
                consignment = Consignment.model_validate(fields)
                findings += check(consignment)
            except (ValidationError, ValueError) as exc:
                findings.append({"code": "invalid", "field": "", "severity": "error",
                                 "message": str(exc)[:200]})
            status = "invalid" if findings else "valid"
            counts[status] += 1
            out.write(json.dumps({
                "ref": key, "status": status, "source": source, "reason": None,
                "record": consignment.model_dump(mode="json", exclude_none=True)
                if consignment else None,
                "findings": findings}, ensure_ascii=False) + "\n")
    return counts


def run(kind: str, path: Path, out_path: str) -> dict[str, int]:
    return (run_x12 if kind == "x12-309" else run_fhl)(path, out_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("x12-309", "cargo-imp-fhl"))
    parser.add_argument("file", type=Path, help="a file written by `generate.py KIND`")
    parser.add_argument("--out", default="/dev/null", help="where the JSON lines go")
    args = parser.parse_args(argv)
    counts = run(args.kind, args.file, args.out)
    print(sum(counts.values()), counts["valid"], counts["invalid"], counts["skipped"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

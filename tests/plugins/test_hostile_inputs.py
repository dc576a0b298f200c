"""Every first-party source is fed hostile shapes — nesting 100,000 deep, integers of
5,000 digits, cells of megabytes — among good units: no exception escapes, the bad
unit becomes a finding on its own line, and the good units around it still come out.

The checks are the conformance suite's (`SourceConformance.read_checked`); the shapes
are what an outside review found escaping `records-jsonl` as exceptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s321.findings import has_errors
from s321.testing import SourceConformance
from s321.testing.samples import records_jsonl

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples"
SHOP = SAMPLES / "shop"
SHOP_TABLES = {"catalog": str(SHOP / "catalog.csv"), "vendors": str(SHOP / "vendors.csv"),
               "tracking": str(SHOP / "tracking.csv")}
SHOP_DEFAULTS: dict[str, Any] = {
    "marketplace_seller_id": "NWG-HOUSE", "identified_marketplace_merchant": True,
    "seller": {"name": "Northwind Goods Ltd", "address": {
        "line1": "1200 Waterfront Road", "city": "Vancouver", "state_or_province": "BC",
        "postal_code": "V6B 1A1", "country": "CA"}}}
CARRIER = {"known_carrier_customer": True}

DEEP = 100_000
DIGITS = "9" * 5000
HUGE = 9 * 1024 * 1024  # over records-jsonl's 8 Mi-character line limit


def deep_json() -> str:
    return "[" * DEEP + "]" * DEEP


class _Source(SourceConformance):
    """Not collected (no Test prefix): only its harness and checks are used."""

    def hostile(self) -> list[bytes]:
        raise NotImplementedError


class RecordsJsonl(_Source):
    source_name = "records-jsonl"
    input_suffix = ".jsonl"

    def hostile(self) -> list[bytes]:
        good = records_jsonl(1).decode().splitlines()[0]
        record = json.loads(good)
        bad = [
            '{"ref": "deep", "items": ' + deep_json() + "}",
            '{"ref": "deep-object", "x": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}",
            '{"ref": "digits", "items": [{"quantity": ' + DIGITS + "}]}",
            '{"ref": "digits-top", "total": ' + DIGITS + "}",
            json.dumps({**record, "ref": "huge", "notes": "x" * HUGE}),
            json.dumps({**record, "ref": "r" * 100_000}),
            json.dumps({**record, "ref": "medium-deep", "x": json.loads("[" * 500 + "]" * 500)}),
        ]
        return [("\n".join([good, b, good.replace(record["ref"], "after")]) + "\n").encode()
                for b in bad]


class ShopifyJson(_Source):
    source_name = "shopify-json"
    options = SHOP_TABLES
    pipeline = {"defaults": SHOP_DEFAULTS}
    input_suffix = ".jsonl"

    def hostile(self) -> list[bytes]:
        order = (SHOP / "orders.jsonl").read_text(encoding="utf-8").splitlines()[0]
        body = json.loads(order)
        return [f"{order}\n{b}\n{order}\n".encode() for b in (
            '{"id": 1, "line_items": ' + deep_json() + "}",
            '{"id": ' + DIGITS + ', "name": "#1"}',
            json.dumps({**body, "name": "#99", "note": "x" * HUGE}),
        )]


class ShopifyCsv(_Source):
    source_name = "shopify-csv"
    options = SHOP_TABLES
    pipeline = {"defaults": SHOP_DEFAULTS}
    input_suffix = ".csv"

    def hostile(self) -> list[bytes]:
        text = (SHOP / "orders_export.csv").read_text(encoding="utf-8-sig")
        header, first = text.splitlines()[:2]
        return [f"{header}\n{row}\n{first}\n".encode() for row in (
            first.replace("#", "#" + DIGITS, 1),
            first + "," + DIGITS,
            first.replace("#", "#" + "[" * DEEP, 1),
            first.replace("#", '"' + "x" * HUGE + '"', 1),
        )]


class X12309(_Source):
    source_name = "x12-309"
    pipeline = {"filer_type": "carrier", "mode_of_transport": "truck", "defaults": CARRIER}
    input_suffix = ".edi"

    def hostile(self) -> list[bytes]:
        sample = (SAMPLES / "x12-309" / "manifest-005010.edi").read_bytes()
        return [sample.replace(b"M11|", b"M11|" + DIGITS.encode(), 1),
                sample.replace(b"M11|", b"M11|" + b"x" * HUGE, 1),
                sample.replace(b"M11|", b"M11|" + b"^" * DEEP + b":" * DEEP, 1)]


class CargoImpFhl(_Source):
    source_name = "cargo-imp-fhl"
    pipeline = {"filer_type": "carrier", "mode_of_transport": "air", "defaults": CARRIER}
    input_suffix = ".txt"

    def hostile(self) -> list[bytes]:
        sample = (SAMPLES / "cargo-imp-fhl" / "houses.txt").read_bytes()
        return [sample.replace(b"/K", b"/K" + DIGITS.encode(), 1),
                sample.replace(b"TXT/", b"TXT/" + b"x" * HUGE, 1),
                sample.replace(b"TXT/", b"TXT/" + b"/" * DEEP, 1)]


SOURCES = [RecordsJsonl, ShopifyJson, ShopifyCsv, X12309, CargoImpFhl]


@pytest.mark.parametrize("suite_class", SOURCES, ids=lambda c: c.source_name)
def test_hostile_shapes_become_findings_never_exceptions(suite_class, tmp_path):
    suite = suite_class()
    processor = suite.harness(tmp_path / "run").processor()
    for i, data in enumerate(suite.hostile()):
        path = tmp_path / f"hostile-{i}{suite.input_suffix}"
        path.write_bytes(data)
        outcomes = suite.read_checked(processor, path)  # fails on any exception, naming it
        assert outcomes, f"{path.name}: the source yielded nothing at all"


def test_records_jsonl_names_the_hostile_line_and_files_the_lines_around_it(tmp_path):
    suite = RecordsJsonl()
    processor = suite.harness(tmp_path / "run").processor()
    for i, data in enumerate(suite.hostile()):
        path = tmp_path / f"h{i}.jsonl"
        path.write_bytes(data)
        outcomes = [o for _, o in suite.read_checked(processor, path)]
        assert len(outcomes) == 3, [o.source for o in outcomes]
        first, bad, after = outcomes
        assert first.record is not None and after.record is not None
        assert bad.source == f"{path}:2" and has_errors(bad.findings)
        assert bad.findings[0].code in {"malformed-json", "line-too-long", "ref-too-long"}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 200_000), digits=st.integers(1, 20_000),
       shape=st.sampled_from(["list", "object", "number", "string"]))
def test_records_jsonl_never_raises_on_any_depth_or_size(tmp_path, depth, digits, shape):
    if shape == "list":
        value = "[" * depth + "]" * depth
    elif shape == "object":
        value = '{"a":' * depth + "0" + "}" * depth
    elif shape == "number":
        value = "1" * digits
    else:
        value = json.dumps("s" * digits * 50)
    suite = RecordsJsonl()
    processor = suite.harness(tmp_path / "run").processor()
    path = tmp_path / "one.jsonl"
    path.write_text('{"ref": "x", "items": [{"quantity": ' + value + "}]}\n")
    [(_, outcome)] = suite.read_checked(processor, path)
    assert outcome.source == f"{path}:1"


def test_a_record_for_another_originator_code_is_refused_by_the_pipeline(tmp_path):
    from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
    from s321 import app

    inbox = tmp_path / "in"
    inbox.mkdir()
    own = {k: v for k, v in marketplace_fields().items() if k != "originator_code"}
    write_jsonl(inbox / "mixed.jsonl", [{"ref": "mine", **own},
                                        {"ref": "theirs", **own, "originator_code": "OTHER9"}])
    _registry, loaded = app.load(jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out"))
    mine, theirs = app.preview(loaded, "shop")
    assert mine.status.value == "valid" and mine.record.originator_code == "MKT001"
    assert theirs.status.value == "invalid"
    [finding] = [f for f in theirs.findings if f.code == "originator-mismatch"]
    assert finding.field == "originator_code" and finding.location == f"{inbox / 'mixed.jsonl'}:2"
    assert "MKT001" in finding.message

"""Tests of the Bazaarly plugin: the s321 conformance suites (subclass, set a few
attributes, and every check a source, a transport or a validator must pass runs), then
what the plugin makes of the sample export, through a real s321 pipeline.

The `s321_harness` fixture comes with s321's pytest plugin; see docs/plugins.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import s321_bazaarly
from s321.errors import FatalError, RetriableError
from s321.pipeline import Status
from s321.testing import (
    Endpoint,
    ErrorCase,
    SourceConformance,
    TransportConformance,
    ValidatorConformance,
    pipeline_config,
)
from s321.testing.samples import marketplace_record
from s321_bazaarly.receiver import TOKEN_ENV, BazaarlyReceiver

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "bazaarly-orders.csv"
HEADER, FIRST_ROW = SAMPLE.read_text(encoding="utf-8").splitlines()[:2]

# What a Bazaarly export does not carry: the seller, set per pipeline in the config.
DEFAULTS = {
    "seller": {"name": "Bazaarly Fulfilment Ltd",
               "address": {"line1": "9 Quayside Park", "city": "Shenzhen", "postal_code": "518000",
                           "country": "CN"}},
    "marketplace_seller_id": "BZ-SELLER-0042",
    "identified_marketplace_merchant": True,
}


class TestBazaarlySource(SourceConformance):
    plugin_module = s321_bazaarly
    source_name = "bazaarly-csv"
    pipeline = {"defaults": DEFAULTS}
    sample_inputs = [SAMPLE]
    input_suffix = ".csv"
    # What each sample order must become, checked by hand against the CSV once (then
    # kept): a mapper that fills in what the export does not say fails the comparison.
    expected_records = json.loads((Path(__file__).parent / "bazaarly-orders.expected.json").read_text("utf-8"))
    memory_units = 1000  # 10n rows make about 2 MB: enough to tell streaming from loading

    def make_input(self, n: int) -> bytes:
        _, rest = FIRST_ROW.split(",", 1)
        rows = (f"BZ-{500000 + i},{rest}" for i in range(n))
        return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


class TestBazaarlyHttp(TransportConformance):
    plugin_module = s321_bazaarly
    transport_name = "bazaarly-http"
    ack_wait = 5.0  # longer than the receiver's `timeout` (2 s): a hung request fails in time

    @pytest.fixture
    def scripted_receiver(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[BazaarlyReceiver]:
        monkeypatch.setenv(TOKEN_ENV, "bz-test-token-51c9")
        with BazaarlyReceiver("bz-test-token-51c9") as receiver:
            yield receiver

    @pytest.fixture
    def endpoint(self, scripted_receiver: BazaarlyReceiver) -> Iterator[Endpoint]:
        yield Endpoint(scripted_receiver.options, accepted=lambda: scripted_receiver.accepted,
                       connections=scripted_receiver.connections)

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        return [ErrorCase({**endpoint.options, "url": "http://127.0.0.1:9/batches"}, RetriableError, "nobody there"),
                ErrorCase({**endpoint.options, "token": {"env": "BZ_WRONG"}}, FatalError, "token refused",
                          env={"BZ_WRONG": "not-the-token"})]


class TestBazaarlyListingLinks(ValidatorConformance):
    plugin_module = s321_bazaarly
    validator_name = "bazaarly-listing-links"
    sample_records = [
        marketplace_record(1, items=[{"description": "Ramen bowl", "quantity": 1, "listed_price": "18.50",
                                      "currency": "USD", "product_url": "https://bazaarly.example/l/bowl"}]),
        marketplace_record(2, items=[{"description": "Beanie", "quantity": 1, "listed_price": "24.00",
                                      "currency": "USD", "product_url": "https://bazaarly.example/search?q=hat"}]),
    ]


# --------------------------------------------------------------------------- its own tests


def pipeline(**extra: Any) -> dict[str, Any]:
    return pipeline_config({"plugin": "bazaarly-csv", "path": str(SAMPLE)}, defaults=DEFAULTS,
                           validators=["bazaarly-listing-links"], **extra)


def test_each_order_becomes_one_consignment_with_its_items(s321_harness: Any) -> None:
    outcomes = s321_harness(pipeline(), plugins=[s321_bazaarly]).preview()
    by_order = {o.ref: o for o in outcomes}
    assert list(by_order) == ["BZ-100231", "BZ-100232", "BZ-100233", "BZ-100234"]
    two_items = by_order["BZ-100232"].record
    assert two_items is not None and [i.description for i in two_items.items] == [
        "Merino wool beanie with fold-over cuff", "Touchscreen knit gloves size M"]
    assert two_items.ultimate_deliver_to.address.line2 == "Apt 2C"  # type: ignore[union-attr]
    assert by_order["BZ-100231"].status is Status.VALID


def test_a_bad_quantity_names_the_file_line_and_field(s321_harness: Any) -> None:
    outcomes = s321_harness(pipeline(), plugins=[s321_bazaarly]).preview()
    bad = next(o for o in outcomes if o.ref == "BZ-100233")
    assert bad.status is Status.INVALID
    [finding] = [f for f in bad.findings if f.code == "invalid-quantity"]
    assert finding.field == "items.0.quantity"
    assert finding.location == f"{SAMPLE}:5"


def test_other_currencies_are_converted_with_the_configured_rates(s321_harness: Any) -> None:
    outcomes = s321_harness(pipeline(currency_rates={"EUR": "1.10"}), plugins=[s321_bazaarly]).preview()
    euros = next(o for o in outcomes if o.ref == "BZ-100234")
    assert euros.record is not None and euros.record.total_value_usd == Decimal("16.50")


def test_the_valid_orders_are_filed_once(s321_harness: Any, tmp_path: Path) -> None:
    harness = s321_harness(pipeline(), plugins=[s321_bazaarly])
    [summary] = harness.run_once()
    assert (summary.counts["valid"], summary.counts["invalid"], summary.counts["accepted"]) == (3, 1, 3)
    [again] = harness.run_once()
    assert again.counts["sent"] == 0


def test_an_order_with_a_broken_row_is_invalid_as_a_whole(s321_harness: Any, tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 3)[0]  # BZ-100232's second row, cut short
    export = tmp_path / "cut.csv"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outcomes = s321_harness(pipeline(), plugins=[s321_bazaarly]).preview([export])
    order = next(o for o in outcomes if o.ref == "BZ-100232")
    assert order.status is Status.INVALID
    assert [(f.code, f.location) for f in order.findings if f.code == "bad-csv-row"] == [("bad-csv-row", f"{export}:4")]


def test_a_row_without_an_order_id_is_keyed_by_its_text(s321_harness: Any, tmp_path: Path) -> None:
    keys = []
    for name in ("monday.csv", "tuesday.csv"):
        export = tmp_path / name
        export.write_text(f"{HEADER}\n,only,three\n", encoding="utf-8")
        [broken] = s321_harness(pipeline(), plugins=[s321_bazaarly]).preview([export])
        assert broken.status is Status.INVALID and broken.findings[0].location == f"{export}:2"
        keys.append(broken.ref)
    assert keys[0] == keys[1] and "csv" not in keys[0]

"""Outcomes as `s321 preview --json` prints them: `Outcome.to_json()` is the text of
`json.dumps(outcome.as_dict())`, character for character, whatever the record holds."""

import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import consignment, marketplace_fields
from s321.findings import error, warning
from s321.pipeline import Outcome, Status
from s321.record import Consignment

# Text a record can hold: pydantic refuses lone surrogates in a str field.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
TRICKY = st.sampled_from(['"', "\\", '\\"', '"\\', ",", ":", '":"', '","', "\x00", "\x01", "\x7f",
                          "\n\t\r\b\f", "\u2028", "é", "\U0001f4e6", "{}", "[]", " , : "])
CELL = st.lists(st.one_of(TEXT, TRICKY), max_size=4).map("".join)


def as_dumped(outcome: Outcome) -> str:
    return json.dumps(outcome.as_dict(), ensure_ascii=False, default=str)


@st.composite
def records(draw: st.DrawFn) -> Consignment:
    def maybe(strategy: st.SearchStrategy) -> object:
        return draw(st.one_of(st.none(), strategy))

    def party() -> dict | None:
        return maybe(st.fixed_dictionaries({"name": CELL, "address": st.one_of(st.none(), st.fixed_dictionaries(
            {"line1": CELL, "city": st.one_of(st.none(), CELL), "country": CELL})), "phone": CELL}))

    decimals = st.decimals(allow_nan=False, allow_infinity=False)
    items = draw(st.lists(st.fixed_dictionaries({
        "description": st.one_of(st.none(), CELL), "quantity": st.one_of(st.none(), st.integers()),
        "listed_price": st.one_of(st.none(), decimals), "weight_kg": st.one_of(st.none(), decimals),
        "sku": st.one_of(st.none(), CELL)}), max_size=3))
    scan = maybe(st.fixed_dictionaries({"performed": st.booleans(), "method": CELL,
                                        "scanned_at": st.datetimes(timezones=st.just(UTC))}))
    record = Consignment.model_validate({
        "transaction_id": draw(CELL), "originator_code": maybe(CELL),
        "filer_type": maybe(st.sampled_from(["carrier", "online_marketplace"])),
        "tracking_number": maybe(CELL), "seller": party(), "customer": party(),
        "known_carrier_customer": maybe(st.booleans()), "security_scan": scan, "items": items})
    # Assigned as `rules.derive` does, unvalidated (a NaN would not pass validation).
    record.total_value_usd = maybe(st.decimals(allow_infinity=False))
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), st.sampled_from(list(Status)), CELL, st.one_of(st.none(), CELL),
       st.lists(st.tuples(CELL, CELL, CELL), max_size=2))
def test_to_json_is_the_text_of_as_dict_dumped(record, status, ref, reason, found):
    findings = [(error if i % 2 else warning)(code, field, message, location=None if i else ref)
                for i, (code, field, message) in enumerate(found)]
    for outcome in (Outcome(ref, status, f"{ref}:1", record, findings, reason),
                    Outcome(ref, status, "in.csv:7", None, findings, reason)):
        assert outcome.to_json() == as_dumped(outcome)


def test_a_bundled_record_with_quotes_and_backslashes_in_every_place():
    fields = marketplace_fields()
    fields["items"][0]["description"] = 'Poster 24" x 36", "A:B", C:\\ path\\'
    fields["seller"]["name"] = '\\"'
    c = consignment(fields)
    c.total_value_usd = Decimal("12.50")
    outcome = Outcome("shopify:#1001", Status.VALID, "orders.csv:2", c, [])
    assert outcome.to_json() == as_dumped(outcome)
    assert json.loads(outcome.to_json())["record"]["items"][0]["description"].endswith("path\\")


def test_text_with_separators_and_newlines_is_left_alone():
    fields = marketplace_fields(tracking_number="1Z,\n9", marketplace_seller_id=",\n")
    fields["items"][0]["description"] = 'Mug,\n "red": 2,\nblue\n\n'
    outcome = Outcome(",\n", Status.VALID, ":\n", consignment(fields), [], reason="a,\nb")
    assert outcome.to_json() == as_dumped(outcome)


class Key(str):
    """A source's key that is not a plain str: json.dumps writes it all the same."""


def test_refs_that_are_not_plain_text_are_written_as_json_dumps_writes_them():
    for ref in (Key("shopify:#1"), 1001, None):
        outcome = Outcome(ref, Status.SKIPPED, "f:1", None, [], reason="cancelled order")
        assert outcome.to_json() == as_dumped(outcome)


def test_datetimes_read_the_same():
    fields = marketplace_fields(security_scan={"performed": True, "scanned_at": datetime(2024, 5, 1, 12, 30)})
    outcome = Outcome("k", Status.INVALID, "f:1", consignment(fields), [error("x", "y", "z")])
    assert outcome.to_json() == as_dumped(outcome)


# --------------------------------------------------------------------------- money

from s321 import rules  # noqa: E402
from s321.record import Item  # noqa: E402

CENTS = Decimal("0.01")
AMOUNTS = st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(st.integers(min_value=1, max_value=100000), AMOUNTS),
                      min_size=1, max_size=8))
def test_the_total_is_the_sum_of_the_declared_line_values_exactly(lines):
    """Whatever the quantities, a declared line value is summed as declared: the unit
    price a source derived from it (rounded) is never multiplied back."""
    items = [Item(quantity=q, line_value=v, currency="USD",
                  listed_price=(v / q).quantize(Decimal("0.0001"))) for q, v in lines]
    c = Consignment(transaction_id="T", items=items)
    rules.derive(c, {"USD": Decimal(1)})
    assert c.total_value_usd == sum(v for _, v in lines)


@given(amounts=st.lists(AMOUNTS, min_size=1, max_size=5), rate=st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("10"), places=4))
def test_a_foreign_total_is_converted_once_and_rounded_once_half_up(amounts, rate):
    c = Consignment(transaction_id="T", items=[Item(quantity=1, line_value=a, currency="EUR")
                                               for a in amounts])
    rules.derive(c, {"EUR": rate})
    assert c.total_value_usd == (sum(amounts) * rate).quantize(CENTS, rules.ROUNDING)
    assert rules.ROUNDING == "ROUND_HALF_UP"


def test_without_a_line_value_price_times_quantity_counts_and_half_a_cent_goes_up():
    c = Consignment(transaction_id="T", items=[
        Item(quantity=3, listed_price=Decimal("0.335"), currency="USD"),  # 1.005
        Item(quantity=1, line_value=Decimal("2.00"), listed_price=Decimal("9.99"), currency="USD")])
    rules.derive(c, {"USD": Decimal(1)})
    assert c.total_value_usd == Decimal("3.01")


def test_the_value_limit_holds_at_exactly_800_and_refuses_800_01():
    def verdict(value: str) -> set[str]:
        c = Consignment(transaction_id="T", items=[
            Item(quantity=456, line_value=Decimal(value), currency="USD",
                 listed_price=(Decimal(value) / 456).quantize(Decimal("0.0001")))])
        rules.derive(c, {"USD": Decimal(1)})
        return {f.code for f in rules.check(c, {"USD": Decimal(1)}, Decimal(800))}

    assert "not-section-321" not in verdict("800.00")
    assert "not-section-321" in verdict("800.01")


# --------------------------------------------------------------------------- repeated keys

import csv  # noqa: E402
import io  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from s321 import app, config, registry  # noqa: E402
from s321.pipeline import Processor  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples"
SHOP = SAMPLES / "shop"


def _csv_with_first_order_twice(folder: Path) -> Path:
    rows = list(csv.reader(io.StringIO((SHOP / "orders_export.csv").read_text("utf-8-sig"))))
    first = [r for r in rows[1:] if r[0] == rows[1][0]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows + first)
    path = folder / "orders_export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def _jsonl_with_first_order_twice(folder: Path) -> Path:
    lines = (SHOP / "orders.jsonl").read_text("utf-8").splitlines()
    path = folder / "orders.jsonl"
    path.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")
    return path




SOURCES = {
    "shopify-csv": ("online_marketplace", "air", "shopify:#1001"),
    "shopify-json": ("online_marketplace", "air", "shopify:#1001"),
    "x12-309": ("carrier", "truck", "309:MXLT25031401"),
    "cargo-imp-fhl": ("carrier", "air", "fhl:160-58231401/HK7731001"),
}


def _input(plugin: str, folder: Path) -> Path:
    if plugin == "shopify-csv":
        return _csv_with_first_order_twice(folder)
    if plugin == "shopify-json":
        return _jsonl_with_first_order_twice(folder)
    if plugin == "x12-309":
        text = (SAMPLES / "x12-309" / "manifest-004010.edi").read_text("utf-8")
        path, new = folder / "m.edi", text.replace("M11*MXLT25031402", "M11*MXLT25031401", 1)
    else:
        text = (SAMPLES / "cargo-imp-fhl" / "houses.txt").read_text("utf-8")
        path, new = folder / "houses.txt", text.replace("HBS/HK7731002/", "HBS/HK7731001/", 1)
    assert new != text
    path.write_text(new, encoding="utf-8")
    return path


def _config(tmp_path: Path, plugin: str, inbox: Path) -> Path:
    filer, mode, _ = SOURCES[plugin]
    tables = "" if not plugin.startswith("shopify") else f"""
catalog = "{SHOP / 'catalog.csv'}"
vendors = "{SHOP / 'vendors.csv'}"
tracking = "{SHOP / 'tracking.csv'}"
"""
    cfg = tmp_path / "s321.toml"
    cfg.write_text(f"""
[currency_rates]
CAD = "0.73"
EUR = "1.08"
GBP = "1.27"
HKD = "0.128"

[ledger]
path = "{tmp_path / 'ledger.sqlite'}"

[pipelines.p]
originator_code = "DUP001"
filer_type = "{filer}"
mode_of_transport = "{mode}"

[pipelines.p.defaults]
marketplace_seller_id = "NWG-HOUSE"
identified_marketplace_merchant = true
known_carrier_customer = true
seller = {{ name = "Northwind Goods Ltd", address = {{ line1 = "1 Waterfront Road", city = "Vancouver", state_or_province = "BC", postal_code = "V6B 1A1", country = "CA" }} }}

[pipelines.p.source]
plugin = "{plugin}"
path = "{inbox}"
{tables}
[pipelines.p.transport]
plugin = "file"
directory = "{tmp_path / 'out'}"
""", encoding="utf-8")
    return cfg


@pytest.mark.parametrize("plugin", list(SOURCES))
def test_units_sharing_a_key_in_one_file_are_all_refused_and_the_counts_add_up(
        tmp_path: Path, plugin: str) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    _input(plugin, inbox)
    cfg = _config(tmp_path, plugin, inbox)
    reg = registry.load()
    loaded = config.load(cfg, reg)
    outcomes = list(Processor(loaded.pipelines["p"], loaded.rates).process())
    repeated = [o for o in outcomes if "duplicate-key" in {f.code for f in o.findings}]
    assert len(repeated) == 2 and len({o.ref for o in repeated}) == 1
    assert repeated[0].ref == SOURCES[plugin][2]
    assert all(o.status is Status.INVALID for o in repeated)
    first, second = (next(f for f in o.findings if f.code == "duplicate-key") for o in repeated)
    assert repeated[1].source in first.message and repeated[0].source in second.message
    assert (first.location, second.location) == (repeated[0].source, repeated[1].source)
    valid = sum(o.status is Status.VALID for o in outcomes)

    [summary] = app.run_once(reg, loaded)
    counts = summary.counts
    assert counts["received"] == len(outcomes)
    assert counts["received"] == counts["valid"] + counts["invalid"] + counts["skipped"]
    assert counts["sent"] == counts["valid"] == valid
    assert valid > 0

    [again] = app.run_once(reg, config.load(cfg, reg))  # nothing new or changed: nothing sent
    assert again.counts["received"] == again.counts["valid"] + again.counts["invalid"] + again.counts["skipped"]
    assert again.counts["sent"] == 0


def test_files_are_read_oldest_first_then_by_name_and_a_key_again_in_a_later_file_is_no_duplicate(
        tmp_path: Path) -> None:
    import os

    from s321.inputs import input_files
    inbox = tmp_path / "in"
    inbox.mkdir()
    first_order = (SHOP / "orders.jsonl").read_text("utf-8").splitlines()[0] + "\n"
    for name, mtime in (("c.jsonl", 1_000), ("a.jsonl", 3_000), ("b.jsonl", 3_000)):
        (inbox / name).write_text(first_order, encoding="utf-8")
        os.utime(inbox / name, (mtime, mtime))
    assert [p.name for p in input_files([inbox], "*.jsonl")] == ["c.jsonl", "a.jsonl", "b.jsonl"]
    loaded = config.load(_config(tmp_path, "shopify-json", inbox), registry.load())
    outcomes = list(Processor(loaded.pipelines["p"], loaded.rates).process())
    assert [Path(o.source).name for o in outcomes] == ["c.jsonl:1", "a.jsonl:1", "b.jsonl:1"]
    assert not any(f.code == "duplicate-key" for o in outcomes for f in o.findings)


def test_a_total_too_large_to_round_to_cents_is_kept_and_refused_not_raised():
    c = Consignment(transaction_id="T", items=[Item(quantity=10**40, listed_price=Decimal("19.99"),
                                                    currency="USD")])
    rules.derive(c, {"USD": Decimal(1)})
    assert c.total_value_usd > 800
    assert "not-section-321" in {f.code for f in rules.check(c, {"USD": Decimal(1)}, Decimal(800))}


def test_a_source_that_is_not_file_based_is_read_once() -> None:
    """A queue or an API cannot be read twice: no first pass for repeated keys there."""
    from s321.contracts import PipelineContext, PipelineDefaults, RawUnit
    from s321.record import FilerType, ModeOfTransport

    class Once:
        reads = 0

        def read(self, paths=None):
            Once.reads += 1
            yield RawUnit("k", "queue:1", None)

    processor = Processor.__new__(Processor)
    processor.source = Once()

    class Pipeline:
        name = "q"
        source_options = object()
        context = PipelineContext("q", "X", FilerType.CARRIER, ModeOfTransport.AIR, "pilot-2019",
                                  "queue", PipelineDefaults())
    processor.pipeline = Pipeline()
    assert [o.status for o in processor.process()] == [Status.INVALID]
    assert Once.reads == 1

"""Source and mapper `shopify-csv`: the admin "Export orders" CSV with its quirks (BOM,
CRLF, multi-row orders, quoted newlines, apostrophe zips), skip reasons, findings that
name FILE:LINE and the field, the real runtime end to end, and streaming memory."""

from __future__ import annotations

import csv
import io
import os
import tempfile
import textwrap
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s321.adapters.file as file_transport
from s321 import config, registry
from s321.contracts import Mapped, PipelineContext, PipelineDefaults, RawUnit
from s321.findings import Severity
from s321.pipeline import Processor, Status
from s321.plugins import shopify_csv, shopify_json, wire_s321
from s321.plugins.shopify.mapping import ShopifyMapper
from s321.plugins.shopify_csv import ShopifyCsvOptions, ShopifyCsvSource
from s321.record import Consignment, FilerType, ModeOfTransport, Party

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples" / "shop"
EXPORT = SAMPLES / "orders_export.csv"
HEADER = EXPORT.read_text(encoding="utf-8-sig").splitlines()[0].split(",")

HOUSE_SELLER = {"name": "Northwind Goods LLC", "address": {
    "line1": "1 Harbor Way", "city": "Boston", "state_or_province": "MA",
    "postal_code": "02110", "country": "US"}}


def context(**defaults: Any) -> PipelineContext:
    values: dict[str, Any] = {"seller": Party.model_validate(HOUSE_SELLER),
                              "marketplace_seller_id": "NWG-HOUSE",
                              "identified_marketplace_merchant": True}
    values.update(defaults)
    return PipelineContext(
        pipeline="shop", originator_code="MKT001", filer_type=FilerType.ONLINE_MARKETPLACE,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source="shopify-csv",
        defaults=PipelineDefaults(**values))


def with_tables(**options: Any) -> dict[str, Any]:
    return {"catalog": SAMPLES / "catalog.csv", "vendors": SAMPLES / "vendors.csv",
            "tracking": SAMPLES / "tracking.csv", **options}


def read_and_map(path: Path, **options: Any) -> list[tuple[RawUnit, Mapped]]:
    opts = ShopifyCsvOptions(path=path, **options)
    source, mapper = ShopifyCsvSource(opts, context()), ShopifyMapper(opts, context())
    return [(unit, mapper.map(unit)) for unit in source.read()]


def by_key(results: list[tuple[RawUnit, Mapped]]) -> dict[str, tuple[RawUnit, Mapped]]:
    return {unit.key: (unit, mapped) for unit, mapped in results}


# --------------------------------------------------------------------------- building exports


def first_row(name: str, changes: dict[str, str] | None = None) -> list[str]:
    """An order's first row: order-level fields, shipping and billing, one line item."""
    cells = dict.fromkeys(HEADER, "")
    address = {"Name": "Zoë Lindqvist", "Address1": "1820 NW Everett St", "Address2": "",
               "City": "Portland", "Zip": "'97209", "Province": "OR", "Country": "US",
               "Phone": "+1 503-555-0178", "Province Name": "Oregon"}
    for kind in ("Shipping", "Billing"):
        cells.update({f"{kind} {k}": v for k, v in address.items()})
    cells.update({
        "Name": name, "Email": "zoe.l@example.com", "Financial Status": "paid", "Currency": "USD",
        "Created at": "2025-03-03 10:00:00 -0500", "Total": "48.00",
        "Lineitem quantity": "2", "Lineitem name": "Celadon Stoneware Mug - 350 ml",
        "Lineitem price": "24.00", "Lineitem sku": "LC-MUG-350-CEL",
        "Lineitem requires shipping": "true", "Vendor": "Lumen Ceramics",
    })
    cells.update(changes or {})
    return [cells[h] for h in HEADER]


def item_row(name: str, changes: dict[str, str] | None = None) -> list[str]:
    """A further line item of an order: order-level columns left empty, as Shopify does."""
    cells = dict.fromkeys(HEADER, "")
    cells.update({"Name": name, "Lineitem quantity": "1",
                  "Lineitem name": "Tieguanyin Oolong Tea - 100 g tin", "Lineitem price": "21.00",
                  "Lineitem sku": "HT-OOLONG-100", "Lineitem requires shipping": "true",
                  "Vendor": "Harbour Tea House"})
    cells.update(changes or {})
    return [cells[h] for h in HEADER]


def export(folder: Path, rows: list[list[str]], name: str = "orders_export.csv",
           header: list[str] = HEADER) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = folder / name
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))
    return path


# --------------------------------------------------------------------------- the sample export


def test_the_sample_export_has_the_real_79_columns_a_bom_and_crlf():
    raw = EXPORT.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfName,Email,Financial Status,")
    assert len(HEADER) == 79 and HEADER[-1] == "Payment References"
    assert raw.count(b"\r\n") > 50


def test_every_order_of_the_sample_becomes_one_unit_located_at_its_first_row():
    results = read_and_map(EXPORT, **with_tables())
    keys = [unit.key for unit, _ in results]
    assert keys == [f"shopify:#{n}" for n in range(1001, 1037)]
    located = {unit.key: unit.location for unit, _ in results}
    assert located["shopify:#1001"] == f"{EXPORT}:2"
    assert located["shopify:#1002"] == f"{EXPORT}:3"  # three rows: lines 3-5
    assert located["shopify:#1003"] == f"{EXPORT}:6"  # its Notes hold a newline: lines 6-8
    assert located["shopify:#1004"] == f"{EXPORT}:9"
    assert all(unit.findings == () for unit, _ in results)


def test_an_order_maps_to_the_record_fields():
    [(_, mapped)] = [r for r in read_and_map(EXPORT, **with_tables()) if r[0].key == "shopify:#1001"]
    record = Consignment.model_validate({"transaction_id": "T", **mapped.record})
    assert mapped.findings == []
    assert (record.originator_code, record.filer_type, record.mode_of_transport) == (
        "MKT001", FilerType.ONLINE_MARKETPLACE, ModeOfTransport.AIR)
    assert record.tracking_number == "YT2503000000700000"  # from the label system's table
    deliver = record.ultimate_deliver_to
    assert deliver.name == "José Müller"
    assert deliver.address.model_dump() == {
        "line1": "41 Brattle Street", "line2": "Apt 3", "city": "Cambridge",
        "state_or_province": "MA", "postal_code": "02138", "country": "US"}
    assert deliver.phone == "+1 617-555-0141"
    assert record.customer.email == "jose.jose@example.com"
    assert record.customer.name == "José Müller"
    assert record.seller.name == "Jingdezhen Lumen Ceramics Co., Ltd."
    assert record.seller.address.country == "CN"
    assert (record.marketplace_seller_id, record.identified_marketplace_merchant) == ("NWG-S-0001", True)
    [item] = record.items
    assert item.model_dump(exclude_none=True) == {
        "description": "Stoneware coffee mug, celadon glaze, 350 ml", "quantity": 2,
        "listed_price": Decimal("24.00"), "currency": "USD",
        "product_url": "https://northwind-goods.example.com/products/celadon-stoneware-mug-350",
        "sku": "LC-MUG-350-CEL", "hts_code": "6912004400", "country_of_origin": "CN",
        "weight_kg": Decimal("0.38")}


def test_a_multi_row_order_has_one_item_per_row():
    _, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1002"]
    assert [(i["sku"], i["quantity"], i["listed_price"]) for i in mapped.record["items"]] == [
        ("HT-OOLONG-100", 1, Decimal("21.00")), ("HT-GAIWAN-4", 1, Decimal("48.00")),
        ("HT-JASMINE-50", 2, Decimal("16.00"))]


def test_cancelled_digital_and_foreign_orders_are_skipped_with_a_reason():
    results = by_key(read_and_map(EXPORT, **with_tables()))
    skipped = {key: mapped.skipped for key, (_, mapped) in results.items() if mapped.skipped}
    assert skipped == {
        "shopify:#1004": "cancelled order",
        "shopify:#1005": "nothing to ship: no line item requires shipping",
        "shopify:#1006": "ships to CA, outside the US customs territory",
    }


def test_puerto_rico_is_inside_the_us_customs_territory():
    _, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1013"]
    assert mapped.skipped is None
    assert mapped.record["ultimate_deliver_to"]["address"]["postal_code"] == "00901"


def test_a_gift_card_line_is_left_out_of_a_consignment_that_ships_other_goods():
    _, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1007"]
    assert [i["sku"] for i in mapped.record["items"]] == ["TL-SCARF-TAR-GRY"]


def test_a_non_numeric_quantity_is_a_finding_naming_file_line_and_field():
    unit, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1010"]
    [finding] = mapped.findings
    assert (finding.code, finding.field, finding.location, finding.severity) == (
        "invalid-quantity", "items.0.quantity", f"{EXPORT}:16", Severity.ERROR)
    assert "quantity" not in mapped.record["items"][0]
    assert mapped.record["items"][1]["quantity"] == 1  # the rest of the order is mapped


def test_an_order_without_tracking_number_simply_has_none():
    _, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1009"]
    assert mapped.record["tracking_number"] is None and mapped.findings == []


def test_a_vendor_without_a_row_gets_the_pipeline_default_seller():
    _, mapped = by_key(read_and_map(EXPORT, **with_tables()))["shopify:#1012"]
    assert mapped.record["seller"] == HOUSE_SELLER
    assert mapped.record["marketplace_seller_id"] == "NWG-HOUSE"


def test_without_enrichment_tables_the_record_carries_what_the_export_has():
    _, mapped = by_key(read_and_map(EXPORT, default_country_of_origin="CN"))["shopify:#1001"]
    assert mapped.findings == []
    assert mapped.record["items"] == [{
        "description": "Celadon Stoneware Mug - 350 ml", "quantity": 2,
        "listed_price": Decimal("24.00"), "currency": "USD", "sku": "LC-MUG-350-CEL",
        "country_of_origin": "CN"}]
    assert mapped.record["tracking_number"] is None
    assert mapped.record["seller"] == HOUSE_SELLER


# --------------------------------------------------------------------------- quirks, one by one


def test_a_quoted_field_with_comma_quote_and_newlines_keeps_physical_line_numbers(tmp_path):
    note = 'Ring twice, "please"\r\nthen\nleave it by the door'
    path = export(tmp_path, [
        first_row("#1", {"Notes": note}),
        item_row("#1", {"Lineitem quantity": "x"}),
        first_row("#2"),
    ])
    results = read_and_map(path)
    # The note spans lines 2-4 (a CRLF and a bare LF inside quotes), the item row is 5.
    assert [u.location for u, _ in results] == [f"{path}:2", f"{path}:6"]
    [finding] = results[0][1].findings
    assert (finding.field, finding.location) == ("items.1.quantity", f"{path}:5")


def test_bom_and_crlf_do_not_leak_into_names_or_values(tmp_path):
    path = export(tmp_path, [first_row("#1")])
    [(unit, mapped)] = read_and_map(path)
    assert unit.key == "shopify:#1"
    assert mapped.record["ultimate_deliver_to"]["phone"] == "+1 503-555-0178"


def test_plain_utf8_with_lf_line_ends_reads_the_same(tmp_path):
    crlf = export(tmp_path, [first_row("#1"), item_row("#1")])
    lf = tmp_path / "lf.csv"
    lf.write_bytes(crlf.read_bytes()[3:].replace(b"\r\n", b"\n"))
    assert [m.record for _, m in read_and_map(lf)] == [m.record for _, m in read_and_map(crlf)]


def test_zip_codes_and_phones_lose_their_leading_apostrophe(tmp_path):
    path = export(tmp_path, [first_row("#1", {"Shipping Zip": "'02134",
                                              "Shipping Phone": "'+16175550100",
                                              "Billing Zip": "02134"})])
    [(_, mapped)] = read_and_map(path)
    assert mapped.record["ultimate_deliver_to"]["address"]["postal_code"] == "02134"
    assert mapped.record["ultimate_deliver_to"]["phone"] == "+16175550100"
    assert mapped.record["customer"]["address"]["postal_code"] == "02134"


def test_country_names_of_older_exports_become_codes(tmp_path):
    path = export(tmp_path, [first_row("#1", {"Shipping Country": "United States"}),
                             first_row("#2", {"Shipping Country": "Canada"})])
    [(_, one), (_, two)] = read_and_map(path)
    assert one.record["ultimate_deliver_to"]["address"]["country"] == "US"
    assert two.skipped == "ships to CA, outside the US customs territory"


def test_orders_with_nothing_to_ship_are_skipped(tmp_path):
    no_address = {f"Shipping {k}": "" for k in ("Name", "Address1", "City", "Zip", "Province",
                                                "Country", "Phone")}
    path = export(tmp_path, [
        first_row("#1", {"Lineitem requires shipping": "false"}),
        first_row("#2", no_address),
        first_row("#3", {"Cancelled at": "2025-03-04 09:00:00 -0500"}),
    ])
    assert [m.skipped for _, m in read_and_map(path)] == [
        "nothing to ship: no line item requires shipping",
        "nothing to ship: the order has no shipping address",
        "cancelled order"]


def test_a_shipping_address_without_country_is_an_error_not_a_guess(tmp_path):
    path = export(tmp_path, [first_row("#1", {"Shipping Country": ""})])
    [(_, mapped)] = read_and_map(path)
    assert [(f.code, f.field, f.location) for f in mapped.findings] == [
        ("missing-country", "ultimate_deliver_to.address.country", f"{path}:2")]


def test_a_line_needing_no_shipping_is_left_out_and_indexes_follow_the_items(tmp_path):
    path = export(tmp_path, [
        first_row("#1", {"Lineitem requires shipping": "false", "Lineitem name": "Gift Card"}),
        item_row("#1", {"Lineitem price": "abc"}),
    ])
    [(_, mapped)] = read_and_map(path)
    assert [i["sku"] for i in mapped.record["items"]] == ["HT-OOLONG-100"]
    [finding] = mapped.findings
    assert (finding.field, finding.location) == ("items.0.listed_price", f"{path}:3")


def test_an_unreadable_requires_shipping_flag_keeps_the_line_and_says_so(tmp_path):
    path = export(tmp_path, [first_row("#1", {"Lineitem requires shipping": "maybe"})])
    [(_, mapped)] = read_and_map(path)
    assert len(mapped.record["items"]) == 1
    assert [(f.code, f.field) for f in mapped.findings] == [("invalid-requires-shipping", "items.0")]


def test_missing_columns_are_one_broken_unit_naming_file_and_headers(tmp_path):
    header = [h for h in HEADER if h not in ("Lineitem quantity", "Shipping Zip")]
    path = export(tmp_path, [], header=header)
    [unit] = ShopifyCsvSource(ShopifyCsvOptions(path=path), context()).read()
    assert (unit.location, unit.payload) == (f"{path}:1", None)
    [finding] = unit.findings
    assert finding.code == "missing-column" and finding.location == f"{path}:1"
    assert str(path) in finding.message
    assert "'Lineitem quantity', 'Shipping Zip'" in finding.message


def test_an_empty_file_and_a_missing_path_are_broken_units(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    source = ShopifyCsvSource(ShopifyCsvOptions(path=tmp_path), context())
    [unit] = source.read([empty])
    assert unit.payload is None and "empty file" in unit.findings[0].message
    [unit] = source.read([tmp_path / "nope.csv"])
    assert unit.payload is None and unit.findings[0].code == "input-not-found"


def test_a_file_that_is_not_utf8_is_refused_whole_naming_its_first_bad_line(tmp_path):
    path = export(tmp_path, [first_row("#1"), item_row("#1"), first_row("#2")])
    lines = path.read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b"Tieguanyin", b"Tie\xe9guanyin")  # é in Windows-1252
    path.write_bytes(b"\r\n".join(lines))
    units = list(ShopifyCsvSource(ShopifyCsvOptions(path=path), context()).read())
    [unit] = units  # neither order: not even #2, whose lines are plain ASCII
    assert unit.payload is None
    [f] = unit.findings
    assert (f.code, f.location) == ("invalid-encoding", f"{path}:3")
    assert "0xE9" in f.message and "CSV UTF-8" in f.message and 'encoding = "cp1252"' in f.message


def test_an_export_in_cp1252_reads_with_the_encoding_option(tmp_path):
    path = export(tmp_path, [first_row("#1"), item_row("#1"), first_row("#2")])
    text = path.read_bytes().decode("utf-8-sig").replace("Tieguanyin", "Tiéguanyin")
    path.write_bytes(text.encode("cp1252"))
    units = list(ShopifyCsvSource(ShopifyCsvOptions(path=path, encoding="CP1252"), context()).read())
    assert [u.key for u in units] == ["shopify:#1", "shopify:#2"]
    assert all(u.findings == () for u in units)
    assert any(line.name == "Tiéguanyin" or "Tiéguanyin" in (line.name or "")
               for u in units for line in u.payload.lines)
    with pytest.raises(ValidationError, match="utf-16"):
        ShopifyCsvOptions(path=path, encoding="utf-16")


def test_a_row_with_a_wrong_number_of_fields_is_a_finding(tmp_path):
    path = export(tmp_path, [first_row("#1"), item_row("#1")[:20]])
    [unit] = ShopifyCsvSource(ShopifyCsvOptions(path=path), context()).read()
    assert [(f.code, f.location) for f in unit.findings] == [("bad-csv-row", f"{path}:3")]


def test_rows_of_an_order_that_are_not_consecutive_are_not_invented_into_an_order(tmp_path):
    path = export(tmp_path, [first_row("#1"), first_row("#2"), item_row("#1")])
    units = list(ShopifyCsvSource(ShopifyCsvOptions(path=path), context()).read())
    assert [u.key for u in units] == ["shopify:#1", "shopify:#2", "shopify:#1"]
    assert units[2].payload is None
    assert units[2].findings[0].code == "order-first-row-missing"


def test_a_row_without_order_name_is_a_finding_on_the_order_before_it(tmp_path):
    path = export(tmp_path, [first_row("#1"), item_row("")])
    [unit] = ShopifyCsvSource(ShopifyCsvOptions(path=path), context()).read()
    assert [(f.code, f.location) for f in unit.findings] == [("row-without-order", f"{path}:3")]


def test_a_directory_is_read_file_by_file_matching_the_pattern(tmp_path):
    export(tmp_path, [first_row("#2")], name="b.csv")
    export(tmp_path, [first_row("#1")], name="a.csv")
    export(tmp_path, [first_row("#3")], name="c.txt")
    for name in ("a.csv", "b.csv", "c.txt"):  # the same time: then by name
        os.utime(tmp_path / name, (1_000, 1_000))
    source = ShopifyCsvSource(ShopifyCsvOptions(path=tmp_path), context())
    assert [u.key for u in source.read()] == ["shopify:#1", "shopify:#2"]
    source = ShopifyCsvSource(ShopifyCsvOptions(path=tmp_path, pattern=["*.csv", "*.txt"]),
                              context())
    assert [u.key for u in source.read()] == ["shopify:#1", "shopify:#2", "shopify:#3"]
    assert [u.key for u in source.read([tmp_path / "c.txt"])] == ["shopify:#3"]


def test_a_bad_default_country_of_origin_is_an_options_error():
    import pydantic
    try:
        ShopifyCsvOptions(path=EXPORT, default_country_of_origin="China")
    except pydantic.ValidationError as exc:
        assert "default_country_of_origin" in str(exc)
    else:
        raise AssertionError("accepted a country name where a code is required")


# --------------------------------------------------------------------------- the real runtime


def processor(tmp_path: Path, source_table: str, plugin: str = "shopify-csv") -> Processor:
    reg = registry.Registry()
    for module, name in ((shopify_csv, "shopify-csv"), (shopify_json, "shopify-json"),
                         (wire_s321, "wire-s321"), (file_transport, "file-transport")):
        reg.add_plugin(module, name)
    path = tmp_path / "s321.toml"
    path.write_text(textwrap.dedent(f"""
        [pipelines.shop]
        originator_code = "MKT001"
        filer_type = "online_marketplace"
        mode_of_transport = "air"
        profile = "pilot-2019"
        [pipelines.shop.defaults]
        marketplace_seller_id = "NWG-HOUSE"
        identified_marketplace_merchant = true
        seller = {{ name = "Northwind Goods LLC", address = {{ line1 = "1 Harbor Way", city = "Boston", state_or_province = "MA", postal_code = "02110", country = "US" }} }}
        [pipelines.shop.source]
        plugin = "{plugin}"
        {source_table}
        catalog = "{SAMPLES / 'catalog.csv'}"
        vendors = "{SAMPLES / 'vendors.csv'}"
        tracking = "{SAMPLES / 'tracking.csv'}"
        [pipelines.shop.transport]
        plugin = "file"
        directory = "out"
    """), encoding="utf-8")
    loaded = config.load(path, reg)
    return Processor(loaded.pipelines["shop"], loaded.rates)


def test_the_sample_export_through_the_runtime(tmp_path):
    outcomes = {o.ref: o for o in processor(tmp_path, f'path = "{EXPORT}"').process()}
    status = {ref: o.status for ref, o in outcomes.items()}
    assert [r for r, s in status.items() if s is Status.SKIPPED] == [
        "shopify:#1004", "shopify:#1005", "shopify:#1006"]
    invalid = {ref: sorted({f.code for f in o.findings if f.severity is Severity.ERROR})
               for ref, o in outcomes.items() if o.status is Status.INVALID}
    assert invalid == {
        "shopify:#1008": ["not-section-321"],  # 3 cuckoo clocks: 867.00 USD
        "shopify:#1009": ["missing-one-of"],   # no tracking number anywhere
        "shopify:#1010": ["invalid-quantity"],  # one problem, one finding
    }
    assert outcomes["shopify:#1009"].findings[0].field == "tracking_number"
    assert sum(s is Status.VALID for s in status.values()) == 30
    assert outcomes["shopify:#1001"].record.total_value_usd == Decimal("48.00")


# --------------------------------------------------------------------------- robustness


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2000), with_header=st.booleans())
def test_arbitrary_bytes_never_raise_out_of_read_or_map(body: bytes, with_header: bool):
    prefix = ("\ufeff" + ",".join(HEADER) + "\r\n").encode() if with_header else b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(prefix + body)
        opts = ShopifyCsvOptions(path=path)
        mapper = ShopifyMapper(opts, context())
        for unit in ShopifyCsvSource(opts, context()).read():
            assert unit.payload is not None or unit.findings
            mapper.map(unit)


@settings(max_examples=100, deadline=None)
@given(cells=st.lists(st.text(max_size=12) | st.from_regex(r"[+-]?\d{1,40}(\.\d{0,5})?",
                                                          fullmatch=True),
                      min_size=6, max_size=6))
def test_arbitrary_cell_values_never_raise_out_of_map(cells: list[str]):
    columns = ("Lineitem quantity", "Lineitem price", "Lineitem requires shipping",
               "Shipping Country", "Shipping Zip", "Cancelled at")
    with tempfile.TemporaryDirectory() as tmp:
        path = export(Path(tmp), [first_row("#1", dict(zip(columns, cells))), item_row("#1")])
        for _unit, mapped in read_and_map(path, **with_tables()):
            if mapped.record is not None:
                Consignment.model_validate({"transaction_id": "T", **mapped.record})


def narrow_export(path: Path, orders: int) -> Path:
    """A big export with only the required columns, written fast."""
    cols = shopify_csv.REQUIRED_COLUMNS
    first = dict.fromkeys(cols, "")
    first.update({"Currency": "USD", "Vendor": "Lumen Ceramics", "Lineitem quantity": "2",
                  "Lineitem name": "Mug", "Lineitem price": "24.00", "Lineitem sku": "LC-MUG-350-CEL",
                  "Lineitem requires shipping": "true", "Shipping Name": "Ann Example",
                  "Shipping Address1": "1 Main St", "Shipping City": "Springfield",
                  "Shipping Zip": "'01101", "Shipping Province": "MA", "Shipping Country": "US"})
    second = dict.fromkeys(cols, "")
    second.update({"Vendor": "Lumen Ceramics", "Lineitem quantity": "1", "Lineitem name": "Bowl",
                   "Lineitem price": "18.50", "Lineitem sku": "LC-BOWL-15-IND",
                   "Lineitem requires shipping": "true"})

    def rows() -> Iterator[str]:
        yield ",".join(cols) + "\r\n"
        for n in range(orders):
            for row in (first, second):
                yield ",".join(f"#{n}" if c == "Name" else row[c] for c in cols) + "\r\n"

    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.writelines(rows())
    return path


def peak_bytes(path: Path) -> int:
    opts = ShopifyCsvOptions(path=path)
    source, mapper = ShopifyCsvSource(opts, context()), ShopifyMapper(opts, context())
    mapper.map(next(iter(source.read())))  # load pycountry's tables before measuring
    tracemalloc.start()
    try:
        count = sum(1 for unit in source.read() if mapper.map(unit).record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 0
    return peak


def test_memory_stays_flat_as_the_export_grows(tmp_path):
    small = peak_bytes(narrow_export(tmp_path / "small.csv", 2_000))
    large = peak_bytes(narrow_export(tmp_path / "large.csv", 20_000))
    assert large < small * 1.5 + 64_000, (small, large)


def test_an_items_finding_names_that_items_own_row_not_the_orders_first(tmp_path):
    # The order's first row is a tip (no shipping): it is left out, and items.0 is the mug
    # on line 3, items.1 the tea on line 4. Neither is in the catalog: no product URL.
    tip = first_row("#7", {"Lineitem name": "Tip", "Lineitem price": "5.00", "Lineitem sku": "",
                           "Lineitem requires shipping": "false", "Lineitem quantity": "1"})
    mug = item_row("#7", {"Lineitem name": "Plain mug", "Lineitem sku": "NOT-IN-CATALOG-1"})
    tea = item_row("#7", {"Lineitem sku": "NOT-IN-CATALOG-2"})
    path = export(tmp_path, [tip, mug, tea])
    outcomes = list(processor(tmp_path, f'path = "{path}"').process())
    [order] = outcomes
    by_field = {f.field: f.location for f in order.findings if f.field.startswith("items.")}
    assert order.findings and by_field, order.findings
    assert by_field["items.0.product_url"] == f"{path}:3"
    assert by_field["items.1.product_url"] == f"{path}:4"
    assert order.source == f"{path}:2"  # the unit itself still starts on the first row


def test_an_order_whose_rows_are_split_is_not_filed_without_its_later_rows(tmp_path):
    # #1001's second line comes after #1002: #1001 would be filed without it. Both units with the
    # key are refused (duplicate-key), and the rows' own finding says why.
    path = export(tmp_path, [first_row("#1001"), first_row("#1002"), item_row("#1001")])
    outcomes = list(processor(tmp_path, f'path = "{path}"').process())
    by_ref = {}
    for o in outcomes:
        by_ref.setdefault(o.ref, []).append(o)
    assert [o.status for o in by_ref["shopify:#1001"]] == [Status.INVALID, Status.INVALID]
    codes = [sorted({f.code for f in o.findings if f.severity is Severity.ERROR})
             for o in by_ref["shopify:#1001"]]
    assert codes == [["duplicate-key"], ["duplicate-key", "order-first-row-missing"]]
    assert [o.status for o in by_ref["shopify:#1002"]] == [Status.VALID]


def test_an_order_without_currency_gets_one_finding_on_it_not_two(tmp_path):
    """A blank `Currency` cell is a missing currency; it used to be reported twice on
    the same field, as missing-required and as unknown-currency-rate."""
    path = export(tmp_path, [first_row("#1", {"Currency": ""})])
    [outcome] = processor(tmp_path, f'path = "{path}"').process()
    on_currency = [f.code for f in outcome.findings if f.field == "items.0.currency"]
    assert on_currency == ["missing-required"], outcome.findings


def test_an_export_with_classic_mac_line_ends_reads_the_same(tmp_path):
    """Excel for Mac's "CSV (Macintosh)" ends lines with CR alone; the file was refused
    whole with Python's "do you need to open the file in universal-newline mode?"."""
    crlf = export(tmp_path, [first_row("#1", {"Notes": "two\rlines"}), item_row("#1"),
                             first_row("#2", {"Notes": "Excel breaks a cell's line\nwith LF"})])
    cr = tmp_path / "mac.csv"
    cr.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\r"))
    got, want = read_and_map(cr), read_and_map(crlf)
    assert [m.record for _, m in got] == [m.record for _, m in want]
    assert [u.location for u, _ in got] == [f"{cr}:2", f"{cr}:5"]  # the note spans 2 lines


@pytest.mark.parametrize(("column", "cell", "shown", "fix"), [
    ("Lineitem price", "1,234.50", "'1,234.50'", "1234.50"),
    ("Lineitem price", "24,00", "'24,00'", "decimal point"),
    ("Lineitem quantity", "1.5", "'1.5'", "whole number"),
])
def test_an_unreadable_price_or_quantity_shows_the_cell_and_how_to_write_it(
        tmp_path, column, cell, shown, fix):
    """It said only "the line item's price is not a number"."""
    path = export(tmp_path, [first_row("#1", {column: cell})])
    [(_, mapped)] = read_and_map(path)
    [finding] = [f for f in mapped.findings if f.field.startswith("items.0.")]
    assert finding.location == f"{path}:2"
    assert shown in finding.message and fix in finding.message, finding.message


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_an_export_resaved_with_another_separator_is_named_as_such(tmp_path, delimiter):
    """A spreadsheet in a European locale saves ';' (and decimal commas); the finding
    listed every column as missing instead of naming the separator."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(
        [HEADER, first_row("#1")])
    path = tmp_path / "orders_export.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    [(unit, _)] = read_and_map(path)
    [finding] = unit.findings
    assert finding.code == "missing-column" and finding.location == f"{path}:1"
    assert f"separated by {delimiter!r}" in finding.message, finding.message
    assert "'Lineitem sku'" not in finding.message


def test_an_oversized_cell_says_what_usually_causes_it(tmp_path):
    """Python's "field larger than field limit (131072)" was the whole message."""
    path = export(tmp_path, [first_row("#1", {"Notes": "n" * 200_000}), first_row("#2")])
    results = read_and_map(path)
    [finding] = results[0][0].findings
    assert (finding.code, finding.location) == ("bad-csv-row", f"{path}:2")
    assert "131072 characters" in finding.message and "quote" in finding.message
    assert results[1][0].key == "shopify:#2"  # the next order still reads


def test_an_export_without_the_requires_shipping_column_files_every_line_with_one_warning(
        tmp_path):
    """Absent is not bad (as in a GraphQL answer): the file was refused whole as
    missing-column, though the mapper's warning names that very column."""
    header = [h for h in HEADER if h != "Lineitem requires shipping"]
    cut = HEADER.index("Lineitem requires shipping")
    rows = [r[:cut] + r[cut + 1:] for r in (first_row("#1"), item_row("#1"))]
    [(unit, mapped)] = read_and_map(export(tmp_path, rows, header=header))
    assert unit.key == "shopify:#1" and len(mapped.record["items"]) == 2
    assert [(f.code, f.severity) for f in mapped.findings] == [
        ("requires-shipping-not-given", Severity.WARNING)]


def test_a_header_row_repeated_mid_file_is_named_not_read_as_a_cancelled_order(tmp_path):
    """Two exports joined with `cat`: the second header row became an order named
    '\\ufeffName', skipped as a "cancelled order" (its Cancelled at cell is not empty)."""
    one = export(tmp_path, [first_row("#1")], name="one.csv").read_bytes()
    two = export(tmp_path, [first_row("#2")], name="two.csv").read_bytes()
    path = tmp_path / "joined.csv"
    path.write_bytes(one + two)
    results = read_and_map(path)
    assert [u.key for u, _ in results] == ["shopify:#1", f"unparsed:{path}:3", "shopify:#2"]
    [finding] = results[1][0].findings
    assert finding.code == "bad-csv-row" and "repeats the header row" in finding.message
    assert results[2][0].location == f"{path}:4" and results[2][1].record is not None

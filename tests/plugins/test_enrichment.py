"""Enrichment tables: catalog by SKU, vendors by name, tracking by order; header variants,
bad rows as findings naming FILE:LINE, defaults when a vendor has no row, missing files.

Every test runs twice: with the rows in memory, and with every table kept in SQLite as
large ones are (`store.SPILL_ROWS`)."""

from __future__ import annotations

import os
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from s321 import config, registry
from s321.contracts import PipelineDefaults
from s321.findings import Severity
from s321.errors import ConfigError
from s321.plugins import enrichment, shopify_csv
from s321.plugins.enrichment import EnrichmentError, EnrichmentOptions, load
from s321.record import Party

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples" / "shop"

DEFAULTS = PipelineDefaults(
    seller=Party.model_validate({"name": "Northwind Goods LLC", "address": {
        "line1": "1 Harbor Way", "city": "Boston", "state_or_province": "MA",
        "postal_code": "02110", "country": "US"}}),
    marketplace_seller_id="NWG-HOUSE",
    identified_marketplace_merchant=True,
)


@pytest.fixture(autouse=True, params=["memory", "sqlite"])
def storage(request, monkeypatch):
    if request.param == "sqlite":
        monkeypatch.setattr(enrichment.store, "SPILL_ROWS", 0)
    return request.param


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def tables(**paths: Path) -> enrichment.Enrichment:
    return load(EnrichmentOptions(**paths))


# --------------------------------------------------------------------------- catalog


def test_the_catalog_fills_hts_origin_url_and_weight_by_sku():
    t = tables(catalog=SAMPLES / "catalog.csv")
    item = {"description": "Celadon Stoneware Mug - 350 ml", "sku": "LC-MUG-350-CEL"}
    assert t.apply_catalog(item, "items.0") == []
    assert item == {
        "description": "Stoneware coffee mug, celadon glaze, 350 ml",  # the curated one wins
        "sku": "LC-MUG-350-CEL", "hts_code": "6912004400", "country_of_origin": "CN",
        "product_url": "https://northwind-goods.example.com/products/celadon-stoneware-mug-350",
        "weight_kg": Decimal("0.38"),
    }


def test_a_catalog_row_without_description_keeps_the_listing_name():
    t = tables(catalog=SAMPLES / "catalog.csv")
    item = {"description": "Hand-painted Porcelain Teapot - 600 ml", "sku": "LC-TEAPOT-600"}
    t.apply_catalog(item, "items.0")
    assert item["description"] == "Hand-painted Porcelain Teapot - 600 ml"


def test_catalog_header_variants_and_dotted_hts_codes_are_accepted(tmp_path):
    path = write(tmp_path, "catalog.csv", """
        SKU,HS Code,Origin,URL,Weight
        A-1,6109.10.0012,Viet Nam,https://shop.example.com/a-1,0.2
    """)
    item = {"sku": "A-1"}
    tables(catalog=path).apply_catalog(item, "items.0")
    assert (item["hts_code"], item["country_of_origin"], item["weight_kg"]) == (
        "6109100012", "VN", Decimal("0.2"))


def test_a_bad_catalog_row_becomes_findings_naming_the_catalog_line(tmp_path):
    path = write(tmp_path, "catalog.csv", """
        sku,hts_code,country_of_origin,product_url,weight_kg
        A-1,6109100012,CN,https://shop.example.com/a-1,0.2
        B-2,6109100012,Narnia,https://shop.example.com/b-2,heavy
    """)
    item = {"sku": "B-2"}
    found = tables(catalog=path).apply_catalog(item, "items.3")
    assert {(f.field, f.location) for f in found} == {
        ("items.3.weight_kg", f"{path}:3"), ("items.3.country_of_origin", f"{path}:3")}
    assert all(f.severity is Severity.ERROR for f in found)
    assert "weight_kg" not in item and "country_of_origin" not in item
    assert item["hts_code"] == "6109100012"  # the good parts of the row are used


def test_an_unknown_sku_is_a_warning_and_rows_without_a_key_are_reported(tmp_path):
    path = write(tmp_path, "catalog.csv", """
        sku,hts_code
        ,6109100012
        A-1,6109100012
        A-1,9999999999
    """)
    t = tables(catalog=path)
    [missing] = t.apply_catalog({"sku": "NOPE"}, "items.0")
    assert (missing.field, missing.severity) == ("items.0.sku", Severity.WARNING)
    assert [(p.code, p.location) for p in t.problems] == [
        ("enrichment-row-without-key", f"{path}:2"), ("enrichment-duplicate-key", f"{path}:4")]
    item = {"sku": "A-1"}
    [repeated] = t.apply_catalog(item, "items.0")
    assert "hts_code" not in item  # two rows, two answers: neither is used
    assert (repeated.code, repeated.field, repeated.severity) == (
        "enrichment-duplicate-key", "items.0.sku", Severity.ERROR)
    assert f"{path}:3" in repeated.message and f"{path}:4" in repeated.message


def test_a_row_with_more_fields_than_its_header_is_not_used_and_names_its_line(tmp_path):
    catalog = write(tmp_path, "catalog.csv", """
        sku,hts_code,weight_kg,country_of_origin
        MUG-1,6912004400,0,55,CN
        MUG-2,6912004400,0.40,CN
    """)
    vendors = write(tmp_path, "vendors.csv", """
        vendor,seller_name,country
        Lumen,Lumen Ceramics, Ltd.,CN
    """)
    track = write(tmp_path, "tracking.csv", """
        order,tracking_number
        #1001,YT25,03
    """)
    t = tables(catalog=catalog, vendors=vendors, tracking=track)
    item = {"sku": "MUG-1"}
    [cut] = t.apply_catalog(item, "items.0")
    assert item == {"sku": "MUG-1"}  # nothing of the shifted row is used
    assert (cut.code, cut.field, cut.location) == ("enrichment-row-too-long", "items.0.sku",
                                                   f"{catalog}:2")
    assert "5 fields, its header 4" in cut.message and "0.55" in cut.message
    good = {"sku": "MUG-2"}
    assert t.apply_catalog(good, "items.1") == [] and good["weight_kg"] == Decimal("0.40")
    fields, found = t.seller_fields(["Lumen"], DEFAULTS)
    assert fields["seller"]["name"] == "Northwind Goods LLC"  # the default, not a shifted row
    assert [(f.code, f.field, f.location) for f in found] == [
        ("enrichment-row-too-long", "seller", f"{vendors}:2")]
    assert t.tracking_number("#1001") is None
    problem = t.tracking_problem("#1001")
    assert (problem.code, problem.field, problem.location) == (
        "enrichment-row-too-long", "tracking_number", f"{track}:2")


def test_trailing_empty_fields_are_not_a_row_too_long(tmp_path):
    catalog = write(tmp_path, "catalog.csv", "sku,hts_code\nMUG-1,6912004400,,\n")
    item = {"sku": "MUG-1"}
    assert tables(catalog=catalog).apply_catalog(item, "items.0") == []
    assert item["hts_code"] == "6912004400"


def test_a_catalog_keyed_by_name_for_items_without_sku(tmp_path):
    catalog = write(tmp_path, "catalog.csv", """
        sku,name,hts_code,country_of_origin,product_url
        MUG-1,,6912004400,CN,https://shop.example.com/mug
        ,Celadon mug - 350 ml,6912004401,CN,https://shop.example.com/celadon
        ,Wool scarf,6117100000,GB,https://shop.example.com/scarf
        ,Wool  Scarf,6117100001,GB,https://shop.example.com/scarf2
    """)
    by_sku = tables(catalog=catalog)
    [warned] = by_sku.apply_catalog({"sku": None}, "items.0", "Celadon mug - 350 ml")
    assert warned.code == "not-in-catalog"  # by SKU only, the default
    t = load(EnrichmentOptions(catalog=catalog, catalog_key="sku-or-name"))
    item = {"sku": None}
    assert t.apply_catalog(item, "items.0", "celadon mug -  350 ml") == []
    assert (item["hts_code"], item["product_url"]) == ("6912004401", "https://shop.example.com/celadon")
    sku_item = {"sku": "MUG-1"}
    assert t.apply_catalog(sku_item, "items.1", "Celadon mug - 350 ml") == []
    assert sku_item["hts_code"] == "6912004400"  # a SKU wins over the name
    [twice] = t.apply_catalog({"sku": None}, "items.2", "Wool scarf")
    assert (twice.code, twice.field) == ("enrichment-duplicate-key", "items.2.description")
    [unknown] = t.apply_catalog({"sku": None}, "items.3", "Teapot")
    assert unknown.code == "not-in-catalog" and "name" in unknown.message
    with pytest.raises(ValidationError):
        EnrichmentOptions(catalog=catalog, catalog_key="name")


def test_no_catalog_configured_means_no_warnings():
    assert tables().apply_catalog({"sku": "X"}, "items.0") == []


# --------------------------------------------------------------------------- vendors


def test_a_vendor_row_gives_seller_id_and_identified_flag():
    fields, found = tables(vendors=SAMPLES / "vendors.csv").seller_fields(
        ["Schwarzwald Werkstatt"], DEFAULTS)
    assert found == []
    assert fields == {
        "seller": {"name": "Schwarzwald Werkstatt GmbH", "address": {
            "line1": "Kaiser-Joseph-Str. 241", "city": "Freiburg im Breisgau",
            "state_or_province": "BW", "postal_code": "79098", "country": "DE"}},
        "marketplace_seller_id": "NWG-S-0004",
        "identified_marketplace_merchant": False,
    }


def test_vendor_names_match_without_case_or_spaces():
    fields, _ = tables(vendors=SAMPLES / "vendors.csv").seller_fields(["  harbour tea HOUSE "],
                                                                      DEFAULTS)
    assert fields["seller"]["address"]["country"] == "HK"


def test_without_a_vendor_row_the_pipeline_defaults_are_filed():
    for t in (tables(vendors=SAMPLES / "vendors.csv"), tables()):
        fields, found = t.seller_fields(["Northwind Goods"], DEFAULTS)
        assert found == []
        assert fields["seller"]["name"] == "Northwind Goods LLC"
        assert fields["marketplace_seller_id"] == "NWG-HOUSE"
        assert fields["identified_marketplace_merchant"] is True


def test_blank_vendor_fields_fall_back_to_defaults_and_bad_ones_are_findings(tmp_path):
    path = write(tmp_path, "vendors.csv", """
        vendor,seller_name,line1,city,postal_code,country,marketplace_seller_id,identified_merchant
        Kite,Kite Electronics Co,1 Keji Rd,Shenzhen,518057,China,,
        Loom,Loom Ltd,2 Quay,Leith,EH6 6LX,GB,S-9,sometimes
    """)
    t = tables(vendors=path)
    fields, found = t.seller_fields(["Kite"], DEFAULTS)
    assert found == []
    assert fields["seller"]["address"]["country"] == "CN"  # a country name becomes its code
    assert fields["marketplace_seller_id"] == "NWG-HOUSE"
    assert fields["identified_marketplace_merchant"] is True
    fields, [bad] = t.seller_fields(["Loom"], DEFAULTS)
    assert (bad.field, bad.location) == ("identified_marketplace_merchant", f"{path}:3")
    assert fields["identified_marketplace_merchant"] is True  # the default; the error stops filing


def test_goods_of_several_sellers_are_a_warning():
    t = tables(vendors=SAMPLES / "vendors.csv")
    fields, [w] = t.seller_fields(["Northwind Goods", "Thistle & Loom"], DEFAULTS)
    assert (w.code, w.severity) == ("several-sellers", Severity.WARNING)
    assert fields["seller"]["name"] == "Thistle & Loom Ltd"


# --------------------------------------------------------------------------- tracking


def test_tracking_numbers_by_order_name_with_or_without_hash():
    t = tables(tracking=SAMPLES / "tracking.csv")  # 'Order Name', 'Tracking Number' headers
    assert t.tracking_number("#1001") == "YT2503000000700000"  # written as '1001' there
    assert t.tracking_number("#1002") == "LX000700037HK"
    assert t.tracking_number("#1009") is None
    assert t.tracking_number(None) is None


@pytest.mark.parametrize("header", ["order,tracking_number", "Order #,Tracking #",
                                    "Order Number,Tracking No.", "Reference,Tracking Code"])
def test_label_system_header_variants(tmp_path, header):
    path = tmp_path / "labels.csv"
    path.write_text(f"{header}\r\n#2001,1Z999AA10123456784\r\n", encoding="utf-8-sig")
    assert tables(tracking=path).tracking_number("#2001") == "1Z999AA10123456784"


def test_a_table_without_its_key_column_is_an_error_naming_file_and_headers(tmp_path):
    path = write(tmp_path, "labels.csv", "Shipment,Tracking Number\nA,1Z\n")
    with pytest.raises(EnrichmentError) as info:
        tables(tracking=path)
    message = str(info.value)
    assert message.startswith(f"{path}:1: the tracking table has no 'order' column")
    assert "'order_name'" in message


def test_a_table_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_bytes(b"sku,hts_code\nA,1\nB\xff\xfe,2\n")
    with pytest.raises(EnrichmentError, match=f"{path}:3: the catalog table is not UTF-8"):
        tables(catalog=path)


def test_the_tracking_table_is_read_again_when_it_changes(tmp_path):
    path = write(tmp_path, "tracking.csv", "order,tracking_number\n#1,AAA\n")
    t = tables(tracking=path)
    assert t.tracking_number("#2") is None
    path.write_text("order,tracking_number\n#1,AAA\n#2,BBB\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a changed stamp, even on a coarse-clock file system
    t.refresh()
    assert t.tracking_number("#2") == "BBB"
    path.unlink()
    t.refresh()  # a vanished file keeps what was read
    assert t.tracking_number("#2") == "BBB"


# --------------------------------------------------------------------------- missing files


def test_a_missing_table_is_an_options_error_naming_the_file(tmp_path):
    with pytest.raises(ValidationError) as info:
        EnrichmentOptions.model_validate({"catalog": "nope.csv"}, context={"base_dir": tmp_path})
    assert f"{tmp_path / 'nope.csv'}: no such file" in str(info.value)


def test_a_missing_table_is_a_config_time_error(tmp_path):
    reg = registry.Registry()
    reg.add_plugin(shopify_csv, "shopify-csv")
    path = tmp_path / "s321.toml"
    path.write_text(textwrap.dedent("""
        [pipelines.shop]
        originator_code = "MKT001"
        filer_type = "online_marketplace"
        mode_of_transport = "air"
        [pipelines.shop.source]
        plugin = "shopify-csv"
        path = "orders.csv"
        vendors = "vendors.csv"
        [pipelines.shop.transport]
        plugin = "file"
        directory = "out"
    """), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, reg)
    assert any(line.startswith(f"{path}: pipelines.shop.source.vendors:")
               and f"{tmp_path / 'vendors.csv'}: no such file" in line
               for line in info.value.lines)


def test_a_table_that_vanished_before_loading_is_an_error_naming_it(tmp_path):
    options = EnrichmentOptions.model_construct(catalog=tmp_path / "gone.csv")
    with pytest.raises(EnrichmentError, match="gone.csv: cannot read the catalog table"):
        load(options)

"""The Shopify mapper's memo (line items and sellers it already mapped, by their raw
cells): it never changes a record or its findings, and a table read again clears it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from s321.plugins.shopify.mapping import Memo, ShopifyLine, ShopifyMapper, ShopifyOrder, map_order
from s321.plugins.shopify_csv import ShopifyCsvOptions, ShopifyCsvSource

from .test_shopify_csv import SAMPLES, context, export, first_row, item_row, with_tables

REALWORLD = Path(__file__).parents[2] / ".." / "shared" / "realworld" / "shopify-csv"


def _exports() -> list[Path]:
    found = [SAMPLES / "orders_export.csv"]
    if REALWORLD.is_dir():
        found += sorted(REALWORLD.rglob("*.csv"))
    return found


def test_records_and_findings_with_the_memo_are_those_without_it():
    for path in _exports():
        opts = ShopifyCsvOptions(path=path, **with_tables())
        mapper = ShopifyMapper(opts, context())
        units = list(ShopifyCsvSource(opts, context()).read())
        for _ in range(2):  # the second time every item and seller comes from the memo
            for unit in units:
                if unit.payload is None:
                    continue
                fresh = map_order(unit.payload, mapper.context, mapper.tables, mapper.default_origin)
                memo = mapper.map(unit)
                assert (memo.record, memo.findings, memo.skipped, memo.locations) == (
                    fresh.record, fresh.findings, fresh.skipped, fresh.locations), (path, unit.location)
        # (An item with a finding, such as a SKU the catalog lacks, is never kept.)
        assert mapper.memo.items or path != SAMPLES / "orders_export.csv"


def test_each_record_gets_its_own_item_dicts():
    mapper = ShopifyMapper(ShopifyCsvOptions(path=SAMPLES, **with_tables()), context())
    order = ShopifyOrder("#1", "f.csv:2", currency="USD", shipping_address=_address(),
                         lines=[_line("f.csv:2", "2")])
    for _ in range(3):  # made, then twice from the memo
        record = mapper.map(_unit(order)).record
        assert record["items"][0]["quantity"] == 2
        record["items"][0]["quantity"] = 99  # a caller may change what it was given


def test_a_cell_that_equals_a_remembered_one_only_as_a_number_still_gets_its_finding():
    # JSON gives numbers: True == 1 in a dict key, but True is not a quantity.
    mapper = ShopifyMapper(ShopifyCsvOptions(path=SAMPLES, **with_tables()), context())
    for quantity, codes in ((1, []), ("1", []), (True, ["invalid-quantity"]), (1, [])):
        order = ShopifyOrder("#1", "f.json:1", currency="USD", shipping_address=_address(),
                             lines=[_line("f.json:1", quantity)])
        mapped = mapper.map(_unit(order))
        assert [f.code for f in mapped.findings if f.severity == "error"] == codes, quantity


def test_an_item_with_a_finding_gets_it_every_time():
    mapper = ShopifyMapper(ShopifyCsvOptions(path=SAMPLES, **with_tables()), context())
    for _ in range(3):
        order = ShopifyOrder("#1", "f.csv:2", currency="USD", shipping_address=_address(),
                             lines=[_line("f.csv:2", "two")])
        assert "invalid-quantity" in [f.code for f in mapper.map(_unit(order)).findings]


def test_a_catalog_written_again_is_what_the_next_file_is_mapped_with(tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SAMPLES / "catalog.csv", catalog)
    first = export(tmp_path, [first_row("#1"), item_row("#1")], name="a.csv")
    second = export(tmp_path, [first_row("#2"), item_row("#2")], name="b.csv")
    opts = ShopifyCsvOptions(path=tmp_path, pattern="[ab].csv", **with_tables(catalog=catalog))
    mapper = ShopifyMapper(opts, context())
    source = ShopifyCsvSource(opts, context())
    [unit] = list(source.read([first]))
    before = mapper.map(unit).record["items"][0]["hts_code"]
    text = catalog.read_text(encoding="utf-8")
    assert before in text
    catalog.write_text(text.replace(before, "9999999999"), encoding="utf-8")
    stat = catalog.stat()
    os.utime(catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # surely a new stamp
    [unit] = list(source.read([second]))
    assert mapper.map(unit).record["items"][0]["hts_code"] == "9999999999"


def test_the_memo_stays_small():
    memo = Memo()
    mapper = ShopifyMapper(ShopifyCsvOptions(path=SAMPLES, **with_tables()), context())
    mapper.memo = memo
    for n in range(Memo.LIMIT + 10):
        order = ShopifyOrder("#1", "f.csv:2", currency="USD", shipping_address=_address(),
                             lines=[_line("f.csv:2", str(n + 1))])
        mapper.map(_unit(order))
    assert 0 < len(memo.items) <= Memo.LIMIT


def _address():
    from s321.plugins.shopify.mapping import ShopifyAddress
    return ShopifyAddress(name="Zoë Lindqvist", line1="1820 NW Everett St", city="Portland",
                          province_code="OR", postal_code="97209", country_code="US")


def _line(location: str, quantity: object) -> ShopifyLine:
    return ShopifyLine(location, "Celadon Stoneware Mug - 350 ml", quantity, "24.00", None,
                       "LC-MUG-350-CEL", "Lumen Ceramics", "true")


def _unit(order: ShopifyOrder):
    from s321.contracts import RawUnit
    return RawUnit("shopify:" + order.name, order.location, order, (), None)

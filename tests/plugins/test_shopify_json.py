"""Source and mapper `shopify-json`: a webhook body, JSON Lines, a REST list, the GraphQL
shape; malformed JSON at FILE:LINE; the same order from CSV and JSON gives the same key
and record; arbitrary input never raises; a long list is streamed."""

from __future__ import annotations

import copy
import json
import tempfile
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s321.contracts import Mapped, PipelineContext, PipelineDefaults, RawUnit
from s321.record import Consignment, FilerType, ModeOfTransport, Party
from s321.plugins import shopify_json
from s321.plugins.shopify.mapping import ShopifyMapper
from s321.plugins.shopify_csv import ShopifyCsvOptions, ShopifyCsvSource
from s321.plugins.shopify_json import ShopifyJsonOptions, ShopifyJsonSource

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples" / "shop"
JSONL = SAMPLES / "orders.jsonl"
WEBHOOK = SAMPLES / "order-webhook.json"
GRAPHQL = SAMPLES / "order-graphql.json"
TABLES = {"catalog": SAMPLES / "catalog.csv", "vendors": SAMPLES / "vendors.csv",
          "tracking": SAMPLES / "tracking.csv"}


def context() -> PipelineContext:
    return PipelineContext(
        pipeline="shop", originator_code="MKT001", filer_type=FilerType.ONLINE_MARKETPLACE,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source="shopify-json",
        defaults=PipelineDefaults(
            seller=Party.model_validate({"name": "Northwind Goods LLC", "address": {
                "line1": "1 Harbor Way", "city": "Boston", "postal_code": "02110",
                "country": "US"}}),
            marketplace_seller_id="NWG-HOUSE", identified_marketplace_merchant=True))


MAPPER = ShopifyMapper(ShopifyJsonOptions(path=SAMPLES, **TABLES), context())


def read(path: Path, **options: Any) -> list[RawUnit]:
    return list(ShopifyJsonSource(ShopifyJsonOptions(path=path, **options), context()).read())


def read_and_map(path: Path) -> list[tuple[RawUnit, Mapped]]:
    return [(unit, MAPPER.map(unit)) for unit in read(path)]


def webhook_order() -> dict[str, Any]:
    return json.loads(WEBHOOK.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- shapes


def test_a_webhook_body_is_one_order():
    [(unit, mapped)] = read_and_map(WEBHOOK)
    assert (unit.key, unit.location, unit.findings) == ("shopify:#1045", f"{WEBHOOK}:1", ())
    record = Consignment.model_validate({"transaction_id": "T", **mapped.record})
    assert mapped.findings == []
    assert record.tracking_number == "YT2503000000777001"  # from its fulfillment
    assert record.ultimate_deliver_to.address.model_dump() == {
        "line1": "77 Massachusetts Ave", "line2": None, "city": "Cambridge",
        "state_or_province": "MA", "postal_code": "02139", "country": "US"}
    assert record.customer.email == "maya.maya@example.com"
    assert record.seller.name == "Shenzhen Kite Electronics Technology Co., Ltd."
    assert [(i.sku, i.quantity, i.listed_price, i.currency, i.hts_code) for i in record.items] == [
        ("SK-POWER-10K", 1, Decimal("29.99"), "USD", "8507600020"),
        ("SK-CABLE-C-2M", 2, Decimal("9.99"), "USD", "8544429000")]


def test_json_lines_are_one_unit_per_line_with_skip_reasons():
    results = read_and_map(JSONL)
    assert [u.location for u, _ in results] == [f"{JSONL}:{n}" for n in range(1, 11)]
    skipped = {u.key: m.skipped for u, m in results if m.skipped}
    assert skipped == {
        "shopify:#1039": "cancelled order",
        "shopify:#1040": "ships to CA, outside the US customs territory",
        "shopify:#1041": "nothing to ship: no line item requires shipping",
    }
    mapped = {u.key: m for u, m in results}
    assert [i["sku"] for i in mapped["shopify:#1042"].record["items"]] == ["TL-SOCKS-ARAN-M"]
    # no fulfillment yet: the tracking table is the fallback
    assert mapped["shopify:#1038"].record["tracking_number"] == "YT2503000000945618"
    assert mapped["shopify:#1037"].record["tracking_number"] == "YT2503000000123456"


def test_a_rest_list_is_streamed_with_each_order_at_its_own_line(tmp_path):
    orders = [json.loads(line) for line in JSONL.read_text(encoding="utf-8").splitlines()[:3]]
    path = tmp_path / "orders.json"
    path.write_text(json.dumps({"orders": orders}, indent=2), encoding="utf-8")
    units = read(path)
    assert [u.key for u in units] == ["shopify:#1001", "shopify:#1002", "shopify:#1037"]
    lines = path.read_text().splitlines()
    for unit in units:
        line = int(unit.location.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{" and f'"name": "{unit.key[8:]}"' in "\n".join(
            lines[line - 1:line + 80])


def test_single_order_wrappers_and_bare_lists_are_accepted(tmp_path):
    order = webhook_order()
    for n, doc in enumerate([{"order": order}, [order], {"orders": [order], "link": "next"}]):
        path = tmp_path / f"doc{n}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        assert [u.key for u in read(path)] == ["shopify:#1045"]


def test_the_graphql_shape_maps_like_the_rest_shape():
    [(unit, mapped)] = read_and_map(GRAPHQL)
    assert unit.key == "shopify:#1046" and mapped.findings == []
    record = mapped.record
    assert record["tracking_number"] == "LX000731046HK"  # trackingInfo.number
    assert [(i["sku"], i["quantity"], str(i["listed_price"]), i["currency"])
            for i in record["items"]] == [("HT-OOLONG-100", 2, "21.00", "USD")]  # no gift card
    assert record["ultimate_deliver_to"]["address"]["state_or_province"] == "HI"
    assert record["customer"]["name"] == "Grace Nakamura"
    assert record["seller"]["name"] == "Harbour Tea House Limited"


def _without_requires_shipping(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_requires_shipping(v) for k, v in node.items() if k != "requiresShipping"}
    if isinstance(node, list):
        return [_without_requires_shipping(v) for v in node]
    return node


def test_a_graphql_query_without_requires_shipping_gives_one_warning_and_every_line(tmp_path):
    doc = json.loads(GRAPHQL.read_text(encoding="utf-8"))
    path = tmp_path / "page.json"
    path.write_text(json.dumps(_without_requires_shipping(doc)), encoding="utf-8")
    [(unit, mapped)] = read_and_map(path)
    lines = doc["data"]["order"]["lineItems"]["nodes"] if "nodes" in doc["data"]["order"][
        "lineItems"] else [e["node"] for e in doc["data"]["order"]["lineItems"]["edges"]]
    assert mapped.record is not None and len(mapped.record["items"]) == len(lines)  # all counted
    [said] = [f for f in mapped.findings if f.code == "requires-shipping-not-given"]
    assert said.severity.value == "warning" and "requiresShipping" in said.message
    assert not any(f.severity.value == "error" for f in mapped.findings)


def test_a_requires_shipping_that_is_present_but_wrong_is_still_an_error(tmp_path):
    doc = json.loads(GRAPHQL.read_text(encoding="utf-8"))
    text = json.dumps(doc).replace('"requiresShipping": true', '"requiresShipping": "perhaps"', 1)
    assert text != json.dumps(doc)
    path = tmp_path / "page.json"
    path.write_text(text, encoding="utf-8")
    [(unit, mapped)] = read_and_map(path)
    assert [f.code for f in mapped.findings] == ["invalid-requires-shipping"]


def test_a_graphql_orders_connection_yields_every_node(tmp_path):
    node = json.loads(GRAPHQL.read_text(encoding="utf-8"))["data"]["order"]
    other = copy.deepcopy(node) | {"name": "#1047", "cancelledAt": "2025-03-12T16:00:00Z"}
    for shape in ({"edges": [{"node": node}, {"node": other}]}, {"nodes": [node, other]}):
        path = tmp_path / "page.json"
        path.write_text(json.dumps({"data": {"orders": shape}}), encoding="utf-8")
        results = read_and_map(path)
        assert [(u.key, m.skipped) for u, m in results] == [
            ("shopify:#1046", None), ("shopify:#1047", "cancelled order")]


def test_the_same_order_from_csv_and_json_has_the_same_key_and_record():
    csv_opts = ShopifyCsvOptions(path=SAMPLES / "orders_export.csv", **TABLES)
    csv_units = {u.key: u for u in ShopifyCsvSource(csv_opts, context()).read()}
    csv_mapper = ShopifyMapper(csv_opts, context())
    for unit in read(JSONL)[:2]:
        twin = csv_units[unit.key]  # the same natural key: "shopify:#1001"
        assert MAPPER.map(unit).record == csv_mapper.map(twin).record


# --------------------------------------------------------------------------- bad input


def test_a_malformed_line_is_a_broken_unit_and_the_next_lines_are_read(tmp_path):
    lines = JSONL.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join([lines[0], '{"name": "#9", "line_items": [', "", lines[1]]) + "\n",
                    encoding="utf-8")
    units = read(path)
    assert [(u.key, u.location) for u in units] == [
        ("shopify:#1001", f"{path}:1"), (f"unparsed:{path}:2", f"{path}:2"),
        ("shopify:#1002", f"{path}:4")]
    [finding] = units[1].findings
    assert (finding.code, finding.location) == ("malformed-json", f"{path}:2")
    assert units[1].payload is None


def test_malformed_json_in_a_document_names_the_line_of_the_error(tmp_path):
    path = tmp_path / "order.json"
    text = json.dumps(webhook_order(), indent=2).replace('"currency": "USD",', '"currency": USD,')
    path.write_text(text, encoding="utf-8")
    [unit] = read(path)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if '"currency": USD' in t)
    assert (unit.payload, unit.location) == (None, f"{path}:{line}")
    assert unit.findings[0].code == "malformed-json"


def test_a_list_cut_short_yields_the_orders_before_the_break(tmp_path):
    order = webhook_order()
    text = json.dumps({"orders": [order, order | {"name": "#1099"}]}, indent=1)
    path = tmp_path / "page.json"
    path.write_text(text[: len(text) * 3 // 4], encoding="utf-8")
    units = read(path)
    assert [u.key for u in units[:1]] == ["shopify:#1045"]
    assert units[-1].payload is None and units[-1].findings[0].code == "malformed-json"


@pytest.mark.parametrize("doc", ['42', '"order"', '{"foo": 1}', '[1, 2]', '{"orders": [null]}'])
def test_json_that_is_no_order_is_a_broken_unit_with_a_finding(tmp_path, doc):
    path = tmp_path / "x.json"
    path.write_text(doc, encoding="utf-8")
    units = read(path)
    assert units and all(u.payload is None and u.findings for u in units)


def test_wrong_types_inside_an_order_are_findings_not_crashes(tmp_path):
    order = webhook_order()
    order["line_items"][0]["quantity"] = "lots"
    order["line_items"][1]["price"] = {"amount": "9.99"}
    order["customer"] = "someone"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order), encoding="utf-8")
    [unit] = read(path)
    mapped = MAPPER.map(unit)
    assert [(f.code, f.field) for f in unit.findings] == [("not-an-object", "customer")]
    assert {(f.code, f.field) for f in mapped.findings} == {
        ("invalid-quantity", "items.0.quantity"), ("invalid-price", "items.1.listed_price")}


def test_an_order_without_a_name_is_refused_because_it_has_no_stable_key(tmp_path):
    order = webhook_order()
    del order["name"], order["order_number"]
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order), encoding="utf-8")
    [unit] = read(path)
    assert unit.payload is None and unit.findings[0].code == "order-without-name"


def test_a_directory_reads_json_and_json_lines_by_default(tmp_path):
    (tmp_path / "a.json").write_bytes(WEBHOOK.read_bytes())
    (tmp_path / "b.ndjson").write_bytes(JSONL.read_bytes().splitlines(keepends=True)[0])
    (tmp_path / "c.txt").write_text("not read", encoding="utf-8")
    assert [u.key for u in read(tmp_path)] == ["shopify:#1045", "shopify:#1001"]


def test_values_cut_at_any_chunk_boundary_decode_the_same(tmp_path, monkeypatch):
    orders = [json.loads(line) for line in JSONL.read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "orders.json"
    path.write_text(json.dumps({"count": 10, "orders": orders, "total": 12.5}), encoding="utf-8")
    expected = [(u.key, u.payload) for u in read(path)]
    monkeypatch.setattr(shopify_json._JsonText, "CHUNK", 7)
    assert [(u.key, u.payload) for u in read(path)] == expected
    assert len(expected) == 10


# --------------------------------------------------------------------------- robustness


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=1500), suffix=st.sampled_from([".json", ".jsonl"]))
def test_arbitrary_bytes_never_raise_out_of_read_or_map(body: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(body)
        for unit in read(path):
            assert unit.payload is not None or unit.findings
            MAPPER.map(unit)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=12)
ORDER_KEYS = ["name", "line_items", "shipping_address", "billing_address", "customer",
              "fulfillments", "currency", "cancelled_at", "lineItems", "shippingAddress"]
LINE_KEYS = ["quantity", "price", "requires_shipping", "sku", "vendor", "grams", "price_set"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.fixed_dictionaries({}, optional={k: json_values for k in ORDER_KEYS}),
       line=st.fixed_dictionaries({}, optional={k: json_values for k in LINE_KEYS}))
def test_arbitrary_order_shapes_never_raise_out_of_map(order: dict[str, Any], line: dict[str, Any]):
    order = {"name": "#1", "line_items": [line], **order}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "order.jsonl"
        path.write_text(json.dumps(order) + "\n", encoding="utf-8")
        for unit in read(path):
            mapped = MAPPER.map(unit)
            if mapped.record is not None:
                Consignment.model_validate({"transaction_id": "T", **mapped.record})


def peak_bytes(path: Path) -> int:
    source = ShopifyJsonSource(ShopifyJsonOptions(path=path), context())
    mapper = ShopifyMapper(ShopifyJsonOptions(path=path), context())
    mapper.map(next(iter(source.read())))  # load pycountry's tables before measuring
    tracemalloc.start()
    try:
        count = sum(1 for unit in source.read() if mapper.map(unit).record)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 0
    return peak


def test_memory_stays_flat_as_a_rest_list_grows(tmp_path):
    order = json.dumps({
        "name": "#N", "currency": "USD", "line_items": [
            {"name": "Mug", "quantity": 2, "price": "24.00", "sku": "LC-MUG-350-CEL",
             "vendor": "Lumen Ceramics", "requires_shipping": True}],
        "shipping_address": {"name": "Ann Example", "address1": "1 Main St", "city": "Springfield",
                             "province_code": "MA", "zip": "01101", "country_code": "US"}})

    def write(name: str, n: int) -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8") as fh:
            fh.write('{"orders": [\n')
            fh.write(",\n".join(order.replace('"#N"', f'"#{i}"') for i in range(n)))
            fh.write("\n]}\n")
        return path

    # 1k vs 10k keeps tracemalloc's slowdown bearable; the CSV test does 2k vs 20k.
    small = peak_bytes(write("small.json", 1_000))
    large = peak_bytes(write("large.json", 10_000))
    assert large < small * 1.5 + 64_000, (small, large)


def test_a_json_lines_file_in_windows_1252_is_refused_whole_or_read_with_its_encoding(tmp_path):
    lines = JSONL.read_text(encoding="utf-8").splitlines()[:3]
    first, order, last = (json.loads(line) for line in lines)
    order["shipping_address"]["city"] = "Montréal"  # the second order only: the rest is ASCII
    text = "\n".join([json.dumps(first), json.dumps(order, ensure_ascii=False),
                      json.dumps(last)]) + "\n"
    path = tmp_path / "orders.jsonl"
    path.write_bytes(text.encode("cp1252"))
    [unit] = read(path)  # nothing of the file: not its first order either
    assert unit.payload is None
    assert [(f.code, f.location) for f in unit.findings] == [("invalid-encoding", f"{path}:2")]
    units = read(path, encoding="cp1252")
    assert len(units) == 3 and all(u.payload is not None for u in units)
    assert units[1].payload.shipping_address.city == "Montréal"


def test_a_number_of_thousands_of_digits_is_named_without_python_advice(tmp_path):
    """The finding said "use sys.set_int_max_str_digits() to increase the limit"."""
    path = tmp_path / "order.json"
    text = json.dumps(webhook_order(), indent=2)
    path.write_text(text.replace('"id": ', '"id": ' + "9" * 5000, 1), encoding="utf-8")
    [unit] = read(path)
    [finding] = unit.findings
    assert finding.code == "malformed-json"
    assert "sys." not in finding.message and "5013 digits" in finding.message, finding.message


@pytest.mark.parametrize("newline", [b"\r", b"\r\n"])
def test_json_lines_ended_by_cr_alone_or_crlf_read_like_lf(tmp_path, newline):
    """With CR alone, the ten orders of the sample were one `malformed-json` unit
    ("Extra data"). A CR can only be whitespace in JSON (never inside a string)."""
    path = tmp_path / "orders.jsonl"
    path.write_bytes(JSONL.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", newline))
    got = [(u.key, u.location.rsplit(":", 1)[1]) for u in read(path)]
    assert got == [(u.key, u.location.rsplit(":", 1)[1]) for u in read(JSONL)]
    assert len(got) == 10


# --------------------------------------------------------------------------- bulk operations


def _bulk(orders: list[dict[str, Any]], grouped: bool = True) -> str:
    """What a GraphQL bulk query of these orders writes: each order on a line without its
    line items, each line item on a line of its own naming the order in `__parentId`;
    grouped, an order's lines follow it; ungrouped, they come at the end."""
    tops, children = [], []
    for order in orders:
        order = copy.deepcopy(order)
        items = order.pop("lineItems")
        nodes = items["nodes"] if "nodes" in items else [e["node"] for e in items["edges"]]
        lines = [json.dumps(n | {"__parentId": order["id"]}) for n in nodes]
        tops.append(json.dumps(order))
        children.append(lines)
    if grouped:
        return "".join(t + "\n" + "".join(c + "\n" for c in lines) for t, lines in zip(tops, children))
    return "".join(t + "\n" for t in tops) + "".join(c + "\n" for lines in children for c in lines)


def _graphql_orders() -> list[dict[str, Any]]:
    node = json.loads(GRAPHQL.read_text(encoding="utf-8"))["data"]["order"]
    other = copy.deepcopy(node) | {"id": "gid://shopify/Order/6012345999002", "name": "#1047"}
    for n, edge in enumerate(other["lineItems"]["edges"]):
        edge["node"]["id"] = f"gid://shopify/LineItem/9{n}"
    return [node, other]


def test_a_grouped_bulk_operation_output_reads_as_the_graphql_orders(tmp_path):
    """A bulk query's JSONL (`groupObjects: true`): each order with its line items, mapped
    to the records the same orders give as a GraphQL response."""
    orders = _graphql_orders()
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"data": {"orders": {"nodes": orders}}}), encoding="utf-8")
    bulk = tmp_path / "bulk.jsonl"
    bulk.write_text(_bulk(orders), encoding="utf-8")
    expected = [(u.key, m.record, m.findings) for u, m in read_and_map(page)]
    got = read_and_map(bulk)
    assert [(u.key, m.record, m.findings) for u, m in got] == expected
    assert all(m.record and m.record["items"] for _u, m in got)
    assert [u.location for u, _m in got] == [f"{bulk}:1", f"{bulk}:{2 + len(orders[0]['lineItems']['edges'])}"]


def test_an_ungrouped_bulk_output_is_refused_whole_before_any_order(tmp_path):
    """Ungrouped, an order's line items may come after other orders: an order read at its
    own line would be filed short, so nothing of the file is read, and the finding says
    how to export it grouped."""
    path = tmp_path / "bulk.jsonl"
    path.write_text(_bulk(_graphql_orders(), grouped=False), encoding="utf-8")
    units = read(path)
    assert len(units) == 1 and units[0].payload is None
    assert [f.code for f in units[0].findings] == ["shopify-bulk-not-grouped"]
    assert "groupObjects: true" in units[0].findings[0].message and units[0].location == f"{path}:3"


def test_a_bulk_line_that_cannot_be_read_leaves_its_order_unfiled(tmp_path):
    """A broken line inside an order may have been one of its items: that order is not
    filed (it says why), the line is reported, and the other order is read."""
    lines = _bulk(_graphql_orders()).splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\n"  # the first order's first line item, cut short
    path = tmp_path / "bulk.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    units = read(path)
    by_key = {u.key: u for u in units}
    first = by_key["shopify:#1046"]
    assert first.payload is None and "shopify-bulk-order-incomplete" in [f.code for f in first.findings]
    assert by_key["shopify:#1047"].payload is not None
    assert any(f.code == "malformed-json" for u in units for f in u.findings)


def test_json_lines_with_parent_id_only_in_a_text_are_plain_json_lines(tmp_path):
    order = webhook_order()
    order["note"] = 'see "__parentId" in the docs'
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(order) + "\n", encoding="utf-8")
    units = read(path)
    assert [u.key for u in units] == ["shopify:" + order["name"]] and units[0].payload is not None


def test_a_bulk_order_line_that_cannot_be_read_is_named_as_the_likely_cause(tmp_path):
    """The second order's own line is cut short: its line items name an order that is
    not above them; the finding points at the line that could not be read."""
    lines = _bulk(_graphql_orders()).splitlines(keepends=True)
    second = next(i for i, line in enumerate(lines) if '"#1047"' in line)
    lines[second] = lines[second][:30] + "\n"
    path = tmp_path / "bulk.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    refused = [u for u in read(path) if any(f.code == "shopify-bulk-not-grouped" for f in u.findings)]
    assert len(refused) == 1
    assert f"line {second + 1} above could not be read" in refused[0].findings[0].message


def test_a_bulk_line_naming_a_line_that_could_not_be_taken_leaves_the_order_unfiled(tmp_path):
    """A line item without a Shopify id cannot be put in a list; a line naming it (its
    own child) cannot be placed either: the order is not filed, and nothing raises."""
    orders = _graphql_orders()[:1]
    lines = _bulk(orders).splitlines()
    item = json.loads(lines[1])
    item["id"] = "not-a-gid"
    lines[1] = json.dumps(item)
    lines.insert(2, json.dumps({"id": "gid://shopify/DiscountAllocation/1", "__parentId": "not-a-gid"}))
    path = tmp_path / "bulk.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (unit,) = read(path)
    assert unit.key == "shopify:#1046" and unit.payload is None
    message = next(f.message for f in unit.findings if f.code == "shopify-bulk-order-incomplete")
    assert "line 2 has no Shopify id" in message and "line 3 belongs to not-a-gid" in message

"""The real-world corpus (../shared/realworld/, see its SOURCES.md): every file through
the real CLI, `s321 preview --json`, with the outcome of every unit checked by hand
against the file, and every total against the values the file declares
(`declared_totals`, which reads the files without s321). Nothing may be lost, nothing
may raise, and a file that is not its source's format must say so.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from realworld import corpus_run, declared_totals

pytestmark = [pytest.mark.realworld,
              pytest.mark.skipif(not corpus_run.CORPUS.is_dir(), reason="../shared/realworld absent")]

RW = corpus_run.CORPUS
NOADDR = "nothing to ship: the order has no shipping address"
NOSHIP = "nothing to ship: no line item requires shipping"
TO_CA = "ships to CA, outside the US customs territory"
URLS = ("missing-required",)  # product_url of each item: this config names no catalog
SCAN = ("missing-required",)  # security_scan: no OCI security lines
NOT_309 = ("x12-309-not-309",)

# file -> [(ref, status, error codes (sorted, with repeats), skip reason)], as checked by
# hand against the file (see the comments).
EXPECTED: dict[str, list[tuple[str, str, tuple[str, ...], str | None]]] = {
    # 19 orders of a dev store: most have no shipping address; 1005 and 1013 ship to
    # Canada; 1008, 1009, 1014, 1015, 1017 and 1018 hold only gift cards / no-shipping lines.
    "shopify-csv/forezia-mock-data_orders_export.csv": [
        (f"shopify:#{n}", "skipped", (), reason) for n, reason in [
            (1001, NOADDR), (1002, NOADDR), (1003, NOADDR), (1004, NOADDR), (1005, TO_CA),
            (1006, NOADDR), (1007, NOADDR), (1008, NOSHIP), (1009, NOSHIP), (1010, NOADDR),
            (1011, NOADDR), (1012, NOADDR), (1013, TO_CA), (1014, NOSHIP), (1015, NOSHIP),
            (1016, NOADDR), (1017, NOSHIP), (1018, NOSHIP), (1019, NOADDR)]],
    "shopify-json/bon-ingest-ccv_shopify_order.json": [("shopify:#1001", "skipped", (), TO_CA)],
    # Three US orders of three lines at 199.00: no catalog, so no product URL.
    "shopify-json/shopify-api-ruby_order.json": [("shopify:#1001", "invalid", URLS * 3, None)],
    "shopify-json/shopify-tax-receipts_order.json": [("shopify:#1001", "invalid", URLS * 3, None)],
    "shopify-json/shopify_python_api_order.json": [("shopify:#1001", "invalid", URLS * 3, None)],
    "shopify-json/shopify-tax-receipts_order_with_tip.json": [("shopify:#1044", "skipped", (), TO_CA)],
    "shopify-json/shopify_python_api_orders.json": [
        ("shopify:#1001", "skipped", (), "nothing to ship: the order has no line items")],
    # 214s, a 358, a 322 and 856s are not 309s: each set says so; envelope faults too.
    "x12/x12-types_test_214_1_1edisource.x12": [
        ("*", "invalid", NOT_309, None), ("*", "invalid", ("x12-iea-control",), None)],
    "x12/x12-types_test_214_2_freightforce.x12": [
        ("*", "invalid", ("x12-se-control",), None), ("*", "invalid", NOT_309, None)],
    "x12/x12-types_v004060_test_358_minimal.x12": [("*", "invalid", NOT_309, None)],
    "x12/x12parser_322Status.txt": [("*", "invalid", NOT_309, None)] * 17,
    "x12/x12parser_856_Example1.txt": [("*", "invalid", NOT_309, None)],
    "x12/x12parser_856_Example4.txt": [("*", "invalid", NOT_309, None)],
    # SE01 says 622 for a set of 295 segments (and 4 for 3): the set is refused whole.
    "x12/x12-types_v004010_test_309.x12": [("*", "invalid", ("x12-se-count",), None)],
    "x12/x12-types_v006050_test_309_minimal.x12": [("*", "invalid", ("x12-se-count",), None)],
    # FHL houses: consignees in FR, MY and CA; none has OCI security lines but 4.
    "fhl/awbix_fhl-sample-message-1.txt": [
        ("fhl:157-67661882/530510258554", "invalid", ("deliver-to-not-us",) + SCAN, None)],
    "fhl/awbix_fhl-sample-message-3.txt": [("fhl:157-49225050/MAA43138355", "invalid", SCAN, None)],
    "fhl/awbix_fhl-sample-message-4.txt": [("fhl:157-43426040/AMS00004138", "valid", (), None)],
    "fhl/awbix_fhl-sample-message-5.txt": [
        ("fhl:157-46632843/RD1074205", "invalid", ("deliver-to-not-us",) + SCAN, None)],
    "fhl/awbix_fhl-sample-message.txt": [
        ("fhl:157-69081003/SAMSA0009420", "invalid", ("deliver-to-not-us",) + SCAN, None)],
    "fhl/cargoimp-compiler_fhl4_test.txt": [("fhl:933-34507281/ORD20260411", "invalid", SCAN, None)],
    # 20 houses without SHP/CNE blocks and without security lines.
    "fhl/cargoimp-compiler_fhl_test.txt": [
        (f"fhl:933-27754882/{h}", "invalid", ("missing-required",) * 3, None)
        for h in ("NUSH2381471 NUSH7008742 NUSG4311656 NUSH2102451 NUSH2530245 NUSH2530240 "
                  "NUSH2530250 NUSH2530238 NUSH2530236 NUSH2530232 NUSH2530253 NUSH2530252 "
                  "NUSH2530251 NUSH2530260 NUSH2813259 NUST4114207 NUSH1424294 NUST4114087 "
                  "NUSH2400221 NUSH2530231").split()],
    # FWB and FFM messages are not FHL: one finding each, not silence.
    "fhl/awbix_fwb-sample1_FWB16.txt": [("*", "invalid", ("fhl-not-fhl",), None)],
    "fhl/cargoimp-compiler_fwb17_test.txt": [("*", "invalid", ("fhl-not-fhl",), None)],
    "fhl/cargoimp-compiler_ffm_test.txt": [("*", "invalid", ("fhl-not-fhl",), None)],
}


def _errors(outcome: dict) -> tuple[str, ...]:
    return tuple(sorted(f["code"] for f in outcome["findings"] if f["severity"] == "error"))


def test_every_corpus_file_has_an_expectation() -> None:
    names = {f"{p.parent.name}/{p.name}" for _, p in corpus_run.corpus_files()}
    assert names == set(EXPECTED)


@pytest.mark.parametrize(("plugin", "path"), corpus_run.corpus_files(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_unit_of_a_real_file_has_its_checked_outcome(plugin: str, path: Path,
                                                           tmp_path: Path) -> None:
    code, outcomes, stderr = corpus_run.preview(plugin, path, tmp_path)
    assert "Traceback" not in stderr, stderr[-2000:]
    expected = EXPECTED[f"{path.parent.name}/{path.name}"]
    got = [(o["ref"] if want[0] != "*" else "*", o["status"], _errors(o), o["reason"])
           for o, want in zip(outcomes, expected)]
    assert len(outcomes) == len(expected), [(o["ref"], o["status"]) for o in outcomes]
    if all(w[0] == "*" for w in expected):  # units without keys: compare as a multiset
        assert sorted(got) == sorted(expected)
    else:
        assert got == expected
    assert code == (1 if any(o["status"] == "invalid" for o in outcomes) else 0)
    for o in outcomes:  # every finding names its place in this file
        assert all((f.get("location") or o["source"]).startswith(str(path)) for f in o["findings"])
    _totals_are_the_declared_ones(path, outcomes)


def _totals_are_the_declared_ones(path: Path, outcomes: list[dict]) -> None:
    if path.parent.name == "shopify-json":
        declared = declared_totals.shopify_json(path)
        for o in outcomes:
            if o["record"] is not None:
                assert Decimal(o["record"]["total_value_usd"]) == declared[o["ref"].split(":", 1)[1]]
    elif path.parent.name == "fhl":
        declared = declared_totals.fhl(path)
        for o in outcomes:
            if o["record"] is not None:
                value = declared[o["record"]["house_bill_number"]]
                total = o["record"].get("total_value_usd")
                assert (None if total is None else Decimal(total)) == value


def test_the_real_309_with_its_control_count_corrected(tmp_path: Path) -> None:
    """The real ocean 309's only envelope fault is SE01; with it corrected (here, in a
    copy) its bills show what the issue found: two LX loops share bill 99XXZ999999X
    (both refused, neither filed), N10-02 wrapped at 45 characters mid-word, and totals
    that are exactly the declared N10-06 values (291875, not 291875.01)."""
    original = RW / "x12" / "x12-types_v004010_test_309.x12"
    text = original.read_text(encoding="utf-8")
    assert text.count("SE*622*3899") == 1
    copy = tmp_path / "in" / "corrected.x12"
    copy.parent.mkdir()
    copy.write_text(text.replace("SE*622*3899", "SE*295*3899"), encoding="utf-8")
    code, outcomes, stderr = corpus_run.preview("x12-309", copy, tmp_path)
    assert "Traceback" not in stderr and code == 1
    declared = declared_totals.x12_309(copy)
    assert [o["ref"] for o in outcomes] == [f"309:{number}" for number, _ in declared]  # none lost
    for o, (_number, value) in zip(outcomes, declared):
        assert Decimal(o["record"]["total_value_usd"]) == value
        assert o["status"] == "invalid" and "not-section-321" in _errors(o)  # ocean freight
    repeated = [o for o in outcomes if "duplicate-key" in _errors(o)]
    assert [o["ref"] for o in repeated] == ["309:99XXZ999999X"] * 2
    assert Decimal(outcomes[4]["record"]["total_value_usd"]) == Decimal("291875.00")
    coffee = outcomes[3]["record"]["items"][0]["description"]
    assert "640 BAGS OF BRAZILIAN GREEN COFFEE" in coffee

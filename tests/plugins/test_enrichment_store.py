"""Where enrichment rows live: large tables in a temporary SQLite database, small ones in
memory, with the same answers, the same findings and the same reloads either way."""

from __future__ import annotations

import csv
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from s321.plugins.enrichment import CATALOG, TRACKING, EnrichmentError, store
from s321.plugins.enrichment.tables import Table, read_table


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def both(spec, path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Table, Table]:
    """The table read with its rows in memory, and read again with them in SQLite."""
    monkeypatch.setattr(store, "SPILL_ROWS", 10**9)
    in_memory = read_table(spec, path)
    monkeypatch.setattr(store, "SPILL_ROWS", 0)
    in_database = read_table(spec, path)
    assert in_memory is not None and in_database is not None
    assert not in_memory.in_database
    assert in_database.in_database or in_database.size == 0  # a table of no rows stays a dict
    return in_memory, in_database


def test_a_large_catalog_in_sqlite_answers_as_it_would_in_memory(tmp_path, monkeypatch):
    lines = ["SKU,HS Code,Origin,Weight,Title"]
    for n in range(300):
        weight = "heavy" if n % 7 == 0 else f"0.{n % 10}"
        origin = "Narnia" if n % 11 == 0 else ("Viet Nam", "CN", "")[n % 3]
        sku = "" if n % 13 == 0 else f"SKU-{n % 250}"  # no key, and duplicates
        lines.append(f'{sku},6109.10.{n % 100:04d},{origin},{weight},"Shirt, size {n}"')
        if n % 50 == 0:
            lines.append(",,,,")  # blank: skipped, not reported
    path = write(tmp_path / "catalog.csv", lines)
    monkeypatch.setattr(store, "SPILL_ROWS", 100)
    large = read_table(CATALOG, path)
    assert large is not None and large.in_database
    in_memory, in_database = both(CATALOG, path, monkeypatch)
    for key in [f"SKU-{n}" for n in range(260)] + ["sku-1", " SKU-1 ", "", None]:
        assert in_database.get(key) == in_memory.get(key) == large.get(key)
    assert in_database.problems == in_memory.problems == large.problems
    assert in_database.size == in_memory.size == len({n % 250 for n in range(300) if n % 13})
    assert in_database.get("SKU-7").findings  # the row's findings, built on look-up
    assert in_database.get("SKU-7").location == f"{path}:10"  # after the blank at 3


def test_duplicates_across_batches_keep_the_first_row_and_come_in_line_order(tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(store, "_BATCH", 3)
    path = write(tmp_path / "tracking.csv", [
        "order,tracking_number",
        "#1,A1", "#2,A2", "1,B1",       # line 4 repeats #1 in the same batch
        ",X", "#3,A3", "#2,B2",         # line 5 has no order; line 7 repeats #2 from before
        "#4,A4", " #3 ,B3", "#4,C4",    # lines 9 and 10: repeats in the last batch
    ])
    for table in both(TRACKING, path, monkeypatch):
        assert [table.get(k).tracking_number for k in ("#1", "#2", "#3", "#4")] == [
            "A1", "A2", "A3", "A4"]
        assert [(p.code, p.location) for p in table.problems] == [
            ("enrichment-duplicate-key", f"{path}:4"),
            ("enrichment-row-without-key", f"{path}:5"),
            ("enrichment-duplicate-key", f"{path}:7"),
            ("enrichment-duplicate-key", f"{path}:9"),
            ("enrichment-duplicate-key", f"{path}:10"),
        ]
        assert table.size == 4


_KEYS = st.sampled_from(["", " ", "#1", "1", " #1 ", "#2", "x", "X", "ß", "SS"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_KEYS | _TEXT, min_size=0, max_size=3), max_size=30),
       batch=st.integers(1, 4), read_ahead=st.integers(1, 4), data=st.data())
def test_both_stores_give_the_same_results_for_any_rows(tmp_path, monkeypatch, rows, batch,
                                                        read_ahead, data):
    monkeypatch.setattr(store, "_BATCH", batch)
    monkeypatch.setattr(store, "READ_AHEAD", read_ahead)
    path = tmp_path / "tracking.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["order", "tracking_number", "carrier"], *rows])
    in_memory, in_database = both(TRACKING, path, monkeypatch)
    keys = sorted({r[0] for r in rows if r} | {"#1", "1", "#2", "x", "X", "ss", "#", "nope"})
    # In order (as orders come), then scattered, then anything at all.
    probes = keys + data.draw(st.permutations(keys)) + data.draw(st.lists(_KEYS | _TEXT))
    assert [in_database.get(k) for k in probes] == [in_memory.get(k) for k in probes]
    assert in_database.problems == in_memory.problems
    assert in_database.size == in_memory.size


def test_look_ups_in_order_backwards_and_scattered_answer_alike(tmp_path, monkeypatch):
    path = write(tmp_path / "tracking.csv", ["Order Name,Tracking Number", *(
        f"#{n},LX{n:09d}HK" for n in range(1000, 3000) if n % 17)])  # some orders have none
    in_memory, in_database = both(TRACKING, path, monkeypatch)
    for order in [*range(990, 3010), *range(3010, 990, -1), *range(990, 3010, 97)]:
        assert in_database.get(f"#{order}") == in_memory.get(f"#{order}")


def test_a_table_that_grows_past_the_threshold_moves_to_sqlite_and_back(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SPILL_ROWS", 3)
    path = write(tmp_path / "tracking.csv", ["order,tracking_number", "#1,A"])
    table = read_table(TRACKING, path)
    assert table is not None and not table.in_database
    write(path, ["order,tracking_number", *(f"#{n},T{n}" for n in range(1, 6))])
    os.utime(path, ns=(1, 1))  # a changed stamp, even on a coarse-clock file system
    table.refresh()
    assert table.in_database and table.get("#5").tracking_number == "T5"
    write(path, ["order,tracking_number", *(f"#{n},U{n}" for n in range(1, 9))])
    os.utime(path, ns=(2, 2))
    table.refresh()
    assert table.get("#8").tracking_number == "U8" and table.get("#1").tracking_number == "U1"
    write(path, ["order,tracking_number", "#9,V"])
    os.utime(path, ns=(3, 3))
    table.refresh()
    assert not table.in_database and table.get("#1") is None and table.get("#9")
    path.write_bytes(b"order,tracking_number\n#1,\xff\n")  # half-written: keep what we had
    os.utime(path, ns=(4, 4))
    table.refresh()
    assert table.get("#9") is not None


def test_a_table_in_sqlite_is_looked_up_from_the_pipelines_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SPILL_ROWS", 0)
    path = write(tmp_path / "tracking.csv", ["order,tracking_number",
                                             *(f"#{n},T{n}" for n in range(200))])
    table = read_table(TRACKING, path)
    assert table is not None and table.in_database
    found: list[tuple[str | None, ...]] = []

    def look_up() -> None:
        found.append(tuple(e.tracking_number if e else None
                           for e in map(table.get, ["#1", "#199", "#200"])))

    threads = [threading.Thread(target=look_up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [("T1", "T199", None)] * 4


def test_a_byte_that_is_not_utf8_deep_in_a_large_table_is_reported_at_its_line(tmp_path):
    path = tmp_path / "tracking.csv"
    rows = [f"#{n},LX{n:09d}HK".encode() for n in range(30_000)]
    rows[25_000] = b"#25000,LX\xe9HK"
    path.write_bytes(b"\xef\xbb\xbforder,tracking_number\r\n" + b"\r\n".join(rows) + b"\r\n")
    with pytest.raises(EnrichmentError, match=f"{path}:25002: the tracking table is not UTF-8"):
        read_table(TRACKING, path)


def test_a_database_that_cannot_be_made_is_an_error_naming_the_table(tmp_path, monkeypatch):
    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    # Mocked: a temporary directory SQLite cannot write to cannot be arranged in-process.
    monkeypatch.setattr(store.sqlite3, "connect", refuse)
    monkeypatch.setattr(store, "SPILL_ROWS", 1)
    path = write(tmp_path / "tracking.csv", ["order,tracking_number", "#1,A", "#2,B"])
    with pytest.raises(EnrichmentError, match=f"{path}: the table has more than 1 rows and "
                                              "cannot be kept in a temporary database"):
        read_table(TRACKING, path)


def test_rows_not_used_are_logged_by_location_and_code_only(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SPILL_ROWS", 0)
    path = write(tmp_path / "tracking.csv", ["order,tracking_number", "#4711,LX111",
                                             "#4711,LX222", ",LX333"])
    with capture_logs() as logged:
        read_table(TRACKING, path)
    assert [(e["location"], e["code"]) for e in logged] == [
        (f"{path}:3", "enrichment-duplicate-key"), (f"{path}:4", "enrichment-row-without-key")]
    text = repr(logged).replace(str(path), "")
    assert "4711" not in text and "LX" not in text

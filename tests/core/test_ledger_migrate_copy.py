"""A ledger's schema is s321's: `migrate` brings it up to date (under an advisory lock on
PostgreSQL) and refuses one a newer s321 wrote; `copy_ledger` moves a whole ledger from
a SQLite file to a real PostgreSQL database and back, verified, never into a ledger
that holds anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from ledger_steps import answer, claim_one, valid
from s321.errors import S321Error
from s321.findings import error
from s321.ledger import SCHEMA_VERSION, Ledger
from s321.ledger_copy import TABLES, copy_ledger
from s321.ledger_migrate import migrate
from s321.ledger_open import open_ledger
from s321.pipeline import Outcome, Status
from s321.record import Action


def filled(path: Path) -> None:
    """A SQLite ledger with something in every table and every state of a version."""
    ledger = Ledger(path)
    try:
        bad = Outcome("A-9", Status.INVALID, "f.jsonl:9", None, [error("missing-required", "tracking_number", "x")])
        ledger.ingest("shop", "C", "src", [valid("T1"), valid("T2"), valid("T3"), bad], raw={"A-9": b"unit"},
                      input_file=("/in/a.jsonl", 10, 123))
        rows = {r.transaction_id: r for r in ledger.claim("shop", "B1", 2)}
        ledger.resolve(answer("B1", "T1", "accepted", version=rows["T1"].version))
        ledger.ingest("shop", "C", "src", [valid("T1", tracking_number="1ZNEW")])  # a replace, queued
        ledger.set_fingerprint("shop", "f1")
        for _ in range(3):
            ledger.next_number("isa")
    finally:
        ledger.close()


def everything(ledger: Ledger) -> dict:
    txids = ["T1", "T2", "T3", *ledger.find("A-9")]
    return {"records": {t: ledger.get(t) for t in txids}, "history": {t: ledger.history(t) for t in txids},
            "names": {t: ledger.references_of(t) for t in txids}, "raw": ledger.raw_units("shop"),
            "status": ledger.status(), "fingerprint": ledger.fingerprint("shop"),
            "input": ledger.input_seen("shop", "/in/a.jsonl", 10, 123)}


def test_copy_from_sqlite_to_postgresql_and_back_keeps_everything(tmp_path, pg_url) -> None:
    source = tmp_path / "ledger.sqlite"
    filled(source)
    report = copy_ledger(source, pg_url)
    assert set(report.counts) == set(TABLES)
    assert report.counts["consignments"] == 4 and report.counts["history"] > 4 and report.counts["sequences"] == 1
    back = tmp_path / "back.sqlite"
    assert copy_ledger(pg_url, f"sqlite://{back}").hashes == report.hashes  # and back, row for row
    src, pg, again = Ledger(source), open_ledger(pg_url), Ledger(back)
    try:
        assert everything(pg) == everything(src) == everything(again)
        # The copy carries on where the source stood: versions, numbers, new bodies.
        replace, t3 = sorted(pg.claim("shop", "B2", 10), key=lambda r: r.transaction_id)
        assert (replace.transaction_id, replace.action, replace.record.tracking_number) == (
            "T1", Action.REPLACE, "1ZNEW")
        assert (t3.transaction_id, t3.action) == ("T3", Action.ADD)
        assert pg.resolve(answer("B1", "T2", "accepted", version=src.get("T2")["wire_version"]))
        assert pg.next_number("isa") == 4
        pg.ingest("shop", "C", "src", [valid("T4")])
        assert pg.get("T4")["body_id"] > max(src.get(t)["body_id"] for t in ("T1", "T2", "T3"))
    finally:
        for ledger in (src, pg, again):
            ledger.close()


def test_copy_into_a_ledger_that_holds_anything_is_refused(tmp_path, pg_url) -> None:
    source = tmp_path / "ledger.sqlite"
    filled(source)
    copy_ledger(source, pg_url)
    with pytest.raises(S321Error, match="not empty .*rows in consignments"):
        copy_ledger(source, pg_url)
    with pytest.raises(S321Error, match="no ledger there"):
        copy_ledger(tmp_path / "none.sqlite", tmp_path / "new.sqlite")


def test_migrate_makes_and_updates_a_schema_and_refuses_a_newer_one(pg_url) -> None:
    assert migrate(pg_url) == (0, SCHEMA_VERSION)
    assert migrate(pg_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    ledger = open_ledger(pg_url)
    assert (ledger.backend, ledger.schema_version()) == ("postgresql", SCHEMA_VERSION)
    ledger.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE s321_schema SET version = 99")
    with pytest.raises(S321Error, match="version 99 is newer than this s321 knows .*upgrade s321"):
        migrate(pg_url)
    with pytest.raises(S321Error, match="version 99 is newer"):
        open_ledger(pg_url)


def test_migrate_upgrades_a_version_5_file_and_refuses_a_newer_one(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    for column in ("lease_owner", "lease_epoch", "lease_expires"):
        db.execute(f"ALTER TABLE consignments DROP COLUMN {column}")
    db.execute("PRAGMA user_version=5")
    db.commit()
    db.close()
    assert migrate(path) == (5, SCHEMA_VERSION)
    ledger = Ledger(path)
    ledger.ingest("shop", "C", "src", [valid("T1")])
    assert claim_one(ledger, "B1").lease_epoch == 1
    ledger.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(S321Error, match="version 99 is newer"):
        migrate(f"sqlite://{path}")


def test_a_copy_names_every_table_and_column_of_the_schema(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        schema = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        db.close()
    assert {t: {c.strip() for c in columns.split(",")} for t, (columns, _) in TABLES.items()} == schema


def test_migrate_waits_for_the_advisory_lock_another_migration_holds(pg_url) -> None:
    import threading
    import time

    from s321.ledger_backend import SCHEMA_LOCK

    done: list[tuple[int, int]] = []
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        t = threading.Thread(target=lambda: done.append(migrate(pg_url)))
        t.start()
        time.sleep(0.5)
        assert done == []  # waiting
        other.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        t.join(30)
    assert done == [(0, SCHEMA_VERSION)]


def test_migrate_keys_a_version_7_databases_history_by_record(pg_url) -> None:
    """Schema 7 -> 8 on PostgreSQL: history lines get the record's integer key and are
    found by it (index `history_by_consignment`, not by transaction id); what `show`
    said before it says after."""
    migrate(pg_url)
    ledger = open_ledger(pg_url)
    ledger.ingest("shop", "C", "src", [valid("T1"), valid("T2")])
    rows = {r.transaction_id: r for r in ledger.claim("shop", "B1", 10)}
    ledger.resolve(answer("B1", "T1", "accepted", version=rows["T1"].version))
    before = {t: ledger.history(t) for t in ("T1", "T2")}
    ledger.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # history as schema 7 had it
        conn.execute("DROP INDEX history_by_consignment")
        conn.execute("ALTER TABLE history DROP COLUMN consignment")
        conn.execute("CREATE INDEX history_of ON history (transaction_id)")
        conn.execute("UPDATE s321_schema SET version = 7")
    assert migrate(pg_url) == (7, SCHEMA_VERSION)
    ledger = open_ledger(pg_url)
    assert {t: ledger.history(t) for t in ("T1", "T2")} == before
    ledger.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'history'")}
        assert "history_by_consignment" in names and "history_of" not in names
        assert conn.execute("SELECT COUNT(*) FROM history WHERE consignment IS NULL").fetchone()[0] == 0

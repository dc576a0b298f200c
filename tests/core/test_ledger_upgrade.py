"""A ledger file written before content hashes were hashes of the record's JSON (before
its indexes were partial, before records had a table of their own) opens, is upgraded
once, and keeps every promise: what was filed is not filed again, what was queued stays
queued, what was sent is sent again, a change is still a change."""

import hashlib
import json
import sqlite3
from datetime import UTC, datetime

import pytest

from builders import consignment, marketplace_fields
from s321 import ids
from s321.contracts import Ack, AckStatus, RecordAck
from s321.errors import S321Error
from s321.findings import error
from s321.ledger import SCHEMA_VERSION, Ledger
from s321.pipeline import Outcome, Status
from s321.record import Action, Consignment
from s321.states import State


def valid(txid, **changes):
    return Outcome(f"ref-{txid}", Status.VALID, "f.jsonl:1", consignment(marketplace_fields(**changes), txid=txid))


def version_0_hash(record: Consignment) -> str:
    """ids.content_hash as version 0 computed it."""
    body = record.model_dump(mode="json", exclude={"transaction_id", "action"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def accept(ledger, batch_id, *txids):
    ledger.resolve(Ack(batch_id=batch_id, received_at=datetime.now(UTC), results=[
        RecordAck(transaction_id=t, status=AckStatus.ACCEPTED) for t in txids]))


@pytest.fixture
def old_ledger(tmp_path):
    """A ledger as version 0 left it: T1 filed and unchanged, T2 filed as A and now
    queued as B (a replace), T3 queued, never filed."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.ingest("shop", "MKT001", "src", [valid("T1"), valid("T2")])
    ledger.claim("shop", "B1", 10)
    accept(ledger, "B1", "T1", "T2")
    ledger.ingest("shop", "MKT001", "src", [valid("T2", tracking_number="1ZNEW"), valid("T3")])
    ledger.close()
    as_version_2(path)
    a, b = valid("T2").record, valid("T2", tracking_number="1ZNEW").record
    db = sqlite3.connect(path, isolation_level=None)
    db.executemany("UPDATE consignments SET content_hash=?, accepted_hash=? WHERE transaction_id=?", [
        (version_0_hash(valid("T1").record), version_0_hash(valid("T1").record), "T1"),
        (version_0_hash(b), version_0_hash(a), "T2"),
        (version_0_hash(valid("T3").record), None, "T3")])
    db.executescript(VERSION_0_INDEXES)
    db.execute("PRAGMA user_version=0")
    db.close()
    return path


VERSION_2_CONSIGNMENTS = """
CREATE TABLE consignments_v2 (
    transaction_id  TEXT PRIMARY KEY,
    pipeline        TEXT NOT NULL,
    client          TEXT NOT NULL,
    ref             TEXT NOT NULL,
    source          TEXT,
    state           TEXT NOT NULL,
    action          TEXT NOT NULL DEFAULT 'add',
    content_hash    TEXT,
    accepted_hash   TEXT,
    record          TEXT,
    findings        TEXT,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    queued_at       REAL,
    batch_id        TEXT,
    sent_at         REAL,
    last_error      TEXT,
    ack             TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
"""
"""The consignments table of versions 0 to 2: each row held its record."""
VERSION_2_COLUMNS = [line.split()[0] for line in VERSION_2_CONSIGNMENTS.splitlines()[2:-1] if line.strip()]

VERSION_2_INDEXES = """
CREATE INDEX consignments_queued ON consignments
    (pipeline, queued_at, transaction_id, next_attempt_at, state) WHERE state = 'queued';
CREATE INDEX consignments_sent ON consignments (pipeline, sent_at, state) WHERE state = 'sent';
"""


def as_version_2(path):
    """Turn a ledger file of this version back into one as version 2 wrote it."""
    db = sqlite3.connect(path, isolation_level=None)
    v2 = {r[1] for r in db.execute("PRAGMA table_info(consignments)")} & set(VERSION_2_COLUMNS)
    columns = [c for c in VERSION_2_COLUMNS if c in v2]
    db.executescript(VERSION_2_CONSIGNMENTS)
    db.execute(f"INSERT INTO consignments_v2 ({', '.join(columns)}, record) SELECT"
               f" {', '.join('c.' + c for c in columns)}, b.record FROM consignments c"
               " JOIN bodies b ON b.id = c.body_id ORDER BY c.rowid")
    db.executescript("DROP TABLE consignments; DROP TABLE bodies;"
                     " ALTER TABLE consignments_v2 RENAME TO consignments;" + VERSION_2_INDEXES)
    db.execute("PRAGMA user_version=2")
    db.close()


VERSION_0_INDEXES = """
CREATE INDEX consignments_queue ON consignments (pipeline, state, next_attempt_at);
CREATE INDEX consignments_batch ON consignments (batch_id);
CREATE INDEX consignments_due ON consignments (pipeline, state, queued_at, transaction_id, next_attempt_at);
"""


def indexes(path):
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='consignments'"
                                         " AND sql IS NOT NULL")}
    finally:
        db.close()


def snapshot(path):
    db = sqlite3.connect(path)
    try:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT transaction_id, state, action, content_hash, accepted_hash FROM consignments")}
    finally:
        db.close()


def test_opening_a_version_0_ledger_rehashes_it_once(old_ledger):
    Ledger(old_ledger).close()
    after = snapshot(old_ledger)
    assert after["T1"][2:] == (ids.content_hash(valid("T1").record),) * 2
    assert after["T2"][2] == ids.content_hash(valid("T2", tracking_number="1ZNEW").record)
    assert after["T2"][3].startswith("v0:")  # A's old hash: no new hash can equal it
    assert after["T3"][2:] == (ids.content_hash(valid("T3").record), None)
    assert sqlite3.connect(old_ledger).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert indexes(old_ledger) == {"consignments_queued", "consignments_sent"}  # every state's went
    Ledger(old_ledger).close()
    assert snapshot(old_ledger) == after


def test_after_the_upgrade_the_same_input_changes_nothing_and_a_change_is_filed(old_ledger):
    ledger = Ledger(old_ledger)
    counts = ledger.ingest("shop", "MKT001", "src", [valid("T1"), valid("T2", tracking_number="1ZNEW"),
                                                       valid("T3")])
    assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 3)
    assert {r.transaction_id: r.action for r in ledger.claim("shop", "B2", 10)} == {
        "T2": Action.REPLACE, "T3": Action.ADD}
    accept(ledger, "B2", "T2", "T3")
    ledger.ingest("shop", "MKT001", "src", [valid("T1", tracking_number="1ZT1")])
    [row] = ledger.claim("shop", "B3", 10)
    assert (row.transaction_id, row.action, row.record.tracking_number) == ("T1", Action.REPLACE, "1ZT1")
    ledger.close()


def test_content_accepted_before_the_last_change_is_filed_again_if_it_comes_back(old_ledger):
    ledger = Ledger(old_ledger)
    ledger.ingest("shop", "MKT001", "src", [valid("T2")])  # back to A, which CBP has
    assert ledger.get("T2")["state"] == State.QUEUED and ledger.get("T2")["action"] == Action.REPLACE
    ledger.close()


def test_a_ledger_from_a_later_version_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(S321Error, match="newer than this s321 knows"):
        Ledger(path)


def consignment_rows(path):
    """Every consignment as `Ledger.get` returns it, but where its record is kept."""
    ledger = Ledger(path)
    db = sqlite3.connect(path)
    try:
        txids = [r[0] for r in db.execute("SELECT transaction_id FROM consignments")]
        return {t: {k: v for k, v in ledger.get(t).items() if k in VERSION_2_COLUMNS} for t in txids}
    finally:
        db.close()
        ledger.close()


@pytest.fixture
def version_2_ledger(tmp_path):
    """A ledger as version 2 left it: T1 accepted, T2 sent, T3 queued, T4 invalid
    (no record)."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.ingest("shop", "MKT001", "src", [valid("T1")])
    ledger.claim("shop", "B1", 10)
    accept(ledger, "B1", "T1")
    ledger.ingest("shop", "MKT001", "src", [valid("T2")])
    ledger.claim("shop", "B2", 10)
    ledger.ingest("shop", "MKT001", "src", [valid("T3"), Outcome("ref-T4", Status.INVALID, "f.jsonl:4", None, [
        error("malformed", "items.0.quantity", "x")])])
    ledger.close()
    before = consignment_rows(path)
    as_version_2(path)
    return path, before


def test_opening_a_version_2_ledger_moves_its_records_to_their_own_table_once(version_2_ledger):
    path, before = version_2_ledger
    assert consignment_rows(path) == before  # opened: upgraded, with every column as it was
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "record" not in {r[1] for r in db.execute("PRAGMA table_info(consignments)")}
    assert db.execute("SELECT COUNT(*) FROM bodies").fetchone()[0] == 4
    db.close()
    assert indexes(path) == {"consignments_queued", "consignments_sent"}
    assert consignment_rows(path) == before
    # Version 4 on top: what was accepted is on file at its version, what was sent is on
    # the wire at its version and goes again as it went.
    ledger = Ledger(path)
    t1, t2, t3 = ledger.get("T1"), ledger.get("T2"), ledger.get("T3")
    assert (t1["on_file"], t1["accepted_version"]) == (1, t1["version"])
    assert (t2["on_file"], t2["wire_version"], t2["wire_action"]) == (1, t2["version"], "add")
    assert (t3["on_file"], t3["wire_version"], t3["accepted_version"]) == (0, None, None)
    ledger.close()


def test_after_moving_the_records_the_queue_and_the_wire_go_on(version_2_ledger):
    path, _ = version_2_ledger
    ledger = Ledger(path)
    [sent] = ledger.sent_in("shop", ["B2"])
    assert (sent.transaction_id, sent.record.model_copy(update={"version": None})) == ("T2", valid("T2").record)
    counts = ledger.ingest("shop", "MKT001", "src", [valid("T1"), valid("T2"), valid("T3"), valid("T5")])
    assert (counts.new, counts.changed, counts.unchanged) == (1, 0, 3)
    claimed = {r.transaction_id: r for r in ledger.claim("shop", "B3", 10)}
    assert sorted(claimed) == ["T3", "T5"]
    assert claimed["T3"].record.model_copy(update={"version": None}) == valid("T3").record
    ledger.ingest("shop", "MKT001", "src", [valid("T1", tracking_number="1ZT1")])
    [row] = ledger.claim("shop", "B4", 10)
    assert (row.transaction_id, row.action, row.record.tracking_number) == ("T1", Action.REPLACE, "1ZT1")
    ledger.close()


def as_version_7(path):
    """History as schema 7 had it: no record key, an index by transaction id."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX history_by_consignment")
    db.execute("ALTER TABLE history DROP COLUMN consignment")
    db.execute("CREATE INDEX history_of ON history (transaction_id)")
    db.execute("PRAGMA user_version=7")
    db.close()


def test_opening_a_version_7_ledger_keys_its_history_by_record_once(tmp_path):
    """Schema 8: history lines are found by the record's integer key (numbered as records
    arrive, so a batch's lines land on neighbouring index pages), not by transaction id;
    the lines written before keep their place in `show`, and new lines follow them."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.ingest("shop", "MKT001", "src", [valid("T1"), valid("T2")])
    ledger.claim("shop", "B1", 10)
    accept(ledger, "B1", "T1")
    before = {t: ledger.history(t) for t in ("T1", "T2")}
    ledger.close()
    as_version_7(path)

    ledger = Ledger(path)
    assert {t: ledger.history(t) for t in ("T1", "T2")} == before
    accept(ledger, "B1", "T2")
    assert [h["event"] for h in ledger.history("T2")] == [e["event"] for e in before["T2"]] + ["accepted"]
    ledger.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                         " AND tbl_name='history'")} == {"history_by_consignment"}
        assert db.execute("SELECT COUNT(*) FROM history WHERE consignment IS NULL").fetchone()[0] == 0
        plan = " ".join(r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT at FROM history WHERE consignment ="
            " (SELECT body_id FROM consignments WHERE transaction_id='T1')"))
        assert "history_by_consignment" in plan
    finally:
        db.close()

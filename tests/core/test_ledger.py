"""The ledger's promises, on a real SQLite file and a real PostgreSQL database (the
`ledger` fixture): idempotent ingestion, replace on change, sent before the wire, acks
resolve, duplicates count as accepted, dead letters."""

import sqlite3
from datetime import UTC, datetime

import pytest

from s321 import ids

from builders import consignment, marketplace_fields
from ledger_steps import sqlite_only
from s321.contracts import Ack, AckError, AckStatus, RecordAck
from s321.findings import error
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.pipeline import Outcome, Status
from s321.record import Action
from s321.states import State


def valid(ref="A-1", txid="T1", **changes):
    return Outcome(ref, Status.VALID, "f.jsonl:1", consignment(marketplace_fields(**changes), txid=txid))


def ack(batch_id, *results):
    return Ack(batch_id=batch_id, received_at=datetime.now(UTC), results=[
        RecordAck(transaction_id=t, status=AckStatus(s), errors=[AckError(code=c, message=c) for c in codes])
        for t, s, *codes in results])


def state(ledger, txid):
    return ledger.get(txid)["state"]


@sqlite_only
def test_the_ledger_is_a_sqlite_file_in_wal_mode(ledger):
    db = sqlite3.connect(ledger.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_ingesting_the_same_consignment_again_changes_nothing(ledger):
    assert ledger.ingest("shop", "MKT001", "src", [valid()]).new == 1
    before = ledger.get("T1")
    counts = ledger.ingest("shop", "MKT001", "src", [valid()])
    assert (counts.new, counts.unchanged) == (0, 1)
    assert ledger.get("T1") == before


def test_a_changed_consignment_after_acceptance_is_queued_as_replace(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    [row] = ledger.claim("shop", "B1", 10)
    ledger.resolve(ack("B1", ("T1", "accepted")))
    assert state(ledger, "T1") == State.ACCEPTED
    ledger.ingest("shop", "MKT001", "src", [valid(tracking_number="1ZNEW")])
    [row] = ledger.claim("shop", "B2", 10)
    assert (row.action, row.record.action, row.record.tracking_number) == (Action.REPLACE, Action.REPLACE, "1ZNEW")


def test_a_change_before_filing_stays_an_add(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.ingest("shop", "MKT001", "src", [valid(tracking_number="1ZNEW")])
    [row] = ledger.claim("shop", "B1", 10)
    assert row.action == Action.ADD and row.record.tracking_number == "1ZNEW"


def test_claim_commits_sent_before_the_batch_leaves(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid(txid=f"T{i}", ref=f"A{i}") for i in range(5)])
    rows = ledger.claim("shop", "B1", 3)
    other = open_ledger(ledger.describe())  # what a restarted process would see
    try:
        states = {f"T{i}": other.get(f"T{i}")["state"] for i in range(5)}
    finally:
        other.close()
    assert sorted(t for t, s in states.items() if s == "sent") == sorted(r.transaction_id for r in rows)
    assert len(rows) == 3 and list(states.values()).count("queued") == 2


def test_acks_resolve_records_and_a_duplicate_of_an_add_counts_as_accepted(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid(txid=f"T{i}", ref=f"A{i}") for i in range(3)])
    ledger.claim("shop", "B1", 10)
    moved = ledger.resolve(ack("B1", ("T0", "accepted"), ("T1", "rejected", "duplicate"),
                               ("T2", "rejected", "invalid-hts")))
    assert moved == {"T0": State.ACCEPTED, "T1": State.ACCEPTED, "T2": State.REJECTED}
    assert ledger.get("T2")["last_error"] == "invalid-hts"


def test_a_late_ack_of_an_older_batch_does_not_undo_a_newer_state(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.claim("shop", "B1", 10)
    ledger.requeue(["T1"], "no ack in time")
    ledger.claim("shop", "B2", 10)
    assert ledger.resolve(ack("B1", ("T1", "rejected", "timeout"))) == {}
    assert state(ledger, "T1") == State.SENT
    assert ledger.resolve(ack("B2", ("T1", "accepted"))) == {"T1": State.ACCEPTED}


def test_requeue_waits_for_the_delay_and_dead_letters_past_the_budget(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid(txid=f"T{i}", ref=f"A{i}") for i in range(2)], now=1000.0)
    ledger.claim("shop", "B1", 10, now=1000.0)
    ledger.requeue(["T0", "T1"], "connection refused", {"T0": 30.0}, dead=["T1"], now=1001.0)
    assert ledger.claim("shop", "B2", 10, now=1020.0) == []
    assert [r.transaction_id for r in ledger.claim("shop", "B3", 10, now=1031.5)] == ["T0"]
    [dead] = ledger.dead()
    assert (dead["transaction_id"], dead["last_error"]) == ("T1", "connection refused")


def test_dlq_retry_gives_dead_records_a_fresh_budget(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.claim("shop", "B1", 10)
    ledger.requeue(["T1"], "refused", dead=["T1"])
    assert ledger.retry_dead() == 1
    [row] = ledger.claim("shop", "B2", 10)
    assert row.attempts == 1


def test_resend_and_delete_by_an_operator(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.claim("shop", "B1", 10)
    ledger.resolve(ack("B1", ("T1", "accepted")))
    assert ledger.resend("T1") == "T1: queued as replace"
    ledger.claim("shop", "B2", 10)
    ledger.resolve(ack("B2", ("T1", "accepted")))
    assert ledger.resend("T1", Action.DELETE) == "T1: queued as delete"
    [row] = ledger.claim("shop", "B3", 10)
    assert row.record.action == Action.DELETE
    with pytest.raises(KeyError):
        ledger.resend("T-unknown")


def test_delete_of_a_record_never_accepted_is_refused(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    with pytest.raises(ValueError, match="never accepted"):
        ledger.resend("T1", Action.DELETE)


def test_invalid_units_are_kept_with_their_findings(ledger):
    bad = Outcome("A-9", Status.INVALID, "f.csv:9", None, [error("malformed", "items.0.quantity", "x")])
    ledger.ingest("shop", "MKT001", "src", [bad])
    [row] = [r for r in ledger.status() if r["state"] == "invalid"]
    assert row["count"] == 1


def test_a_filed_record_that_turns_invalid_stays_filed(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.claim("shop", "B1", 10)
    ledger.resolve(ack("B1", ("T1", "accepted")))
    bad = Outcome("A-1", Status.INVALID, "f:1", consignment(marketplace_fields(tracking_number=None), txid="T1"),
                  [error("missing-one-of", "tracking_number", "x")])
    ledger.ingest("shop", "MKT001", "src", [bad])
    row = ledger.get("T1")
    assert row["state"] == State.ACCEPTED and "invalid" in row["last_error"]


def test_status_counts_per_pipeline_and_state(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid(txid=f"T{i}", ref=f"A{i}") for i in range(3)], now=50.0)
    ledger.claim("shop", "B1", 1)
    rows = {(r["pipeline"], r["state"]): r for r in ledger.status()}
    assert rows[("shop", "queued")]["count"] == 2 and rows[("shop", "sent")]["count"] == 1
    assert rows[("shop", "queued")]["oldest_queued"] == 50.0


def test_in_flight_counts_and_owed_says_whether_anything_is_left_or_due(ledger):
    assert ledger.in_flight("shop") == (0, 0) and ledger.owed("shop", 1000.0) == (False, False, False)
    ledger.ingest("shop", "MKT001", "src", [valid(txid=f"T{i}", ref=f"A{i}") for i in range(3)], now=1000.0)
    ledger.ingest("other", "MKT001", "src", [valid(txid="T9", ref="A9")], now=1000.0)
    assert ledger.in_flight("shop") == (3, 0) and ledger.owed("shop", 1000.0) == (True, False, True)
    ledger.claim("shop", "B1", 2, now=1000.0)
    ledger.requeue(["T0"], "connection refused", 30.0, now=1001.0)
    assert ledger.in_flight("shop") == (2, 1) and ledger.owed("shop", 1001.0) == (True, True, True)
    ledger.claim("shop", "B2", 1, now=1001.0)  # T2: all that is queued now waits out a backoff
    assert ledger.in_flight("shop") == (1, 2)
    assert ledger.owed("shop", 1002.0) == (True, True, False) and ledger.owed("shop", 1031.0).due
    ledger.resolve(ack("B1", ("T1", "accepted")))
    ledger.resolve(ack("B2", ("T2", "rejected", "invalid-hts")))
    ledger.requeue(["T0"], "refused", dead=["T0"], now=1002.0)
    assert ledger.in_flight("shop") == (0, 0) and ledger.owed("shop", 2000.0) == (False, False, False)
    assert ledger.in_flight("other") == (1, 0)


def test_input_files_are_remembered_with_their_units(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid()], input_file=("/in/a.csv", 10, 123))
    assert ledger.input_seen("shop", "/in/a.csv", 10, 123)
    assert not ledger.input_seen("shop", "/in/a.csv", 11, 123)


def test_a_consignment_twice_in_one_ingest_is_new_then_unchanged_or_changed(ledger):
    counts = ledger.ingest("shop", "MKT001", "src", [valid(), valid()])
    assert (counts.new, counts.changed, counts.unchanged) == (1, 0, 1)
    counts = ledger.ingest("shop", "MKT001", "src", [valid(txid="T2"), valid(txid="T2", tracking_number="1ZNEW"),
                                                     valid(txid="T3"), valid(txid="T2")])
    assert (counts.new, counts.changed, counts.unchanged) == (2, 2, 0)
    rows = {r.transaction_id: r for r in ledger.claim("shop", "B1", 10)}
    assert rows["T2"].record.model_copy(update={"version": None}) == valid(txid="T2").record
    assert rows["T2"].action == Action.ADD and rows["T2"].record.version == rows["T2"].version
    assert sorted(rows) == ["T1", "T2", "T3"]


def test_an_ingest_larger_than_a_chunk_stores_each_record_with_its_own_body(ledger):
    outcomes = [valid(txid=f"T{i}", ref=f"A{i}", tracking_number=f"1Z{i}") for i in range(1203)]
    counts = ledger.ingest("shop", "MKT001", "src", outcomes + outcomes[:3])
    assert (counts.new, counts.unchanged) == (1203, 3)
    rows = {r.transaction_id: r for r in ledger.claim("shop", "B1", 2000)}
    assert {t: r.record.tracking_number for t, r in rows.items()} == {f"T{i}": f"1Z{i}" for i in range(1203)}
    # Stored without its version, which goes on the wire with the action.
    assert ids.stamped(ledger.get("T7")["record"], "T7", "add", rows["T7"].version) == rows["T7"].record_json


# --------------------------------------------------------------------------- names and history (issue 15)


def test_records_are_found_by_the_names_people_use(ledger):
    ledger.ingest("shop", "MKT001", "src", [
        valid("shopify:#1001", "T1", house_bill_number="HB-1", tracking_number="LX1HK"),
        valid("shopify:#1002", "T2", house_bill_number="HB-2", master_bill_number="MB-9"),
        valid("shopify:#1003", "T3", master_bill_number="MB-9")])
    assert [ledger.find(r) for r in ("#1001", "1001", "shopify:#1001", "hb-1", " LX1HK ", "T1")] == [["T1"]] * 6
    assert ledger.find("MB-9") == ["T2", "T3"]  # a master bill names all of its houses
    assert ledger.find("#9999") == []
    # A name the record once had still finds it.
    ledger.ingest("shop", "MKT001", "src", [valid("shopify:#1001", "T1", house_bill_number="HB-1B")])
    assert ledger.find("HB-1") == ledger.find("HB-1B") == ["T1"]
    assert ledger.names(["T2", "T1", "T-none"]) == {"T1": "shopify:#1001", "T2": "shopify:#1002"}


def test_the_history_tells_what_happened_with_versions_and_codes_only(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid("A-1", "T1")])
    [row] = ledger.claim("shop", "B1", 10)
    ledger.requeue(["T1"], "connection lost before the ack")
    ledger.claim("shop", "B2", 10)
    ledger.resolve(ack("B2", ("T1", "rejected", "value-over-limit")))
    ledger.resend("T1")
    ledger.claim("shop", "B3", 10)
    ledger.resolve(ack("B3", ("T1", "accepted")))
    events = ledger.history("T1")
    assert [e["event"] for e in events] == ["queued", "sent", "queued", "sent", "rejected", "resent", "sent",
                                           "accepted"]
    assert events[1]["detail"] == "add in batch B1" and events[1]["version"] == row.version
    assert events[4]["detail"].endswith(": value-over-limit")
    assert events[-1]["version"] == ledger.get("T1")["accepted_version"] > row.version
    # Only codes and places: nothing of the record's content.
    assert "Quartermaine" not in str(events)


def test_status_findings_of_invalid_rejected_and_dead_records(ledger):
    bad = Outcome("A-2", Status.INVALID, "f.jsonl:2", None, [error("missing-required", "tracking_number", "add it")])
    ledger.ingest("shop", "MKT001", "src", [valid("A-1", "T1"), bad, valid("A-3", "T3")])
    ledger.claim("shop", "B1", 10)
    ledger.resolve(ack("B1", ("T1", "rejected", "not-section-321")))
    ledger.requeue(["T3"], "certificate refused", dead=["T3"])
    rows = {r["ref"]: r for r in ledger.needing_attention()}
    assert {k: r["state"] for k, r in rows.items()} == {"A-1": "rejected", "A-2": "invalid", "A-3": "dead"}
    assert rows["A-1"]["findings"][0]["code"] == "not-section-321"
    assert rows["A-2"]["findings"][0]["field"] == "tracking_number"
    assert rows["A-3"]["last_error"] == "certificate refused"
    assert ledger.needing_attention("other") == []


def test_raw_units_of_invalid_records_are_kept_until_purged(ledger):
    bad = Outcome("A-2", Status.INVALID, "f.jsonl:2", None, [error("missing-required", "tracking_number", "x")])
    ledger.ingest("shop", "MKT001", "src", [valid("A-1", "T1"), bad], raw={"A-2": b"unit", "A-1": b"never kept"},
                  now=1000.0)
    [(txid, st, blob)] = ledger.raw_units("shop")
    assert (st, blob) == ("invalid", b"unit")
    assert ledger.purge_raw(older_than=999.0) == 0
    assert ledger.purge_raw(older_than=1001.0) == 1 and ledger.raw_units("shop", include_filed=True) == []
    ledger.set_fingerprint("shop", "abc")
    assert ledger.fingerprint("shop") == "abc" and ledger.fingerprint("other") is None


def test_a_version_4_ledger_gets_its_names_indexed_on_open(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.ingest("shop", "MKT001", "src", [valid("shopify:#1001", "T1", house_bill_number="HB-1")])
    ledger.close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM refs")
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
    ledger = Ledger(path)
    try:
        assert ledger.find("#1001") == ledger.find("HB-1") == ["T1"]
    finally:
        ledger.close()


def test_a_sqlite_ledger_never_loads_the_postgresql_driver(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from s321.ledger_open import open_ledger; import s321.ledger_copy, s321.ledger_migrate;"
            f" open_ledger({str(tmp_path / 'l.sqlite')!r}).close(); print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

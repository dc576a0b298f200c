"""What the ledger's per-record shortcuts (issue 21) must keep: the rows they write by a
key other than the transaction id are the right rows, and what they store reads back as
the slow way wrote it. On a real SQLite file and a real PostgreSQL database."""

import json
import sqlite3
from datetime import UTC, datetime

from builders import consignment, marketplace_fields
from ledger_steps import sqlite_only
from s321 import ids
from s321.contracts import Ack, AckError, AckStatus, RecordAck
from s321.findings import warning
from s321.pipeline import Outcome, Status
from s321.states import State


def valid(ref, txid, findings=()):
    return Outcome(ref, Status.VALID, "f.jsonl:1", consignment(marketplace_fields(), txid=txid), list(findings))


def test_an_answer_settles_its_own_row_when_row_numbers_and_body_ids_differ(ledger):
    """Resolve updates rows by the key its read returned (SQLite: the rowid). Rows are
    renumbered here (as VACUUM may do) so that no rowid equals its body id: a resolve
    that took the wrong column would settle another record, or none."""
    ledger.ingest("shop", "MKT001", "src", [valid(f"A-{i}", f"T{i}") for i in range(1, 5)])
    if ledger.backend == "sqlite":
        with ledger.transaction() as db:
            db.execute("UPDATE consignments SET rowid = 1000 - rowid")
            assert db.execute("SELECT COUNT(*) FROM consignments WHERE rowid = body_id").fetchone()[0] == 0
    rows = ledger.claim("shop", "B1", 10)
    assert sorted(r.transaction_id for r in rows) == ["T1", "T2", "T3", "T4"]
    moved = ledger.resolve(Ack(batch_id="B1", received_at=datetime.now(UTC), results=[
        RecordAck(transaction_id="T2", status=AckStatus.ACCEPTED),
        RecordAck(transaction_id="T3", status=AckStatus.REJECTED,
                  errors=[AckError(code="bad-value", field="items.0.hts_code", message="no such code")])]))
    assert moved == {"T2": State.ACCEPTED, "T3": State.REJECTED}
    assert {t: ledger.get(t)["state"] for t in ("T1", "T2", "T3", "T4")} == {
        "T1": "sent", "T2": "accepted", "T3": "rejected", "T4": "sent"}
    assert [h["event"] for h in ledger.history("T2")] == ["queued", "sent", "accepted"]
    assert [h["event"] for h in ledger.history("T1")] == ["queued", "sent"]


def test_the_stored_answer_is_the_answers_own_json(ledger):
    ledger.ingest("shop", "MKT001", "src", [valid("A-1", "T1"), valid("A-2", "T2")])
    ledger.claim("shop", "B1", 10)
    accepted = RecordAck(transaction_id="T1", status=AckStatus.ACCEPTED, version=ledger.get("T1")["version"])
    rejected = RecordAck(transaction_id="T2", status=AckStatus.REJECTED,
                         errors=[AckError(code="bad-value", field="seller.name", message="é \"quoted\"")])
    ledger.resolve(Ack(batch_id="B1", received_at=datetime.now(UTC), results=[accepted, rejected]))
    assert ledger.get("T1")["ack"] == accepted.model_dump_json()
    assert ledger.get("T2")["ack"] == rejected.model_dump_json()
    assert ledger.needing_attention()[0]["findings"][0]["code"] == "bad-value"


def test_findings_are_stored_as_json_with_or_without_any(ledger):
    """A record without findings stores `[]` (json.dumps of none, written without the
    call); one with findings their JSON; reading either again changes nothing."""
    note = warning("missing-hts", "items.0.hts_code", "no HTS code", "f.jsonl:1")
    outcomes = [valid("A-1", "T1"), valid("A-2", "T2", [note])]
    ledger.ingest("shop", "MKT001", "src", outcomes)
    assert ledger.get("T1")["findings"] == "[]"
    assert json.loads(ledger.get("T2")["findings"]) == [note.model_dump(mode="json", exclude_none=True)]
    counts = ledger.ingest("shop", "MKT001", "src", outcomes)
    assert (counts.new, counts.changed, counts.unchanged) == (0, 0, 2)


@sqlite_only
def test_the_stored_body_and_hash_are_those_of_the_model(ledger):
    record = consignment(marketplace_fields(), txid="T1")
    ledger.ingest("shop", "MKT001", "src", [Outcome("A-1", Status.VALID, "f.jsonl:1", record)])
    db = sqlite3.connect(ledger.path)
    body, digest = db.execute("SELECT record, content_hash FROM consignments JOIN bodies"
                              " ON bodies.id = consignments.body_id").fetchone()
    assert body == record.model_dump_json(exclude_none=True, exclude={"version"})
    assert digest == ids.content_hash(record)


def test_a_plain_acceptance_is_stored_as_its_model_writes_it(ledger):
    """Acceptances without errors are written from a template: the same text as the
    model's, with or without a version; answers with errors go through the model."""
    ledger.ingest("shop", "MKT001", "src", [valid(f"A-{i}", f"T{i}") for i in range(1, 4)])
    ledger.claim("shop", "B1", 10)
    answers = [RecordAck(transaction_id="T1", status=AckStatus.ACCEPTED),
               RecordAck(transaction_id="T2", status=AckStatus.ACCEPTED, version=ledger.get("T2")["version"]),
               RecordAck(transaction_id="T3", status=AckStatus.ACCEPTED,
                         errors=[AckError(code="duplicate", message="seen")])]
    ledger.resolve(Ack(batch_id="B1", received_at=datetime.now(UTC), results=answers))
    for answer in answers:
        assert ledger.get(answer.transaction_id)["ack"] == answer.model_dump_json()
        assert ledger.get(answer.transaction_id)["state"] == "accepted"
    assert ledger.history("T3")[-1]["detail"] == "accepted in batch B1: duplicate"
    assert ledger.history("T1")[-1]["detail"] == "accepted in batch B1"


def test_a_record_carrying_a_version_is_stored_without_it():
    """`filed_json` leaves the version out (the ledger keeps it apart), whether the
    record carries one (the relay's clients) or not."""
    record = consignment(marketplace_fields(), txid="T1")
    plain = ids.filed_json(record)
    record.version = 1796606736354515
    assert ids.filed_json(record) == plain
    assert plain == (record.model_dump_json(exclude_none=True, exclude={"version"}), ids.content_hash(record))

"""A batch claimed from the ledger carries the records' stored JSON: on the wire it is
byte for byte the batch of the equivalent models, and a transport that reads
`batch.records` still gets models."""

from datetime import UTC, datetime

import pytest

from builders import consignment, marketplace_fields
from s321.adapters.file import FileOptions, FileTransport
from s321.config import RetrySection
from s321.contracts import Ack, AckStatus, Batch, RecordAck, StoredBatch
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.plugins.wire_s321 import S321Json
from s321.record import Action
from s321.transmitter import Transmitter

WIRE = S321Json()
SENT_AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield ledger
    ledger.close()


def outcome(txid, action=Action.ADD, **changes):
    record = consignment(marketplace_fields(**changes), txid=txid)
    record.action = action
    return Outcome(f"ref-{txid}", Status.VALID, "f.jsonl:1", record)


def accept_all(ledger, batch_id, rows):
    ledger.resolve(Ack(batch_id=batch_id, received_at=SENT_AT, results=[
        RecordAck(transaction_id=r.transaction_id, status=AckStatus.ACCEPTED) for r in rows]))


def stored(rows, batch_id="B9"):
    return StoredBatch.of(batch_id, "MKT001", "pilot-2019", SENT_AT, [r.record_json for r in rows])


def models(*pairs, versions=None):
    """The records as a transport gets them from a batch of models: (outcome, action),
    with the versions the ledger gave them (`versions`, in order)."""
    records = []
    for i, (o, action) in enumerate(pairs):
        record = o.record.model_copy(deep=True)
        record.action = action
        record.version = versions[i] if versions else None
        records.append(record)
    return Batch(batch_id="B9", originator_code="MKT001", profile="pilot-2019", sent_at=SENT_AT,
                 records=records)


def test_a_claimed_batch_encodes_to_the_bytes_of_its_models_whatever_the_action(ledger):
    plain, changed, deleted = outcome("T1"), outcome("T2"), outcome("T3")
    # Stored with `replace` in its JSON (as the relay ingests a client's replace), but
    # never filed here: the row says add, and the row wins.
    relayed = outcome("T4 \"quoted\" é", Action.REPLACE)
    ledger.ingest("shop", "MKT001", "src", [changed, deleted])
    accept_all(ledger, "B1", ledger.claim("shop", "B1", 10))
    newer = outcome("T2", tracking_number="1ZNEW")
    ledger.ingest("shop", "MKT001", "src", [plain, newer, relayed])
    ledger.resend("T3", Action.DELETE)
    rows = ledger.claim("shop", "B2", 10)
    assert {r.transaction_id: r.action for r in rows} == {
        "T1": Action.ADD, "T2": Action.REPLACE, "T3": Action.DELETE, "T4 \"quoted\" é": Action.ADD}
    expected = {"T1": (plain, Action.ADD), "T2": (newer, Action.REPLACE), "T3": (deleted, Action.DELETE),
                "T4 \"quoted\" é": (relayed, Action.ADD)}
    spliced = WIRE.encode_batch(stored(rows))
    versions = [r.version for r in rows]
    assert all(versions)
    assert spliced == WIRE.encode_batch(models(*(expected[r.transaction_id] for r in rows), versions=versions))
    assert WIRE.decode_batch(spliced) == models(*(expected[r.transaction_id] for r in rows), versions=versions)


def test_rows_still_give_their_record_as_a_model_with_the_rows_action(ledger):
    ledger.ingest("shop", "MKT001", "src", [outcome("T1", Action.REPLACE)])
    [row] = ledger.claim("shop", "B1", 10)
    assert row.action is Action.ADD and row.record.action is Action.ADD
    assert row.record == outcome("T1").record.model_copy(update={"version": row.version})


def test_records_are_decoded_on_first_access_and_are_the_batch_from_then_on(ledger):
    ledger.ingest("shop", "MKT001", "src", [outcome("T1"), outcome("T2")])
    rows = ledger.claim("shop", "B1", 10)
    batch = stored(rows)
    assert batch.records_json() == [r.record_json for r in rows]
    assert [r.transaction_id for r in batch.records] == ["T1", "T2"]
    assert batch.records_json() is None
    batch.records[0].tracking_number = "1ZCHANGED"  # a transport may change what it sends
    assert WIRE.decode_batch(WIRE.encode_batch(batch)).records[0].tracking_number == "1ZCHANGED"


def test_a_stored_batch_dumps_compares_and_prints_as_a_batch_of_models(ledger):
    ledger.ingest("shop", "MKT001", "src", [outcome("T1")])
    rows = ledger.claim("shop", "B1", 10)
    as_models = models((outcome("T1"), Action.ADD), versions=[rows[0].version])
    assert stored(rows).model_dump_json(exclude_none=True) == as_models.model_dump_json(exclude_none=True)
    assert stored(rows).model_dump() == as_models.model_dump()
    assert stored(rows) == as_models and as_models == stored(rows)
    assert "T1" in repr(stored(rows)) and dict(stored(rows))["records"] == as_models.records
    copy = stored(rows).model_copy(update={"batch_id": "B10"})
    assert copy.batch_id == "B10" and copy.records == as_models.records


def test_the_transmitter_hands_the_file_transport_a_batch_it_writes_as_models(ledger, tmp_path):
    ledger.ingest("shop", "MKT001", "src", [outcome("T1"), outcome("T2")])
    transport = FileTransport(FileOptions(directory=tmp_path / "out"), None, WIRE)
    sender = Transmitter(ledger, "shop", lambda: transport, "MKT001", "pilot-2019", RetrySection())
    assert sender.transmit() == 2
    [path] = (tmp_path / "out").iterdir()
    written = WIRE.decode_batch(path.read_bytes())
    assert [r.model_copy(update={"version": None}) for r in written.records] == [
        outcome("T1").record, outcome("T2").record]
    assert all(r.version for r in written.records)
    assert path.read_bytes() == WIRE.encode_batch(written)

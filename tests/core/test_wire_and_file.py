"""Wire format s321/1 round trips and refuses what is not s321/1; the file transport
writes atomically; ids are stable."""

import json
from datetime import UTC, datetime

import pytest

from builders import consignment, marketplace_fields
from s321 import ids
from s321.adapters.file import FileOptions, FileTransport
from s321.contracts import Ack, AckError, AckStatus, Batch, RecordAck
from s321.plugins.wire_s321 import S321Json, WireFormatError
from s321.record import Action, Consignment

WIRE = S321Json()


def batch(n=2):
    return Batch(batch_id="B1", originator_code="MKT001", profile="pilot-2019", sent_at=datetime.now(UTC),
                 records=[consignment(marketplace_fields(), txid=f"T{i}") for i in range(n)])


def test_a_batch_round_trips_with_decimals_intact():
    b = batch()
    again = WIRE.decode_batch(WIRE.encode_batch(b))
    assert again == b
    body = json.loads(WIRE.encode_batch(b))
    assert (body["format"], body["type"]) == ("s321/1", "batch")
    assert body["records"][0]["items"][0]["listed_price"] == "19.99"  # money as a string, never a float


def test_an_ack_round_trips():
    ack = Ack(batch_id="B1", received_at=datetime.now(UTC), results=[
        RecordAck(transaction_id="T0", status=AckStatus.ACCEPTED),
        RecordAck(transaction_id="T1", status=AckStatus.REJECTED,
                  errors=[AckError(code="duplicate", message="already accepted")])])
    assert WIRE.decode_ack(WIRE.encode_ack(ack)) == ack


@pytest.mark.parametrize("data,match", [
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[1,2]", "must be a JSON object"),
    (b'{"format":"s321/2","type":"batch"}', "format"),
    (b'{"format":"s321/1","type":"ack"}', "type: expected 'batch'"),
    (b'{"format":"s321/1","type":"batch","batch_id":"x","originator_code":"y","profile":"p","sent_at":"now","records":[]}',
     "sent_at"),
    (b'{"format":"s321/1","type":"batch","batch_id":', "not UTF-8 JSON"),  # cut off after the head
])
def test_what_is_not_s321_1_is_refused_with_the_field_named(data, match):
    with pytest.raises(WireFormatError, match=match):
        WIRE.decode_batch(data)


def test_the_file_transport_renames_into_place(tmp_path):
    transport = FileTransport(FileOptions(directory=tmp_path / "out"), None, WIRE)
    transport.connect()
    receipt = transport.send(batch())
    assert receipt.batch_id == "B1"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["B1.json"]
    assert WIRE.decode_batch((tmp_path / "out" / "B1.json").read_bytes()).records[1].transaction_id == "T1"
    assert transport.capabilities.acknowledges is False and transport.acks() == []


def test_the_file_transport_classifies_an_unwritable_directory(tmp_path):
    from s321.errors import TransportError
    blocker = tmp_path / "file"
    blocker.write_text("")
    transport = FileTransport(FileOptions(directory=blocker / "sub"), None, WIRE)
    with pytest.raises(TransportError):
        transport.connect()


def test_transaction_ids_depend_on_originator_source_and_key_only():
    a = ids.transaction_id("MKT001", "shopify-csv", "#1001")
    assert a == ids.transaction_id("MKT001", "shopify-csv", "#1001")
    assert len({a, ids.transaction_id("MKT002", "shopify-csv", "#1001"),
                ids.transaction_id("MKT001", "shopify-json", "#1001"),
                ids.transaction_id("MKT001", "shopify-csv", "#1002")}) == 4


def test_the_content_hash_ignores_the_id_and_sees_every_change():
    one = consignment(marketplace_fields(), txid="T1")
    two = consignment(marketplace_fields(), txid="T2")
    assert ids.content_hash(one) == ids.content_hash(two)
    two.items[0].quantity = 3
    assert ids.content_hash(one) != ids.content_hash(two)
    two.items[0].quantity, two.action = 2, Action.REPLACE
    assert ids.content_hash(one) == ids.content_hash(two)


@pytest.mark.parametrize("txid", ["T1", 'T "quoted" \\ é \u2028 \x7f', '","action":"delete'])
def test_the_stored_json_and_its_hash_come_from_one_dump(txid):
    record = consignment(marketplace_fields(), txid=txid)
    text, digest = ids.filed_json(record)
    assert (text, digest) == (record.model_dump_json(exclude_none=True), ids.content_hash(record))
    assert ids.content_hash_of_json(text, txid) == digest
    record.action = Action.DELETE
    assert ids.stamped(text, txid, "delete", None) == record.model_dump_json(exclude_none=True)
    record.version = 1796606736354515
    assert ids.stamped(text, txid, "delete", record.version) == record.model_dump_json(exclude_none=True)
    assert ids.content_hash(record) == digest  # the version is not content
    assert ids.content_hash(Consignment(transaction_id=txid)) == ids.filed_json(Consignment(transaction_id=txid))[1]
    assert ids.stamped(text, "other", "delete", 1) is None  # not this record's text


def test_a_batch_written_by_another_json_library_decodes_too():
    batch = Batch(batch_id="B1", originator_code="MKT001", profile="pilot-2019",
                  sent_at=datetime(2026, 1, 2, tzinfo=UTC), records=[consignment(marketplace_fields())])
    spaced = json.dumps({"type": "batch", "format": "s321/1", **batch.model_dump(mode="json")}, indent=1)
    assert WIRE.decode_batch(spaced.encode()) == batch

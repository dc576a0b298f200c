"""What the sandbox stores for a record is the record as it understood it (derived, in
`model_dump_json(exclude_none=True)` form, without its version) and the hash of that,
never the bytes a client happened to send: a client that writes its JSON another way
(keys in another order, spaces, escapes, nulls, padded strings, lower-case codes, no
total) is stored and hashed exactly like one that writes it as s321 does. Real mutual
TLS to a real in-process sandbox, hand-written frames."""

from __future__ import annotations

import json
import socket
import sqlite3
from decimal import Decimal
from pathlib import Path

from builders import carrier_fields
from s321 import ids
from s321.adapters.p2p_socket.link import client_context
from s321.framing import FrameStream, FrameType, client_handshake
from s321.record import Consignment
from s321.rules import derive
from s321.sandbox import Sandbox

HEAD = '{"format":"s321/1","type":"batch","batch_id":"B1","originator_code":"CAR001",' \
       '"profile":"pilot-2019","sent_at":"2026-12-07T06:00:00Z","records":['


def send(sb: Sandbox, body: bytes) -> dict[str, object]:
    context = client_context(sb.ca_path, sb.client_cert, sb.client_key)
    stream = FrameStream(context.wrap_socket(socket.create_connection((sb.host, sb.port), timeout=5),
                                             server_hostname=sb.host))
    try:
        client_handshake(stream, ["s321/1"], 5)
        stream.write(FrameType.BATCH, body)
        while True:
            frame = stream.read(5)
            assert frame is not None
            if frame.type is FrameType.ACK:
                return json.loads(frame.body)
    finally:
        stream.close()


def test_a_record_sent_in_another_json_spelling_is_stored_and_hashed_as_its_canonical_form(
        tmp_path: Path) -> None:
    fields = carrier_fields()
    canonical = Consignment.model_validate({"transaction_id": "T-CANON", "version": 7, **fields})
    derive(canonical, {"USD": Decimal(1)})
    same_bytes = canonical.model_dump_json(exclude_none=True)
    # The same consignment, spelled otherwise: reversed keys, spaces, an escaped é and
    # slash, nulls, a padded name, a lower-case currency, and no total (derived here).
    other = dict(reversed(list({"transaction_id": "T-OTHER", "action": "add", "version": 7,
                                **fields, "tracking_number": None}.items())))
    other["consignment_originator"] = {**other["consignment_originator"],
                                       "name": "  Shenzhen Brightwave Trading Co "}
    other["items"] = [{**item, "currency": "usd", "description": item["description"] + " caf\u00e9/"}
                      for item in other["items"]]
    spelled = json.dumps(other, indent=1, ensure_ascii=True)
    assert "\\u00e9" in spelled and "null" in spelled and "total_value_usd" not in spelled
    body = (HEAD + same_bytes + "," + spelled + "]}").encode("utf-8")
    with Sandbox(tmp_path / "sandbox").start() as sb:
        ack = send(sb, body)
        assert [r["status"] for r in ack["results"]] == ["accepted", "accepted"]  # type: ignore[index]
    db = sqlite3.connect(tmp_path / "sandbox" / "sandbox.sqlite")
    try:
        stored = {txid: (h, text) for txid, h, text in db.execute(
            "SELECT transaction_id, content_hash, record FROM acceptances")}
    finally:
        db.close()
    expected_other = Consignment.model_validate_json(spelled)
    derive(expected_other, {"USD": Decimal(1)})
    for txid, model in (("T-CANON", canonical), ("T-OTHER", expected_other)):
        text, digest = ids.filed_json(model)
        assert stored[txid] == (digest, text)  # the very text, not just equal JSON
        assert digest == ids.content_hash(model)
    assert stored["T-CANON"][1] == same_bytes.replace(',"version":7', "")
    other_record = json.loads(stored["T-OTHER"][1])
    assert other_record["consignment_originator"]["name"] == "Shenzhen Brightwave Trading Co"
    assert other_record["items"][0]["currency"] == "USD"
    assert other_record["items"][0]["description"].endswith(" café/")
    assert other_record["total_value_usd"] == "39.98"
    assert "version" not in other_record and "tracking_number" not in other_record
    assert list(other_record)[:2] == ["transaction_id", "action"]  # the model's order, not the sender's

"""Review of a ledger upgraded from before versions (schema < 4) against a receiver that
holds records filed without versions: a change made after an unanswered add must reach
the receiver, whatever `duplicate` it answers."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from builders import consignment, marketplace_fields
from s321.contracts import Ack, AckError, AckStatus, Batch, RecordAck
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.record import Action
from s321.sandbox.review import Reviewer
from s321.sandbox.store import SandboxStore
from s321.states import State


def as_version_3(path: Path) -> None:
    """Turn a ledger file of this version back into one as version 3 wrote it (no versions)."""
    db = sqlite3.connect(path, isolation_level=None)
    for column in ("version", "wire_version", "wire_action", "wire_hash", "first_wire_version",
                   "accepted_version", "on_file"):
        db.execute(f"ALTER TABLE consignments DROP COLUMN {column}")
    db.execute("PRAGMA user_version=3")
    db.close()


def valid(**changes: object) -> Outcome:
    return Outcome("A-1", Status.VALID, "f.jsonl:1", consignment(marketplace_fields(**changes), txid="T1"))


def review(store: SandboxStore, record: object, batch_id: str) -> RecordAck:
    batch = Batch(batch_id=batch_id, originator_code="MKT001", profile="pilot-2019", sent_at=datetime.now(UTC),
                  records=[record])
    [result] = Reviewer(store).review(batch).results
    return result


def test_the_sandbox_does_not_vouch_for_a_version_it_never_saw(tmp_path: Path) -> None:
    """A `duplicate` for a transaction id held without a version echoed the add's version,
    which the ledger takes as proof that this very version is held."""
    store = SandboxStore(tmp_path / "sandbox.sqlite")
    try:
        old = valid().record
        assert review(store, old, "B1").status is AckStatus.ACCEPTED  # filed without a version
        new = valid(tracking_number="1ZNEW").record
        new.version = 1_700_000_000_000_000
        result = review(store, new, "B2")
        assert [e.code for e in result.errors] == ["duplicate"]
        assert result.version is None
    finally:
        store.close()


def test_a_change_after_an_unanswered_add_of_a_version_3_ledger_follows_as_a_replace(tmp_path: Path) -> None:
    """Before versions, an add sent and put back in the queue (no answer in time), then
    changed, was a queued `add` with nothing to say it may be held: after the upgrade the
    add of the change answered `duplicate` counted as proof, and the change was lost."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.ingest("shop", "MKT001", "src", [valid()])
    ledger.claim("shop", "B1", 10)
    ledger.requeue(["T1"], "no acknowledgement in time")
    ledger.ingest("shop", "MKT001", "src", [valid(tracking_number="1ZNEW")])
    ledger.close()
    as_version_3(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE consignments SET action='add'")  # as version 3 had it: nothing accepted yet
    db.close()
    ledger = Ledger(path)
    try:
        [row] = ledger.claim("shop", "B2", 10)
        assert row.record.tracking_number == "1ZNEW"
        ledger.resolve(Ack(batch_id="B2", received_at=datetime.now(UTC), results=[RecordAck(
            transaction_id="T1", status=AckStatus.REJECTED, errors=[AckError(code="duplicate", message="x")])]))
        assert ledger.get("T1")["state"] == State.QUEUED  # the receiver holds some version: not this one
        [again] = ledger.claim("shop", "B3", 10)
        assert (again.action, again.record.tracking_number) == (Action.REPLACE, "1ZNEW")
    finally:
        ledger.close()

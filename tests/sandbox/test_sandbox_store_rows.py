"""The sandbox store numbers consignments itself (their row read with their state, a new
one's the next): what it stores must be what SQLite's own numbering and a look-up by
transaction id gave. Real SQLite files, reviewed through the real Reviewer."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from builders import carrier_fields, consignment
from s321 import ids
from s321.contracts import AckStatus, Batch
from s321.record import Action, Consignment
from s321.sandbox import SandboxStore
from s321.sandbox.review import Reviewer


def carrier(txid: str, action: Action = Action.ADD, version: int | None = None) -> Consignment:
    record = consignment(carrier_fields(), txid=txid)
    record.action = action
    record.version = version
    return record


def batch(*records: Consignment) -> Batch:
    return Batch(batch_id=ids.batch_id(), originator_code="CAR001", profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=list(records))


def rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        consignments = db.execute("SELECT id, transaction_id, state, version FROM consignments"
                                  " ORDER BY id").fetchall()
        acceptances = db.execute(
            "SELECT a.transaction_id, a.action, a.version, a.consignment,"
            " (SELECT c.id FROM consignments c WHERE c.transaction_id = a.transaction_id)"
            " FROM acceptances a ORDER BY a.id").fetchall()
    finally:
        db.close()
    return consignments, acceptances


def test_new_and_held_consignments_in_one_batch_keep_their_numbers_and_keys(tmp_path: Path) -> None:
    """New consignments are numbered in the order they were accepted, after those held;
    a replace, a delete and a later version of a held one update its row in place; every
    acceptance is keyed by the row its transaction id has."""
    path = tmp_path / "sandbox.sqlite"
    store = SandboxStore(path)
    reviewer = Reviewer(store)
    try:
        first = reviewer.review(batch(carrier("T-A", version=1), carrier("T-B", version=1),
                                      carrier("T-C", version=1)))
        assert [r.status for r in first.results] == [AckStatus.ACCEPTED] * 3
        second = reviewer.review(batch(
            carrier("T-D", version=1),                        # new
            carrier("T-B", Action.REPLACE, version=2),        # held: updated in place
            carrier("T-E", version=1),                        # new
            carrier("T-E", Action.REPLACE, version=2),        # new, then changed in the same batch
            carrier("T-C", Action.DELETE, version=2),         # held: deleted
            carrier("T-A", version=1),                        # held: a duplicate, no row written
        ))
        assert [r.status for r in second.results] == [AckStatus.ACCEPTED] * 5 + [AckStatus.REJECTED]
        assert store.accepted_counts() == {"T-A": 1, "T-B": 2, "T-C": 2, "T-D": 1, "T-E": 2}
    finally:
        store.close()
    consignments, acceptances = rows(path)
    assert consignments == [(1, "T-A", "active", 1), (2, "T-B", "active", 2), (3, "T-C", "deleted", 2),
                            (4, "T-D", "active", 1), (5, "T-E", "active", 2)]
    assert [(t, a, v, key) for t, a, v, key, _ in acceptances] == [
        ("T-A", "add", 1, 1), ("T-B", "add", 1, 2), ("T-C", "add", 1, 3),
        ("T-D", "add", 1, 4), ("T-B", "replace", 2, 2), ("T-E", "add", 1, 5),
        ("T-E", "replace", 2, 5), ("T-C", "delete", 2, 3)]
    assert all(key == looked_up for *_, key, looked_up in acceptances)


def test_a_store_opened_again_numbers_on_from_its_last_consignment(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite"
    for txid in ("T-1", "T-2"):
        store = SandboxStore(path)
        try:
            Reviewer(store).review(batch(carrier(txid)))
        finally:
            store.close()
    consignments, acceptances = rows(path)
    assert [(i, t) for i, t, _, _ in consignments] == [(1, "T-1"), (2, "T-2")]
    assert [key for *_, key, _ in acceptances] == [1, 2]


def test_an_acceptance_made_without_reading_the_state_first_finds_the_held_row(tmp_path: Path) -> None:
    """`Session.accept` of a held transaction id whose state this session never read (the
    ACE path, a caller of its own) updates that row, never inserts a second one."""
    path = tmp_path / "sandbox.sqlite"
    store = SandboxStore(path)
    try:
        with store.session() as session:
            session.accept(carrier("T-1"), "B1")
        with store.session() as session:
            session.accept(carrier("T-1", Action.REPLACE), "B2")
            session.accept_shipment("SCN1", "add", "B2", "ST*309*0001~")
        with store.session() as session:
            session.accept_shipment("SCN1", "update", "B3", "ST*309*0002~")
    finally:
        store.close()
    consignments, acceptances = rows(path)
    assert [(i, t) for i, t, _, _ in consignments] == [(1, "T-1"), (2, "SCN1")]
    assert [(t, key) for t, _, _, key, _ in acceptances] == [("T-1", 1), ("T-1", 1), ("SCN1", 2),
                                                              ("SCN1", 2)]


def test_a_transaction_id_held_after_all_rolls_the_batch_back(tmp_path: Path) -> None:
    """Should a row appear for a transaction id the session read as absent (never, while
    the session holds the write lock), the insert fails and nothing of the batch is kept:
    never a consignment stored twice."""
    path = tmp_path / "sandbox.sqlite"
    store = SandboxStore(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            with store.session() as session:
                assert session.state("T-1") is None
                session._db.execute("INSERT INTO consignments (transaction_id, state, updated_at)"
                                    " VALUES ('T-1', 'active', 'now')")
                session.accept(carrier("T-1"), "B1")
                session.accept(carrier("T-2"), "B1")
        assert store.accepted_counts() == {}
    finally:
        store.close()
    assert rows(path) == ([], [])

"""Steps of the ledger's tests: a valid outcome, a receiver's answer about one record,
one record claimed, and the mark of a test that runs on the SQLite ledger only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from builders import consignment, marketplace_fields
from s321.contracts import Ack, AckError, AckStatus, RecordAck
from s321.ledger import Ledger, Row
from s321.pipeline import Outcome, Status


def valid(txid: str = "T1", **changes: object) -> Outcome:
    return Outcome("A-1", Status.VALID, "f.jsonl:1", consignment(marketplace_fields(**changes), txid=txid))


def answer(batch_id: str, txid: str, status: str, *codes: str, version: int | None = None) -> Ack:
    return Ack(batch_id=batch_id, received_at=datetime.now(UTC), results=[RecordAck(
        transaction_id=txid, status=AckStatus(status), version=version,
        errors=[AckError(code=c, message=c) for c in codes])])


def claim_one(ledger: Ledger, batch_id: str) -> Row:
    rows = ledger.claim("shop", batch_id, 10)
    assert len(rows) == 1, rows
    return rows[0]


sqlite_only = pytest.mark.parametrize("ledger", ["sqlite"], indirect=True)
"""A test about the SQLite file itself (its pages, its lock, PRAGMAs): the `ledger`
fixture gives only the SQLite ledger."""

"""The relay's routing table, in the relay ledger's own SQLite file: which client (and
which of its sessions, under which of its batch ids) each transaction id came from,
and the acknowledgements waiting to go back. Durable, so acks find their client after
either side restarts; an ack leaves the outbox only when the client confirms it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from s321.sqlitefile import SqliteFile
from s321.states import State

SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_lanes (
    lane              TEXT PRIMARY KEY,
    client            TEXT NOT NULL,
    originator_code   TEXT NOT NULL,
    profile           TEXT NOT NULL,
    filer_type        TEXT,
    mode_of_transport TEXT,
    created_at        REAL NOT NULL,
    UNIQUE (client, originator_code, profile)
);
CREATE TABLE IF NOT EXISTS relay_routes (
    transaction_id TEXT PRIMARY KEY,
    client         TEXT NOT NULL,
    session        TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relay_routes_client ON relay_routes (client, batch_id);
CREATE TABLE IF NOT EXISTS relay_outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    client         TEXT NOT NULL,
    session        TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    result         TEXT NOT NULL,
    created_at     REAL NOT NULL,
    sent_at        REAL
);
CREATE INDEX IF NOT EXISTS relay_outbox_session ON relay_outbox (client, session, seq);
"""


@dataclass(frozen=True)
class Lane:
    """One upstream stream of a client: its records under one envelope originator
    code and profile, sent by one Transmitter under ledger name `lane`."""

    lane: str
    client: str
    originator_code: str
    profile: str
    filer_type: str | None
    mode_of_transport: str | None


@dataclass(frozen=True)
class Pending:
    seq: int
    batch_id: str
    transaction_id: str
    result: str


class Routes(SqliteFile):
    """Thread-safe: one connection, serialised by a lock."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL"):
        super().__init__(path, SCHEMA, synchronous)
        self._db.row_factory = None  # rows as tuples here

    # ------------------------------------------------------------------ lanes

    def lane(self, client: str, originator_code: str, profile: str, filer_type: str | None,
             mode_of_transport: str | None) -> tuple[Lane, bool]:
        """The lane of (client, code, profile), made on first use; and whether it is new."""
        with self.transaction() as db:
            row = db.execute("SELECT lane FROM relay_lanes WHERE client=? AND originator_code=?"
                             " AND profile=?", (client, originator_code, profile)).fetchone()
            new = row is None
            if new:
                name = f"relay:{client}/{originator_code}/{profile}"
                db.execute("INSERT INTO relay_lanes VALUES (?,?,?,?,?,?,?)",
                           (name, client, originator_code, profile, filer_type,
                            mode_of_transport, time.time()))
            else:
                name = row[0]
        return Lane(name, client, originator_code, profile, filer_type, mode_of_transport), new

    def lanes(self, client: str) -> list[Lane]:
        with self._lock:
            rows = self._db.execute("SELECT lane, client, originator_code, profile, filer_type,"
                                    " mode_of_transport FROM relay_lanes WHERE client=?"
                                    " ORDER BY lane", (client,)).fetchall()
        return [Lane(*r) for r in rows]

    # ------------------------------------------------------------------ routes

    def owners(self, transaction_ids: Iterable[str]) -> dict[str, str]:
        """Transaction id -> the client it was first received from, for those known."""
        with self._lock:
            rows = self._db.execute("SELECT transaction_id, client FROM relay_routes WHERE"
                                    " transaction_id IN (SELECT value FROM json_each(?))",
                                    (json.dumps(list(transaction_ids)),)).fetchall()
        return dict(rows)

    def open_batches(self, client: str, states: Iterable[State] = (State.QUEUED, State.SENT),
                     excluding: Iterable[str] = ()) -> int:
        """How many of the client's batches still have a record in one of `states` in
        the relay ledger (the same file), leaving out the transaction ids in
        `excluding` (a batch that resends them replaces the batches they came in)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(DISTINCT r.batch_id) FROM relay_routes r JOIN consignments c"
                " ON c.transaction_id = r.transaction_id WHERE r.client=?"
                " AND c.state IN (SELECT value FROM json_each(?))"
                " AND r.transaction_id NOT IN (SELECT value FROM json_each(?))",
                (client, json.dumps([str(s) for s in states]), json.dumps(list(excluding)))).fetchone()
        return int(row[0])

    def route(self, client: str, session: str, batch_id: str, transaction_ids: list[str]) -> None:
        """Acks for these ids go to `session` under `batch_id` from now on; acks not yet
        delivered under an earlier batch id are dropped (the client resent them)."""
        now = time.time()
        with self.transaction() as db:
            for txid in transaction_ids:
                db.execute("DELETE FROM relay_outbox WHERE transaction_id=? AND batch_id<>?",
                           (txid, batch_id))
                db.execute("INSERT INTO relay_routes VALUES (?,?,?,?,?) ON CONFLICT"
                           " (transaction_id) DO UPDATE SET session=excluded.session,"
                           " batch_id=excluded.batch_id, updated_at=excluded.updated_at",
                           (txid, client, session, batch_id, now))

    # ------------------------------------------------------------------ outbox

    def result(self, transaction_id: str, result: str) -> tuple[str, str] | None:
        """Queue an upstream result for the client the record came from; returns that
        (client, session), or None for an id with no route."""
        with self.transaction() as db:
            row = db.execute("SELECT client, session, batch_id FROM relay_routes WHERE"
                             " transaction_id=?", (transaction_id,)).fetchone()
            if row is None:
                return None
            db.execute("INSERT INTO relay_outbox (client, session, batch_id, transaction_id,"
                       " result, created_at) VALUES (?,?,?,?,?,?)",
                       (row[0], row[1], row[2], transaction_id, result, time.time()))
        return row[0], row[1]

    def due(self, client: str, session: str, resend_before: float) -> list[Pending]:
        """Results not confirmed, never sent or last sent before `resend_before`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, batch_id, transaction_id, result FROM relay_outbox WHERE client=?"
                " AND session=? AND (sent_at IS NULL OR sent_at<?) ORDER BY seq",
                (client, session, resend_before)).fetchall()
        return [Pending(*r) for r in rows]

    def mark_sent(self, seqs: list[int]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany("UPDATE relay_outbox SET sent_at=? WHERE seq=?", [(now, s) for s in seqs])

    def delivered(self, client: str, session: str, batch_id: str, upto: int) -> int:
        with self.transaction() as db:
            return db.execute("DELETE FROM relay_outbox WHERE client=? AND session=? AND batch_id=?"
                              " AND seq<=?", (client, session, batch_id, upto)).rowcount

    def rewind(self, client: str, session: str) -> None:
        """Everything unconfirmed for this session is due again now (it reconnected)."""
        with self.transaction() as db:
            db.execute("UPDATE relay_outbox SET sent_at=NULL WHERE client=? AND session=?",
                       (client, session))

    def waiting(self, resend_before: float) -> list[tuple[str, str]]:
        """(client, session) pairs with results due."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT client, session FROM relay_outbox WHERE"
                                    " sent_at IS NULL OR sent_at<?", (resend_before,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def undelivered(self, client: str | None = None) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM relay_outbox WHERE ? IS NULL OR client=?",
                                   (client, client)).fetchone()
        return int(row[0])

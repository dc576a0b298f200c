"""The relay's routing table, in the relay ledger's own store (its SQLite file, or its
PostgreSQL database that several relays share): which client (and which of its
sessions, under which of its batch ids) each transaction id came from, and the
acknowledgements waiting to go back. Durable, so acks find their client after either
side restarts, and whichever relay got the answer; an ack leaves the outbox only when
the client confirms it.

The same SQL runs on both stores (s321.ledger_backend); the tables are made where
missing when a relay opens the ledger (on PostgreSQL under the schema's advisory lock,
so two relays starting together do not race).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from s321.ledger import Ledger
from s321.ledger_backend import SCHEMA_LOCK, Connection, Store
from s321.ledger_schema import LOOKUP_CHUNK
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
"""The relay's tables as SQLite spells them (PG_SCHEMA is derived from it)."""


def _postgres(schema: str) -> str:
    """SCHEMA as PostgreSQL spells it, as the ledger's own tables are (s321.ledger_schema):
    64-bit integers, doubles, text compared byte by byte; the outbox numbered by an identity."""
    out = schema.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', out)


PG_SCHEMA = _postgres(SCHEMA)


def _statements(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


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


class Routes:
    """The routing table on the store of `ledger` (the relay's ledger). Thread-safe as
    the store is: one connection under a lock on SQLite, a pool on PostgreSQL."""

    def __init__(self, ledger: Ledger):
        self._store: Store = ledger._store  # the same file or database, the same transactions
        self._make_tables()

    def _make_tables(self) -> None:
        shared = self._store.dialect.shared

        def make(db: Connection) -> None:
            if shared:  # two relays starting together, or a migration: one at a time
                db.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in _statements(PG_SCHEMA if shared else SCHEMA):
                db.execute(statement)

        self._store.run(make)

    def close(self) -> None:
        """Nothing of its own to close: the ledger's store is closed with the ledger."""

    # ------------------------------------------------------------------ lanes

    def lane(self, client: str, originator_code: str, profile: str, filer_type: str | None,
             mode_of_transport: str | None) -> tuple[Lane, bool]:
        """The lane of (client, code, profile), made on first use; and whether it is new
        (on a shared database: made by this relay; another relay making it at the same
        moment makes this transaction run again, and find it)."""

        def body(db: Connection) -> tuple[str, bool]:
            row = db.execute("SELECT lane FROM relay_lanes WHERE client=? AND originator_code=? AND profile=?",
                             (client, originator_code, profile)).fetchone()
            if row is not None:
                return str(row[0]), False
            name = f"relay:{client}/{originator_code}/{profile}"
            db.execute("INSERT INTO relay_lanes (lane, client, originator_code, profile, filer_type,"
                       " mode_of_transport, created_at) VALUES (?,?,?,?,?,?,?)",
                       (name, client, originator_code, profile, filer_type, mode_of_transport, time.time()))
            return name, True

        name, new = self._store.run(body)
        return Lane(name, client, originator_code, profile, filer_type, mode_of_transport), new

    def lanes(self, client: str) -> list[Lane]:
        with self._store.reading() as db:
            rows = db.execute("SELECT lane, client, originator_code, profile, filer_type, mode_of_transport"
                              " FROM relay_lanes WHERE client=? ORDER BY lane", (client,)).fetchall()
        return [Lane(*tuple(r)) for r in rows]

    # ------------------------------------------------------------------ routes

    def owners(self, transaction_ids: Iterable[str]) -> dict[str, str]:
        """Transaction id -> the client it was first received from, for those known."""
        txids = list(transaction_ids)
        out: dict[str, str] = {}
        with self._store.reading() as db:
            for i in range(0, len(txids), LOOKUP_CHUNK):
                chunk = txids[i:i + LOOKUP_CHUNK]
                out.update((r[0], r[1]) for r in db.execute(
                    f"SELECT transaction_id, client FROM relay_routes WHERE transaction_id IN ({_marks(chunk)})",
                    chunk))
        return out

    def open_batches(self, client: str, states: Iterable[State] = (State.QUEUED, State.SENT),
                     excluding: Iterable[str] = ()) -> int:
        """How many of the client's batches still have a record in one of `states` in
        the relay ledger (the same store), leaving out the transaction ids in
        `excluding` (a batch that resends them replaces the batches they came in).
        At most the client's window of records is open, so they are read, not counted
        in SQL (one statement for both stores, whatever the number of ids left out)."""
        wanted = [str(s) for s in states]
        left_out = set(excluding)
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT r.batch_id, r.transaction_id FROM relay_routes r JOIN consignments c"
                f" ON c.transaction_id = r.transaction_id WHERE r.client=? AND c.state IN ({_marks(wanted)})",
                (client, *wanted)).fetchall()
        return len({r[0] for r in rows if r[1] not in left_out})

    def route(self, client: str, session: str, batch_id: str, transaction_ids: list[str]) -> None:
        """Acks for these ids go to `session` under `batch_id` from now on; acks not yet
        delivered under an earlier batch id are dropped (the client resent them)."""
        now = time.time()

        def body(db: Connection) -> None:
            db.executemany("DELETE FROM relay_outbox WHERE transaction_id=? AND batch_id<>?",
                           [(txid, batch_id) for txid in transaction_ids])
            db.executemany("INSERT INTO relay_routes (transaction_id, client, session, batch_id, updated_at)"
                           " VALUES (?,?,?,?,?) ON CONFLICT (transaction_id) DO UPDATE SET"
                           " session=excluded.session, batch_id=excluded.batch_id, updated_at=excluded.updated_at",
                           [(txid, client, session, batch_id, now) for txid in transaction_ids])

        self._store.run(body)

    # ------------------------------------------------------------------ outbox

    def result(self, transaction_id: str, result: str) -> tuple[str, str] | None:
        """Queue an upstream result for the client the record came from; returns that
        (client, session), or None for an id with no route."""

        def body(db: Connection) -> tuple[str, str] | None:
            row = db.execute("SELECT client, session, batch_id FROM relay_routes WHERE transaction_id=?",
                             (transaction_id,)).fetchone()
            if row is None:
                return None
            db.execute("INSERT INTO relay_outbox (client, session, batch_id, transaction_id, result, created_at)"
                       " VALUES (?,?,?,?,?,?)", (row[0], row[1], row[2], transaction_id, result, time.time()))
            return str(row[0]), str(row[1])

        return self._store.run(body)

    def due(self, client: str, session: str, resend_before: float) -> list[Pending]:
        """Results not confirmed, never sent or last sent before `resend_before`."""
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT seq, batch_id, transaction_id, result FROM relay_outbox WHERE client=?"
                " AND session=? AND (sent_at IS NULL OR sent_at<?) ORDER BY seq",
                (client, session, resend_before)).fetchall()
        return [Pending(*tuple(r)) for r in rows]

    def mark_sent(self, seqs: list[int]) -> None:
        now = time.time()
        self._store.run(lambda db: db.executemany("UPDATE relay_outbox SET sent_at=? WHERE seq=?",
                                                  [(now, s) for s in seqs]))

    def delivered(self, client: str, session: str, batch_id: str, upto: int) -> int:
        """The client confirmed the ACK that went up to `upto`: the results it held are
        done. Only results already sent: on a shared database another relay may commit
        a result with a lower number after that ACK went (its number was drawn first),
        and that one has not reached the client yet."""
        return self._store.run(lambda db: int(db.execute(
            "DELETE FROM relay_outbox WHERE client=? AND session=? AND batch_id=? AND seq<=?"
            " AND sent_at IS NOT NULL", (client, session, batch_id, upto)).rowcount))

    def rewind(self, client: str, session: str) -> None:
        """Everything unconfirmed for this session is due again now (it reconnected)."""
        self._store.run(lambda db: db.execute("UPDATE relay_outbox SET sent_at=NULL WHERE client=? AND session=?",
                                              (client, session)))

    def waiting(self, resend_before: float) -> list[tuple[str, str]]:
        """(client, session) pairs with results due (whichever relay queued them)."""
        with self._store.reading() as db:
            rows = db.execute("SELECT DISTINCT client, session FROM relay_outbox WHERE"
                              " sent_at IS NULL OR sent_at<?", (resend_before,)).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def undelivered(self, client: str | None = None) -> int:
        with self._store.reading() as db:
            if client is None:
                row = db.execute("SELECT COUNT(*) FROM relay_outbox").fetchone()
            else:
                row = db.execute("SELECT COUNT(*) FROM relay_outbox WHERE client=?", (client,)).fetchone()
        return int(row[0])

"""The ledger: one SQLite file (WAL) holding every consignment's state, the single
source of truth between ingestion and transmission.

Promises: ingesting the same consignment again changes nothing; a changed one is queued
as `replace` once filed; `claim` commits `sent` before a batch leaves; `resolve` maps
acks (a duplicate of an accepted `add` counts as accepted); a record is never lost.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from s321 import ids
from s321.contracts import Ack, AckStatus
from s321.errors import S321Error
from s321.pipeline import Outcome, Status
from s321.record import Action, Consignment
from s321.sqlitefile import SqliteFile
from s321.states import State

_CONSIGNMENTS = """
CREATE TABLE IF NOT EXISTS {name} (
    transaction_id  TEXT PRIMARY KEY,
    pipeline        TEXT NOT NULL,
    client          TEXT NOT NULL,
    ref             TEXT NOT NULL,
    source          TEXT,
    state           TEXT NOT NULL,
    action          TEXT NOT NULL DEFAULT 'add',
    content_hash    TEXT,
    accepted_hash   TEXT,
    body_id         INTEGER NOT NULL,
    findings        TEXT,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    queued_at       REAL,
    batch_id        TEXT,
    sent_at         REAL,
    last_error      TEXT,
    ack             TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
"""
"""One row a consignment: its state, small enough that claim and resolve, which change
nothing else, rewrite a few rows a page. `body_id` is its row in `bodies`."""

# Beyond its id a record is indexed only while queued or sent: a record that leaves
# those states (on every ack) touches no index, one that enters them a single one.
# Queries spell the state out (state='queued'): SQLite uses a partial index only then;
# `state` is a column of each too, or SQLite reads the row to check it.
# claim() takes the oldest due records: in this order they are read straight off the
# index (next_attempt_at is in it to filter without reading rows), not sorted anew on
# every claim, which cost O(queued) each time and made a large queue drain in O(n^2).
# The second: records awaiting an ack, by age (the ack timeout, a lost connection, in_flight()).
_INDEXES = (
    ("CREATE INDEX IF NOT EXISTS consignments_queued ON consignments"
     " (pipeline, queued_at, transaction_id, next_attempt_at, state) WHERE state = 'queued'"),
    "CREATE INDEX IF NOT EXISTS consignments_sent ON consignments (pipeline, sent_at, state) WHERE state = 'sent'",
)

SCHEMA = _CONSIGNMENTS.format(name="consignments") + """
-- The record as filed (its JSON, about 1.6 kB), apart from the state it changes with:
-- written when it is ingested or changes, read when it is claimed. Keyed by an integer
-- of its own, which VACUUM keeps (it may renumber the consignments' implicit rowids).
CREATE TABLE IF NOT EXISTS bodies (
    id     INTEGER PRIMARY KEY,
    record TEXT
);
""" + "".join(f"{index};\n" for index in _INDEXES) + """
CREATE TABLE IF NOT EXISTS inputs (
    pipeline     TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    units        INTEGER NOT NULL,
    processed_at REAL NOT NULL,
    PRIMARY KEY (pipeline, path, size, mtime_ns)
);
"""


SCHEMA_VERSION = 3
"""PRAGMA user_version of a ledger file. 3: records in `bodies`, not in their
consignments row (which held them as `record`). 2: partial indexes on queued and sent records
only (SCHEMA). 1: content hashes are ids.content_hash of the record's JSON; 0 (no
version) hashed a key-sorted json.dumps of the record's dict."""

_OLD_INDEXES = ("consignments_queue", "consignments_batch", "consignments_due")
"""Indexes of versions 0 and 1, over every record whatever its state."""

_QUEUED, _SENT = f"state='{State.QUEUED.value}'", f"state='{State.SENT.value}'"
"""The state filters the partial indexes are made for, spelled as they are."""

_PAGE_SIZE = 16384
"""Page size of a new ledger file (an existing one keeps its own). A batch of claimed or
acked records sits in a few neighbouring pages, and records are written many to a page:
on bench/micro.py, 16 kB against 4 kB pages took 13% off ingest, 12% off resolve."""

_LOOKUP_CHUNK = 500
"""Records whose ledger rows ingest() reads in one query (SQLite allows 32766 parameters)."""


@dataclass
class Row:
    transaction_id: str
    pipeline: str
    client: str
    ref: str
    state: State
    action: Action
    record_json: str | None
    """The record as it goes on the wire (`model_dump_json(exclude_none=True)`), with
    the row's action: what `StoredBatch` carries without building a model."""
    attempts: int
    queued_at: float | None
    batch_id: str | None
    last_error: str | None

    @cached_property
    def record(self) -> Consignment | None:
        """The record as a model, decoded on first use."""
        return Consignment.model_validate_json(self.record_json) if self.record_json else None


class Owed(NamedTuple):
    """What `Ledger.owed` says of a pipeline."""

    queued: bool
    sent: bool
    due: bool
    """A queued record whose next attempt is now or past."""


@dataclass
class IngestCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0


class _NewRows:
    """Consignments first seen by an ingest, with their bodies, written by `executemany`
    (one statement for many rows): bodies are numbered from `next_body_id` on."""

    def __init__(self, next_body_id: int):
        self.next_body_id = next_body_id
        self.consignments: list[tuple[Any, ...]] = []
        self.bodies: list[tuple[int, str | None]] = []

    def add(self, txid: str, pipeline: str, client: str, ref: str, source: str | None, state: State,
            action: Action, digest: str | None, body: str | None, findings: str, reason: str | None,
            queued_at: float | None, now: float) -> None:
        body_id = self.next_body_id
        self.next_body_id += 1
        self.bodies.append((body_id, body))
        self.consignments.append((txid, pipeline, client, ref, source, state, action, digest, body_id,
                                  findings, reason, queued_at, now, now))

    def write(self, db: sqlite3.Connection) -> None:
        if not self.consignments:
            return
        db.executemany("INSERT INTO bodies (id, record) VALUES (?,?)", self.bodies)
        db.executemany(
            "INSERT INTO consignments (transaction_id, pipeline, client, ref, source, state, action,"
            " content_hash, body_id, findings, reason, queued_at, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.consignments)
        self.consignments.clear()
        self.bodies.clear()


class Ledger(SqliteFile):
    """Thread-safe: one connection, serialised by a lock (SQLite has one writer anyway)."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL"):
        super().__init__(path, SCHEMA, synchronous, page_size=_PAGE_SIZE)
        try:
            self._upgrade()
        except BaseException:
            self.close()
            raise

    def _upgrade(self) -> None:
        """Bring a ledger file written by an earlier version to SCHEMA_VERSION, once,
        in one transaction; refuse one written by a later version."""
        if self._version(self._db) == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            version = self._version(db)  # again: another process may have done it
            if version > SCHEMA_VERSION:
                raise S321Error(f"{self.path}: ledger schema version {version} is newer than this s321"
                                f" knows ({SCHEMA_VERSION}); upgrade s321 to open it")
            created = "body_id" in {r["name"] for r in db.execute("PRAGMA table_info(consignments)")}
            if version < 1 and not created:  # a new file has nothing to rehash
                _rehash(db)
            if version < 2:
                for index in _OLD_INDEXES:
                    db.execute(f"DROP INDEX IF EXISTS {index}")
            if version < 3 and not created:
                _move_bodies(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ ingestion

    def ingest(self, pipeline: str, client: str, source: str, outcomes: Iterable[Outcome],
               input_file: tuple[str, int, int] | None = None, now: float | None = None) -> IngestCounts:
        """Store outcomes in one transaction; with `input_file` (path, size, mtime_ns)
        also remember that file as processed, atomically with its units."""
        now = time.time() if now is None else now
        counts = IngestCounts()
        units = 0
        with self.transaction() as db:
            # Under BEGIN IMMEDIATE no one else writes: new bodies are numbered here.
            new = _NewRows(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM bodies").fetchone()[0])
            stream = iter(outcomes)
            while chunk := list(islice(stream, _LOOKUP_CHUNK)):
                # What the ledger holds about a chunk is read in one query, not one per
                # record; new records are written together at the end of the chunk. A
                # record seen earlier in the chunk is written first and read again.
                keyed = [(self._txid(client, source, o), o) for o in chunk]
                known = self._known(db, [txid for txid, _ in keyed])
                written: set[str] = set()
                for txid, outcome in keyed:
                    units += 1
                    if txid in written:
                        new.write(db)
                        old = self._known(db, [txid]).get(txid)
                    else:
                        old = known.get(txid)
                    self._ingest_one(db, pipeline, client, source, outcome, now, counts, txid, old, new)
                    written.add(txid)
                new.write(db)
            if input_file is not None:
                db.execute("INSERT OR REPLACE INTO inputs VALUES (?,?,?,?,?,?)",
                           (pipeline, input_file[0], input_file[1], input_file[2], units, now))
        return counts

    @staticmethod
    def _txid(client: str, source: str, outcome: Outcome) -> str:
        record = outcome.record
        return record.transaction_id if record else ids.transaction_id(client, source, outcome.ref)

    @staticmethod
    def _known(db: sqlite3.Connection, txids: list[str]) -> dict[str, sqlite3.Row]:
        marks = ",".join("?" * len(txids))
        rows = db.execute("SELECT transaction_id, state, content_hash, accepted_hash, body_id, findings, reason"
                          f" FROM consignments WHERE transaction_id IN ({marks})", txids)
        return {r["transaction_id"]: r for r in rows}

    def _ingest_one(self, db: sqlite3.Connection, pipeline: str, client: str, source: str,
                    outcome: Outcome, now: float, counts: IngestCounts, txid: str,
                    old: sqlite3.Row | None, new: _NewRows) -> None:
        record = outcome.record
        body, digest = ids.filed_json(record) if record else (None, None)
        findings = json.dumps([f.model_dump(mode="json", exclude_none=True) for f in outcome.findings])
        state = {Status.VALID: State.QUEUED, Status.INVALID: State.INVALID,
                 Status.SKIPPED: State.SKIPPED}[outcome.status]
        if old is None:
            counts.new += 1
            new.add(txid, pipeline, client, outcome.ref, outcome.source, state, Action.ADD, digest, body,
                    findings, outcome.reason, now if state is State.QUEUED else None, now)
            return
        if old["content_hash"] == digest and old["findings"] == findings and old["reason"] == outcome.reason:
            counts.unchanged += 1
            return
        counts.changed += 1
        if state is State.QUEUED:
            if old["accepted_hash"] == digest:
                # Back to what CBP already has: nothing to file.
                db.execute("UPDATE consignments SET content_hash=?, findings=?, state=?,"
                           " updated_at=? WHERE transaction_id=?",
                           (digest, findings, State.ACCEPTED, now, txid))
                db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
                return
            action = Action.REPLACE if old["accepted_hash"] else Action.ADD
            db.execute("UPDATE consignments SET state=?, action=?, content_hash=?, findings=?,"
                       " reason=NULL, source=?, attempts=0, next_attempt_at=0, queued_at=?, last_error=NULL,"
                       " updated_at=? WHERE transaction_id=?",
                       (State.QUEUED, action, digest, findings, outcome.source, now, now, txid))
            db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
        elif old["accepted_hash"] is None and old["state"] not in (State.SENT,):
            # Not filed yet: the new verdict replaces the old one.
            db.execute("UPDATE consignments SET state=?, content_hash=?, findings=?, reason=?,"
                       " source=?, updated_at=? WHERE transaction_id=?",
                       (state, digest, findings, outcome.reason, outcome.source, now, txid))
            db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
        else:
            # Filed (or on the wire) and now invalid or skipped here: keep the filing,
            # record why; an operator decides on `s321 delete`.
            db.execute("UPDATE consignments SET findings=?, reason=?, last_error=?, updated_at=?"
                       " WHERE transaction_id=?",
                       (findings, outcome.reason, f"a newer version is {state.value}", now, txid))

    def input_seen(self, pipeline: str, path: str, size: int, mtime_ns: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM inputs WHERE pipeline=? AND path=? AND size=? AND mtime_ns=?",
                                    (pipeline, path, size, mtime_ns)).fetchone() is not None

    # ------------------------------------------------------------------ transmission

    def claim(self, pipeline: str, batch_id: str, limit: int, now: float | None = None) -> list[Row]:
        """Mark up to `limit` due records `sent` under `batch_id` and commit, before
        any byte leaves: after a crash they are found `sent` and sent again."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            # Updated by rowid, which the index entry holds: no look-up of each id. It
            # stays the row's within the transaction (only VACUUM renumbers rows).
            rows = db.execute(
                f"SELECT {_ROW_COLUMNS}, consignments.rowid FROM {_ROWS}"
                f" WHERE pipeline=? AND {_QUEUED} AND next_attempt_at<=?"
                " ORDER BY queued_at, transaction_id LIMIT ?", (pipeline, now, limit)).fetchall()
            db.executemany("UPDATE consignments SET state=?, batch_id=?, sent_at=?, attempts=attempts+1,"
                           " updated_at=? WHERE rowid=?",
                           [(State.SENT, batch_id, now, now, r[-1]) for r in rows])
        claimed = [self._row(r[:-1]) for r in rows]
        for row in claimed:  # as the update left them
            row.state, row.batch_id, row.attempts = State.SENT, batch_id, row.attempts + 1
        return claimed

    def requeue(self, transaction_ids: Iterable[str], error: str, delays: dict[str, float] | float = 0.0,
                dead: Iterable[str] = (), now: float | None = None) -> None:
        """Put sent records back in the queue after `delays` (seconds); those in `dead`
        go to the dead-letter queue instead, with the error that put them there."""
        now = time.time() if now is None else now
        dead = set(dead)
        with self.transaction() as db:
            for txid in transaction_ids:
                if txid in dead:
                    db.execute("UPDATE consignments SET state=?, last_error=?, updated_at=? WHERE transaction_id=?"
                               " AND state IN (?,?)", (State.DEAD, error, now, txid, State.SENT, State.QUEUED))
                    continue
                delay = delays.get(txid, 0.0) if isinstance(delays, dict) else delays
                db.execute("UPDATE consignments SET state=?, next_attempt_at=?, last_error=?, updated_at=?"
                           " WHERE transaction_id=? AND state=?",
                           (State.QUEUED, now + delay, error, now, txid, State.SENT))

    def resolve(self, ack: Ack, now: float | None = None) -> dict[str, State]:
        """Apply an acknowledgement; returns the new state per transaction id it moved.
        An ack for a record that is no longer `sent` under that batch is ignored, so a
        late or repeated ack cannot undo a newer state."""
        now = time.time() if now is None else now
        moved: dict[str, State] = {}
        with self.transaction() as db:
            # One statement per result, found by id, that moves the record only if it
            # is still `sent` under this batch: no index on batch ids to keep up on
            # every claim, no look-up ahead of the update.
            for result in ack.results:
                accepted = result.status is AckStatus.ACCEPTED or _duplicate_only(result)
                state = State.ACCEPTED if accepted else State.REJECTED
                if db.execute(f"UPDATE consignments SET state=?, ack=?, accepted_hash=CASE WHEN ? THEN content_hash"
                              f" ELSE accepted_hash END, last_error=?, updated_at=?"
                              f" WHERE transaction_id=? AND batch_id=? AND {_SENT}",
                              (state, result.model_dump_json(), accepted,
                               None if accepted else "; ".join(e.code for e in result.errors), now,
                               result.transaction_id, ack.batch_id)).rowcount:
                    moved[result.transaction_id] = state
        return moved

    def unacknowledged(self, pipeline: str, sent_before: float) -> list[Row]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_ROW_COLUMNS} FROM {_ROWS} WHERE pipeline=? AND {_SENT}"
                                    " AND sent_at<?", (pipeline, sent_before)).fetchall()
        return [self._row(r) for r in rows]

    def sent_in(self, pipeline: str, batch_ids: list[str]) -> list[Row]:
        marks = ",".join("?" * len(batch_ids))
        with self._lock:
            rows = self._db.execute(f"SELECT {_ROW_COLUMNS} FROM {_ROWS}"
                                    f" WHERE pipeline=? AND {_SENT} AND batch_id IN ({marks})",
                                    (pipeline, *batch_ids)).fetchall()
        return [self._row(r) for r in rows]

    def in_flight(self, pipeline: str) -> tuple[int, int]:
        """(queued, sent) for one pipeline, counted off the partial indexes (every queued
        and sent entry of the pipeline, not the rows); a loop that asks "anything left?"
        wants `owed`."""
        with self._lock:
            r = self._db.execute(
                f"SELECT (SELECT COUNT(*) FROM consignments WHERE pipeline=?1 AND {_QUEUED}),"
                f" (SELECT COUNT(*) FROM consignments WHERE pipeline=?1 AND {_SENT})", (pipeline,)).fetchone()
        return int(r[0]), int(r[1])

    def owed(self, pipeline: str, now: float | None = None) -> Owed:
        """Whether the pipeline has records queued, sent and not resolved, and due now:
        one index probe each, whatever the size of the queue. "Due" reads past the
        records waiting out a backoff at the head of the queue (as `claim` does)."""
        now = time.time() if now is None else now
        with self._lock:
            r = self._db.execute(
                f"SELECT EXISTS(SELECT 1 FROM consignments WHERE pipeline=?1 AND {_QUEUED}),"
                f" EXISTS(SELECT 1 FROM consignments WHERE pipeline=?1 AND {_SENT}),"
                f" EXISTS(SELECT 1 FROM consignments WHERE pipeline=?1 AND {_QUEUED} AND next_attempt_at<=?2)",
                (pipeline, now)).fetchone()
        return Owed(bool(r[0]), bool(r[1]), bool(r[2]))

    # ------------------------------------------------------------------ operators

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT pipeline, state, COUNT(*) AS n, MIN(CASE WHEN state='queued' THEN queued_at END) AS oldest,"
                " MAX(updated_at) AS last FROM consignments GROUP BY pipeline, state ORDER BY pipeline, state"
            ).fetchall()
            # SQLite takes the bare column from the row that holds the MAX.
            errors = {r["pipeline"]: r["last_error"] for r in self._db.execute(
                "SELECT pipeline, last_error, MAX(updated_at) FROM consignments"
                " WHERE last_error IS NOT NULL GROUP BY pipeline")}
        return [{"pipeline": r["pipeline"], "state": r["state"], "count": r["n"], "oldest_queued": r["oldest"],
                 "last_error": errors.get(r["pipeline"])} for r in rows]

    def counts(self, pipeline: str | None = None) -> dict[str, int]:
        with self._lock:
            q = "SELECT state, COUNT(*) FROM consignments"
            rows = self._db.execute(q + " WHERE pipeline=? GROUP BY state", (pipeline,)) if pipeline else \
                self._db.execute(q + " GROUP BY state")
            return {state: n for state, n in rows}

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        with self._lock:
            r = self._db.execute(f"SELECT consignments.*, record FROM {_ROWS} WHERE transaction_id=?",
                                 (transaction_id,)).fetchone()
        return dict(r) if r else None

    def dead(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT transaction_id, pipeline, ref, attempts, last_error, updated_at FROM consignments"
                " WHERE state=? AND (? IS NULL OR pipeline=?) ORDER BY updated_at", (State.DEAD, pipeline, pipeline))
            return [dict(r) for r in rows]

    def retry_dead(self, transaction_ids: Iterable[str] | None = None, now: float | None = None) -> int:
        """Give dead records a fresh retry budget."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            if transaction_ids is None:
                cur = db.execute("UPDATE consignments SET state=?, attempts=0, next_attempt_at=0, queued_at=?,"
                                 " updated_at=? WHERE state=?", (State.QUEUED, now, now, State.DEAD))
                return cur.rowcount
            n = 0
            for txid in transaction_ids:
                n += db.execute("UPDATE consignments SET state=?, attempts=0, next_attempt_at=0, queued_at=?,"
                                " updated_at=? WHERE state=? AND transaction_id=?",
                                (State.QUEUED, now, now, State.DEAD, txid)).rowcount
            return n

    def resend(self, transaction_id: str, action: Action | None = None, now: float | None = None) -> str:
        """Queue one record again (operator's `resend` or `delete`). Returns what was done."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            r = db.execute(f"SELECT state, record, accepted_hash FROM {_ROWS} WHERE transaction_id=?",
                           (transaction_id,)).fetchone()
            if r is None:
                raise KeyError(f"no consignment {transaction_id!r} in the ledger")
            if r["record"] is None:
                raise ValueError(f"{transaction_id}: no valid record to send (state {r['state']})")
            if action is None:
                action = Action.REPLACE if r["accepted_hash"] else Action.ADD
            if action is Action.DELETE and not r["accepted_hash"]:
                raise ValueError(f"{transaction_id}: never accepted, nothing to delete")
            db.execute("UPDATE consignments SET state=?, action=?, attempts=0, next_attempt_at=0, queued_at=?,"
                       " last_error=NULL, updated_at=? WHERE transaction_id=?",
                       (State.QUEUED, action, now, now, transaction_id))
        return f"{transaction_id}: queued as {action.value}"

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _row(r: sqlite3.Row | tuple[Any, ...]) -> Row:
        txid, pipeline, client, ref, state, action, record, attempts, queued_at, batch_id, last_error = r
        return Row(txid, pipeline, client, ref, _STATES[state], _ACTIONS[action], _wire_json(record, txid, action),
                   attempts, queued_at, batch_id, last_error)


_STATES = {s.value: s for s in State}
_ACTIONS = {a.value: a for a in Action}
"""Column values to enum members by dict: calling the enum costs a microsecond a row."""

_ROW_COLUMNS = ("transaction_id, pipeline, client, ref, state, action, record, attempts, queued_at,"
                " batch_id, last_error")
"""What `Row` is made of, in its order: claim reads no more than it returns."""

_ROWS = "consignments JOIN bodies ON bodies.id = consignments.body_id"
"""Consignments with their records (every consignment has its body, if an empty one)."""


def _wire_json(stored: str | None, transaction_id: str, action: str) -> str | None:
    """The stored record's JSON with the row's action, which wins over the one it was
    stored with (a record is stored as ingested; `resend` and changes set the action)."""
    if stored is None:
        return None
    text = ids.with_action(stored, transaction_id, action)
    if text is None:  # not written the way this version writes it: through the model
        record = Consignment.model_validate_json(stored)
        record.action = Action(action)
        text = record.model_dump_json(exclude_none=True)
    return text


def _rehash(db: sqlite3.Connection) -> None:
    """Version 0 -> 1: content hashes of the stored records, the new way. An accepted
    hash equal to the old content hash becomes the new one (CBP has this content); any
    other becomes one no new hash can equal, so that content is filed again if it
    comes back (a replace of what CBP has, never a lost change)."""
    last = ""
    while rows := db.execute(
            "SELECT transaction_id, record, content_hash, accepted_hash FROM consignments"
            " WHERE transaction_id > ? ORDER BY transaction_id LIMIT ?", (last, _LOOKUP_CHUNK)).fetchall():
        updates = []
        for r in rows:
            record, digest = r["record"], None
            if record is not None:
                try:
                    record, digest = ids.filed_json(Consignment.model_validate_json(record))
                except ValueError:  # no longer a valid record: hash the text as it is
                    digest = ids.content_hash_of_json(record, r["transaction_id"]) or \
                        hashlib.sha256(record.encode("utf-8")).hexdigest()
            accepted = r["accepted_hash"]
            if accepted is not None:
                accepted = digest if accepted == r["content_hash"] and digest else f"v0:{accepted}"
            updates.append((record, digest, accepted, r["transaction_id"]))
        db.executemany("UPDATE consignments SET record=?, content_hash=?, accepted_hash=? WHERE transaction_id=?",
                       updates)
        last = rows[-1]["transaction_id"]


def _move_bodies(db: sqlite3.Connection) -> None:
    """Version 2 -> 3: each record to `bodies`, numbered as its row was, and the
    consignments table made anew without them (as SCHEMA makes it), with its indexes."""
    db.execute(_CONSIGNMENTS.format(name="consignments_v3"))
    columns = ", ".join(r["name"] for r in db.execute("PRAGMA table_info(consignments_v3)")
                        if r["name"] != "body_id")
    db.execute("INSERT INTO bodies (id, record) SELECT rowid, record FROM consignments")
    db.execute(f"INSERT INTO consignments_v3 ({columns}, body_id) SELECT {columns}, rowid FROM consignments")
    db.execute("DROP TABLE consignments")
    db.execute("ALTER TABLE consignments_v3 RENAME TO consignments")
    for index in _INDEXES:
        db.execute(index)


def _duplicate_only(result: Any) -> bool:
    return bool(result.errors) and all(e.code == "duplicate" for e in result.errors)

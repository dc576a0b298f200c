"""What the sandbox accepted, in its own SQLite file (WAL), so a test or an operator can
ask how often each consignment was accepted: a correct client makes that once.

A batch is reviewed inside one `session()`: the checks (is this transaction id known,
at which version?) and the writes happen in one transaction under one lock, so two
connections sending the same `add` or version at once cannot both have it accepted.
Each acceptance is stored with the version it accepted, so "no version accepted twice"
can be counted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from s321 import ids, private
from s321.record import Action, Consignment

ACTIVE = "active"
DELETED = "deleted"
_PAGE_SIZE = 16384
# The consignments' index on transaction id (a hash) is the one write that is not local:
# at a million consignments a batch of 2,000 new ones dirties some 1,300 of its pages.
# A cache that holds a batch's pages (the default 2 MB holds 125 of 16 kB) reads each
# once, not again for the insert; checkpointing every 10,000 WAL pages instead of every
# 1,000 (every commit, at that size) copies a page rewritten by several batches back
# once. Together 7-10 us a record less at 200k-1M (the store's CPU 22-31 -> 15-23), for
# 32 MB more memory and a WAL of up to ~160 MB. Neither touches durability: the WAL is
# still synced at every commit (synchronous stays FULL).
_CACHE_KIB = 32 * 1024
_CHECKPOINT_PAGES = 10_000
_ROW = itemgetter(4)  # an update's rowid

# A consignment's integer key (`id`, numbered as consignments arrive) is what its
# acceptances are indexed by: a batch of new consignments then adds its index entries at
# the index's end, where entries keyed by transaction id (a hash) landed on a random page
# each, a page read and written a record once the store outgrew the cache. A store made
# before has no `id` column: its implicit rowid is the same number (never VACUUMed here).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS consignments (
    id INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('active', 'deleted')),
    updated_at TEXT NOT NULL,
    version INTEGER,
    content_hash TEXT
);
CREATE TABLE IF NOT EXISTS acceptances (
    id INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    action TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    record TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    version INTEGER,
    consignment INTEGER
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    code TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Session:
    """Reads and writes of one batch review, inside one transaction.

    The writes are kept until `flush` (before COMMIT) and then made with one
    executemany per table, about half the CPU of two INSERTs per record. What this
    session accepted is answered by `state` from memory, so the deferral is not
    visible to the review.

    Each consignment's row number is read with its state, and a new consignment's is
    the next one (what SQLite would give it: the transaction holds the write lock), so
    neither an acceptance nor an update looks its consignment up by transaction id
    again: at a million consignments each such look-up read a random page of that index.
    """

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._states: dict[str, str | None] = {}  # known in this transaction
        self._versions: dict[str, int | None] = {}
        self._hashes: dict[str, str] = {}
        self._rows: dict[str, int] = {}  # transaction id -> its consignment's rowid, when held
        self._at = _now()  # one batch, one transaction: one time for its rows
        self._changed: dict[str, str] = {}  # transaction id -> its new state
        self._accepted: list[tuple[str, str, str, str, str, str, int | None]] = []
        self._rejected: list[tuple[str, str, str, str]] = []

    def prefetch(self, transaction_ids: list[str]) -> None:
        """Read the states of these transaction ids in a few queries, for `state`."""
        for i in range(0, len(transaction_ids), 500):
            part = transaction_ids[i:i + 500]
            self._states.update(dict.fromkeys(part))
            marks = ",".join("?" * len(part))
            for txid, state, version, rowid in self._db.execute(
                    "SELECT transaction_id, state, version, rowid FROM consignments"
                    f" WHERE transaction_id IN ({marks})", part):
                self._states[txid], self._versions[txid], self._rows[txid] = state, version, rowid

    def state(self, transaction_id: str) -> str | None:
        if transaction_id not in self._states:
            row = self._db.execute("SELECT state, version, rowid FROM consignments WHERE transaction_id = ?",
                                   (transaction_id,)).fetchone()
            self._states[transaction_id] = row[0] if row else None
            self._versions[transaction_id] = row[1] if row else None
            if row:
                self._rows[transaction_id] = row[2]
        return self._states[transaction_id]

    def version(self, transaction_id: str) -> int | None:
        """The version held for this transaction id (None: unknown, or filed without one)."""
        self.state(transaction_id)
        return self._versions.get(transaction_id)

    def content_hash(self, transaction_id: str) -> str | None:
        """The content hash of the version held (None: nothing held)."""
        if transaction_id in self._hashes:
            return self._hashes[transaction_id]
        row = self._db.execute("SELECT content_hash FROM consignments WHERE transaction_id = ?",
                               (transaction_id,)).fetchone()
        return row[0] if row else None

    def accept(self, record: Consignment, batch_id: str) -> None:
        self.state(record.transaction_id)  # its row, if held (read already by a review)
        state = DELETED if record.action is Action.DELETE else ACTIVE
        self._states[record.transaction_id] = state
        self._versions[record.transaction_id] = record.version
        self._changed[record.transaction_id] = state
        text, digest = ids.filed_json(record)  # the stored JSON and its hash, one dump
        self._hashes[record.transaction_id] = digest
        self._accepted.append((record.transaction_id, record.action.value, batch_id, digest,
                               text, self._at, record.version))

    def accept_shipment(self, control_number: str, action: str, batch_id: str, segments: str,
                        removed: bool = False) -> None:
        """An ACE truck shipment accepted (core/sandbox/ace.py): held by its shipment
        control number, which stands in the transaction id's place (ACE knows neither
        transaction ids nor versions); its segments are stored as filed."""
        self.state(control_number)  # its row, if held
        state = DELETED if removed else ACTIVE
        self._states[control_number] = state
        self._versions[control_number] = None
        self._changed[control_number] = state
        text = json.dumps({"format": "ace-309", "segments": segments})
        digest = hashlib.sha256(segments.encode("utf-8")).hexdigest()
        self._hashes[control_number] = digest
        self._accepted.append((control_number, action, batch_id, digest, text, self._at, None))

    def reject(self, transaction_id: str, batch_id: str, codes: list[str]) -> None:
        self._rejected.extend((transaction_id, batch_id, code, self._at) for code in codes)

    def flush(self) -> None:
        """Write what was accepted and rejected since the last flush."""
        at, rows, versions, hashes = self._at, self._rows, self._versions, self._hashes
        if self._changed:
            held = [(state, at, versions.get(txid), hashes.get(txid), rows[txid])
                    for txid, state in self._changed.items() if txid in rows]
            if held:
                held.sort(key=_ROW)  # in the table's order: each page read once
                self._db.executemany("UPDATE consignments SET state = ?, updated_at = ?, version = ?,"
                                     " content_hash = ? WHERE rowid = ?", held)
            new = [txid for txid in self._changed if txid not in rows]
            if new:
                # Numbered in the order they were accepted, as SQLite numbers them, and
                # inserted in transaction id order, so that each page of that index (the
                # one write here that is not local) is read once, not once a record. A
                # plain INSERT: should the transaction id be held after all, it fails
                # (the batch is rolled back, unanswered) rather than being stored twice.
                last = self._db.execute("SELECT max(rowid) FROM consignments").fetchone()[0] or 0
                rows.update(zip(new, range(last + 1, last + 1 + len(new))))
                new.sort()
                self._db.executemany(
                    "INSERT INTO consignments (rowid, transaction_id, state, updated_at, version,"
                    " content_hash) VALUES (?, ?, ?, ?, ?, ?)",
                    [(rows[txid], txid, self._changed[txid], at, versions.get(txid), hashes.get(txid))
                     for txid in new])
            self._changed.clear()
        if self._accepted:  # after the consignments: each is keyed by its row
            self._db.executemany(
                "INSERT INTO acceptances (transaction_id, action, batch_id, content_hash, record, "
                "accepted_at, version, consignment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*a, rows[a[0]]) for a in self._accepted])
            self._accepted.clear()
        if self._rejected:
            self._db.executemany(
                "INSERT INTO rejections (transaction_id, batch_id, code, rejected_at) "
                "VALUES (?, ?, ?, ?)", self._rejected)
            self._rejected.clear()


class SandboxStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        private.prepare_sqlite(self.path)  # owner-only, with its -wal/-shm (s321.private)
        # One connection shared by the connection threads, serialised by `_lock`:
        # the sandbox writes little, and this keeps check-then-write atomic.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        # Accepted records are stored whole (over 1 kB each): with 16 kB pages a batch's
        # commit writes a quarter as many pages to the WAL, some 3 us a record less.
        # Takes effect when the file is created; an existing file keeps its pages.
        self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        for table, column in (("consignments", "version INTEGER"), ("acceptances", "version INTEGER"),
                              ("consignments", "content_hash TEXT")):  # a store written before versions
            if column.split()[0] not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        if "consignment" not in {r[1] for r in self._db.execute("PRAGMA table_info(acceptances)")}:
            self._key_acceptances()  # a store written before acceptances were keyed by their consignment
        self._db.execute("CREATE INDEX IF NOT EXISTS acceptances_by_consignment ON acceptances (consignment)")

    def _key_acceptances(self) -> None:
        """Each acceptance gets its consignment's row; the index by transaction id goes."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if "consignment" not in {r[1] for r in self._db.execute("PRAGMA table_info(acceptances)")}:
                self._db.execute("ALTER TABLE acceptances ADD COLUMN consignment INTEGER")
                self._db.execute("UPDATE acceptances SET consignment = (SELECT rowid FROM consignments c"
                                 " WHERE c.transaction_id = acceptances.transaction_id)")
                self._db.execute("DROP INDEX IF EXISTS acceptances_by_transaction")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                session = Session(self._db)
                yield session
                session.flush()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def accepted_counts(self) -> dict[str, int]:
        """Transaction id -> how many times a record with it was accepted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT transaction_id, COUNT(*) FROM acceptances GROUP BY transaction_id "
                "ORDER BY transaction_id").fetchall()
        return {txid: n for txid, n in rows}

    def rejection_counts(self) -> dict[str, int]:
        """Error code -> how many times a record was rejected with it."""
        with self._lock:
            rows = self._db.execute(
                "SELECT code, COUNT(*) FROM rejections GROUP BY code ORDER BY code").fetchall()
        return {code: n for code, n in rows}

    def accepted_records(self, transaction_id: str) -> list[dict[str, Any]]:
        """Every accepted version of one consignment, oldest first, as filed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM acceptances WHERE consignment ="
                " (SELECT rowid FROM consignments WHERE transaction_id = ?) ORDER BY id",
                (transaction_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def acceptances(self) -> list[tuple[str, str, int | None, str]]:
        """Every acceptance in order: (transaction id, action, version, content hash)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT transaction_id, action, version, content_hash FROM acceptances ORDER BY id").fetchall()
        return [(t, a, v, h) for t, a, v, h in rows]

    def held(self) -> dict[str, tuple[str, int | None, str | None]]:
        """What the sandbox holds now, per transaction id: (state, version, content hash
        of the last accepted version)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.transaction_id, c.state, c.version, (SELECT a.content_hash FROM acceptances a"
                " WHERE a.consignment = c.rowid ORDER BY a.id DESC LIMIT 1)"
                " FROM consignments c").fetchall()
        return {t: (s, v, h) for t, s, v, h in rows}

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

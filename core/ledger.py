"""The ledger: every consignment's state, the single source of truth between ingestion
and transmission; one SQLite file (WAL) for one daemon, or one PostgreSQL database that
any number of daemons share (s321.ledger_backend: the same SQL, run on either).

Promises, version by version (the one place they are kept):
- Ingesting the same consignment again changes nothing. Changed content is a new
  *version*: an integer the ledger assigns, rising per transaction id (gaps allowed: a
  version is at least the microsecond it was made, so a ledger rebuilt from archived
  inputs still counts past what a receiver holds). A record that arrives carrying a
  version (through the relay) keeps it.
- At most one version of a consignment is outstanding: a change that arrives while a
  version is on the wire waits, in `version`, until that one is settled.
- The action is decided when a version is claimed: `add` while the receiver is known or
  assumed to hold nothing (never sent; its add rejected, or dead unanswered; deleted;
  answered `unknown-transaction`), `replace` once some version was put on the wire; the
  same unsettled version is sent again exactly as it went before.
- `claim` commits `sent` before a batch leaves. Acknowledgements are matched by
  (transaction id, version), or by batch from a receiver without versions; a late or
  repeated one for any other version changes nothing.
- Only the acknowledged version is recorded as accepted, with its own hash. A
  `duplicate` answer proves the current version accepted only when the receiver echoes
  its version, or when no other version was ever put on the wire; otherwise the receiver
  holds *some* version and the current one follows as a replace.
- Content changed back to the accepted version files nothing only while the receiver is
  known to hold that version: after a version settled unanswered (dead, delivered), or
  answered `superseded` or an unproven `duplicate`, `accepted_hash` is cleared and the
  change is filed.
- A record is never lost: every state change is committed before anything depends on it.
- A record can be found by the names people use (`find`: order name, bills, tracking
  number, transaction id), and every change of its state is in its `history`, written in
  the same transaction as the change (one `executemany` a batch), with codes and places,
  never the record's content.
- A record invalid when read keeps its raw unit (`raw_units`) until `purge_raw`, so it
  can be mapped again without its input (s321.refile), or until a newer read of it keeps
  none (the old unit is stale); an outcome mapped again from a unit no longer kept is
  not stored.

Many daemons on one database (PostgreSQL):
- Ingestion is idempotent across daemons: rows are keyed by transaction id; a daemon
  that loses a race for a new row runs its transaction again and finds the record
  (`unchanged`); rows it changes are locked while it reads them.
- A claim is one short transaction that takes due rows no other daemon is claiming
  (`SKIP LOCKED`) and leases them to this daemon (`owner`): `lease_epoch` + 1,
  `lease_expires` = the database's clock + `lease_seconds`. A `sent` row whose lease
  expired (its daemon died or stopped renewing) is taken over by the next claim and
  sent again as a requeued row is. `renew` keeps a live daemon's batches its own.
- Requeue, dead-letter and `delivered` decisions are fenced by the lease: they change
  only rows this daemon still holds (and, given `epochs`, at that epoch). Answers are
  facts: `resolve` applies them by (transaction id, version) whichever daemon got them.
- Input files in a shared inbox are claimed as rows (`claim_input`), under a lease too.
- `next_number` gives numbers unique across daemons and restarts.
On SQLite one daemon holds the file (s321.lock): the same columns are written, nothing
is fenced, and an input file is claimed when it was not ingested.

In doubt: a connection lost during COMMIT raises `LedgerInDoubt` (the change may or may
not be stored). Safe to call again after it: `ingest` (idempotent), `claim` (a claimed
batch not sent stays leased to this daemon and is taken over after expiry), `resolve`
(an answer already applied changes nothing), `renew`, `requeue`, `claim_input`,
`release_input`; `next_number` may have used a number (a gap, never a repeat);
`resend` files one more version.

The version state machine (`claim_action`, `settle`) is s321.versions; the tables and
upgrades are s321.ledger_schema; the stores and their dialects are s321.ledger_backend;
the names people use are s321.references.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from s321 import ids
from s321.contracts import Ack, AckStatus, RecordAck
from s321.lock import LedgerLock
from s321.pipeline import Outcome, Status
from s321.record import Action, Consignment
from s321.ledger_backend import Connection, LedgerInDoubt, LedgerUnavailable, SqliteStore, Store
from s321.ledger_schema import _QUEUED, _ROWS, _SENT, LOOKUP_CHUNK, SCHEMA_VERSION
from s321.references import ref_key, references, unprefixed
from s321.sqlitefile import StoreFileError, open_error
from s321.versions import claim_action, next_version, settle
from s321.states import State

__all__ = ["Ledger", "Row", "Owed", "IngestCounts", "LedgerInDoubt", "LedgerUnavailable", "SCHEMA_VERSION"]

_PAGE_SIZE = 16384
"""Page size of a new ledger file (an existing one keeps its own). A batch of claimed or
acked records sits in a few neighbouring pages, and records are written many to a page:
on bench/micro.py, 16 kB against 4 kB pages took 13% off ingest, 12% off resolve."""

_LOOKUP_CHUNK = LOOKUP_CHUNK


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
    the row's action and version: what `StoredBatch` carries without building a model."""
    attempts: int
    queued_at: float | None
    batch_id: str | None
    last_error: str | None
    version: int | None = None
    lease_epoch: int | None = None
    """The lease this row was claimed under (`requeue(epochs=...)` fences by it)."""

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
    (one statement for many rows): bodies are numbered by the store when written."""

    def __init__(self, store: Store):
        self.store = store
        self.consignments: list[tuple[Any, ...]] = []
        self.bodies: list[str | None] = []
        self.refs: list[tuple[str, str]] = []
        self.history: list[tuple[str, float, str, int | None, str | None]] = []
        self.raw: list[tuple[str, str, bytes, float]] = []

    def add(self, txid: str, pipeline: str, client: str, ref: str, source: str | None, state: State,
            action: Action, digest: str | None, body: str | None, findings: str, reason: str | None,
            queued_at: float | None, now: float, version: int) -> None:
        self.bodies.append(body)
        self.consignments.append((txid, pipeline, client, ref, source, state, action, digest,
                                  findings, reason, queued_at, now, now, version))

    def write(self, db: Connection) -> None:
        """Everything gathered, one `executemany` a table (refs, history and raw units
        of changed records too)."""
        if self.refs:
            db.executemany(_REF, self.refs)
            self.refs.clear()
        if self.raw:
            db.executemany("INSERT INTO raw_units (transaction_id, pipeline, unit, stored_at) VALUES (?,?,?,?)"
                           " ON CONFLICT (transaction_id) DO UPDATE SET pipeline=excluded.pipeline,"
                           " unit=excluded.unit, stored_at=excluded.stored_at", self.raw)
            self.raw.clear()
        keys = self._write_new(db) if self.consignments else {}
        if self.history:  # after the new rows: each line is keyed by its row's body_id
            _write_history(db, self.history, keys)
            self.history.clear()

    def _write_new(self, db: Connection) -> dict[str, int]:
        """The new rows and their bodies; returns their body ids by transaction id."""
        body_ids = self.store.new_ids(db, len(self.bodies))
        keys = {row[0]: body_id for row, body_id in zip(self.consignments, body_ids)}
        db.executemany("INSERT INTO bodies (id, record) VALUES (?,?)", zip(body_ids, self.bodies))
        self.store.insert_new(
            db, "INSERT INTO consignments (transaction_id, pipeline, client, ref, source, state, action,"
            " content_hash, findings, reason, queued_at, created_at, updated_at, version, body_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(*row, body_id) for row, body_id in zip(self.consignments, body_ids)])
        self.consignments.clear()
        self.bodies.clear()
        return keys


class Ledger:
    """`Ledger(path)` opens (or makes) a SQLite ledger file; `Ledger(store)` one on a store
    of s321.ledger_backend (s321.ledger_open.open_ledger picks it from a config or URL).

    Thread-safe: on SQLite one connection serialised by a lock (SQLite has one writer
    anyway); on PostgreSQL each call takes a connection of the store's pool.

    Opening an existing file that is empty, truncated or corrupt raises StoreFileError:
    a ledger is made anew only where no file exists."""

    kind = "ledger"
    lease_seconds: float = 30.0
    """How long a claimed batch stays this daemon's without `renew` (PostgreSQL)."""

    def __init__(self, path: str | Path | Store, synchronous: str = "NORMAL"):
        store = SqliteStore(path, synchronous, page_size=_PAGE_SIZE) if isinstance(path, (str, Path)) else path
        self._store: Store = store
        self._dialect = store.dialect
        self.owner: str = store.owner
        """This process's name in leases (host:pid:random)."""
        if isinstance(store, SqliteStore):  # what callers and tests of the file use
            self.path = store.path
            self.synchronous = store.synchronous
            self.existed = store.existed
            self._db = store._db
            self._lock = store._lock

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._dialect.name

    def schema_version(self) -> int:
        return self._store.schema_version()

    def describe(self) -> str:
        """Where the ledger is: its file, or its database's URL without a password."""
        return self._store.describe()

    def transaction(self) -> Any:
        return self._store.transaction()

    def durable(self) -> Any:
        """Commits inside are durable when they return (s321.ledger_backend)."""
        return self._store.durable()

    @classmethod
    def held(cls, path: str | Path, synchronous: str = "NORMAL", holder: str = "s321 run") -> Ledger:
        """The ledger for a process that transmits from it (the daemon, `run --once`, the
        relay): its lock taken first (LedgerBusy if another holds it), then opened and
        quick-checked (StoreFileError when a page is damaged); `close()` releases the lock."""
        lock = LedgerLock(path).acquire(holder)
        try:
            ledger = cls(path, synchronous)
        except BaseException:
            lock.release()
            raise
        ledger._held = lock
        with ledger._lock:
            try:
                problems = [r[0] for r in ledger._db.execute("PRAGMA quick_check(5)")]
            except sqlite3.DatabaseError as exc:
                ledger.close()
                raise open_error(ledger.path, ledger.kind, exc) from None
        if problems != ["ok"]:
            ledger.close()
            raise StoreFileError(f"{ledger.path}: the ledger file is damaged ({'; '.join(problems)}); restore it"
                                 f" from a backup (see docs/operations.md, 'Recovering a ledger')")
        return ledger

    def close(self) -> None:
        try:
            self._store.close()
        finally:
            held: LedgerLock | None = getattr(self, "_held", None)
            if held is not None:
                held.release()

    def check(self) -> tuple[list[str], dict[str, int]]:
        """The store's own check (SQLite: its integrity check of every page and index;
        PostgreSQL keeps its pages itself) and the counts per state: ([] when sound,
        else what is wrong), {state: count}."""
        if self._dialect.shared:
            with self._reading() as db:
                return [], {state: n for state, n in db.execute(
                    "SELECT state, COUNT(*) FROM consignments GROUP BY state")}
        with self._lock:
            try:
                problems = [r[0] for r in self._db.execute("PRAGMA integrity_check")]
                counts = {state: n for state, n in self._db.execute(
                    "SELECT state, COUNT(*) FROM consignments GROUP BY state")}
            except sqlite3.DatabaseError as exc:
                return [str(exc)], {}
        return ([] if problems == ["ok"] else problems), counts

    def _reading(self) -> Any:
        return self._store.reading()

    # ------------------------------------------------------------------ ingestion

    def ingest(self, pipeline: str, client: str, source: str, outcomes: Iterable[Outcome],
               input_file: tuple[str, int, int] | None = None, now: float | None = None,
               raw: Mapping[str, bytes] | None = None, event: str | None = None,
               mapped_from: Mapping[str, bytes] | None = None) -> IngestCounts:
        """Store outcomes in one transaction; with `input_file` (path, size, mtime_ns)
        also remember that file as processed, atomically with its units, and the
        commit is on disk when this returns (the file may then be archived).

        `raw`: unit ref -> the raw unit, pickled, of invalid outcomes (kept to map them
        again, `raw_units`). `event`: what the history says besides the new state
        (`revalidated`). `mapped_from`: transaction id -> the kept raw unit an outcome was
        mapped from (revalidation); an outcome whose unit is no longer the one kept (a newer
        read came meanwhile) is left out. A newer read that keeps no raw unit drops the
        one kept: it is stale."""
        with self.durable() if input_file is not None else nullcontext():
            return self._ingest(pipeline, client, source, outcomes, input_file, now, raw or {}, event,
                                mapped_from)

    def _ingest(self, pipeline: str, client: str, source: str, outcomes: Iterable[Outcome],
                input_file: tuple[str, int, int] | None, now: float | None, raw: Mapping[str, bytes],
                event: str | None, mapped_from: Mapping[str, bytes] | None = None) -> IngestCounts:
        now = time.time() if now is None else now
        if self._dialect.shared:  # a transaction that lost a race is run again: keep what it read
            outcomes = list(outcomes)
        return self._store.run(lambda db: self._ingest_in(db, pipeline, client, source, outcomes, input_file, now,
                                                          raw, event, mapped_from))

    def _ingest_in(self, db: Connection, pipeline: str, client: str, source: str, outcomes: Iterable[Outcome],
                   input_file: tuple[str, int, int] | None, now: float, raw: Mapping[str, bytes],
                   event: str | None, mapped_from: Mapping[str, bytes] | None) -> IngestCounts:
        counts = IngestCounts()
        units = 0
        new = _NewRows(self._store)
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
                if mapped_from is not None and txid in mapped_from:
                    kept = db.execute("SELECT unit FROM raw_units WHERE transaction_id=?", (txid,)).fetchone()
                    if kept is None or kept[0] != mapped_from[txid]:
                        continue  # a newer read of this record came since it was mapped
                if txid in written:
                    new.write(db)
                    old = self._known(db, [txid]).get(txid)
                else:
                    old = known.get(txid)
                if self._ingest_one(db, pipeline, client, source, outcome, now, counts, txid, old, new,
                                    event):
                    if outcome.status is Status.INVALID and outcome.ref in raw:
                        new.raw.append((txid, pipeline, raw[outcome.ref], now))
                    elif event is None and old is not None:  # a newer read: an older one's unit is stale
                        db.execute("DELETE FROM raw_units WHERE transaction_id=?", (txid,))
                written.add(txid)
            new.write(db)
        if input_file is not None:
            db.execute("INSERT INTO inputs (pipeline, path, size, mtime_ns, units, processed_at)"
                       " VALUES (?,?,?,?,?,?) ON CONFLICT (pipeline, path, size, mtime_ns)"
                       " DO UPDATE SET units=excluded.units, processed_at=excluded.processed_at",
                       (pipeline, input_file[0], input_file[1], input_file[2], units, now))
            if self._dialect.shared:  # its claim is done with
                db.execute("DELETE FROM input_claims WHERE pipeline=? AND path=? AND lease_owner=?",
                           (pipeline, input_file[0], self.owner))
        return counts

    @staticmethod
    def _txid(client: str, source: str, outcome: Outcome) -> str:
        record = outcome.record
        return record.transaction_id if record else ids.transaction_id(client, source, outcome.ref)

    def _known(self, db: Connection, txids: list[str]) -> dict[str, Any]:
        """What the ledger holds of these records; on a shared database they stay locked
        (in one order, against deadlocks) until the transaction that read them ends."""
        marks = ",".join("?" * len(txids))
        lock = self._dialect.lock
        rows = db.execute("SELECT transaction_id, state, content_hash, accepted_hash, body_id, findings, reason,"
                          " version, wire_version, accepted_version, on_file"
                          f" FROM consignments WHERE transaction_id IN ({marks})"
                          + (f" ORDER BY transaction_id{lock}" if lock else ""), txids)
        return {r["transaction_id"]: r for r in rows}

    def _ingest_one(self, db: Connection, pipeline: str, client: str, source: str,
                    outcome: Outcome, now: float, counts: IngestCounts, txid: str,
                    old: Any, new: _NewRows, event: str | None = None) -> bool:
        """Store one outcome; False when it changed nothing."""
        record = outcome.record
        body, digest = ids.filed_json(record) if record else (None, None)
        given = record.version if record else None  # carried by the record (the relay's clients)
        findings = json.dumps([f.model_dump(mode="json", exclude_none=True) for f in outcome.findings]) \
            if outcome.findings else "[]"  # most records have none: json.dumps([]), without the call
        state = _STATE_OF[outcome.status]
        if old is None:
            counts.new += 1
            version = given if given is not None else next_version(None, now)
            new.add(txid, pipeline, client, outcome.ref, outcome.source, state, Action.ADD, digest, body,
                    findings, outcome.reason, now if state is State.QUEUED else None, now, version)
            new.refs += [(ref, txid) for ref in references(outcome.ref, record)]
            new.history.append((txid, now, _VALUES[state], version, _read_at(event or "read", outcome)))
            return True
        newer = given is not None and given > (old["version"] or 0)
        if not newer and old["content_hash"] == digest and old["findings"] == findings \
                and old["reason"] == outcome.reason:
            counts.unchanged += 1
            return False
        counts.changed += 1
        version = given if newer else next_version(old["version"], now)
        new.refs += [(ref, txid) for ref in references(outcome.ref, record)]
        said = _read_at(event or "changed", outcome)
        settled = old["state"] != State.SENT and old["wire_version"] is None
        if state is State.QUEUED:
            if settled and old["on_file"] and old["accepted_hash"] == digest and not newer:
                # Back to the version the receiver holds, nothing on the wire: nothing to file.
                # The version stays: versions only rise (the next one counts past any sent).
                db.execute("UPDATE consignments SET content_hash=?, findings=?, state=?,"
                           " last_error=NULL, updated_at=? WHERE transaction_id=?",
                           (digest, findings, State.ACCEPTED, now, txid))
                db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
                new.history.append((txid, now, State.ACCEPTED.value, None,
                                    "back to the version the receiver holds: nothing to file"))
                return True
            action = Action.REPLACE if old["on_file"] or old["wire_version"] is not None else Action.ADD
            new.history.append((txid, now, "changed" if old["state"] == State.SENT else State.QUEUED.value,
                                version, said if old["state"] != State.SENT
                                else f"{said}; waits for the version on the wire"))
            if old["state"] == State.SENT:
                # A version is on the wire: this one waits until that one is settled
                # (resolve queues it then); the body is already the new version's.
                db.execute("UPDATE consignments SET version=?, action=?, content_hash=?, findings=?, reason=NULL,"
                           " source=?, updated_at=? WHERE transaction_id=?",
                           (version, action, digest, findings, outcome.source, now, txid))
            else:
                db.execute("UPDATE consignments SET state=?, version=?, action=?, content_hash=?, findings=?,"
                           " reason=NULL, source=?, attempts=0, next_attempt_at=0, queued_at=?, last_error=NULL,"
                           " updated_at=? WHERE transaction_id=?",
                           (State.QUEUED, version, action, digest, findings, outcome.source, now, now, txid))
            db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
        elif settled and not old["on_file"] and old["accepted_version"] is None:
            # Never filed: the new verdict replaces the old one.
            new.history.append((txid, now, state.value, version, said))
            db.execute("UPDATE consignments SET state=?, version=?, content_hash=?, findings=?, reason=?,"
                       " source=?, updated_at=? WHERE transaction_id=?",
                       (state, version, digest, findings, outcome.reason, outcome.source, now, txid))
            db.execute("UPDATE bodies SET record=? WHERE id=?", (body, old["body_id"]))
        else:
            # Filed (or on the wire) and now invalid or skipped here: keep the filing,
            # record why; an operator decides on `s321 delete`.
            new.history.append((txid, now, "changed", None, f"{said}; the new version is {state.value},"
                                " the filed one stays"))
            db.execute("UPDATE consignments SET findings=?, reason=?, last_error=?, updated_at=?"
                       " WHERE transaction_id=?",
                       (findings, outcome.reason, f"a newer version is {state.value}", now, txid))
        return True

    def input_seen(self, pipeline: str, path: str, size: int, mtime_ns: int) -> bool:
        with self._reading() as db:
            return db.execute("SELECT 1 FROM inputs WHERE pipeline=? AND path=? AND size=? AND mtime_ns=?",
                              (pipeline, path, size, mtime_ns)).fetchone() is not None

    def claim_input(self, pipeline: str, path: str, size: int, mtime_ns: int, sha256: str) -> bool:
        """Whether this daemon may read an input file now: True when it holds the file's
        lease (taken, renewed, or taken over after another's expired); False when the
        file (this path, size, modification time) was ingested, or another live daemon
        reads it. `ingest(..., input_file=...)` ends the lease with the file stored;
        `release_input` when reading it failed. On SQLite: not `input_seen`."""
        if not self._dialect.shared:
            return not self.input_seen(pipeline, path, size, mtime_ns)
        clock = self._dialect.clock

        def body(db: Connection) -> bool:
            # The lease first, then whether it was ingested: a daemon that stored the file
            # meanwhile has committed both, and this one sees it.
            held = db.execute(
                "INSERT INTO input_claims (pipeline, path, size, mtime_ns, sha256, lease_owner, lease_expires)"
                f" VALUES (?,?,?,?,?,?,{clock}+?) ON CONFLICT (pipeline, path, size, mtime_ns, sha256) DO UPDATE"
                " SET lease_owner=excluded.lease_owner, lease_expires=excluded.lease_expires"
                f" WHERE input_claims.lease_owner=excluded.lease_owner OR input_claims.lease_expires < {clock}"
                " RETURNING lease_owner",
                (pipeline, path, size, mtime_ns, sha256, self.owner, self.lease_seconds)).fetchone() is not None
            if not held:
                return False
            if db.execute("SELECT 1 FROM inputs WHERE pipeline=? AND path=? AND size=? AND mtime_ns=?",
                          (pipeline, path, size, mtime_ns)).fetchone() is not None:
                db.execute("DELETE FROM input_claims WHERE pipeline=? AND path=? AND lease_owner=?",
                           (pipeline, path, self.owner))
                return False
            return True
        return self._store.run(body)

    def release_input(self, pipeline: str, path: str) -> None:
        """Give up this daemon's lease on an input file (its read failed): another daemon
        (or this one, later) may claim it."""
        with self.transaction() as db:
            db.execute("DELETE FROM input_claims WHERE pipeline=? AND path=? AND lease_owner=?",
                       (pipeline, path, self.owner))

    def next_number(self, name: str) -> int:
        """The next number of the sequence `name` (1, 2, 3, ...): never given twice, by
        any daemon, across restarts (X12 interchange and group control numbers). The
        commit is durable when this returns; after `LedgerInDoubt` a number may be
        skipped, never repeated."""
        with self.durable():
            return self._store.run(lambda db: int(db.execute(
                "INSERT INTO sequences (name, value) VALUES (?, 1) ON CONFLICT (name)"
                " DO UPDATE SET value=sequences.value+1 RETURNING value", (name,)).fetchone()[0]))

    def note(self, key: str, value: str) -> None:
        """Keep `value` under `key` (replacing an older one), durable when this returns:
        what a serializer must find again after a restart (the batch an X12 group was
        sent in)."""
        with self.durable():
            self._store.run(lambda db: db.execute(
                "INSERT INTO notes (key, value) VALUES (?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value=excluded.value", (key, value)))

    def noted(self, key: str) -> str | None:
        """The value kept under `key` by `note`, or None."""
        with self._reading() as db:
            r = db.execute("SELECT value FROM notes WHERE key=?", (key,)).fetchone()
        return r[0] if r else None

    # ------------------------------------------------------------------ transmission

    def claim(self, pipeline: str, batch_id: str, limit: int, now: float | None = None) -> list[Row]:
        """Mark up to `limit` due records `sent` under `batch_id`, leased to this daemon,
        and commit, before any byte leaves: after a crash they are found `sent` and sent
        again. Each goes with the action decided now (`claim_action`) and its current
        version. On a shared database the rows another daemon is claiming are passed
        over (SKIP LOCKED), and `sent` rows whose lease expired are taken over first."""
        now = time.time() if now is None else now
        return self._store.run(lambda db: self._claim_in(db, pipeline, batch_id, limit, now))

    def _claim_in(self, db: Connection, pipeline: str, batch_id: str, limit: int, now: float) -> list[Row]:
        d = self._dialect
        # Updated by rowid on SQLite, which the index entry holds: no look-up of each id.
        # It stays the row's within the transaction (only VACUUM renumbers rows).
        columns = (f"{_ROW_COLUMNS}, on_file, wire_version, wire_action, lease_epoch, lease_owner, body_id,"
                   f" consignments.{d.row_key}")
        rows: list[Any] = []
        if d.shared:  # batches of a daemon that stopped renewing its lease (or sent before leases)
            rows = db.execute(f"SELECT {columns} FROM {_ROWS} WHERE pipeline=? AND {_SENT}"
                              f" AND (lease_expires IS NULL OR lease_expires < {d.clock})"
                              f" ORDER BY sent_at LIMIT ?{d.skip_locked}",
                              (pipeline, limit)).fetchall()
        if len(rows) < limit:
            rows += db.execute(f"SELECT {columns} FROM {_ROWS} WHERE pipeline=? AND {_QUEUED} AND next_attempt_at<=?"
                               f" ORDER BY queued_at, transaction_id LIMIT ?{d.skip_locked}",
                               (pipeline, now, limit - len(rows))).fetchall()
        claimed: list[Row] = []
        updates = []
        events: list[tuple[Any, ...]] = []
        owner, lease_seconds, sent = self.owner, self.lease_seconds, State.SENT
        for r in rows:
            (txid, pipe, client, ref, state, action, record, attempts, queued_at, _batch, last_error, version,
             on_file, wire_version, wire_action, epoch, was_owner, body_id, key) = r
            action = claim_action(action, version, on_file, wire_version, wire_action)
            claimed.append(Row(txid, pipe, client, ref, sent, _ACTIONS[action],
                               _wire_json(record, txid, action, version), attempts + 1, queued_at, batch_id,
                               last_error, version, epoch + 1))
            updates.append((sent, batch_id, now, action, action, owner, lease_seconds, now, key))
            detail = f"{action} in batch {batch_id}"
            if state == sent:
                detail += f", taken over from {was_owner} (lease expired)"
            events.append((txid, now, _SENT_EVENT, version, detail, body_id))
        # The version goes on the wire: what the receiver may now hold. (Each SET
        # expression reads the row as it was: the claimed action is given twice.)
        db.executemany("UPDATE consignments SET state=?, batch_id=?, sent_at=?, attempts=attempts+1,"
                       " action=?, wire_version=version, wire_action=?, wire_hash=content_hash,"
                       " first_wire_version=COALESCE(first_wire_version, version),"
                       " on_file=CASE WHEN action='delete' THEN on_file ELSE 1 END,"
                       f" lease_owner=?, lease_epoch=lease_epoch+1, lease_expires={d.clock}+?,"
                       f" updated_at=? WHERE {d.row_key}=?", updates)
        db.executemany(_HISTORY_KEYED, events)
        return claimed

    def renew(self, pipeline: str, batch_ids: list[str]) -> list[str]:
        """Extend the lease of this daemon's `sent` records in `batch_ids` (it still waits
        for their answers). Returns the batch ids in which it holds no record any more:
        taken over by another daemon (or all answered); it forgets those."""
        if not batch_ids:
            return []
        marks = ",".join("?" * len(batch_ids))
        d = self._dialect

        def body(db: Connection) -> list[str]:
            held = {r[0] for r in db.execute(
                f"UPDATE consignments SET lease_expires={d.clock}+? WHERE pipeline=? AND {_SENT}"
                f" AND lease_owner=? AND batch_id IN ({marks}) RETURNING batch_id",
                (self.lease_seconds, pipeline, self.owner, *batch_ids)).fetchall()}
            return [b for b in batch_ids if b not in held]
        return self._store.run(body)

    def requeue(self, transaction_ids: Iterable[str], error: str, delays: dict[str, float] | float = 0.0,
                dead: Iterable[str] = (), now: float | None = None, epochs: Mapping[str, int] | None = None) -> None:
        """Put sent records back in the queue after `delays` (seconds); those in `dead`
        go to the dead-letter queue instead, with the error that put them there.

        A requeued version stays unsettled (it may have reached the receiver): it is
        sent again as it went, or a newer one follows it as a replace. A dead one is
        settled unanswered: after a dead `add` the receiver is assumed to hold nothing.

        Fenced on a shared database: a `sent` record changes only while this daemon holds
        its lease (and, given `epochs`, the lease it was claimed under: `Row.lease_epoch`);
        one another daemon took over is left to that one."""
        now = time.time() if now is None else now
        dead = set(dead)
        txids = list(transaction_ids)

        def body(db: Connection) -> None:
            events = []
            for txid in txids:
                fence, fenced = self._fence(txid, epochs)
                if txid in dead:
                    if db.execute("UPDATE consignments SET state=?, last_error=?, updated_at=?,"
                                  " on_file=CASE WHEN wire_action='add' AND accepted_hash IS NULL THEN 0 ELSE on_file END,"
                                  f" {_UNKNOWN_HOLDING}, wire_version=NULL, wire_action=NULL, wire_hash=NULL WHERE transaction_id=?"
                                  f" AND (state=? OR (state=?{fence}))",
                                  (State.DEAD, error, now, txid, State.QUEUED, State.SENT, *fenced)).rowcount:
                        events.append((txid, now, State.DEAD.value, None, error))
                    continue
                delay = delays.get(txid, 0.0) if isinstance(delays, dict) else delays
                if db.execute("UPDATE consignments SET state=?, next_attempt_at=?, last_error=?, updated_at=?"
                              f" WHERE transaction_id=? AND state=?{fence}",
                              (State.QUEUED, now + delay, error, now, txid, State.SENT, *fenced)).rowcount:
                    events.append((txid, now, State.QUEUED.value, None, f"sent again: {error}"))
            _write_history(db, events)
        self._store.run(body)

    def _fence(self, txid: str, epochs: Mapping[str, int] | None) -> tuple[str, tuple[Any, ...]]:
        """The condition (SQL, parameters) under which this daemon may still decide about
        a `sent` record: it holds the lease (at the epoch given). None on SQLite."""
        if not self._dialect.shared:
            return "", ()
        if epochs is not None and txid in epochs:
            return " AND lease_owner=? AND lease_epoch=?", (self.owner, epochs[txid])
        return " AND lease_owner=?", (self.owner,)

    def delivered(self, transaction_ids: list[str], now: float | None = None) -> None:
        """Records sent through a transport that gets no acknowledgements: final. The
        version on the wire is settled as handed over (the receiver is assumed to hold it:
        a later version goes as a replace), never accepted, never sent again by itself."""
        now = time.time() if now is None else now
        fence, fenced = self._fence("", None)
        with self.transaction() as db:
            db.executemany("UPDATE consignments SET state=?, wire_version=NULL, wire_action=NULL,"
                           f" wire_hash=NULL, {_UNKNOWN_HOLDING}, last_error=NULL, updated_at=? WHERE transaction_id=?"
                           f" AND state=?{fence}",
                           [(State.DELIVERED, now, txid, State.SENT, *fenced) for txid in transaction_ids])
            _write_history(db, [(txid, now, State.DELIVERED.value, None, "handed over; no answer comes")
                                for txid in transaction_ids])

    def dead_letter_queued(self, pipeline: str, error: str, now: float | None = None) -> list[str]:
        """Every queued record of `pipeline` to the dead-letter queue, with the error that
        put it there (a link refused for good: nothing queued waits on it unexplained).
        A version left unsettled on the wire is settled unanswered, as in `requeue`.
        Returns their transaction ids."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            txids = [r[0] for r in db.execute(
                f"SELECT transaction_id FROM consignments WHERE pipeline=? AND {_QUEUED}{self._dialect.lock}",
                (pipeline,))]
            db.executemany("UPDATE consignments SET state=?, last_error=?, updated_at=?,"
                           " on_file=CASE WHEN wire_action='add' AND accepted_hash IS NULL THEN 0 ELSE on_file END,"
                           f" {_UNKNOWN_HOLDING}, wire_version=NULL, wire_action=NULL, wire_hash=NULL WHERE transaction_id=?",
                           [(State.DEAD, error, now, txid) for txid in txids])
            _write_history(db, [(txid, now, State.DEAD.value, None, error) for txid in txids])
        return txids

    def resolve(self, ack: Ack, now: float | None = None) -> dict[str, State]:
        """Apply an acknowledgement; returns the new state per transaction id it moved.

        A result settles the version on the wire when it names that version (or, from a
        receiver without versions, when the record is still `sent` under this batch);
        any other result is late or repeated and changes nothing. See `settle` for what
        each answer means."""
        now = time.time() if now is None else now
        results = {r.transaction_id: r for r in ack.results}
        return self._store.run(lambda db: self._resolve_in(db, ack, results, now))

    def _resolve_in(self, db: Connection, ack: Ack, results: dict[str, Any], now: float) -> dict[str, State]:
        moved: dict[str, State] = {}
        txids = sorted(results) if self._dialect.lock else list(results)
        for i in range(0, len(txids), _LOOKUP_CHUNK):
            part = txids[i:i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            # Read by position below (0 transaction_id, 1 state, 2 batch_id, 4 wire_version,
            # 11 body_id, 12 row_key); by name in `settle`.
            rows = db.execute(
                "SELECT transaction_id, state, batch_id, version, wire_version, wire_action, wire_hash,"
                " first_wire_version, accepted_version, accepted_hash, on_file, body_id,"
                f" {self._dialect.row_key} AS row_key"
                f" FROM consignments WHERE transaction_id IN ({marks})"
                + (f" ORDER BY transaction_id{self._dialect.lock}" if self._dialect.lock else ""),
                part).fetchall()
            updates = []
            events: list[tuple[Any, ...]] = []
            in_batch = f" in batch {ack.batch_id}"
            for row in rows:
                txid, wire_version = row[0], row[4]
                result = results[txid]
                if result.version is not None:
                    if result.version != wire_version:
                        continue  # about another version: late, repeated, or not ours
                elif row[1] != State.SENT or row[2] != ack.batch_id:
                    continue
                s = settle(row, result)
                queued = s.state is State.QUEUED
                updates.append((s.state, _ack_json(result), s.error, s.accepted_version,
                                s.accepted_hash, s.on_file, s.first_wire_version,
                                now if queued else None, queued, queued, now, row[12]))
                moved[txid] = s.state
                detail = _VALUES[result.status] + in_batch
                codes = ", ".join(e.code for e in result.errors) if result.errors else ""
                if codes:
                    detail += ": " + codes
                if s.error and queued:
                    detail += f"; {s.error}"
                events.append((txid, now, _VALUES[s.state], wire_version, detail, row[11]))
            # A record queued again keeps its place in the queue's order by `queued_at`
            # (now: it waited for the answer), with a fresh retry budget. Updated by the
            # key the read returned (SQLite: the rowid, no second look-up by transaction id).
            db.executemany(
                "UPDATE consignments SET state=?, ack=?, last_error=?, accepted_version=?, accepted_hash=?,"
                " on_file=?, first_wire_version=?, wire_version=NULL, wire_action=NULL, wire_hash=NULL,"
                " queued_at=COALESCE(?, queued_at), attempts=CASE WHEN ? THEN 0 ELSE attempts END,"
                " next_attempt_at=CASE WHEN ? THEN 0 ELSE next_attempt_at END, updated_at=?"
                f" WHERE {self._dialect.row_key}=?", updates)
            db.executemany(_HISTORY_KEYED, events)
        if ack.events:  # news that moves no state (an ACE 350): history lines of known records
            known = {r[0] for r in db.execute(
                f"SELECT transaction_id FROM consignments WHERE transaction_id IN ({','.join('?' * len(ack.events))})",
                [e.transaction_id for e in ack.events]).fetchall()}
            _write_history(db, [(e.transaction_id, now, e.event, None, e.detail)
                                for e in ack.events if e.transaction_id in known])
        return moved

    def unacknowledged(self, pipeline: str, sent_before: float) -> list[Row]:
        """This daemon's records sent before `sent_before` and not answered (on SQLite:
        every one, the file has one daemon)."""
        fence, fenced = self._fence("", None)
        with self._reading() as db:
            rows = db.execute(f"SELECT {_ROW_COLUMNS} FROM {_ROWS} WHERE pipeline=? AND {_SENT}"
                              f" AND sent_at<?{fence}", (pipeline, sent_before, *fenced)).fetchall()
        return [self._row(r) for r in rows]

    def sent_in(self, pipeline: str, batch_ids: list[str]) -> list[Row]:
        marks = ",".join("?" * len(batch_ids))
        with self._reading() as db:
            rows = db.execute(f"SELECT {_ROW_COLUMNS} FROM {_ROWS}"
                                    f" WHERE pipeline=? AND {_SENT} AND batch_id IN ({marks})",
                                    (pipeline, *batch_ids)).fetchall()
        return [self._row(r) for r in rows]

    def in_flight(self, pipeline: str) -> tuple[int, int]:
        """(queued, sent) for one pipeline, counted off the partial indexes (every queued
        and sent entry of the pipeline, not the rows); a loop that asks "anything left?"
        wants `owed`."""
        with self._reading() as db:
            r = db.execute(
                f"SELECT (SELECT COUNT(*) FROM consignments WHERE pipeline=? AND {_QUEUED}),"
                f" (SELECT COUNT(*) FROM consignments WHERE pipeline=? AND {_SENT})", (pipeline, pipeline)).fetchone()
        return int(r[0]), int(r[1])

    def owed(self, pipeline: str, now: float | None = None) -> Owed:
        """Whether the pipeline has records queued, sent and not resolved, and due now:
        one index probe each, whatever the size of the queue. "Due" reads past the
        records waiting out a backoff at the head of the queue (as `claim` does)."""
        now = time.time() if now is None else now
        with self._reading() as db:
            r = db.execute(
                f"SELECT EXISTS(SELECT 1 FROM consignments WHERE pipeline=? AND {_QUEUED}),"
                f" EXISTS(SELECT 1 FROM consignments WHERE pipeline=? AND {_SENT}),"
                f" EXISTS(SELECT 1 FROM consignments WHERE pipeline=? AND {_QUEUED} AND next_attempt_at<=?)",
                (pipeline, pipeline, pipeline, now)).fetchone()
        return Owed(bool(r[0]), bool(r[1]), bool(r[2]))

    # ------------------------------------------------------------------ operators

    def status(self) -> list[dict[str, Any]]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT pipeline, state, COUNT(*) AS n, MIN(CASE WHEN state='queued' THEN queued_at END) AS oldest,"
                " MAX(updated_at) AS last FROM consignments GROUP BY pipeline, state ORDER BY pipeline, state"
            ).fetchall()
            errors = {r["pipeline"]: r["last_error"] for r in db.execute(
                _LAST_ERRORS[self._dialect.name])}
        return [{"pipeline": r["pipeline"], "state": r["state"], "count": r["n"], "oldest_queued": r["oldest"],
                 "last_error": errors.get(r["pipeline"])} for r in rows]

    def counts(self, pipeline: str | None = None) -> dict[str, int]:
        with self._reading() as db:
            q = "SELECT state, COUNT(*) FROM consignments"
            rows = db.execute(q + " WHERE pipeline=? GROUP BY state", (pipeline,)) if pipeline else \
                db.execute(q + " GROUP BY state")
            return {state: n for state, n in rows}

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        with self._reading() as db:
            r = db.execute(f"SELECT consignments.*, record FROM {_ROWS} WHERE transaction_id=?",
                                 (transaction_id,)).fetchone()
        return dict(r) if r else None

    def dead(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT transaction_id, pipeline, ref, attempts, last_error, updated_at FROM consignments"
                " WHERE state=? AND (CAST(? AS TEXT) IS NULL OR pipeline=?) ORDER BY updated_at",
                (State.DEAD, pipeline, pipeline))
            return [dict(r) for r in rows]

    def retry_dead(self, transaction_ids: Iterable[str] | None = None, now: float | None = None) -> int:
        """Give dead records a fresh retry budget."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            if transaction_ids is None:
                db.execute("INSERT INTO history (transaction_id, at, event, version, detail, consignment)"
                           " SELECT transaction_id, ?, ?, NULL, ?, body_id FROM consignments WHERE state=?",
                           (now, State.QUEUED.value, "dlq retry by an operator", State.DEAD))
                cur = db.execute("UPDATE consignments SET state=?, attempts=0, next_attempt_at=0, queued_at=?,"
                                 " updated_at=? WHERE state=?", (State.QUEUED, now, now, State.DEAD))
                return cur.rowcount
            n = 0
            for txid in transaction_ids:
                moved = db.execute("UPDATE consignments SET state=?, attempts=0, next_attempt_at=0, queued_at=?,"
                                   " updated_at=? WHERE state=? AND transaction_id=?",
                                   (State.QUEUED, now, now, State.DEAD, txid)).rowcount
                if moved:
                    _write_history(db, [(txid, now, State.QUEUED.value, None, "dlq retry by an operator")])
                n += moved
            return n

    def resend(self, transaction_id: str, action: Action | None = None, now: float | None = None,
               version: int | None = None) -> str:
        """Queue the current content again as a new version (operator's `resend`), or a
        delete of it (`delete`). Returns what was done. A record on the wire keeps
        waiting for its answer; the new version follows it. `version`: the one the
        sender gave (the relay passes its clients' versions through)."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            r = db.execute(f"SELECT state, record, version, on_file, wire_version FROM {_ROWS}"
                           f" WHERE transaction_id=?{self._dialect.lock}", (transaction_id,)).fetchone()
            if r is None:
                raise KeyError(f"no consignment {transaction_id!r} in the ledger")
            if r["record"] is None:
                raise ValueError(f"{transaction_id}: no valid record to send (state {r['state']})")
            held = bool(r["on_file"]) or r["wire_version"] is not None
            if action is Action.DELETE and not held:
                raise ValueError(f"{transaction_id}: never accepted nor sent, nothing to delete")
            if action is None:
                action = Action.REPLACE if held else Action.ADD
            version = version if version is not None else next_version(r["version"], now)
            if r["state"] == State.SENT:
                db.execute("UPDATE consignments SET action=?, version=?, updated_at=? WHERE transaction_id=?",
                           (action, version, now, transaction_id))
            else:
                db.execute("UPDATE consignments SET state=?, action=?, version=?, attempts=0, next_attempt_at=0,"
                           " queued_at=?, last_error=NULL, updated_at=? WHERE transaction_id=?",
                           (State.QUEUED, action, version, now, now, transaction_id))
            _write_history(db, [(transaction_id, now, "resent" if action is not Action.DELETE else "delete",
                                 version, f"queued as {action.value} by an operator")])
        return f"{transaction_id}: queued as {action.value}"

    # ------------------------------------------------------------------ finding records

    def find(self, reference: str) -> list[str]:
        """Transaction ids of the records a person names: a transaction id, an order name
        (`#1001` or `1001`), a master or house bill or a tracking number (`ref_key`)."""
        with self._reading() as db:
            if db.execute("SELECT 1 FROM consignments WHERE transaction_id=?", (reference.strip(),)).fetchone():
                return [reference.strip()]
            keys = {ref_key(reference), ref_key(unprefixed(reference.strip()))}
            return [r[0] for r in db.execute(
                f"SELECT DISTINCT transaction_id FROM refs WHERE ref IN ({','.join('?' * len(keys))})"
                " ORDER BY transaction_id", sorted(keys))]

    def names(self, transaction_ids: Iterable[str]) -> dict[str, str]:
        """Each record's key in its source (`shopify:#1001`, a bill number): what a
        person calls it, for messages that would otherwise show only transaction ids."""
        txids = list(dict.fromkeys(transaction_ids))
        out: dict[str, str] = {}
        with self._reading() as db:
            for i in range(0, len(txids), _LOOKUP_CHUNK):
                part = txids[i:i + _LOOKUP_CHUNK]
                out.update(db.execute(
                    f"SELECT transaction_id, ref FROM consignments WHERE transaction_id IN ({','.join('?' * len(part))})",
                    part).fetchall())
        return out

    def history(self, transaction_id: str) -> list[dict[str, Any]]:
        """What happened to a record, oldest first: {at, event, version, detail}."""
        with self._reading() as db:
            return [dict(r) for r in db.execute(
                "SELECT at, event, version, detail FROM history WHERE consignment ="
                " (SELECT body_id FROM consignments WHERE transaction_id=?) ORDER BY at, rowid",
                (transaction_id,))]

    def references_of(self, transaction_id: str) -> list[str]:
        with self._reading() as db:
            return [r[0] for r in db.execute(
                "SELECT ref FROM refs WHERE transaction_id=? ORDER BY ref", (transaction_id,))]

    def needing_attention(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        """Invalid, rejected and dead records with their findings (validation's, the
        receiver's answer, the error that put them in the dead-letter queue)."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT transaction_id, pipeline, ref, state, source, findings, ack, last_error, updated_at"
                " FROM consignments WHERE state IN (?,?,?) AND (CAST(? AS TEXT) IS NULL OR pipeline=?)"
                " ORDER BY pipeline, state, updated_at",
                (State.INVALID, State.REJECTED, State.DEAD, pipeline, pipeline)).fetchall()
        out = []
        for r in rows:
            item = {k: r[k] for k in ("transaction_id", "pipeline", "ref", "state", "source", "last_error",
                                      "updated_at")}
            item["findings"] = _findings_of(r["state"], r["findings"], r["ack"])
            out.append(item)
        return out

    # ------------------------------------------------------------------ raw units (revalidation)

    def raw_units(self, pipeline: str, include_filed: bool = False) -> list[tuple[str, str, bytes]]:
        """(transaction id, state, pickled raw unit) of the pipeline's records whose raw
        unit is kept: the never-filed invalid ones, and with `include_filed` every one."""
        with self._reading() as db:
            q = ("SELECT raw_units.transaction_id, state, unit FROM raw_units JOIN consignments"
                 " USING (transaction_id) WHERE raw_units.pipeline=?")
            if not include_filed:
                q += (f" AND state='{State.INVALID.value}' AND on_file=0 AND accepted_version IS NULL"
                      " AND wire_version IS NULL")
            return [(r[0], r[1], r[2]) for r in db.execute(q + " ORDER BY raw_units.rowid", (pipeline,))]

    def purge_raw(self, older_than: float) -> int:
        """Remove the raw units stored before `older_than` (a time): past retention."""
        with self.transaction() as db:
            return db.execute("DELETE FROM raw_units WHERE stored_at < ?", (older_than,)).rowcount

    def fingerprint(self, pipeline: str) -> str | None:
        with self._reading() as db:
            r = db.execute("SELECT fingerprint FROM fingerprints WHERE pipeline=?", (pipeline,)).fetchone()
        return r[0] if r else None

    def set_fingerprint(self, pipeline: str, fingerprint: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO fingerprints (pipeline, fingerprint) VALUES (?,?)"
                       " ON CONFLICT (pipeline) DO UPDATE SET fingerprint=excluded.fingerprint", (pipeline, fingerprint))

    def assume_on_file(self, transaction_id: str) -> None:
        """The receiver holds some version of this record, as the sender says (the
        relay's client sent a replace): the next version goes as a replace."""
        with self.transaction() as db:
            db.execute("UPDATE consignments SET on_file=1 WHERE transaction_id=?", (transaction_id,))

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _row(r: sqlite3.Row | tuple[Any, ...] | list[Any]) -> Row:
        txid, pipeline, client, ref, state, action, record, attempts, queued_at, batch_id, last_error, version = r
        return Row(txid, pipeline, client, ref, _STATES[state], _ACTIONS[action],
                   _wire_json(record, txid, action, version), attempts, queued_at, batch_id, last_error, version)


_STATE_OF = {Status.VALID: State.QUEUED, Status.INVALID: State.INVALID, Status.SKIPPED: State.SKIPPED}
"""The state an outcome is stored in."""

_VALUES: dict[Any, str] = {m: m.value for m in (*State, *AckStatus)}
_SENT_EVENT = State.SENT.value
"""Enum members' values by dict (history lines are plain text): `.value` is a
descriptor call, a few of them a record."""

_STATES = {s.value: s for s in State}
_ACTIONS = {a.value: a for a in Action}
"""Column values to enum members by dict: calling the enum costs a microsecond a row."""

_ROW_COLUMNS = ("transaction_id, pipeline, client, ref, state, action, record, attempts, queued_at,"
                " batch_id, last_error, version")
"""What `Row` is made of, in its order: claim reads no more than it returns."""

_UNKNOWN_HOLDING = "accepted_hash=CASE WHEN wire_version IS NULL THEN accepted_hash ELSE NULL END"
"""A version settled unanswered (dead, or handed over without answers) may be what the
receiver holds: the accepted content is no longer known to be held (`accepted_hash`
NULL), so a change back to it is filed, never taken for "nothing to file"."""

_HISTORY = ("INSERT INTO history (transaction_id, at, event, version, detail, consignment)"
            " VALUES (?,?,?,?,?,COALESCE(?,(SELECT body_id FROM consignments WHERE transaction_id=?)))")
"""One line of a record's story (`s321 show`), with the record's integer key, looked up
when not given."""

_HISTORY_KEYED = "INSERT INTO history (transaction_id, at, event, version, detail, consignment) VALUES (?,?,?,?,?,?)"
"""The same, given the record's integer key (claim and resolve read it anyway)."""


def _write_history(db: Connection, events: Iterable[tuple[Any, ...]], keys: Mapping[str, int] | None = None
                   ) -> None:
    """History lines (transaction id, at, event, version, detail) of records in the
    ledger, each keyed by its record's `body_id` (s321.ledger_schema.HISTORY_INDEX):
    from `keys` when there, else looked up."""
    keys = keys or {}
    db.executemany(_HISTORY, [(*event, keys.get(event[0]), event[0]) for event in events])

_REF = "INSERT INTO refs (ref, transaction_id) VALUES (?,?) ON CONFLICT DO NOTHING"
"""A name a record is found by (`find`)."""

_LAST_ERRORS = {
    # SQLite takes the bare column from the row that holds the MAX.
    "sqlite": "SELECT pipeline, last_error, MAX(updated_at) FROM consignments"
              " WHERE last_error IS NOT NULL GROUP BY pipeline",
    "postgresql": "SELECT DISTINCT ON (pipeline) pipeline, last_error FROM consignments"
                  " WHERE last_error IS NOT NULL ORDER BY pipeline, updated_at DESC",
}
"""Each pipeline's latest error (`status`): the one statement the two databases spell apart."""


def _wire_json(stored: str | None, transaction_id: str, action: str, version: int | None) -> str | None:
    """The stored record's JSON with the row's action and version, which win over what it
    was stored with (a record is stored as ingested; claims decide the action)."""
    if stored is None:
        return None
    text = ids.stamped(stored, transaction_id, action, version)
    if text is None:  # not written the way this version writes it: through the model
        record = Consignment.model_validate_json(stored)
        record.action = Action(action)
        record.version = version
        text = record.model_dump_json(exclude_none=True)
    return text


def _ack_json(result: Any) -> str:
    """`result.model_dump_json()`: the answer as the row keeps it. A plain acceptance (no
    errors, a transaction id of letters and digits, as `ids.transaction_id` makes them)
    is written from a template, the same text; anything else through its serializer."""
    if result.__class__ is RecordAck and not result.errors and result.status is AckStatus.ACCEPTED:
        txid, version = result.transaction_id, result.version
        if txid.isascii() and txid.isalnum() and (version is None or version.__class__ is int):
            return (f'{{"transaction_id":"{txid}","status":"accepted","version":'
                    f'{"null" if version is None else version},"errors":[]}}')
    return result.__pydantic_serializer__.to_json(result).decode("utf-8")


def _read_at(event: str, outcome: Outcome) -> str:
    """A history line's detail for a stored outcome: how it came and where it was read,
    with its error codes (codes only: a message may quote personal data)."""
    codes = sorted({f.code for f in outcome.findings if f.severity.value == "error"})
    detail = f"{event} at {outcome.source}"
    if codes:
        detail += f": {', '.join(codes)}"
    if outcome.reason:
        detail += f" (skipped: {outcome.reason})"
    return detail


def _findings_of(state: str, findings: str | None, ack: str | None) -> list[dict[str, Any]]:
    """A record's findings as {code, field, severity, message[, location]}: validation's
    for an invalid one, the receiver's errors for a rejected one."""
    if state == State.REJECTED and ack:
        try:
            errors = json.loads(ack).get("errors") or []
        except ValueError:
            errors = []
        return [{"code": e.get("code"), "field": e.get("field") or "", "severity": "error",
                 "message": e.get("message") or ""} for e in errors]
    try:
        return [f for f in json.loads(findings or "[]") if f.get("severity") == "error"] \
            if state == State.INVALID else json.loads(findings or "[]")
    except ValueError:
        return []

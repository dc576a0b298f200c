"""The ledger's tables and indexes: SCHEMA for a SQLite file, PG_SCHEMA (the same tables,
derived from it) for a PostgreSQL database; the version a ledger is at (`PRAGMA
user_version` in a file, the `s321_schema` table in a database) and the steps that bring
a file written by an earlier s321 up to date (`upgrade`), each once, in the caller's
transaction.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3

from s321 import ids
from s321.record import Consignment
from s321.references import references
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
    version         INTEGER,
    wire_version    INTEGER,
    wire_action     TEXT,
    wire_hash       TEXT,
    first_wire_version INTEGER,
    accepted_version INTEGER,
    on_file         INTEGER NOT NULL DEFAULT 0,
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
    updated_at      REAL NOT NULL,
    lease_owner     TEXT,
    lease_epoch     INTEGER NOT NULL DEFAULT 0,
    lease_expires   REAL
);
"""
"""One row a consignment: its state, small enough that claim and resolve, which change
nothing else, rewrite a few rows a page. `body_id` is its row in `bodies`.

Versions (schema 4): `version` is the current content's version and `content_hash` its
hash; `wire_*` describe the version put on the wire and not yet settled (None once an
answer settles it); `accepted_version`/`accepted_hash` what the receiver acknowledged
(`accepted_hash` NULL once it may hold another version: settled unanswered, superseded);
`on_file` whether the receiver is known or assumed to hold some version (a claim then
sends a replace); `first_wire_version` the oldest version it may hold, which is how a
`duplicate` from a receiver without versions is proven to be about the current one.

Leases (schema 6): the daemon that claimed a `sent` record (`lease_owner`), how many
times it was claimed (`lease_epoch`, which fences a stale holder's decisions) and until
when (`lease_expires`, seconds since the epoch by the database's clock)."""

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
-- The names people use for a record (order name, bills, tracking number), normalised
-- by `ref_key`: `s321 show REF`, `resend REF`. Written when a record is first stored or
-- changes (a name it once had still finds it).
CREATE TABLE IF NOT EXISTS refs (
    ref            TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    PRIMARY KEY (ref, transaction_id)
) WITHOUT ROWID;
-- What happened to a record, one row an event (received, changed, sent, accepted,
-- rejected, queued again, dead, delivered, resent, revalidated): `s321 show`. Found by
-- `consignment`, the record's integer key (its `body_id`, numbered as records arrive:
-- HISTORY_INDEX, made by `upgrade`), not by its transaction id, a hash.
CREATE TABLE IF NOT EXISTS history (
    transaction_id TEXT NOT NULL,
    at             REAL NOT NULL,
    event          TEXT NOT NULL,
    version        INTEGER,
    detail         TEXT,
    consignment    INTEGER
);
-- The raw unit (as its source read it, pickled) of a record that was invalid when read,
-- so that it can be mapped again when a table, the defaults or the profile change,
-- without its input file (archived, or gone). Removed by `s321 ledger purge`.
CREATE TABLE IF NOT EXISTS raw_units (
    transaction_id TEXT PRIMARY KEY,
    pipeline       TEXT NOT NULL,
    unit           BLOB NOT NULL,
    stored_at      REAL NOT NULL
);
-- Per pipeline, a digest of what its verdicts depend on besides the input (enrichment
-- tables, defaults, profile, rates): when it changes, invalid records are revalidated.
CREATE TABLE IF NOT EXISTS fingerprints (
    pipeline    TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inputs (
    pipeline     TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    units        INTEGER NOT NULL,
    processed_at REAL NOT NULL,
    PRIMARY KEY (pipeline, path, size, mtime_ns)
);
-- An input file one daemon is reading (a shared inbox): the lease of its owner, given
-- up when the file's units are stored (`inputs`) or its read failed.
CREATE TABLE IF NOT EXISTS input_claims (
    pipeline      TEXT NOT NULL,
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    lease_owner   TEXT NOT NULL,
    lease_expires REAL NOT NULL,
    PRIMARY KEY (pipeline, path, size, mtime_ns, sha256)
);
-- Durable counters (X12 control numbers): the last number given per name.
CREATE TABLE IF NOT EXISTS sequences (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Small facts a serializer must find again after a restart (which batch an X12 group
-- control number was sent in, so that a late 997 names its records).
CREATE TABLE IF NOT EXISTS notes (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


HISTORY_INDEX = "CREATE INDEX IF NOT EXISTS history_by_consignment ON history (consignment)"
"""History lines by the record's integer key. A batch's records were numbered close
together as they arrived, so its `sent` and `accepted` lines land in a few neighbouring
index pages at any ledger size; keyed by transaction id (a hash, up to schema 7) each
line landed on a random page, which past a few hundred thousand records is a page read
and a page written to the WAL a line. Made by `upgrade` (and `pg_upgrade`), not SCHEMA:
a file of an earlier version has no `consignment` column until upgraded."""

SCHEMA_VERSION = 8
"""PRAGMA user_version of a ledger file (and the version in a database's `s321_schema`).
8: `history.consignment` (the record's `body_id`) and its index, instead of an index by
transaction id. 7: `notes`. 6: leases (`lease_owner`, `lease_epoch`, `lease_expires`), `input_claims`, `sequences`. 5: `refs`, `history`, `raw_units`, `fingerprints`
(the references of existing records are indexed on upgrade). 4: versions (`version`, `wire_*`,
`accepted_version`, `first_wire_version`, `on_file`). 3: records in `bodies`, not in their
consignments row (which held them as `record`). 2: partial indexes on queued and sent records
only (SCHEMA). 1: content hashes are ids.content_hash of the record's JSON; 0 (no
version) hashed a key-sorted json.dumps of the record's dict."""

_OLD_INDEXES = ("consignments_queue", "consignments_batch", "consignments_due")
"""Indexes of versions 0 and 1, over every record whatever its state."""

_QUEUED, _SENT = f"state='{State.QUEUED.value}'", f"state='{State.SENT.value}'"
"""The state filters the partial indexes are made for, spelled as they are."""

_ROWS = "consignments JOIN bodies ON bodies.id = consignments.body_id"
"""Consignments with their records (every consignment has its body, if an empty one)."""

LOOKUP_CHUNK = 500
"""Records read in one query (SQLite allows 32766 parameters)."""


def upgrade(db: sqlite3.Connection, version: int) -> None:
    """From `version` to SCHEMA_VERSION, inside the caller's transaction."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(consignments)")}
    created = "on_file" in columns  # made by this SCHEMA: nothing to move
    if version < 1 and not created:  # a new file has nothing to rehash
        _rehash(db)
    if version < 2:
        for index in _OLD_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {index}")
    if version < 3 and not created:
        _move_bodies(db)
    if version < 4 and not created:
        _add_versions(db)
    if version < 5:
        _index_refs(db)
    if version < 6:
        _add_leases(db)
    if version < 8:
        _key_history(db)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _rehash(db: sqlite3.Connection) -> None:
    """Version 0 -> 1: content hashes of the stored records, the new way. An accepted
    hash equal to the old content hash becomes the new one (CBP has this content); any
    other becomes one no new hash can equal, so that content is filed again if it
    comes back (a replace of what CBP has, never a lost change)."""
    last = ""
    while rows := db.execute(
            "SELECT transaction_id, record, content_hash, accepted_hash FROM consignments"
            " WHERE transaction_id > ? ORDER BY transaction_id LIMIT ?", (last, LOOKUP_CHUNK)).fetchall():
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
    old = {r["name"] for r in db.execute("PRAGMA table_info(consignments)")}
    columns = ", ".join(r["name"] for r in db.execute("PRAGMA table_info(consignments_v3)")
                        if r["name"] != "body_id" and r["name"] in old)
    db.execute("INSERT INTO bodies (id, record) SELECT rowid, record FROM consignments")
    db.execute(f"INSERT INTO consignments_v3 ({columns}, body_id) SELECT {columns}, rowid FROM consignments")
    db.execute("DROP TABLE consignments")
    db.execute("ALTER TABLE consignments_v3 RENAME TO consignments")
    for index in _INDEXES:
        db.execute(index)


def _add_versions(db: sqlite3.Connection) -> None:
    """Version 3 -> 4: every record gets a version (the microsecond of its last change),
    what was accepted is on file at that version, what was sent and never accepted may
    be held in some earlier version, and what is on the wire is that version, sent with
    the action it has."""
    for column in ("version INTEGER", "wire_version INTEGER", "wire_action TEXT", "wire_hash TEXT",
                   "first_wire_version INTEGER", "accepted_version INTEGER",
                   "on_file INTEGER NOT NULL DEFAULT 0"):
        if column.split()[0] not in {r["name"] for r in db.execute("PRAGMA table_info(consignments)")}:
            db.execute(f"ALTER TABLE consignments ADD COLUMN {column}")
    db.execute("UPDATE consignments SET version = CAST(updated_at * 1000000 AS INTEGER)")
    db.execute("UPDATE consignments SET accepted_version = version, on_file = 1, first_wire_version = version"
               " WHERE accepted_hash IS NOT NULL")
    # Sent before and never accepted (no answer in time, then maybe changed): the receiver
    # may hold an earlier version that no version number names (0), so a `duplicate`
    # answer proves nothing and the current version follows as a replace.
    db.execute("UPDATE consignments SET first_wire_version = 0 WHERE accepted_hash IS NULL AND sent_at IS NOT NULL")
    db.execute(f"UPDATE consignments SET wire_version = version, wire_action = action, wire_hash = content_hash,"
               f" on_file = CASE WHEN action = 'delete' THEN on_file ELSE 1 END,"
               f" first_wire_version = COALESCE(first_wire_version, version) WHERE {_SENT}")


def _index_refs(db: sqlite3.Connection) -> None:
    """Version 4 -> 5: the references of the records already in the ledger."""
    last = ""
    while rows := db.execute(
            f"SELECT transaction_id, ref, record FROM {_ROWS} WHERE transaction_id > ?"
            " ORDER BY transaction_id LIMIT ?", (last, LOOKUP_CHUNK)).fetchall():
        refs = []
        for r in rows:
            record = None
            if r["record"]:
                try:
                    record = Consignment.model_validate_json(r["record"])
                except ValueError:
                    record = None
            refs += [(ref, r["transaction_id"]) for ref in references(r["ref"], record)]
        db.executemany("INSERT OR IGNORE INTO refs (ref, transaction_id) VALUES (?,?)", refs)
        last = rows[-1]["transaction_id"]


def _add_leases(db: sqlite3.Connection) -> None:
    """Version 5 -> 6: the lease columns (no record is leased yet; the new tables are
    made by SCHEMA)."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(consignments)")}
    for column in ("lease_owner TEXT", "lease_epoch INTEGER NOT NULL DEFAULT 0", "lease_expires REAL"):
        if column.split()[0] not in columns:
            db.execute(f"ALTER TABLE consignments ADD COLUMN {column}")


def _key_history(db: sqlite3.Connection) -> None:
    """Version 7 -> 8: each history line gets its record's integer key; the index by
    transaction id gives way to the index by that key."""
    if "consignment" not in {r["name"] for r in db.execute("PRAGMA table_info(history)")}:
        db.execute("ALTER TABLE history ADD COLUMN consignment INTEGER")
    db.execute(_FILL_HISTORY_KEYS)
    db.execute("DROP INDEX IF EXISTS history_of")
    db.execute(HISTORY_INDEX)


_FILL_HISTORY_KEYS = ("UPDATE history SET consignment = (SELECT body_id FROM consignments"
                      " WHERE consignments.transaction_id = history.transaction_id) WHERE consignment IS NULL")


def pg_upgrade(version: int) -> list[str]:
    """The statements that bring a PostgreSQL ledger at `version` (0: none yet) to
    SCHEMA_VERSION once PG_SCHEMA has made what is missing, in the same transaction."""
    steps = []
    if 0 < version < 8:
        steps += ["ALTER TABLE history ADD COLUMN IF NOT EXISTS consignment BIGINT", _FILL_HISTORY_KEYS,
                  "DROP INDEX IF EXISTS history_of"]
    return [*steps, HISTORY_INDEX]


def _postgres(schema: str) -> str:
    """SCHEMA as PostgreSQL spells it: 64-bit integers, doubles, bytea, text compared byte
    by byte as SQLite compares it (COLLATE "C"); bodies numbered by an identity (one
    sequence for every daemon); `history` and `raw_units` get the `rowid` SQLite gives
    every table, which their readers order by."""
    out = schema.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    out = re.sub(r"\bINTEGER\b", "BIGINT", out)
    out = re.sub(r"\bREAL\b", "DOUBLE PRECISION", out)
    out = re.sub(r"\bBLOB\b", "BYTEA", out)
    out = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', out)
    out = out.replace(") WITHOUT ROWID;", ");")
    for table in ("history", "raw_units"):
        out = out.replace(f"CREATE TABLE IF NOT EXISTS {table} (\n",
                          f"CREATE TABLE IF NOT EXISTS {table} (\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY,\n")
    return out + """
CREATE TABLE IF NOT EXISTS s321_schema (
    version BIGINT NOT NULL
);
"""


PG_SCHEMA = _postgres(SCHEMA)
"""The ledger's tables in a PostgreSQL database, with `s321_schema` holding its version."""

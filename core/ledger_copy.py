"""`s321 ledger copy`: move a ledger from one store to another (a SQLite file to a
PostgreSQL database, or back) with every row of every table as it is: records, bodies,
versions, names, history, raw units, input files, sequences.

Promises: the target must be empty (a copy never merges two ledgers); everything is
written in one transaction of the target (a failed copy leaves it empty); the copy is
verified, table by table, by counting and hashing the rows of both sides, and a
difference is an error naming the table. Stop the daemons first: a copy reads a ledger
that does not change meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s321.errors import S321Error
from s321.ledger import Ledger
from s321.ledger_open import open_ledger

if TYPE_CHECKING:
    from s321.config import LedgerSection

TABLES: dict[str, tuple[str, str]] = {
    "bodies": ("id, record", "id"),
    "consignments": ("transaction_id, pipeline, client, ref, source, state, action, content_hash, accepted_hash,"
                     " body_id, version, wire_version, wire_action, wire_hash, first_wire_version, accepted_version,"
                     " on_file, findings, reason, attempts, next_attempt_at, queued_at, batch_id, sent_at,"
                     " last_error, ack, created_at, updated_at, lease_owner, lease_epoch, lease_expires",
                     "transaction_id"),
    "refs": ("ref, transaction_id", "ref, transaction_id"),
    "history": ("transaction_id, at, event, version, detail, consignment", "rowid"),
    "raw_units": ("transaction_id, pipeline, unit, stored_at", "rowid"),
    "fingerprints": ("pipeline, fingerprint", "pipeline"),
    "inputs": ("pipeline, path, size, mtime_ns, units, processed_at", "pipeline, path, size, mtime_ns"),
    "input_claims": ("pipeline, path, size, mtime_ns, sha256, lease_owner, lease_expires",
                     "pipeline, path, size, mtime_ns, sha256"),
    "sequences": ("name, value", "name"),
    "notes": ("key, value", "key"),
}
"""Every table of a ledger (schema 8): its columns, and the order its rows are read in
(`history` and `raw_units` by `rowid`, the order they were written, which their readers
keep)."""

_CHUNK = 1000


@dataclass
class CopyReport:
    """What a copy moved: rows per table, and each table's content hash (equal on both
    sides, or the copy raised)."""

    source: str
    target: str
    counts: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)


def copy_ledger(source: LedgerSection | str | Path, target: LedgerSection | str | Path) -> CopyReport:
    """Copy the ledger `source` into the empty ledger `target` (each a `[ledger]`
    section, a SQLite path, or a URL) and verify it; S321Error when the source does not
    exist, the target is not empty, or the two differ after the copy."""
    if isinstance(source, (str, Path)) and not str(source).lower().startswith(("postgresql:", "postgres:")):
        path = Path(str(source)[len("sqlite://"):] if str(source).lower().startswith("sqlite:") else source)
        if not path.exists():
            raise S321Error(f"{path}: no ledger there to copy from")
    src = open_ledger(source)
    try:
        dst = open_ledger(target)
        try:
            return _copy(src, dst)
        finally:
            dst.close()
    finally:
        src.close()


def _copy(src: Ledger, dst: Ledger) -> CopyReport:
    report = CopyReport(src.describe(), dst.describe())
    held = {table: n for table, n in _counts(dst).items() if n}
    if held:
        raise S321Error(f"{dst.describe()}: the target ledger is not empty ({_listed(held)}); a copy goes"
                        " only into a new, empty ledger (make a new database, or move the file away)")
    with dst.transaction() as db:
        for table, (columns, order) in TABLES.items():
            marks = ",".join("?" * len(columns.split(",")))
            insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            digest = hashlib.sha256()
            count = 0
            chunk: list[Any] = []
            for row in src._store.stream(f"SELECT {columns} FROM {table} ORDER BY {order}", _CHUNK):
                _hash_row(digest, row)
                chunk.append(tuple(row))
                count += 1
                if len(chunk) >= _CHUNK:
                    db.executemany(insert, chunk)
                    chunk = []
            if chunk:
                db.executemany(insert, chunk)
            report.counts[table] = count
            report.hashes[table] = digest.hexdigest()
        dst._store.after_copy(db)
    differ = []
    for table, (columns, order) in TABLES.items():
        digest = hashlib.sha256()
        count = 0
        for row in dst._store.stream(f"SELECT {columns} FROM {table} ORDER BY {order}", _CHUNK):
            _hash_row(digest, row)
            count += 1
        if (count, digest.hexdigest()) != (report.counts[table], report.hashes[table]):
            differ.append(f"{table} ({report.counts[table]} rows read, {count} in the target)")
    if differ:
        raise S321Error(f"{dst.describe()}: the copy differs from {src.describe()} in {', '.join(differ)};"
                        " do not use it: drop it and copy again")
    return report


def _counts(ledger: Ledger) -> dict[str, int]:
    with ledger._store.reading() as db:
        return {table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) for table in TABLES}


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} rows in {table}" for table, n in counts.items())


def _hash_row(digest: Any, row: Iterable[Any]) -> None:
    """One row into a table's hash, each value with its kind, so that the same rows hash
    the same whichever database they were read from (a float as its exact repr, bytes
    as hex, NULL apart from any text)."""
    parts = []
    for value in row:
        if value is None:
            parts.append("N")
        elif isinstance(value, bool):
            parts.append(f"i{int(value)}")
        elif isinstance(value, int):
            parts.append(f"i{value}")
        elif isinstance(value, float):
            parts.append(f"f{value!r}")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            parts.append("b" + bytes(value).hex())
        else:
            parts.append("s" + str(value).replace("\\", "\\\\").replace("\x1f", "\\x1f"))
    digest.update("\x1f".join(parts).encode("utf-8") + b"\x1e")

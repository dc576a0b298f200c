"""What the console reads from a ledger: overview, records, one record, findings, dead
letters. Each query takes the user's scope and applies it in SQL, so that nothing a
scoped user is shown (a row, a count, a chart point, a search hit) comes from a client
outside it.

Promises: the ledger is read read-only, so the console never blocks a daemon: a SQLite
file through a read-only connection per call site (`mode=ro`, never a write lock), a
PostgreSQL database through read-only transactions (`BEGIN READ ONLY`) on a small pool
of its own; a scope is a list of originator codes (`None`: every client; an empty list:
none); records are paged by keyset on the record's key in arrival order (the file's
rowid, the database's `body_id`), newest received first, never by OFFSET; the `history`
and `refs` tables are read when the ledger has them, and their absence (an older
ledger) only leaves the history empty and searches to transaction ids and source keys.

The same queries run on both stores; the few fragments that differ (JSON functions,
the keyset column, the hour of a time, the latest error per pipeline) are `Dialect`s.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s321 import ledger_backend
from s321.errors import S321Error
from s321.references import ref_key
from s321.states import State

if TYPE_CHECKING:
    from s321.config import LedgerSection

Scope = Sequence[str] | None
"""The originator codes a user may see; None for every one."""

PAGE_SIZE = 50

_NEEDS_ATTENTION = (State.INVALID.value, State.REJECTED.value, State.DEAD.value)



@dataclass(frozen=True)
class Dialect:
    """The fragments of the console's SQL that differ between the ledger's two stores."""

    cursor: str
    """The keyset column of records: a key in arrival order, unique, never reused."""
    findings: str
    """A FROM item: the findings of record `c`, one JSON object a row, as `f(value)`."""
    errors: str
    """A FROM item: the receiver's errors in the acknowledgement of `c`, as `e(value)`."""
    get: Callable[[str, str], str]
    """`get("f", "code")`: a text member of the object in `f.value`."""
    hour: str
    """The hour (seconds since the epoch, rounded down) of `updated_at`."""
    last_errors: str
    """Per (pipeline, client) the last error of its most recently changed record that
    has one; `{where}` is the scope."""
    version: str
    """The ledger's schema version (s321.ledger_schema.SCHEMA_VERSION when current)."""


SQLITE = Dialect(
    cursor="c.rowid",
    findings="json_each(CASE WHEN json_valid(c.findings) THEN c.findings ELSE '[]' END) AS f",
    errors="json_each(CASE WHEN json_valid(c.ack) THEN c.ack ELSE '{}' END, '$.errors') AS e",
    get=lambda alias, key: f"json_extract({alias}.value, '$.{key}')",
    hour="CAST(updated_at / 3600 AS INTEGER) * 3600",
    # SQLite takes the bare column from the row that holds the MAX.
    last_errors="SELECT pipeline, client, last_error, MAX(updated_at) AS at FROM consignments AS c"
                " WHERE last_error IS NOT NULL{where} GROUP BY pipeline, client",
    version="PRAGMA user_version")

POSTGRESQL = Dialect(
    cursor="c.body_id",
    # The ledger writes these columns with json.dumps; a text that is not an array (or
    # an object) is read as none, as SQLite's json_valid guard does.
    findings="jsonb_array_elements(CASE WHEN left(c.findings, 1) = '[' THEN c.findings::jsonb"
             " ELSE '[]'::jsonb END) AS f(value)",
    errors="jsonb_array_elements(CASE WHEN left(c.ack, 1) <> '{' OR c.ack IS NULL THEN '[]'::jsonb"
           " WHEN jsonb_typeof(c.ack::jsonb -> 'errors') = 'array' THEN c.ack::jsonb -> 'errors'"
           " ELSE '[]'::jsonb END) AS e(value)",
    get=lambda alias, key: f"({alias}.value ->> '{key}')",
    hour="CAST(FLOOR(updated_at / 3600) AS BIGINT) * 3600",
    last_errors="SELECT DISTINCT ON (pipeline, client) pipeline, client, last_error FROM consignments AS c"
                " WHERE last_error IS NOT NULL{where} ORDER BY pipeline, client, updated_at DESC",
    version="SELECT MAX(version) FROM s321_schema")


def _codes(d: Dialect) -> str:
    """A record's error codes, whichever column holds them: validation's findings
    (invalid and others) and the receiver's errors in its acknowledgement (rejected)."""
    return (f"(SELECT {d.get('f', 'code')} FROM {d.findings} WHERE {d.get('f', 'severity')} = 'error'"
            f" UNION SELECT {d.get('e', 'code')} FROM {d.errors})")


def _scope_sql(scope: Scope, column: str = "c.client") -> tuple[str, list[Any]]:
    """A WHERE fragment (starting with AND) and its parameters for a scope."""
    if scope is None:
        return "", []
    if not scope:
        return " AND 1=0", []
    return f" AND {column} IN ({','.join('?' * len(scope))})", list(scope)


class LedgerUnavailable(S321Error):
    """The ledger is not there, or cannot be read (damaged, not a ledger, its database
    down or without the ledger's tables)."""


class LedgerReader:
    """Read-only queries over one ledger: a `[ledger]` section (a SQLite file or a
    PostgreSQL database), or the path of a file."""

    def __init__(self, target: LedgerSection | str | Path):
        self.url: str | None = None
        self._password: str | None = None
        if isinstance(target, (str, Path)):
            self.path = Path(target)
        elif target.backend == "postgresql":
            self.path = Path()
            self.url = target.url
            self._password = target.password.get_secret_value() if target.password is not None else None
        else:
            self.path = Path(target.path)
        self.dialect = POSTGRESQL if self.url else SQLITE
        self._store: ledger_backend.PgStore | None = None
        self._opening = threading.Lock()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @contextmanager
    def _db(self) -> Iterator[Any]:
        if self.url is not None:
            with self._pg() as db:
                yield db
            return
        # A read-only URI: no write lock, no -wal created by us; a missing file is an
        # error here (the console never makes a ledger), not an empty new one.
        if not self.path.exists():
            raise LedgerUnavailable(f"{self.path}: no ledger there yet (`s321 run` or `s321 ledger init` makes it)")
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"{self.path}: cannot be opened: {exc}") from exc
        db.row_factory = sqlite3.Row
        try:
            yield db
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"{self.path}: cannot be read: {exc}") from exc
        finally:
            db.close()

    def _store_of(self) -> ledger_backend.PgStore:
        """The database's pool, opened on first use (and again after a failed open). The
        console never makes or migrates a schema: a database without one is refused."""
        with self._opening:
            if self._store is None:
                assert self.url is not None
                try:
                    self._store = ledger_backend.PgStore(self.url, self._password, pool_size=2, timeout=5.0,
                                                         create=False)
                except S321Error as exc:  # unreachable, or not (yet) a ledger of this s321
                    raise LedgerUnavailable(str(exc)) from None
            return self._store

    @contextmanager
    def _pg(self) -> Iterator[Any]:
        """A read-only transaction: it can change nothing and takes no row lock."""
        store = self._store_of()
        try:
            with store.reading() as db:
                db.execute("BEGIN TRANSACTION READ ONLY")
                try:
                    yield db
                finally:
                    if not db.conn.closed:
                        db.execute("ROLLBACK")
        except ledger_backend.LedgerUnavailable as exc:
            raise LedgerUnavailable(str(exc)) from None

    def _has_table(self, db: Any, name: str) -> bool:
        if self.url is not None:  # a database of schema 5 or later: every table is there
            return bool(db.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])
        return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None

    # ------------------------------------------------------------------ overview

    def overview(self, scope: Scope, now: float | None = None) -> list[dict[str, Any]]:
        """One row per pipeline and originator code: counts per state, accepted and
        rejected in the last hour and day, the oldest record still owed, the last error
        and a health word (ok / attention / stuck)."""
        now = time.time() if now is None else now
        where, params = _scope_sql(scope)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        with self._db() as db:
            for r in db.execute(
                    "SELECT pipeline, client, state, COUNT(*) AS n,"
                    " SUM(CASE WHEN updated_at >= ? THEN 1 ELSE 0 END) AS hour,"
                    " SUM(CASE WHEN updated_at >= ? THEN 1 ELSE 0 END) AS day,"
                    " MIN(CASE WHEN state IN ('queued','sent') THEN COALESCE(queued_at, created_at) END) AS oldest"
                    f" FROM consignments AS c WHERE 1=1{where} GROUP BY pipeline, client, state",
                    [now - 3600, now - 86400, *params]):
                row = rows.setdefault((r["pipeline"], r["client"]), {
                    "pipeline": r["pipeline"], "client": r["client"], "states": {}, "accepted_hour": 0,
                    "accepted_day": 0, "rejected_hour": 0, "rejected_day": 0, "oldest_owed": None,
                    "last_error": None})
                row["states"][r["state"]] = r["n"]
                if r["state"] in (State.ACCEPTED, State.REJECTED):
                    row[f"{r['state']}_hour"] = r["hour"]
                    row[f"{r['state']}_day"] = r["day"]
                if r["oldest"] is not None and (row["oldest_owed"] is None or r["oldest"] < row["oldest_owed"]):
                    row["oldest_owed"] = r["oldest"]
            for r in db.execute(self.dialect.last_errors.format(where=where), params):
                if (r["pipeline"], r["client"]) in rows:
                    rows[(r["pipeline"], r["client"])]["last_error"] = r["last_error"]
        for row in rows.values():
            states = row["states"]
            owed_age = now - row["oldest_owed"] if row["oldest_owed"] else 0
            if states.get(State.DEAD) or owed_age > 3600:
                row["health"] = "stuck"
            elif states.get(State.REJECTED) or states.get(State.INVALID):
                row["health"] = "attention"
            else:
                row["health"] = "ok"
        return [rows[k] for k in sorted(rows)]

    def timeline(self, scope: Scope, hours: int = 24, now: float | None = None) -> list[dict[str, Any]]:
        """Records accepted and rejected per hour over the last `hours` (by the time
        their state last changed), oldest first, one entry per hour."""
        now = time.time() if now is None else now
        start = (int(now) // 3600 - hours + 1) * 3600
        where, params = _scope_sql(scope)
        buckets = {start + i * 3600: {"hour": start + i * 3600, "accepted": 0, "rejected": 0} for i in range(hours)}
        with self._db() as db:
            for r in db.execute(
                    f"SELECT {self.dialect.hour} AS hour, state, COUNT(*) AS n"
                    f" FROM consignments AS c WHERE state IN ('accepted','rejected') AND updated_at >= ?{where}"
                    " GROUP BY hour, state", [start, *params]):
                if r["hour"] in buckets:
                    buckets[r["hour"]][r["state"]] = r["n"]
        return list(buckets.values())

    # ------------------------------------------------------------------ records

    def records(self, scope: Scope, *, state: str | None = None, finding: str | None = None,
                day: str | None = None, search: str | None = None, before: int | None = None,
                limit: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int | None]:
        """A page of records, newest received first, and the cursor of the next page
        (None on the last). `day` is YYYY-MM-DD (UTC) of the last change; `search` a
        transaction id, order name, bill or tracking number."""
        where, params = _scope_sql(scope)
        cursor = self.dialect.cursor
        sql = [f"SELECT {cursor} AS cursor, transaction_id, pipeline, client, ref, state, action, version,"
               " attempts, last_error, created_at, updated_at FROM consignments AS c WHERE 1=1", where]
        if state:
            sql.append(" AND state = ?")
            params.append(state)
        if finding:
            # Only invalid and rejected records carry error codes: the state test is
            # cheap and spares reading the JSON of every other record.
            sql.append(f" AND state IN ('invalid', 'rejected') AND CAST(? AS TEXT) IN {_codes(self.dialect)}")
            params.append(finding)
        if day:
            start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
            sql.append(" AND updated_at >= ? AND updated_at < ?")
            params += [start, start + 86400]
        if before is not None:
            sql.append(f" AND {cursor} < ?")
            params.append(before)
        with self._db() as db:
            if search:
                txids = self._find(db, search)
                sql.append(f" AND transaction_id IN ({','.join('?' * len(txids))})" if txids else " AND 1=0")
                params += txids
            sql.append(f" ORDER BY {cursor} DESC LIMIT ?")
            params.append(limit + 1)
            rows = [dict(r) for r in db.execute("".join(sql), params)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["cursor"] if more else None)

    def _find(self, db: Any, text: str) -> list[str]:
        """Transaction ids a person's name for a record finds (as `Ledger.find`)."""
        text = text.strip()
        if not text:
            return []
        found = [r[0] for r in db.execute("SELECT transaction_id FROM consignments WHERE transaction_id=?", (text,))]
        if found:
            return found
        unprefixed = text.split(":", 1)[1] if ":" in text else text
        keys = sorted({ref_key(text), ref_key(unprefixed)} - {""})
        if self._has_table(db, "refs"):
            return [r[0] for r in db.execute(
                f"SELECT DISTINCT transaction_id FROM refs WHERE ref IN ({','.join('?' * len(keys))})", keys)]
        return [r[0] for r in db.execute("SELECT transaction_id FROM consignments WHERE ref=?", (text,))]

    def record(self, scope: Scope, transaction_id: str) -> dict[str, Any] | None:
        """One record as filed, with its findings, acknowledgement and history; None
        when there is none in the user's scope (the same answer as no such record)."""
        where, params = _scope_sql(scope)
        with self._db() as db:
            r = db.execute(f"SELECT c.*, b.record AS body FROM consignments AS c LEFT JOIN bodies AS b"
                           f" ON b.id = c.body_id WHERE transaction_id = ?{where}", [transaction_id, *params]).fetchone()
            if r is None:
                return None
            out = dict(r)
            out["record"] = _json(out.pop("body"), None)
            out["findings"] = _json(out["findings"], [])
            out["ack"] = _json(out["ack"], None)
            # By the record's integer key (indexed since schema 8), by transaction id before.
            keyed = (db.execute(self.dialect.version).fetchone()[0] or 0) >= 8
            out["history"] = [dict(h) for h in db.execute(
                "SELECT at, event, version, detail FROM history WHERE"
                f" {'consignment' if keyed else 'transaction_id'}=? ORDER BY at, rowid",
                (out["body_id"] if keyed else transaction_id,))] if self._has_table(db, "history") else []
        errors = (out["ack"] or {}).get("errors") or [] if isinstance(out["ack"], dict) else []
        out["receiver_errors"] = errors
        return out

    # ------------------------------------------------------------------ findings, dead letters

    def findings(self, scope: Scope, sample: int = 5) -> list[dict[str, Any]]:
        """Per error code of the records needing attention (invalid, rejected, dead):
        how many records, a message, and the first few records."""
        where, params = _scope_sql(scope)
        d = self.dialect
        with self._db() as db:
            rows = db.execute(
                "SELECT code, COUNT(*) AS n, MIN(message) AS message, MIN(field) AS field FROM ("
                f" SELECT c.transaction_id, {d.get('f', 'code')} AS code, {d.get('f', 'message')} AS message,"
                f" {d.get('f', 'field')} AS field FROM consignments AS c, {d.findings}"
                f" WHERE c.state IN (?,?,?) AND {d.get('f', 'severity')} = 'error'{where}"
                " UNION"
                f" SELECT c.transaction_id, {d.get('e', 'code')}, {d.get('e', 'message')}, {d.get('e', 'field')}"
                f" FROM consignments AS c, {d.errors} WHERE c.state IN (?,?,?){where}) AS found"
                " WHERE code IS NOT NULL GROUP BY code ORDER BY n DESC, code",
                [*_NEEDS_ATTENTION, *params, *_NEEDS_ATTENTION, *params]).fetchall()
        out = []
        for r in rows:
            records, _ = self.records(scope, finding=r["code"], limit=sample)
            out.append({"code": r["code"], "count": r["n"], "field": r["field"], "message": r["message"],
                        "records": records})
        return out

    def dead(self, scope: Scope, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        """The oldest `limit` dead letters (what an operator may retry, resend or
        delete) and how many there are in all."""
        where, params = _scope_sql(scope)
        with self._db() as db:
            rows = [dict(r) for r in db.execute(
                "SELECT transaction_id, pipeline, client, ref, attempts, last_error, updated_at"
                f" FROM consignments AS c WHERE state = 'dead'{where} ORDER BY updated_at, transaction_id LIMIT ?",
                [*params, limit])]
            total = db.execute(f"SELECT COUNT(*) FROM consignments AS c WHERE state = 'dead'{where}", params).fetchone()[0]
        return rows, int(total)

    def client_of(self, transaction_id: str) -> str | None:
        with self._db() as db:
            r = db.execute("SELECT client FROM consignments WHERE transaction_id=?", (transaction_id,)).fetchone()
        return r[0] if r else None


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


"""What the console reads from a ledger: overview, records, one record, findings, dead
letters. Each query takes the user's scope and applies it in SQL, so that nothing a
scoped user is shown (a row, a count, a chart point, a search hit) comes from a client
outside it.

Promises: the ledger is opened read-only (`mode=ro`, a separate connection per call
site, never a write lock), so the console never blocks the daemon; a scope is a list
of originator codes (`None`: every client; an empty list: none); records are paged by
keyset on the ledger's rowid (newest received first), never by OFFSET; the `history`
and `refs` tables are read when the ledger has them, and their absence (an older
ledger) only leaves the history empty and searches to transaction ids and source keys.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s321.errors import S321Error
from s321.references import ref_key
from s321.states import State

Scope = Sequence[str] | None
"""The originator codes a user may see; None for every one."""

PAGE_SIZE = 50

_NEEDS_ATTENTION = (State.INVALID.value, State.REJECTED.value, State.DEAD.value)

# A record's error codes, whichever column holds them: validation's findings (invalid
# and others) and the receiver's errors in its acknowledgement (rejected).
_CODES = ("(SELECT json_extract(f.value, '$.code') FROM json_each(CASE WHEN json_valid(c.findings)"
          " THEN c.findings ELSE '[]' END) AS f WHERE json_extract(f.value, '$.severity') = 'error'"
          " UNION SELECT json_extract(e.value, '$.code') FROM json_each(CASE WHEN json_valid(c.ack)"
          " THEN c.ack ELSE '{}' END, '$.errors') AS e)")


def _scope_sql(scope: Scope, column: str = "c.client") -> tuple[str, list[Any]]:
    """A WHERE fragment (starting with AND) and its parameters for a scope."""
    if scope is None:
        return "", []
    if not scope:
        return " AND 0", []
    return f" AND {column} IN ({','.join('?' * len(scope))})", list(scope)


class LedgerUnavailable(S321Error):
    """The ledger file is not there, or cannot be read (damaged, not a ledger)."""


class LedgerReader:
    """Read-only queries over one ledger file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
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

    def _has_table(self, db: sqlite3.Connection, name: str) -> bool:
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
                    f" FROM consignments AS c WHERE 1{where} GROUP BY pipeline, client, state",
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
            # SQLite takes the bare column from the row that holds the MAX.
            for r in db.execute("SELECT pipeline, client, last_error, MAX(updated_at) AS at FROM consignments AS c"
                                f" WHERE last_error IS NOT NULL{where} GROUP BY pipeline, client", params):
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
                    "SELECT CAST(updated_at / 3600 AS INTEGER) * 3600 AS hour, state, COUNT(*) AS n"
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
        sql = ["SELECT c.rowid AS cursor, transaction_id, pipeline, client, ref, state, action, version,"
               " attempts, last_error, created_at, updated_at FROM consignments AS c WHERE 1", where]
        if state:
            sql.append(" AND state = ?")
            params.append(state)
        if finding:
            # Only invalid and rejected records carry error codes: the state test is
            # cheap and spares reading the JSON of every other record.
            sql.append(f" AND state IN ('invalid', 'rejected') AND ? IN {_CODES}")
            params.append(finding)
        if day:
            start = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
            sql.append(" AND updated_at >= ? AND updated_at < ?")
            params += [start, start + 86400]
        if before is not None:
            sql.append(" AND c.rowid < ?")
            params.append(before)
        with self._db() as db:
            if search:
                txids = self._find(db, search)
                sql.append(f" AND transaction_id IN ({','.join('?' * len(txids))})" if txids else " AND 0")
                params += txids
            sql.append(" ORDER BY c.rowid DESC LIMIT ?")
            params.append(limit + 1)
            rows = [dict(r) for r in db.execute("".join(sql), params)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["cursor"] if more else None)

    def _find(self, db: sqlite3.Connection, text: str) -> list[str]:
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
            out["history"] = [dict(h) for h in db.execute(
                "SELECT at, event, version, detail FROM history WHERE transaction_id=? ORDER BY at, rowid",
                (transaction_id,))] if self._has_table(db, "history") else []
        errors = (out["ack"] or {}).get("errors") or [] if isinstance(out["ack"], dict) else []
        out["receiver_errors"] = errors
        return out

    # ------------------------------------------------------------------ findings, dead letters

    def findings(self, scope: Scope, sample: int = 5) -> list[dict[str, Any]]:
        """Per error code of the records needing attention (invalid, rejected, dead):
        how many records, a message, and the first few records."""
        where, params = _scope_sql(scope)
        with self._db() as db:
            rows = db.execute(
                "SELECT code, COUNT(*) AS n, MIN(message) AS message, MIN(field) AS field FROM ("
                " SELECT c.transaction_id, json_extract(f.value, '$.code') AS code,"
                " json_extract(f.value, '$.message') AS message, json_extract(f.value, '$.field') AS field"
                " FROM consignments AS c, json_each(CASE WHEN json_valid(c.findings) THEN c.findings ELSE '[]' END) AS f"
                f" WHERE c.state IN (?,?,?) AND json_extract(f.value, '$.severity') = 'error'{where}"
                " UNION"
                " SELECT c.transaction_id, json_extract(e.value, '$.code'), json_extract(e.value, '$.message'),"
                " json_extract(e.value, '$.field')"
                " FROM consignments AS c, json_each(CASE WHEN json_valid(c.ack) THEN c.ack ELSE '{}' END, '$.errors') AS e"
                f" WHERE c.state IN (?,?,?){where})"
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
                f" FROM consignments AS c WHERE state = 'dead'{where} ORDER BY updated_at LIMIT ?", [*params, limit])]
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


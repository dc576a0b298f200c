"""Where the ledger's rows live, behind one small surface that s321.ledger writes its SQL
against (`?` placeholders, the subset SQLite and PostgreSQL both speak): a SQLite file
for one process (`SqliteStore`) or a PostgreSQL database shared by many daemons
(`PgStore`, psycopg 3 with its pool, imported only when one is opened).

Each store promises:
- `transaction()`: one transaction, committed when the block ends, rolled back on any
  exception; `run(fn)` is the same for a body that may be run again (PostgreSQL: a
  deadlock, a serialization failure, or a new row another daemon made first
  (`insert_new` raises RaceLost) retries it whole; a body must therefore read before it
  decides).
- `reading()`: a connection for reads outside any write.
- A commit inside `durable()` is durable when it returns (PostgreSQL runs with
  `synchronous_commit = on` always: every commit is).
- A connection lost during COMMIT raises `LedgerInDoubt`: whether it committed is not
  known, and the caller reads again before it acts. A database that cannot be reached
  raises `LedgerUnavailable`. Both name the database, never its password.

The few statements that must differ are the dialect's (`Dialect`): the row locks a
reader takes before it decides (`FOR UPDATE`, `SKIP LOCKED` for a claim), the key a
claimed row is updated by, the database's clock, and how new bodies are numbered.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from s321.errors import S321Error
from s321.ledger_schema import PG_SCHEMA, SCHEMA, SCHEMA_VERSION, pg_upgrade, upgrade
from s321.sqlitefile import SqliteFile, open_error

T = TypeVar("T")

SCHEMA_LOCK = 3210018
"""The advisory lock (pg_advisory_lock) under which a database's schema is made or
migrated: a daemon that starts meanwhile waits for it."""


class LedgerUnavailable(S321Error):
    """The ledger's database cannot be reached (down, restarting, refused): try again."""


class LedgerInDoubt(LedgerUnavailable):
    """The connection was lost during COMMIT: the change may or may not be stored. Read
    the ledger again before acting on it (see s321.ledger for what is safe to repeat)."""


class RaceLost(Exception):
    """Another daemon stored a row this transaction was about to create: `run` runs the
    transaction again, and it finds the row."""


class _ConnectionLost(LedgerUnavailable):
    """A pooled connection failed before COMMIT (the server restarted meanwhile): nothing
    was stored, and a fresh connection may well work."""


def new_owner() -> str:
    """This process's name in leases: host, pid and 4 random hex digits (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Dialect:
    """The statements that differ between the two stores."""

    name: str
    shared: bool
    """Several daemons share it: leases fence their decisions."""
    row_key: str
    """The column a claimed row is updated by (SQLite: the rowid the index entry holds)."""
    lock: str
    """Appended to a read whose rows the transaction then changes."""
    skip_locked: str
    """Appended to a claim's read: rows another daemon is claiming are passed over."""
    clock: str
    """The database's clock, in seconds since the epoch (leases)."""


SQLITE = Dialect("sqlite", False, "rowid", "", "", "((julianday('now') - 2440587.5) * 86400.0)")
POSTGRESQL = Dialect("postgresql", True, "transaction_id", " FOR UPDATE", " FOR UPDATE OF consignments SKIP LOCKED",
                     "EXTRACT(EPOCH FROM clock_timestamp())::float8")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the ledger's SQL runs on: sqlite3.Connection, or `_PgConnection`."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, seq: Any) -> Any: ...


class Store(Protocol):
    dialect: Dialect
    owner: str

    def transaction(self) -> Any: ...

    def run(self, body: Callable[[Connection], T]) -> T: ...

    def reading(self) -> Any: ...

    def durable(self) -> Any: ...

    def new_ids(self, db: Connection, n: int) -> list[int]: ...

    def insert_new(self, db: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    def schema_version(self) -> int: ...

    def describe(self) -> str: ...

    def stream(self, sql: str, size: int = ...) -> Iterator[Any]: ...

    def after_copy(self, db: Connection) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- SQLite


class SqliteStore(SqliteFile):
    """The ledger file: one connection under a lock, BEGIN IMMEDIATE (s321.sqlitefile),
    brought up to SCHEMA_VERSION when opened (a file a newer s321 wrote is refused)."""

    kind = "ledger"
    dialect = SQLITE

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", page_size: int | None = None):
        super().__init__(path, SCHEMA, synchronous, page_size=page_size)
        self.owner = new_owner()
        try:
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise open_error(self.path, self.kind, exc) from None
        except BaseException:
            self.close()
            raise

    def _upgrade(self) -> None:
        if self.schema_version() == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            version = self.schema_version()  # again: another process may have done it
            if version > SCHEMA_VERSION:
                raise S321Error(f"{self.path}: ledger schema version {version} is newer than this s321"
                                f" knows ({SCHEMA_VERSION}); upgrade s321 to open it")
            upgrade(db, version)

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def run(self, body: Callable[[Connection], T]) -> T:
        with self.transaction() as db:
            return body(db)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def new_ids(self, db: Connection, n: int) -> list[int]:
        """Under BEGIN IMMEDIATE no one else writes: new bodies are numbered here."""
        first = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM bodies").fetchone()[0])
        return list(range(first, first + n))

    def insert_new(self, db: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows no one else can have made: under BEGIN IMMEDIATE no one else writes."""
        db.executemany(sql, rows)

    def describe(self) -> str:
        return str(self.path)

    def stream(self, sql: str, size: int = 1000) -> Iterator[Any]:
        """The rows of a query, read `size` at a time (s321.ledger_copy)."""
        with self._lock:
            cursor = self._db.execute(sql)
            while rows := cursor.fetchmany(size):
                yield from rows

    def after_copy(self, db: Connection) -> None:
        """Nothing: SQLite numbers bodies from the rows themselves."""


# --------------------------------------------------------------------------- PostgreSQL


def without_password(url: str) -> str:
    """A URL fit for messages and logs: its password (if any) left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache(maxsize=2048)
def _pg_sql(sql: str) -> str:
    """The ledger's SQL with psycopg's placeholders (`?` -> `%s`, a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row(tuple):
    """A row read by name or by position, as sqlite3.Row is (and `dict(row)`)."""

    __slots__ = ()
    _names: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    if cursor.description is None:
        return tuple
    names = {c.name: i for i, c in enumerate(cursor.description)}
    cls = type("Row", (_Row,), {"__slots__": (), "_names": names})
    return cls


class _PgConnection:
    """One pooled psycopg connection, spoken to as the ledger speaks to sqlite3."""

    def __init__(self, conn: Any):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(_pg_sql(sql), params or None, prepare=False)

    def executemany(self, sql: str, seq: Any) -> Any:
        cur = self.conn.cursor()
        cur.executemany(_pg_sql(sql), list(seq))
        return cur


class PgStore:
    """A PostgreSQL database shared by many daemons: a pool of connections in autocommit
    mode, each transaction an explicit BEGIN (READ COMMITTED) ... COMMIT, every commit
    durable (`synchronous_commit = on`). The schema is made on first use under the
    advisory lock; one an older s321 made waits for `s321 ledger migrate`; one a newer
    s321 made is refused."""

    dialect = POSTGRESQL
    _RETRIES = 20

    def __init__(self, url: str, password: str | None = None, *, pool_size: int = 4, timeout: float = 15.0,
                 create: bool = True, check_schema: bool = True):
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._psycopg = psycopg
        self._pool_timeout = PoolTimeout
        self.url = url
        self.owner = new_owner()
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _row_factory,
                                  "application_name": f"s321 {self.owner}"[:63]}
        if password is not None and urlsplit(url).password is None:
            kwargs["password"] = password

        def configure(conn: Any) -> None:
            conn.execute("SET synchronous_commit = on")
            conn.execute("SET TIME ZONE 'UTC'")

        try:  # one connection first: a refused one is reported at once, with its reason
            psycopg.connect(url, connect_timeout=max(1, int(timeout)), **kwargs).close()
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"{self.describe()}: cannot connect to the ledger's database ({_reason(exc)});"
                                    " check that PostgreSQL runs there and the user and password") from None
        # Each connection is checked as it is taken from the pool (one empty round trip): one
        # left over from before a server restart is replaced, not handed to a reader.
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs, configure=configure,
                                    check=ConnectionPool.check_connection, timeout=timeout, open=False,
                                    name="s321-ledger")
        try:
            self._pool.open(wait=True, timeout=timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise LedgerUnavailable(f"{self.describe()}: cannot connect to the ledger's database ({_reason(exc)});"
                                    " check that PostgreSQL runs there and the user and password") from None
        try:
            if check_schema:
                self._ensure_schema(create)
        except BaseException:
            self._pool.close()
            raise

    def describe(self) -> str:
        return without_password(self.url)

    def close(self) -> None:
        self._pool.close()

    # -- connections and transactions ------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._pool_timeout as exc:
            raise LedgerUnavailable(f"{self.describe()}: the ledger's database did not answer ({_reason(exc)})"
                                    ) from None

    @contextmanager
    def reading(self) -> Iterator[_PgConnection]:
        try:
            with self._connection() as conn:
                yield _PgConnection(conn)
        except self._psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"{self.describe()}: the connection to the ledger's database failed"
                                    f" ({_reason(exc)})") from None

    @contextmanager
    def transaction(self) -> Iterator[_PgConnection]:
        psycopg = self._psycopg
        with self._connection() as conn:
            try:
                conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            except psycopg.OperationalError as exc:
                raise _ConnectionLost(f"{self.describe()}: the connection to the ledger's database failed"
                                      f" ({_reason(exc)})") from None
            try:
                yield _PgConnection(conn)
            except BaseException as exc:
                if not conn.closed:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        pass  # the error that brought us here is the one to report
                if isinstance(exc, psycopg.OperationalError) and conn.closed:
                    raise _ConnectionLost(f"{self.describe()}: the connection to the ledger's database was lost"
                                          f" before COMMIT; nothing was stored ({_reason(exc)})") from None
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.OperationalError as exc:
                raise LedgerInDoubt(f"{self.describe()}: the connection to the ledger's database was lost during"
                                    f" COMMIT ({_reason(exc)}); whether the change was stored is not known:"
                                    " read the ledger again before acting") from None

    def run(self, body: Callable[[_PgConnection], T]) -> T:
        """`body` in a transaction, run again whole when it lost a race with another
        daemon (deadlock, serialization failure, a unique key taken first), or when its
        pooled connection turned out dead before COMMIT (the server restarted): nothing
        of it was stored. Never after `LedgerInDoubt`."""
        errors = self._psycopg.errors
        retried = (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation)
        lost = 0
        for attempt in range(self._RETRIES):
            try:
                with self.transaction() as db:
                    return body(db)
            except RaceLost:
                if attempt == self._RETRIES - 1:
                    raise
            except _ConnectionLost:
                lost += 1  # each stale connection of the pool is dropped as it fails
                if lost > self._pool.max_size:
                    raise
            except retried:
                if attempt == self._RETRIES - 1:
                    raise
                time.sleep(0.001 * (attempt + 1) + secrets.randbelow(1000) / 1e6 * (attempt + 1))
        raise AssertionError("unreachable")

    def durable(self) -> Any:
        return nullcontext()  # synchronous_commit = on: every commit is durable

    def insert_new(self, db: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Rows read as missing a moment ago; RaceLost when another daemon's commit made
        one of them meanwhile (its key is taken: the insert waits for that commit)."""
        cur = db.conn.cursor()  # type: ignore[attr-defined]
        cur.executemany(_pg_sql(sql + " ON CONFLICT DO NOTHING RETURNING 1"), rows, returning=True)
        made = 0
        while True:
            made += len(cur.fetchall())
            if not cur.nextset():
                break
        if made < len(rows):
            raise RaceLost(f"{len(rows) - made} of {len(rows)} rows were made meanwhile by another daemon")

    def new_ids(self, db: Connection, n: int) -> list[int]:
        """From the bodies' identity sequence: unique across daemons, never reused."""
        rows = db.execute("SELECT nextval(pg_get_serial_sequence('bodies', 'id')) FROM generate_series(1, ?)",
                          (n,)).fetchall()
        return [int(r[0]) for r in rows]

    def stream(self, sql: str, size: int = 1000) -> Iterator[Any]:
        """The rows of a query, read `size` at a time through a server-side cursor."""
        with self.transaction() as db:
            cursor = db.conn.cursor(name=f"s321_stream_{secrets.token_hex(4)}")
            cursor.execute(_pg_sql(sql))
            while rows := cursor.fetchmany(size):
                yield from rows
            cursor.close()

    def after_copy(self, db: Connection) -> None:
        """The bodies' sequence set past the ids copied in, so new bodies never reuse one."""
        db.execute("SELECT setval(pg_get_serial_sequence('bodies', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL)"
                   " FROM bodies")

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The version in `s321_schema`; 0 for a database without the ledger's tables."""
        with self.reading() as db:
            return _pg_version(db)

    def _ensure_schema(self, create: bool) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise S321Error(newer_schema(self.describe(), version))
        if version == 0 and create:
            migrate_pg(self)
            return
        raise S321Error(f"{self.describe()}: the ledger's schema is at version {version}, this s321 needs"
                        f" {SCHEMA_VERSION}: run `s321 ledger migrate` first")


def newer_schema(where: str, version: int) -> str:
    return (f"{where}: ledger schema version {version} is newer than this s321 knows ({SCHEMA_VERSION});"
            " a newer s321 wrote it: upgrade s321 to use it")


def _pg_version(db: Connection) -> int:
    if db.execute("SELECT to_regclass('s321_schema')").fetchone()[0] is None:
        return 0
    r = db.execute("SELECT MAX(version) FROM s321_schema").fetchone()
    return int(r[0] or 0)


def migrate_pg(store: PgStore) -> tuple[int, int]:
    """Bring the database to SCHEMA_VERSION under the advisory lock (daemons running
    meanwhile wait for it): (version before, version after). Refuses a newer one."""
    with store._connection() as conn:
        db = _PgConnection(conn)
        db.execute("SELECT pg_advisory_lock(?)", (SCHEMA_LOCK,))
        try:
            before = _pg_version(db)
            if before > SCHEMA_VERSION:
                raise S321Error(newer_schema(store.describe(), before))
            if before < SCHEMA_VERSION:
                with conn.transaction():
                    conn.execute(PG_SCHEMA)  # every table made as this version has it
                    for step in pg_upgrade(before):  # and what an earlier version's tables lack
                        conn.execute(step)
                    conn.execute("DELETE FROM s321_schema")
                    conn.execute("INSERT INTO s321_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            return before, SCHEMA_VERSION
        finally:
            if not conn.closed:
                db.execute("SELECT pg_advisory_unlock(?)", (SCHEMA_LOCK,))


def _reason(exc: BaseException) -> str:
    """An error's first line: psycopg's messages may run over several."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


"""Where a loaded table's rows live: built entries in a dict for a small table, the rows
themselves in a private SQLite database for a large one (a tracking table has a row per
order), so that a table's memory stops growing with its file.

Promises: both keep the first row of a key and report the lines of the later ones; both
give the same entry for a key (a stored row is built when it is read back, with its
`FILE:LINE`); the database is a temporary file (in SQLITE_TMPDIR, TMPDIR or /var/tmp)
that SQLite removes from the directory as soon as it is made, so that no other program
can open it, and its memory is bounded (CACHE_KIB, CACHED_ENTRIES, READ_AHEAD) whatever
the table's size.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Generic, TypeVar

from .errors import EnrichmentError

E = TypeVar("E")
Row = dict[str, str | None]
KeyedRow = tuple[str, int, list[str | None]]
"""(normalised key, line, values of the file's columns in `columns` order)."""

SPILL_ROWS = 20_000
"""Tables with more keyed rows than this are kept in SQLite. Built entries take about
400 bytes a row in memory (8 MB here); a look-up in the database costs a few µs instead
of one or two, so small tables, which items and vendors hit several times an order,
stay in a dict."""

CACHE_KIB = 4096
"""SQLite's page cache for one spilled table; the pages beyond it stay on disk or in the
operating system's file cache, which is not the process's memory."""

CACHED_ENTRIES = 4096
"""Entries a spilled table keeps built: a large catalog is looked up for every item, and
building a catalog entry (numbers, country, HTS code) costs more than fetching its row."""

READ_AHEAD = 256
"""The most rows one look-up reads (see _ReadAhead)."""

_BATCH = 2_000


class MemoryStore(Generic[E]):
    """Built entries by normalised key."""

    def __init__(self, entries: dict[str, E]):
        self.entries = entries
        self.get: Callable[[str], E | None] = entries.get  # as fast as the dict itself

    def __len__(self) -> int:
        return len(self.entries)

    def close(self) -> None:
        pass


class SqliteStore(Generic[E]):
    """Rows by normalised key in a private temporary database; entries are built from the
    rows a look-up reads (see _ReadAhead), and the last CACHED_ENTRIES looked up are kept.
    Look-ups may come from any thread."""

    def __init__(self, path: Path, columns: tuple[str, ...], build: Callable[[Row, str], E]):
        # "" is a private on-disk temporary database, deleted on close. A pipeline's
        # thread is not the one that loaded its tables, hence check_same_thread.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        for pragma in ("journal_mode = OFF", "synchronous = OFF",
                       f"cache_size = -{CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        values = [f"v{i}" for i in range(len(columns))]
        self._db.execute(f"CREATE TABLE rows (key TEXT PRIMARY KEY, line INTEGER NOT NULL, "
                         f"{', '.join(values)}) WITHOUT ROWID")
        self._insert = (f"INSERT OR IGNORE INTO rows VALUES "
                        f"({', '.join('?' * (len(columns) + 2))})")
        self._size = 0
        self.get: Callable[[str], E | None] = lru_cache(maxsize=CACHED_ENTRIES)(
            _ReadAhead(self._db.cursor(), self._lock, values, columns, build, f"{path}:"))

    def add(self, rows: Iterable[KeyedRow]) -> list[int]:
        """Store `rows` (in file order, after any added before); the lines of rows whose
        key an earlier row has, which are not stored."""
        duplicates: list[int] = []
        db = self._db
        db.execute("BEGIN")
        try:
            it = iter(rows)
            while batch := [(key, line, *values) for key, line, values in islice(it, _BATCH)]:
                before = db.total_changes
                db.executemany(self._insert, batch)
                added = db.total_changes - before
                self._size += added
                if added < len(batch):  # some keys were there already: which?
                    duplicates += [line for key, line, *_ in batch
                                   if db.execute("SELECT line FROM rows WHERE key = ?",
                                                 (key,)).fetchone()[0] != line]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return duplicates

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _ReadAhead(Generic[E]):
    """The look-up of a SqliteStore. Rows are read in key order from the key asked for,
    and the ones read answer the next look-ups that fall among them: orders are looked
    up in about the order of their numbers, and a query costs far more in a busy
    process, where SQLite's code and pages are no longer in the CPU's caches, than in a
    loop of look-ups. While look-ups land in what was read, each read is longer (up to
    READ_AHEAD rows); one that does not brings it back to two rows, so that scattered
    look-ups cost one short query each."""

    def __init__(self, cursor: sqlite3.Cursor, lock: threading.Lock, values: list[str],
                 columns: tuple[str, ...], build: Callable[[Row, str], E], where: str):
        self._cursor, self._lock, self._columns, self._build = cursor, lock, columns, build
        self._where = where
        self._select = (f"SELECT key, line, {', '.join(values)} FROM rows WHERE key >= ? "
                        f"ORDER BY key LIMIT ?")
        self._read: dict[str, E] = {}
        self._low: str | None = None  # what was read holds every key in [low, high]
        self._high: str | None = None  # None: every key from low on
        self._rows = 1
        self._used = False

    def __call__(self, key: str) -> E | None:
        with self._lock:
            low, high = self._low, self._high
            if low is None or key < low or (high is not None and key > high):
                self._read_from(key)
            else:
                self._used = True
            return self._read.get(key)

    def _read_from(self, key: str) -> None:
        self._rows = min(self._rows * 4, READ_AHEAD) if self._used else 1
        rows = self._cursor.execute(self._select, (key, self._rows + 1)).fetchall()
        build, columns, where = self._build, self._columns, self._where
        # Built here, in one go, while the code that builds is in the CPU's caches.
        self._read = {found: build(dict(zip(columns, values)), f"{where}{line}")
                      for found, line, *values in rows}
        self._low, self._high = key, (rows[-1][0] if len(rows) > self._rows else None)
        self._used = False


Store = MemoryStore[E] | SqliteStore[E]


def store_rows(path: Path, columns: tuple[str, ...], build: Callable[[Row, str], E],
               rows: Iterator[KeyedRow]) -> tuple[Store[E], list[int]]:
    """The entries of `rows` (in file order), and the lines of rows whose key an earlier
    row has (the first row of a key is the one kept). In a dict up to SPILL_ROWS rows,
    else in SQLite; raises EnrichmentError when the database cannot be written."""
    spill_rows = SPILL_ROWS  # read now, so that tests can lower it
    first = list(islice(rows, spill_rows + 1))
    if len(first) <= spill_rows:
        entries: dict[str, E] = {}
        duplicates: list[int] = []
        for key, line, values in first:
            if key in entries:
                duplicates.append(line)
            else:
                entries[key] = build(dict(zip(columns, values)), f"{path}:{line}")
        return MemoryStore(entries), duplicates
    try:
        spilled: SqliteStore[E] = SqliteStore(path, columns, build)
        try:
            return spilled, spilled.add(chain(first, rows))
        except BaseException:
            spilled.close()
            raise
    except sqlite3.Error as exc:
        raise EnrichmentError(f"{path}: the table has more than {spill_rows:,} rows and cannot "
                              f"be kept in a temporary database: {exc}") from None

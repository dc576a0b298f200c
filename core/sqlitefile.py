"""One SQLite file in WAL mode, shared by the threads of one process through a single
connection under a lock: the embedded store under the ledger and the relay's routes.

`transaction()` is BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.
`page_size` applies to a file this creates; an existing file keeps its pages.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s321 import private


class SqliteFile:
    def __init__(self, path: str | Path, schema: str, synchronous: str = "NORMAL",
                 page_size: int | None = None):
        self.path = Path(path)
        private.prepare_sqlite(self.path)  # owner-only, with its -wal/-shm (s321.private)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        if page_size is not None:  # before WAL mode, which fixes the page size of a new file
            self._db.execute(f"PRAGMA page_size={int(page_size)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

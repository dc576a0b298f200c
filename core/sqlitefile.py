"""One SQLite file in WAL mode, shared by the threads of one process through a single
connection under a lock: the embedded store under the ledger and the relay's routes.

`transaction()` is BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.
`page_size` applies to a file this creates; an existing file keeps its pages.

A file is created only where nothing exists: an existing file that is empty, is not a
SQLite database, or is corrupt is a `StoreFileError` naming it, never a new store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s321 import private
from s321.errors import S321Error

SQLITE_HEADER = b"SQLite format 3\x00"


class StoreFileError(S321Error):
    """An existing file that cannot be used as the store it should be."""


def check_existing(path: Path, kind: str) -> bool:
    """True if `path` exists and looks like a SQLite file; False if nothing is there.
    Raises StoreFileError for an empty, truncated or foreign file (never made anew)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    advice = (f"s321 does not make a new {kind} over an existing file; restore it from a backup, or move it"
              f" away and start anew (see docs/operations.md, 'Recovering a ledger')")
    if not path.is_file():
        raise StoreFileError(f"{path}: the {kind} is not a regular file")
    if st.st_size == 0:
        raise StoreFileError(f"{path}: the {kind} file is empty (0 bytes); {advice}")
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StoreFileError(f"{path}: the {kind} file is not a SQLite database (truncated or overwritten);"
                             f" {advice}")
    return True



def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """A file's content is wrong (as against a fault of the disk, space or permissions)."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or \
        type(exc) is sqlite3.DatabaseError


def open_error(path: Path, kind: str, exc: sqlite3.DatabaseError) -> StoreFileError:
    """The error for a file that failed to open: damaged, or the disk's fault (full, read-only,
    I/O), which goes away with its cause."""
    if is_damage(exc):
        return StoreFileError(f"{path}: the {kind} file is damaged ({exc}); restore it from a backup"
                              f" (see docs/operations.md, 'Recovering a ledger')")
    return StoreFileError(f"{path}: cannot open the {kind} ({exc}): check the disk (space, permissions,"
                          f" a read-only file system) and try again")


def _create_whole(path: Path, schema: str, page_size: int | None) -> None:
    """Make a new database file whole under a temporary name and link it into place: no
    process, and no crash, ever leaves an empty or half-made file at `path` (which the
    next start would rightly refuse as damaged). Another process that made it first wins."""
    private.ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    try:
        os.close(private.create(tmp))
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            if page_size is not None:  # before WAL mode, which fixes the page size
                db.execute(f"PRAGMA page_size={int(page_size)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
        finally:
            db.close()  # the last connection: its WAL is written back and removed
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never over an existing file
        except FileExistsError:
            pass
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        for leftover in private.sqlite_companions(tmp):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass


class SqliteFile:
    kind = "database"
    """What the file is, in messages ("ledger")."""

    def __init__(self, path: str | Path, schema: str, synchronous: str = "NORMAL",
                 page_size: int | None = None):
        self.path = Path(path)
        self.synchronous = synchronous
        try:
            self.existed = check_existing(self.path, self.kind)
            if not self.existed:
                _create_whole(self.path, schema, page_size)
            private.prepare_sqlite(self.path)  # owner-only, with its -wal/-shm (s321.private)
        except OSError as exc:  # a folder that is a file, no permission, a full or read-only disk
            at = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.path) else ""
            raise StoreFileError(f"{self.path}: cannot open the {self.kind}{at}: {exc.strerror or exc}") from None
        try:
            self._open(schema, synchronous, page_size)
        except sqlite3.DatabaseError as exc:
            raise open_error(self.path, self.kind, exc) from None

    def _open(self, schema: str, synchronous: str, page_size: int | None) -> None:
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
    def durable(self) -> Iterator[None]:
        """Commits made inside are on disk when they return (`synchronous=FULL` for
        them, whatever the file's own setting): what must hold before something outside
        the database depends on it, such as a file moved to its archive."""
        with self._lock:
            if self.synchronous.upper() in ("FULL", "EXTRA"):
                yield
                return
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                yield
            finally:
                self._db.execute(f"PRAGMA synchronous={self.synchronous}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT. A failed COMMIT (disk full, I/O error, read-only)
        is rolled back too, so the connection is usable again once the cause is gone."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the error that brought us here is the one to report
                raise

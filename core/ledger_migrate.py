"""`s321 ledger migrate`: bring a ledger's schema to the version this s321 writes, once,
while daemons run. On PostgreSQL under an advisory lock (a daemon starting meanwhile
waits; the schema changes in one transaction); on SQLite in the file's own upgrade
transaction. A ledger a newer s321 wrote is refused with a message that says so.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from s321.errors import S321Error
from s321.ledger import Ledger
from s321.ledger_open import is_postgresql, sqlite_path

if TYPE_CHECKING:
    from s321.config import LedgerSection


def migrate(target: LedgerSection | str | Path) -> tuple[int, int]:
    """Migrate the ledger `target` names (a `[ledger]` section, a SQLite path or a URL):
    (the version it was at, the version it is at now); 0 for a ledger made here."""
    url, password, path = _where(target)
    if url is not None:
        from s321.ledger_backend import PgStore, migrate_pg

        store = PgStore(url, password, check_schema=False)
        try:
            return migrate_pg(store)
        finally:
            store.close()
    assert path is not None
    before = _file_version(path)
    Ledger(path).close()  # upgrades it (or refuses a newer one)
    return before, _file_version(path)


def _where(target: LedgerSection | str | Path) -> tuple[str | None, str | None, Path | None]:
    """(PostgreSQL URL, its password, SQLite path): one of the two set."""
    if isinstance(target, Path):
        return None, None, target
    if isinstance(target, str):
        if is_postgresql(target):
            return target, None, None
        return None, None, sqlite_path(target) if target.lower().startswith("sqlite:") else Path(target)
    if target.backend == "postgresql":
        password = target.password.get_secret_value() if target.password is not None else None
        return target.url, password, None
    return None, None, target.path


def _file_version(path: Path) -> int:
    """`PRAGMA user_version` of a ledger file; 0 when there is none yet."""
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise S321Error(f"{path}: cannot read the ledger's schema version ({exc})") from None

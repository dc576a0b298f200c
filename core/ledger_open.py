"""Open the ledger a config (or a path, or a URL) names: a SQLite file, or a PostgreSQL
database that many daemons share. psycopg is imported only when a PostgreSQL ledger is
opened, so a SQLite user never loads it.

`held=True` is for a process that transmits: on SQLite it takes the file's lock and
checks its pages (`Ledger.held`); on PostgreSQL there is no lock to take (daemons share
the database, leases keep them apart): the connection and the schema are checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from s321.errors import S321Error
from s321.ledger import Ledger

if TYPE_CHECKING:
    from s321.config import LedgerSection


def is_postgresql(url: str) -> bool:
    return url.partition(":")[0].lower() in ("postgresql", "postgres")


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:///ABSOLUTE/PATH` URL names."""
    return Path("/" + url[len("sqlite://"):].lstrip("/"))


class NoLedger(S321Error):
    """A command that reads the ledger, and no SQLite ledger where the config says."""


def open_ledger(target: LedgerSection | str | Path, *, synchronous: str | None = None, held: bool = False,
                holder: str = "s321", existing: bool = False) -> Ledger:
    """The ledger `target` names: a `[ledger]` section, a SQLite path, or a URL
    (`sqlite:///ABSOLUTE/PATH`, `postgresql://USER@HOST:PORT/DB`). `synchronous` (SQLite)
    defaults to the section's, else NORMAL. A section's `lease_seconds` is the ledger's.
    With `existing` (the commands that only read or change what a run stored), a SQLite
    ledger that is not there is NoLedger, not made: a mistyped path must not answer
    "nothing received yet" from a new, empty ledger."""
    password: str | None = None
    lease_seconds: float | None = None
    if isinstance(target, (str, Path)):
        where: str | Path = target
    else:
        section = target
        synchronous = synchronous or section.synchronous
        lease_seconds = section.lease_seconds
        if section.backend == "postgresql":
            where = section.url or ""
            password = section.password.get_secret_value() if section.password is not None else None
        else:
            where = section.path
    if isinstance(where, str) and is_postgresql(where):
        from s321.ledger_backend import PgStore

        ledger = Ledger(PgStore(where, password))
    else:
        path = sqlite_path(where) if isinstance(where, str) and where.lower().startswith("sqlite:") else Path(where)
        if existing and not os.path.lexists(path):
            raise NoLedger(f"{path}: no ledger there (a first `s321 run` makes one, or `s321 ledger init`);"
                           " is [ledger] path right?")
        ledger = Ledger.held(path, synchronous or "NORMAL", holder) if held else \
            Ledger(path, synchronous or "NORMAL")
    if lease_seconds is not None:
        ledger.lease_seconds = lease_seconds
    return ledger

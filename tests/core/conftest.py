"""Fixtures of the core tests: `ledger`, a ledger of its own on each backend in turn, a
real SQLite file and a real PostgreSQL database (tests/pgserver.py); one suite, run on
both. A test about the SQLite file itself (its pages, its lock, PRAGMAs) says so with
`sqlite_only` (tests/ledger_steps.py); a module may define its own `ledger` instead."""

import pytest

from s321.ledger import Ledger
from s321.ledger_open import open_ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        ledger = Ledger(tmp_path / "ledger.sqlite")
    else:
        ledger = open_ledger(request.getfixturevalue("pg_url"))
    yield ledger
    ledger.close()

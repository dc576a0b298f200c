"""Fixtures of the core tests: `ledger`, a ledger on a real SQLite file of its own (a
module may define its own instead)."""

import pytest

from s321.ledger import Ledger


@pytest.fixture
def ledger(tmp_path):  # noqa: ANN001, ANN201
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield ledger
    ledger.close()

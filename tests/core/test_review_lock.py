"""Review of the one-daemon-per-ledger lock: the lock is the ledger file's, whatever
path names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from s321.ledger import Ledger
from s321.lock import LedgerBusy


def test_a_ledger_named_through_a_symlink_is_locked_as_the_file_it_names(tmp_path: Path) -> None:
    """The lock file sat beside the path as given: a second daemon whose config named the
    same ledger through a symlink took a lock of its own and ran alongside the first."""
    real = tmp_path / "data" / "ledger.sqlite"
    real.parent.mkdir()
    Ledger(real).close()
    link = tmp_path / "ledger.sqlite"
    link.symlink_to(real)
    first = Ledger.held(real, holder="s321 run (the daemon)")
    try:
        with pytest.raises(LedgerBusy, match="in use by s321 run"):
            Ledger.held(link, holder="s321 run --once")
    finally:
        first.close()
    Ledger.held(link).close()  # released: the other may take it now

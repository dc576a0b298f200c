"""The sandbox store's SQLite settings: speed may change how much it caches and how often
it checkpoints, never how durably it commits (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

from s321.sandbox import SandboxStore


def test_the_store_commits_durably_and_caches_a_batchs_pages(tmp_path: Path) -> None:
    store = SandboxStore(tmp_path / "sandbox.sqlite")
    try:
        pragma = {name: store._db.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("journal_mode", "synchronous", "cache_size", "wal_autocheckpoint")}
    finally:
        store.close()
    # FULL (2): the WAL is synced at every commit, before the batch is answered.
    assert pragma == {"journal_mode": "wal", "synchronous": 2, "cache_size": -32 * 1024,
                      "wal_autocheckpoint": 10_000}

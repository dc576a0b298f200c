"""The check every source's `read_keys` answers to: the units of `read()`, with the same
keys, locations and checkpoints in the same order, and no payload (the pipeline's
duplicate-key pass relies on it; tests/plugins/test_*_keys.py)."""

from __future__ import annotations

from typing import Any


def assert_same_keys(source: Any) -> None:
    full = [(u.key, u.location, u.checkpoint) for u in source.read()]
    keys = list(source.read_keys())
    assert [(u.key, u.location, u.checkpoint) for u in keys] == full
    assert all(u.payload is None for u in keys)

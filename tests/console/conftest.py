"""Fixtures of the console tests: `world` (tests/console/world.py), one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from console.world import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory)

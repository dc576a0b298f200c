"""Every version exactly once, under SIGKILL: changed re-exports of consignments arrive
while their adds are on the wire (the sandbox holds its acks back) and while the daemon
is dead; the daemon is killed at random moments and the sandbox now and then. In the
end the sandbox's last accepted record of every consignment is its final version, no
version was accepted twice, and the ledger agrees with the sandbox record by record.

Real processes throughout (`s321 run`, `s321 sandbox`, mutual TLS on loopback, SQLite).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash.world import World
from s321.states import State

DAEMON_KILLS = 50
SANDBOX_KILLS = 10


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, ack_delay=0.3, batch_size=10)
    yield w
    w.stop_sandbox()


def test_changes_after_acceptance_are_filed_as_replaces(world: World) -> None:
    world.start_sandbox()
    refs = world.add_input("first", 20)
    world.settle()
    world.change_input("change", refs[:8])
    world.settle()
    world.change_input("again", refs[4:12])
    world.settle()
    world.assert_every_version_once()
    actions = [a for _, a, _, _ in world.store().acceptances()]
    assert actions.count("add") == 20 and actions.count("replace") == 16, actions

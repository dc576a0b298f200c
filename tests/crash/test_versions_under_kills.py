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


def waiting_behind_an_add(world: World) -> int:
    """Records whose current version waits behind their add on the wire."""
    rows = world.ledger_query("SELECT COUNT(*) FROM consignments"
                              " WHERE wire_action = 'add' AND version > wire_version")
    return int(rows[0][0]) if rows else 0


def on_the_wire(world: World) -> list[str]:
    """The refs whose records are sent and not yet answered."""
    return [ref for (ref,) in world.ledger_query("SELECT ref FROM consignments WHERE state = 'sent'")]


@pytest.mark.slow
def test_changes_on_the_wire_under_daemon_and_sandbox_kills(world: World) -> None:
    rng = random.Random(1321)
    started = time.monotonic()
    world.start_sandbox()
    world.add_input("first", 60)
    caught: list[dict[str, int]] = []
    behind: list[int] = []  # at each kill: changes waiting behind their add on the wire
    for kill in range(DAEMON_KILLS):
        world.add_input(f"new{kill}", 6)  # new input and changes arrive while the daemon is dead
        world.change_input(f"dead{kill}", rng.sample(world.refs, 4))
        before = world.ledger_snapshot()
        proc = world.daemon()
        # Kill only once this run has changed the ledger, so that a loaded machine
        # does not kill a daemon that is still importing.
        deadline = time.monotonic() + 5
        while world.ledger_snapshot() == before and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        # Changes of records on the wire: their adds (or replaces) are accepted at the
        # sandbox, whose acks are held back.
        deadline = time.monotonic() + 1
        while not (sent := on_the_wire(world)) and time.monotonic() < deadline:
            time.sleep(0.02)
        if sent:
            world.change_input(f"wire{kill}", rng.sample(sent, min(5, len(sent))))
        if kill % 5 == 2:  # the sandbox dies too, with acks owed
            time.sleep(rng.uniform(0.0, 0.2))
            world.kill_sandbox()
            time.sleep(rng.uniform(0.0, 0.2))
            world.start_sandbox(wait=False)  # the daemon connects once it is up
        time.sleep(rng.uniform(0.0, 0.25))
        behind.append(waiting_behind_an_add(world))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        caught.append(world.ledger_states())
    killing = time.monotonic() - started
    # The kills must have hit work in progress, or this test proves nothing.
    assert sum(1 for states in caught if states.get(State.SENT)) >= 10, caught
    assert sum(1 for states in caught if states.get(State.QUEUED)) >= 10, caught
    assert sum(1 for n in behind if n) >= 3, f"changes rarely waited behind their adds on the wire: {behind}"
    assert world.sandbox_kills == SANDBOX_KILLS
    assert sum(world.revisions.values()) >= 300
    world.settle(timeout=90)
    world.assert_every_version_once()
    print(f"{DAEMON_KILLS} daemon kills, {SANDBOX_KILLS} sandbox kills in {killing:.0f} s; "
          f"{len(world.refs)} consignments, {sum(world.revisions.values())} changes "
          f"({sum(1 for n in behind if n)} kills with changes behind adds on the wire), "
          f"{len(world.store().acceptances())} acceptances; "
          f"{sum(1 for p in world.inbox.iterdir() if not p.name.startswith('.'))} files read and left in the inbox")

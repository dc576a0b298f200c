"""Crash safety with the transmission in a process of its own (`[daemon] transmit =
"process"`): at random moments either the daemon or its transmit process is killed with
SIGKILL, while new and changed input keeps arriving; in the end every version of every
consignment was accepted exactly once and the ledger agrees with the receiver.

Real processes throughout, as in test_crash_recovery: the daemon and its child, the
sandbox, mutual TLS on loopback, one SQLite ledger written by both halves.
"""

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
from crash.world import World
from s321.states import State

KILLS = 12


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except FileNotFoundError:
        return []


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, ack_delay=0.02)
    text = w.config.read_text()
    w.config.write_text(re.sub(r"(?m)^(\s*)\[daemon\]\n", r'\1[daemon]\n\1transmit = "process"\n', text, count=1))
    yield w
    w.stop_sandbox()


def test_sigkill_of_the_daemon_or_its_child_loses_nothing_and_files_nothing_twice(world):
    rng = random.Random(2121)
    world.start_sandbox()
    world.add_input("first", 100)
    caught = []
    children_killed = 0
    for kill in range(KILLS):
        world.add_input(f"more{kill}", 20)
        if kill % 3 == 2:
            world.change_input(f"change{kill}", rng.sample(world.refs, 10))
        before = world.ledger_snapshot()
        proc = world.daemon()
        deadline = time.monotonic() + 10
        while world.ledger_snapshot() == before and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        # The child starts a fresh interpreter (a second or so under load): kill once it
        # sends, a random moment later, so that kills land on records on the wire.
        while not world.ledger_query("SELECT 1 FROM consignments WHERE state = 'sent' LIMIT 1") \
                and time.monotonic() < deadline + 5 and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        child = children_of(proc.pid)
        if kill % 2 and child:  # the transmit process alone: the daemon starts another
            os.kill(child[0], signal.SIGKILL)
            children_killed += 1
            time.sleep(rng.uniform(0.5, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        caught.append(world.ledger_states())
        for pid in child:  # it dies with the daemon (PR_SET_PDEATHSIG)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and "\nState:\tZ" not in _status(pid):
                assert time.monotonic() < deadline, "the transmit process outlived its daemon"
                time.sleep(0.02)
    assert children_killed >= 3
    # The kills must have hit work in progress, or this test proves nothing.
    assert sum(1 for states in caught if states.get(State.SENT)) >= 2, caught
    assert sum(1 for states in caught if states.get(State.QUEUED)) >= 2, caught
    world.settle()
    world.assert_every_version_once()


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return "\nState:\tZ"

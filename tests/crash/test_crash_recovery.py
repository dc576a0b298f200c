"""Crash safety, the heart of the ledger's promise: the daemon is killed with SIGKILL at
random moments (ingesting, committing, sending, waiting for acks) and restarted, again
and again; in the end every consignment of the input was accepted at the sandbox
exactly once, and the ledger agrees. Then the same with the sandbox down for a while.

Real processes throughout: the daemon (`s321 run`) and the sandbox (`s321 sandbox`)
are subprocesses talking mutual TLS on loopback; the ledger is a SQLite file.
"""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
from crash.world import World
from s321.states import State

KILLS = 24


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, ack_delay=0.02)
    yield w
    w.stop_sandbox()


def test_sigkill_at_random_moments_loses_nothing_and_files_nothing_twice(world):
    rng = random.Random(321)
    world.start_sandbox()
    world.add_input("first", 100)
    caught = []
    for kill in range(KILLS):
        world.add_input(f"more{kill}", 25)  # new input keeps arriving while the daemon crashes
        before = world.ledger_snapshot()
        proc = world.daemon()
        # Kill only once this run has changed the ledger (it has ingested, claimed or
        # resolved something), then a random moment later: wall-clock sleeps alone
        # would often kill a daemon still importing on a loaded machine.
        deadline = time.monotonic() + 5
        while world.ledger_snapshot() == before and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        caught.append(world.ledger_states())
    # The kills must have hit work in progress, or this test proves nothing.
    assert sum(1 for states in caught if states.get(State.SENT)) >= 3, caught
    assert sum(1 for states in caught if states.get(State.QUEUED)) >= 3, caught
    world.settle()
    world.assert_exactly_once()


def test_records_wait_while_the_sandbox_is_down_then_go_through(world):
    world.add_input("waiting", 60)
    proc = world.daemon(wait_up=True)
    try:
        deadline = time.monotonic() + 20
        while world.ledger_states().get(State.QUEUED, 0) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a few failed connection attempts with backoff
        states = world.ledger_states()
        assert states == {State.QUEUED: 60}, states
        world.start_sandbox()
        deadline = time.monotonic() + 30
        while len(world.accepted()) < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        world.stop(proc)
    world.assert_exactly_once()


def test_the_sandbox_killed_mid_run_and_restarted(world):
    world.start_sandbox()
    world.add_input("a", 150)
    proc = world.daemon(wait_up=True)
    try:
        deadline = time.monotonic() + 20
        while not world.accepted() and time.monotonic() < deadline:
            time.sleep(0.05)
        world.stop_sandbox()  # SIGKILL: acks in flight are lost
        time.sleep(1.0)
        world.start_sandbox()
        deadline = time.monotonic() + 40
        while len(world.accepted()) < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        world.stop(proc)
    world.assert_exactly_once()


def test_status_shows_the_real_numbers_of_a_run(world):
    world.start_sandbox()
    world.add_input("s", 30)
    world.settle()
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "status", "-c", str(world.config), "--json"],
                          capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["pipeline"], r["state"], r["count"]) for r in rows] == [("crash", "accepted", 30)]

"""Issue 13's first two defects, end to end with real processes (`s321 run` and
`s321 sandbox --ack-delay` on loopback mutual TLS, a SQLite ledger):

1. a change made while its add is on the wire was sent as another `add`, answered
   `duplicate`, and recorded as accepted while the sandbox kept the old content (also
   through the broker relay, and when the daemon was killed between the add and its ack);
2. a replace on the wire when the daemon died was sent again after the restart and
   applied a second time.

Checked against the daemon (and relay) of the code before the fix (ad7e8dc~1, with
today's sandbox): each test of the first defect fails with "the sandbox holds the new
content of 0 of the 10 changed", the test of the second with each replace accepted twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash.relay_world import RelayWorld
from crash.world import World, marker
from relay.test_relay import Keyring, keyring  # noqa: F401 (a fixture)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, ack_delay=3.0, batch_size=20)
    yield w
    w.stop_sandbox()


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def states(world: World) -> dict[str, int]:
    return {str(k): v for k, v in world.ledger_states().items()}


def status_json(world: World) -> list[tuple[str, str, int]]:
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "status", "-c", str(world.config), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return [(r["pipeline"], r["state"], r["count"]) for r in rows]


def test_a_change_made_while_its_add_is_on_the_wire_reaches_the_receiver(world: World) -> None:
    world.start_sandbox()
    refs = world.add_input("orders", 20)
    proc = world.daemon(wait_up=True)
    try:
        wait_for(lambda: states(world) == {"sent": 20}, 20, "20 sent")
        changed = world.change_input("orders-changed", refs[::2])
        # The re-export is read while the adds still wait for their acks (3 s).
        wait_for(lambda: not any(world.inbox.glob("*.jsonl")), 10, "the re-export read")
        assert "accepted" not in states(world)
        behind = world.ledger_query("SELECT ref FROM consignments WHERE state = 'sent'"
                                    " AND wire_action = 'add' AND version > wire_version")
        wait_for(world.settled, 30, "everything accepted")
    finally:
        world.stop(proc)
    store = world.store()
    held = {world.txid(ref): store.accepted_records(world.txid(ref))[-1] for ref in refs}
    new = sorted(ref for ref in refs if marker(held[world.txid(ref)]) == "rev 1")
    assert new == sorted(changed), f"the sandbox holds the new content of {len(new)} of the {len(changed)} changed"
    world.assert_every_version_once()
    assert status_json(world) == [("crash", "accepted", 20)]
    # Each change waited in the ledger behind its add on the wire.
    assert sorted(ref for (ref,) in behind) == sorted(changed)


def test_a_replace_on_the_wire_when_the_daemon_dies_is_applied_once(world: World) -> None:
    world.ack_delay = 0.0
    world.start_sandbox()
    refs = world.add_input("orders", 20)
    world.settle()
    world.ack_delay = 3.0  # from now on the sandbox applies at once and answers late
    world.restart_sandbox()
    changed = world.change_input("orders-changed", refs[:10])
    txids = {world.txid(ref) for ref in changed}
    proc = world.daemon()
    try:
        # Killed when the sandbox has applied the replaces and still owes their acks.
        wait_for(lambda: world.sandbox_query("SELECT COUNT(*) FROM acceptances WHERE action = 'replace'")
                 == [(10,)], 20, "the replaces applied at the sandbox")
        assert states(world) == {"accepted": 10, "sent": 10}
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    world.settle()
    store = world.store()
    replaces = Counter((t, v) for t, a, v, _ in store.acceptances() if a == "replace")
    assert set(t for t, _ in replaces) == txids
    assert set(replaces.values()) == {1}, replaces
    # They were sent again after the restart, and answered as repeats.
    assert store.rejection_counts() == {"duplicate": 10}
    world.assert_every_version_once()


def test_a_change_made_while_the_daemon_is_down_with_its_add_unanswered_reaches_the_receiver(
        world: World) -> None:
    world.start_sandbox()
    refs = world.add_input("orders", 20)
    proc = world.daemon()
    try:
        # Killed when the sandbox has applied the adds and still owes their acks.
        wait_for(lambda: states(world) == {"sent": 20}
                 and world.sandbox_query("SELECT COUNT(*) FROM acceptances") == [(20,)], 20,
                 "the adds applied at the sandbox")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    changed = world.change_input("orders-changed", refs[1::2])
    world.settle()
    store = world.store()
    held = {world.txid(ref): store.accepted_records(world.txid(ref))[-1] for ref in refs}
    new = sorted(ref for ref in refs if marker(held[world.txid(ref)]) == "rev 1")
    assert new == sorted(changed), f"the sandbox holds the new content of {len(new)} of the {len(changed)} changed"
    actions = [a for _, a, _, _ in store.acceptances()]
    assert (actions.count("add"), actions.count("replace")) == (20, 10)
    world.assert_every_version_once()


@pytest.fixture
def relayed(tmp_path: Path, keyring: Keyring) -> Iterator[RelayWorld]:  # noqa: F811
    rw = RelayWorld(tmp_path, keyring, ack_delay=3.0, batch_size=20)
    yield rw
    rw.close()


def test_a_change_made_while_its_add_is_on_the_wire_through_the_relay_reaches_the_receiver(
        relayed: RelayWorld) -> None:
    world = relayed.world
    world.start_sandbox()
    relayed.start_relay()
    refs = world.add_input("orders", 20)
    proc = world.daemon(wait_up=True)
    try:
        wait_for(lambda: states(world) == {"sent": 20} and relayed.relay_states() == {"sent": 20}
                 and world.sandbox_query("SELECT COUNT(*) FROM acceptances") == [(20,)], 20,
                 "the adds applied at the sandbox, through the relay")
        changed = world.change_input("orders-changed", refs[::2])
        wait_for(lambda: not any(world.inbox.glob("*.jsonl")), 10, "the re-export read")
        assert "accepted" not in states(world)  # the acks are not back yet
        wait_for(lambda: world.settled() and relayed.relay_states() == {"accepted": 20}, 40,
                 "everything accepted, at the relay too")
    finally:
        world.stop(proc)
    relayed.stop_relay()
    store = world.store()
    held = {world.txid(ref): store.accepted_records(world.txid(ref))[-1] for ref in refs}
    new = sorted(ref for ref in refs if marker(held[world.txid(ref)]) == "rev 1")
    assert new == sorted(changed), f"the sandbox holds the new content of {len(new)} of the {len(changed)} changed"
    world.assert_every_version_once(ledgers=[relayed.ledger_path])

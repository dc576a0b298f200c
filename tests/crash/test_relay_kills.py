"""Every version exactly once through the broker relay, under SIGKILL: a client daemon
(`s321 run`, broker-relay transport) files through an `s321 relay` process to the
sandbox (`s321 sandbox`, acks held back), while changed re-exports arrive with their
versions on the wire; the relay is killed again and again, the client daemon now and
then. In the end the sandbox holds every consignment's final version, no version was
accepted twice, and both ledgers (the client's and the relay's) agree with it.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash.relay_world import RelayWorld
from relay.test_relay import Keyring, keyring  # noqa: F401 (a fixture)
from s321.states import State

RELAY_KILLS = 12


@pytest.fixture
def relayed(tmp_path: Path, keyring: Keyring) -> Iterator[RelayWorld]:  # noqa: F811
    rw = RelayWorld(tmp_path, keyring)
    yield rw
    rw.close()


@pytest.mark.slow
def test_changes_through_a_relay_killed_again_and_again(relayed: RelayWorld) -> None:
    rng = random.Random(2113)
    world = relayed.world
    world.start_sandbox()
    relayed.start_relay()
    world.add_input("first", 40)
    daemon = world.daemon()
    daemon_kills = 0
    before = relayed.settled()
    progressed = 0
    caught: list[int] = []
    try:
        for kill in range(RELAY_KILLS):
            # Each relay runs until it has settled something, so that the run moves on.
            deadline = time.monotonic() + 10
            while relayed.settled() == before and time.monotonic() < deadline:
                time.sleep(0.02)
            progressed += relayed.settled() != before
            # New consignments and changes come in; the relay is killed while the
            # sandbox has applied some of its records and owes their acks, and changes
            # of those records arrive meanwhile.
            world.add_input(f"new{kill}", 5)
            world.change_input(f"change{kill}", rng.sample(world.refs, 5))
            deadline = time.monotonic() + 5
            while not (sent := relayed.relay_sent()) and time.monotonic() < deadline:
                time.sleep(0.02)
            refs = {world.txid(r): r for r in world.refs}
            on_wire = [refs[t] for t in sent if t in refs]
            if on_wire:
                world.change_input(f"wire{kill}", rng.sample(on_wire, min(4, len(on_wire))))
            time.sleep(rng.uniform(0.0, 0.3))
            caught.append(len(relayed.relay_sent()))
            relayed.kill_relay()
            if kill % 3 == 1:  # the client daemon dies too, with its batches unanswered
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                daemon_kills += 1
                daemon = world.daemon()
            time.sleep(rng.uniform(0.0, 0.3))
            before = relayed.settled()
            relayed.start_relay()
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    assert relayed.kills == RELAY_KILLS and daemon_kills >= 4
    # The kills must have hit work in progress, or this test proves nothing.
    assert sum(1 for n in caught if n) >= RELAY_KILLS // 2, caught
    assert progressed >= RELAY_KILLS // 2, "the relay settled nothing between kills"
    world.settle(timeout=90)
    relayed.stop_relay()
    world.assert_every_version_once(ledgers=[relayed.ledger_path])
    assert relayed.relay_states() == {State.ACCEPTED.value: len(world.refs)}
    store = world.store()
    print(f"{relayed.kills} relay kills, {daemon_kills} client kills; in flight at kills {caught}; "
          f"{len(world.refs)} consignments, {sum(world.revisions.values())} changes, "
          f"progress in {progressed} runs, {len(store.acceptances())} acceptances, repeats answered {store.rejection_counts()}")

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
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash.world import World, free_port, read_only
from relay.test_relay import Keyring, keyring, spawn_relay, write_relay_toml  # noqa: F401 (a fixture)
from s321.states import State

RELAY_KILLS = 12
CLIENT = "carol"


class RelayWorld:
    """A World whose daemon files through a relay process to the world's sandbox."""

    def __init__(self, tmp: Path, keys: Keyring):
        self.port = free_port()
        self.world = World(tmp, ack_delay=0.3, batch_size=10, transport=f"""
            plugin = "broker-relay"
            endpoint = "tcp://127.0.0.1:{self.port}"
            server_key = "{keys.public('relay')}"
            secret_key = {{file = "{keys.secret(CLIENT)}"}}
            connect_timeout = 2
            receipt_timeout = 2
            reconnect_interval = 0.1
            reconnect_interval_max = 0.5
        """)
        certs = self.world.certs
        self.config = write_relay_toml(tmp / "relay", keys, self.port, f"""
            plugin = "p2p-socket"
            host = "127.0.0.1"
            port = {self.world.port}
            ca = "{certs.ca}"
            cert = {{file = "{certs.client_cert}"}}
            key = {{file = "{certs.client_key}"}}
            backoff_initial = 0.05
            backoff_max = 0.2
            read_timeout = 5
            connect_timeout = 5
            """, f"""
            [clients.{CLIENT}]
            public_key = "{keys.public(CLIENT)}"
            originator_codes = ["CRASH01"]
            upstream = "cbp"
            [clients.{CLIENT}.retry]
            initial = 0.05
            maximum = 0.5
            ack_timeout = 5
            """)
        self.ledger_path = tmp / "relay" / "relay.sqlite"
        self.log = tmp / "relay.log"
        self.relay: subprocess.Popen[str] | None = None
        self.kills = 0

    def start_relay(self) -> None:
        self.relay = spawn_relay(self.config, self.log)

    def kill_relay(self) -> None:
        if self.relay is not None:
            self.relay.send_signal(signal.SIGKILL)
            self.relay.wait(10)
            self.relay = None
            self.kills += 1

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.send_signal(signal.SIGTERM)
            assert self.relay.wait(20) == 0, self.log.read_text()[-2000:]
            self.relay = None

    def settled(self) -> int:
        """The sum of the versions the relay's ledger holds as accepted: grows whenever
        the relay settles a version."""
        rows = read_only(self.ledger_path, "SELECT SUM(accepted_version) FROM consignments")
        return int(rows[0][0] or 0) if rows else 0

    def relay_sent(self) -> list[str]:
        """Transaction ids the relay has put on the wire to the sandbox, unanswered."""
        return [t for (t,) in read_only(self.ledger_path, "SELECT transaction_id FROM consignments"
                                                       " WHERE state = 'sent'")]


@pytest.fixture
def relayed(tmp_path: Path, keyring: Keyring) -> Iterator[RelayWorld]:  # noqa: F811
    rw = RelayWorld(tmp_path, keyring)
    yield rw
    if rw.relay is not None:
        rw.relay.kill()
        rw.relay.wait()
    rw.world.stop_sandbox()


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
    relay_states = dict(read_only(relayed.ledger_path, "SELECT state, COUNT(*) FROM consignments GROUP BY state"))
    assert relay_states == {State.ACCEPTED.value: len(world.refs)}
    store = world.store()
    print(f"{relayed.kills} relay kills, {daemon_kills} client kills; in flight at kills {caught}; "
          f"{len(world.refs)} consignments, {sum(world.revisions.values())} changes, "
          f"progress in {progressed} runs, {len(store.acceptances())} acceptances, repeats answered {store.rejection_counts()}")

"""A crash-test World whose daemon files through the broker relay: the client daemon
(`s321 run`, broker-relay transport) sends to an `s321 relay` process, which files with
the world's sandbox (`s321 sandbox`) over mutual TLS. The relay has a SQLite ledger of
its own, which `World.assert_every_version_once(ledgers=[...])` holds to the sandbox too.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from crash.world import ORIGINATOR, World, free_port, read_only
from relay.test_relay import Keyring, spawn_relay, write_relay_toml

CLIENT = "carol"
"""The relay client the daemon files as (its keys are in the relay tests' keyring)."""


class RelayWorld:
    """A World (`.world`) whose daemon files through a relay process to its sandbox."""

    def __init__(self, tmp: Path, keys: Keyring, ack_delay: float = 0.3, batch_size: int = 10):
        self.port = free_port()
        self.world = World(tmp, ack_delay=ack_delay, batch_size=batch_size, transport=f"""
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
            originator_codes = ["{ORIGINATOR}"]
            upstream = "cbp"
            [clients.{CLIENT}.retry]
            initial = 0.05
            maximum = 0.5
            ack_timeout = {max(5.0, 2 * ack_delay + 2)}
            """)
        self.ledger_path = tmp / "relay" / "relay.sqlite"
        self.log = tmp / "relay.log"
        self.relay: subprocess.Popen[str] | None = None
        self.kills = 0

    def start_relay(self) -> None:
        self.relay = spawn_relay(self.config, self.log)

    def kill_relay(self) -> None:
        """SIGKILL: what the relay stored stays in its ledger; acks it owes are lost."""
        if self.relay is not None:
            self.relay.send_signal(signal.SIGKILL)
            self.relay.wait(10)
            self.relay = None
            self.kills += 1

    def stop_relay(self) -> None:
        """SIGTERM, and the relay must stop cleanly."""
        if self.relay is not None:
            self.relay.send_signal(signal.SIGTERM)
            assert self.relay.wait(20) == 0, self.log.read_text()[-2000:]
            self.relay = None

    def close(self) -> None:
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
            self.relay = None
        self.world.stop_sandbox()

    def settled(self) -> int:
        """The sum of the versions the relay's ledger holds as accepted: grows whenever
        the relay settles a version."""
        rows = read_only(self.ledger_path, "SELECT SUM(accepted_version) FROM consignments")
        return int(rows[0][0] or 0) if rows else 0

    def relay_sent(self) -> list[str]:
        """Transaction ids the relay has put on the wire to the sandbox, unanswered."""
        return [t for (t,) in read_only(self.ledger_path,
                                        "SELECT transaction_id FROM consignments WHERE state = 'sent'")]

    def relay_states(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in read_only(
            self.ledger_path, "SELECT state, COUNT(*) FROM consignments GROUP BY state")}

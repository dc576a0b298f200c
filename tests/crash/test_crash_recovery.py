"""Crash safety, the heart of the ledger's promise: the daemon is killed with SIGKILL at
random moments (ingesting, committing, sending, waiting for acks) and restarted, again
and again; in the end every consignment of the input was accepted at the sandbox
exactly once, and the ledger agrees. Then the same with the sandbox down for a while.

Real processes throughout: the daemon (`s321 run`) and the sandbox (`s321 sandbox`)
are subprocesses talking mutual TLS on loopback; the ledger is a SQLite file.
"""

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from builders import marketplace_fields, write_config, write_jsonl
from s321 import ids
from s321.ledger import Ledger
from s321.sandbox.certs import ensure_dev_certs
from s321.sandbox.store import SandboxStore
from s321.states import State

ORIGINATOR = "CRASH01"
KILLS = 24


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    """The input, the config, a sandbox process and daemon processes, in one folder."""

    def __init__(self, tmp: Path, ack_delay: float = 0.0):
        self.tmp = tmp
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        self.port = free_port()
        self.http_port = free_port()
        self.certs = ensure_dev_certs(tmp / "certs")
        self.sandbox_db = tmp / "sandbox.sqlite"
        self.ack_delay = ack_delay
        self.sandbox: subprocess.Popen | None = None
        self.refs: list[str] = []
        self.config = write_config(tmp, f"""
            [ledger]
            path = "{tmp / 'ledger.sqlite'}"

            [daemon]
            http = "127.0.0.1:{self.http_port}"
            rescan_seconds = 0.2
            poll_interval = 0.05
            shutdown_timeout = 1

            [pipelines.crash]
            originator_code = "{ORIGINATOR}"
            filer_type = "online_marketplace"
            mode_of_transport = "air"
            batch_size = 15
            settle_seconds = 0
            archive_dir = "{tmp / 'archive'}"

            [pipelines.crash.retry]
            initial = 0.05
            maximum = 0.5
            ack_timeout = 3
            max_elapsed = 3600

            [pipelines.crash.source]
            plugin = "records-jsonl"
            path = "{self.inbox}"

            [pipelines.crash.transport]
            plugin = "p2p-socket"
            host = "127.0.0.1"
            port = {self.port}
            ca = "{self.certs.ca}"
            cert = {{ file = "{self.certs.client_cert}" }}
            key = {{ file = "{self.certs.client_key}" }}
            connect_timeout = 2
            ack_timeout = 2
            window = 3
        """)

    def add_input(self, name: str, count: int) -> None:
        start = len(self.refs)
        refs = [f"{name}-{i}" for i in range(start, start + count)]
        tmpname = self.inbox / f".{name}.tmp"
        write_jsonl(tmpname, [{"ref": r, **marketplace_fields()} for r in refs])
        tmpname.rename(self.inbox / f"{name}.jsonl")
        self.refs += refs

    def expected_ids(self) -> set[str]:
        return {ids.transaction_id(ORIGINATOR, "records-jsonl", r) for r in self.refs}

    def start_sandbox(self) -> None:
        args = [sys.executable, "-m", "s321.cli", "sandbox", "--port", str(self.port),
                "--certs-dir", str(self.tmp / "certs"), "--db", str(self.sandbox_db)]
        if self.ack_delay:
            args += ["--ack-delay", str(self.ack_delay)]
        self.sandbox = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the sandbox did not start")

    def stop_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox.wait()
            self.sandbox = None

    def daemon(self, wait_up: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(self.config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
        if wait_up:  # a daemon still importing has nothing to shut down cleanly yet
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1).close()
                    return proc
                except OSError:
                    time.sleep(0.05)
            raise AssertionError("the daemon did not come up")
        return proc

    def accepted(self) -> dict[str, int]:
        if not self.sandbox_db.exists():
            return {}
        return SandboxStore(self.sandbox_db).accepted_counts()

    def settle(self, timeout: float = 60.0) -> None:
        """Run the daemon until the ledger says everything is accepted, then stop it.
        Records left `sent` by a killed run are resent by this one and come back as
        duplicates, which the ledger resolves as accepted."""
        proc = self.daemon(wait_up=True)
        deadline = time.monotonic() + timeout
        done = {State.ACCEPTED: len(self.refs)}
        try:
            while time.monotonic() < deadline and self.ledger_states() != done:
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, proc.stderr.read().decode()[-2000:]

    def ledger_snapshot(self) -> tuple:
        """Every row's state and batch: changes whenever the daemon does anything."""
        path = self.tmp / "ledger.sqlite"
        if not path.exists():
            return ()
        db = sqlite3.connect(path, timeout=10)
        try:
            return tuple(db.execute("SELECT transaction_id, state, batch_id FROM consignments ORDER BY 1"))
        except sqlite3.OperationalError:
            return ()
        finally:
            db.close()

    def ledger_states(self) -> dict[str, int]:
        ledger = Ledger(self.tmp / "ledger.sqlite")
        try:
            return ledger.counts("crash")
        finally:
            ledger.close()

    def assert_exactly_once(self) -> None:
        expected = self.expected_ids()
        accepted = self.accepted()
        missing = expected - set(accepted)
        twice = {t: n for t, n in accepted.items() if n != 1}
        assert not missing, f"{len(missing)} consignments never accepted"
        assert not twice, f"accepted more than once: {twice}"
        assert set(accepted) == expected
        assert self.ledger_states() == {State.ACCEPTED: len(expected)}


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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    world.assert_exactly_once()


def test_status_shows_the_real_numbers_of_a_run(world):
    world.start_sandbox()
    world.add_input("s", 30)
    world.settle()
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "status", "-c", str(world.config), "--json"],
                          capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["pipeline"], r["state"], r["count"]) for r in rows] == [("crash", "accepted", 30)]

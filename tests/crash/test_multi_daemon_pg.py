"""Three daemons, one PostgreSQL ledger, one sandbox, one shared inbox (issue 18): every
consignment is still filed exactly once per version, whatever is killed.

Real processes throughout: three `s321 run` on one ledger database (each with a config
of its own, as on three machines), `s321 sandbox` over mutual TLS, and a PostgreSQL
server that the test restarts (cleanly and by SIGKILL of the postmaster) while the
daemons work. A random daemon is SIGKILLed at random moments and started again; new
inputs and changed re-exports arrive throughout. Short leases (2 s) let the survivors
take a killed daemon's batches over quickly. At the end: the sandbox's last accepted
record of every consignment is its final content, no (transaction id, version) was
accepted twice, versions rise, the ledger agrees with the sandbox row by row, and no
record is left `sent` or `queued`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from crash.world import PIPELINE, World
from pgserver import PgServer, pg_missing
from ports import free_port
from s321.ledger import Ledger
from s321.ledger_backend import LedgerUnavailable
from s321.ledger_open import open_ledger

DAEMONS = 3
DAEMON_KILLS = 50
PG_RESTARTS = 5
LEASE_SECONDS = 2


class PgWorld(World):
    """The crash world of tests/crash/world.py on a PostgreSQL ledger, with one config
    (and one /metrics port) per daemon."""

    def __init__(self, tmp: Path, pg: PgServer):
        super().__init__(tmp, ack_delay=0.5, batch_size=10)
        self.pg = pg
        self.url = pg.create_database("s321")
        text = self.config.read_text()
        text = text.replace(f'path = "{self.ledger_path}"', f'url = "{self.url}"\nlease_seconds = {LEASE_SECONDS}')
        self.http_ports = [free_port() for _ in range(DAEMONS)]
        self.configs = []
        for i, port in enumerate(self.http_ports):
            config = tmp / f"daemon{i}.toml"
            config.write_text(text.replace(f'http = "127.0.0.1:{self.http_port}"', f'http = "127.0.0.1:{port}"'))
            self.configs.append(config)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * DAEMONS

    # ------------------------------------------------------------------ daemons

    def start_daemon(self, i: int) -> subprocess.Popen[bytes]:
        with self.daemon_log.open("ab") as err:
            proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(self.configs[i])],
                                    stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
        self.procs[i] = proc
        return proc

    def kill_daemon(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
            self.procs[i] = None

    def identity(self, i: int) -> str | None:
        """The owner name daemon `i` takes leases in (from its /metrics), or None while
        it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/metrics", timeout=1) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("s321_consignments_total{") and 'daemon="' in line:
                return line.split('daemon="', 1)[1].split('"', 1)[0]
        return None

    def up(self, timeout: float = 20.0) -> dict[int, str]:
        """The daemons that are up (serving /metrics), by index, with their identity;
        waits until at least one is."""
        deadline = time.monotonic() + timeout
        while True:
            self.keep_running()
            found = {i: who for i in range(DAEMONS) if (who := self.identity(i)) is not None}
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def keep_running(self) -> int:
        """Start again every daemon that is not running (one exits when the database is
        down as it starts, as it would under systemd's Restart=always). Returns how many."""
        started = 0
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self.start_daemon(i)
                started += 1
        return started

    def stop_daemons(self) -> None:
        """SIGTERM: each daemon must shut down cleanly (once up: one still importing
        has not set its signal handlers yet)."""
        deadline = time.monotonic() + 20
        for i, proc in enumerate(self.procs):
            while proc is not None and proc.poll() is None and self.identity(i) is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        running = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            assert proc.wait(timeout=30) == 0, self.log_tail()
        self.procs = [None] * DAEMONS

    def settle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.keep_running()
            if self.settled():
                break
            time.sleep(0.3)
        self.stop_daemons()

    # ------------------------------------------------------------------ the ledger, in PostgreSQL

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        """The ledger, opened again for each look (the server may have restarted)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                ledger = open_ledger(self.url)
                break
            except LedgerUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            yield ledger
        finally:
            ledger.close()

    def unread(self) -> list[Path]:
        files = [p for p in self.inbox.iterdir() if not p.name.startswith(".")]
        unread = []
        with self.ledger() as ledger:
            for p in files:
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if not ledger.input_seen(PIPELINE, str(p), st.st_size, st.st_mtime_ns):
                    unread.append(p)
        return unread

    def ledger_states(self) -> dict[str, int]:
        with self.ledger() as ledger:
            return ledger.counts(PIPELINE)

    def holding(self, up: dict[int, str], rng: random.Random, within: float) -> tuple[int, str] | None:
        """A running daemon (index, owner) that holds records `sent`, waiting up to
        `within` seconds for one; None when none did. A machine under load is slower to
        put records on the wire, and the kills must still hit work in progress."""
        deadline = time.monotonic() + within
        while True:
            holders = {owner for owner, in self.ledger_query(
                "SELECT DISTINCT lease_owner FROM consignments WHERE state = 'sent'")}
            busy = [(i, who) for i, who in sorted(up.items()) if who in holders]
            if busy:
                return rng.choice(busy)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def ledger_query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    def ledger_rows(self, path: Path) -> dict[str, dict[str, Any] | None]:
        """The rows of the shared PostgreSQL ledger (`path`, the SQLite one, is not used)."""
        with self.ledger() as ledger:
            return {txid: ledger.get(txid) for txid in self.expected_ids()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PgWorld]:
    reason = pg_missing()
    if reason:
        pytest.skip(reason)
    with PgServer() as pg:
        w = PgWorld(tmp_path, pg)
        try:
            yield w
        finally:
            for i in range(DAEMONS):
                w.kill_daemon(i)
            w.stop_sandbox()


@pytest.mark.slow
def test_three_daemons_one_postgresql_ledger_under_kills_and_database_restarts(world: PgWorld) -> None:
    rng = random.Random(18321)
    started = time.monotonic()
    world.start_sandbox()
    world.add_input("first", 60)
    world.keep_running()
    held: list[int] = []  # at each kill: the records the killed daemon had on the wire
    pg_restarts = own_exits = 0
    for kill in range(DAEMON_KILLS):
        if kill % 2 == 0:
            world.add_input(f"new{kill}", 6)
        if kill % 3 == 1:
            world.change_input(f"change{kill}", rng.sample(world.refs, 5))
        time.sleep(rng.uniform(0.1, 0.8))
        up = world.up()  # a daemon still importing has done nothing worth killing yet
        assert up, f"no daemon came up: {world.log_tail()}"
        victim, who = rng.choice(sorted(up.items()))
        if kill % 2:  # every other kill aims at a daemon with records on the wire, when one has some soon
            victim, who = world.holding(up, rng, within=3.0) or (victim, who)
        held.append(world.ledger_query(
            f"SELECT COUNT(*) FROM consignments WHERE state = 'sent' AND lease_owner = '{who}'")[0][0])
        world.kill_daemon(victim)
        if kill % 10 == 5:  # the database goes too: cleanly, or killed with its backends
            if pg_restarts % 2:
                world.pg.kill()
                time.sleep(rng.uniform(0.0, 0.5))
                world.pg.start()
            else:
                world.pg.restart()
            pg_restarts += 1
        own_exits += world.keep_running() - 1
    killing = time.monotonic() - started
    # The kills must have hit work in progress, or this test proves nothing.
    assert sum(1 for n in held if n) >= 10, held
    assert pg_restarts == PG_RESTARTS
    world.settle(timeout=60)
    world.assert_every_version_once()
    taken_over = world.ledger_query("SELECT COUNT(*) FROM history WHERE detail LIKE '%taken over%'")[0][0]
    assert taken_over, "no batch of a killed daemon was ever taken over by another"
    print(f"{DAEMON_KILLS} daemon kills, {pg_restarts} database restarts, {own_exits} daemons restarted after "
          f"exiting on their own, in {killing:.0f} s (total {time.monotonic() - started:.0f} s); "
          f"{len(world.refs)} consignments, {sum(world.revisions.values())} changes, "
          f"{len(world.store().acceptances())} acceptances, {taken_over} records taken over; "
          f"{sum(1 for n in held if n)} kills of a daemon with records on the wire")

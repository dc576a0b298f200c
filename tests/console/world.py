"""A broker's world for the console tests: two clients (originator codes ALPHA01 and
BETA002) in one ledger, filed for real through `s321 run --once` against the sandbox
over its TLS link: accepted and invalid records for ALPHA01, dead letters for BETA002
(its link was down past its retry budget), and users of every role and scope."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from starlette.testclient import TestClient

from builders import marketplace_fields, write_jsonl
from s321 import app as s321_app
from s321.console.app import build
from s321.console.auth import hash_password
from s321.ledger import Ledger
from s321.sandbox import Sandbox
from ports import free_port

PASSWORD = "correct horse battery staple"
ORIGIN = "http://127.0.0.1:9322"
"""The console's own origin: the world's config keeps the default listen address."""
USERS = {
    # name: (role, scope)
    "vera": ("viewer", None),
    "otto": ("operator", None),
    "ada": ("admin", None),
    "alice": ("viewer", ["ALPHA01"]),
    "bob": ("operator", ["BETA002"]),
}


@dataclass
class World:
    folder: Path
    config: Path
    ledger: Path
    sandbox: Sandbox
    alpha: list[str]
    """transaction ids of ALPHA01's records"""
    beta: list[str]
    """transaction ids of BETA002's records (dead letters)"""

    def write_config(self, beta_port: int) -> None:
        self.config.write_text(config_text(self.folder, self.sandbox, beta_port), encoding="utf-8")

    def run_once(self, *pipelines: str) -> subprocess.CompletedProcess[str]:
        args = [a for p in pipelines for a in ("-p", p)]
        return subprocess.run([sys.executable, "-m", "s321.cli", "run", "-c", str(self.config), "--once", *args],
                              capture_output=True, text=True, timeout=120)


def _transport(sandbox: Sandbox, port: int) -> str:
    o = sandbox.transport_options()
    return (f'plugin = "p2p-socket"\nhost = "{o["host"]}"\nport = {port}\nca = "{o["ca"]}"\n'
            f'cert = {{ file = "{o["cert"]["file"]}" }}\nkey = {{ file = "{o["key"]["file"]}" }}\n'
            'connect_timeout = 1')


_HASH = hash_password(PASSWORD)


def config_text(folder: Path, sandbox: Sandbox, beta_port: int) -> str:
    users = ""
    for name, (role, scope) in USERS.items():
        users += f'\n[console.users.{name}]\nrole = "{role}"\npassword_hash = "{_HASH}"\n'
        if scope is not None:
            users += f"originator_codes = {scope!r}\n".replace("'", '"')
    pipelines = ""
    for name, code, port in (("alpha", "ALPHA01", sandbox.port), ("beta", "BETA002", beta_port)):
        pipelines += f"""
[pipelines.{name}]
originator_code = "{code}"
filer_type = "online_marketplace"
mode_of_transport = "air"
settle_seconds = 0
retry = {{ initial = 0.05, maximum = 0.1, max_elapsed = 0.5, ack_timeout = 2 }}

[pipelines.{name}.source]
plugin = "records-jsonl"
path = "{folder / 'inbox' / name}"

[pipelines.{name}.transport]
{_transport(sandbox, port)}
"""
    return f"""[ledger]
path = "{folder / 's321-ledger.sqlite'}"

[console]
audit_log = "{folder / 'audit' / 'console-audit.log'}"
{users}
{pipelines}"""


def _closed_port() -> int:
    return free_port()  # nobody listens there, and no one else is handed it


def make_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A new world in a new folder (each test module that changes the ledger has its own)."""
    folder = tmp_path_factory.mktemp("console-world")
    for name in ("alpha", "beta"):
        (folder / "inbox" / name).mkdir(parents=True)
    alpha = [{"ref": f"A-{i}", **marketplace_fields(originator_code="ALPHA01", tracking_number=f"ALPHTRK{i:04d}")}
             for i in range(6)]
    for order in alpha[4:]:  # two orders without a tracking number: invalid (missing-one-of)
        del order["tracking_number"]
    beta = [{"ref": f"B-{i}", **marketplace_fields(originator_code="BETA002", tracking_number=f"BETATRK{i:04d}")}
            for i in range(3)]
    write_jsonl(folder / "inbox" / "alpha" / "orders.jsonl", alpha)
    write_jsonl(folder / "inbox" / "beta" / "orders.jsonl", beta)
    with Sandbox(folder / "sandbox").start() as sandbox:
        w = World(folder, folder / "s321.toml", folder / "s321-ledger.sqlite", sandbox, [], [])
        w.write_config(beta_port=_closed_port())  # BETA002's link is down
        done = w.run_once()
        assert done.returncode in (0, 1, 3), done.stdout + done.stderr
        ledger = Ledger(w.ledger)
        try:
            # What the transmitter does when a link is refused for good (a fatal error).
            ledger.dead_letter_queued("beta", "127.0.0.1: connection refused (link down past its retry budget)")
            w.alpha = [t for i in range(6) for t in ledger.find(f"A-{i}")]
            w.beta = [t for i in range(3) for t in ledger.find(f"B-{i}")]
        finally:
            ledger.close()
        yield w



def client_for(world: World) -> TestClient:
    _, loaded = s321_app.load(world.config)
    return TestClient(build(loaded), base_url=ORIGIN, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD) -> str:
    """Log in; returns the session's CSRF token (from a page of the console)."""
    token = csrf_of(client.get("/login").text)
    done = client.post("/login", data={"csrf": token, "username": user, "password": password})
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    return csrf_of(client.get("/").text)


@contextmanager
def running_console(config: Path) -> Iterator[int]:
    """A real `s321 console` over `config` on a free loopback port, listening: the port.
    Stopped on leaving."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "console", "-c", str(config),
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"s321 console exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "s321 console did not start listening"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)

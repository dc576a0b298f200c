"""`[daemon] transmit = "process"`: ingest in the run's (or daemon's) process, transmission
in one child process (s321.transmit_process). Real processes: the sandbox and `s321 run`
as subprocesses on loopback mutual TLS, a SQLite ledger written by both halves. What a
user relies on is what one process gave: every version accepted once, the same summary,
/metrics, the observers told, and no process left behind."""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from crash.world import PIPELINE, World

from s321.states import State


def process_mode(world: World) -> World:
    """The world's config with the transmission in a process of its own."""
    text = world.config.read_text()
    world.config.write_text(re.sub(r"(?m)^(\s*)\[daemon\]\n", r'\1[daemon]\n\1transmit = "process"\n', text, count=1))
    assert 'transmit = "process"' in world.config.read_text()
    return world


@pytest.fixture
def world(tmp_path):
    (tmp_path / "w").mkdir()
    w = process_mode(World(tmp_path / "w", ack_delay=0.01))
    yield w
    w.stop_sandbox()


def s321(*args: object, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or dict(os.environ), timeout=timeout)


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_run_once_transmits_in_a_child_with_the_same_summary(world, tmp_path):
    world.start_sandbox()
    world.add_input("a", 140)
    world.add_input("b", 35)
    proc = s321("run", "-c", world.config, "--once")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == (f"{PIPELINE} -> p2p-socket: received 175, valid 175, invalid 0, skipped 0, "
                                   "sent 175, accepted 175, rejected 0")
    assert "transmit process started" in proc.stderr or proc.stderr == ""
    world.assert_every_version_once()
    # The same run in one process (thread) prints the same summary for a changed input.
    world.change_input("c", world.refs[:20])
    thread = tmp_path / "thread.toml"
    thread.write_text(world.config.read_text().replace('transmit = "process"', 'transmit = "thread"'))
    proc = s321("run", "-c", thread, "--once", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = proc.stdout
    world.change_input("d", world.refs[:20])
    proc = s321("run", "-c", world.config, "--once", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == one  # {"pipeline": ..., "received": 20, ..., "sent": 20, "accepted": 20, ...}
    world.assert_every_version_once()

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


def metrics_text(world: World) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{world.http_port}/metrics", timeout=5) as r:
        return r.read().decode()


def counted(text: str, outcome: str) -> float:
    found = re.findall(rf's321_consignments_total{{[^}}]*outcome="{outcome}"[^}}]*pipeline="{PIPELINE}"[^}}]*}} (\S+)'
                       rf'|s321_consignments_total{{[^}}]*pipeline="{PIPELINE}"[^}}]*outcome="{outcome}"[^}}]*}} (\S+)',
                       text)
    return sum(float(a or b) for a, b in found)


def test_the_daemon_restarts_a_killed_child_and_files_every_version_once(world):
    world.start_sandbox()
    world.add_input("first", 150)
    proc = world.daemon(wait_up=True)
    try:
        wait_for(lambda: len(children_of(proc.pid)) == 1, 20, "the transmit process")
        [child] = children_of(proc.pid)
        # Mid-stream: some accepted, more to come (new input keeps arriving).
        wait_for(lambda: world.accepted(), 30, "a first acceptance")
        world.add_input("second", 150)
        os.kill(child, 9)
        wait_for(lambda: children_of(proc.pid) not in ([], [child]), 30, "a new transmit process")
        world.change_input("third", world.refs[:40])
        wait_for(world.settled, 60, "every record accepted")
        # /metrics is the parent's, counting what the children sent and got answered:
        # every consignment at least once (a changed one whose first version had not left
        # yet is sent once, at its last version; a batch the killed child had on the wire
        # is sent again and answered as a duplicate, accepted again), but for what the
        # killed child resolved in the pass it was killed in (3 batches of 15 at most).
        wait_for(lambda: counted(metrics_text(world), "accepted") >= 300 - 45, 5, "the counts")
        text = metrics_text(world)
        assert counted(text, "sent") >= counted(text, "accepted")
        [second] = children_of(proc.pid)
        assert "s321_ack_latency_seconds_count" in text
        # Both children took their leases in the daemon's name: one daemon, one holder.
        [daemon] = set(re.findall(r'daemon="([^"]+)"', text))
        assert {o for o, in world.ledger_query("SELECT DISTINCT lease_owner FROM consignments")} == {daemon}
        health = urllib.request.urlopen(f"http://127.0.0.1:{world.http_port}/healthz", timeout=5).read()
        assert b'"alive": true' in health
    finally:
        world.stop(proc)
    log = world.daemon_log.read_text()
    # Said as a pipeline's failure and recovery are (the observers hear the same).
    assert "transmit process stopped; starting it again" in log and '"pipeline resumed"' in log
    assert not alive(second)  # stopped with its parent
    world.assert_every_version_once()


def test_killing_the_daemon_kills_its_child_and_frees_the_ledger(world):
    world.start_sandbox()
    world.add_input("first", 200)
    proc = world.daemon(wait_up=True)
    wait_for(lambda: len(children_of(proc.pid)) == 1, 20, "the transmit process")
    [child] = children_of(proc.pid)
    wait_for(lambda: world.accepted(), 30, "a first acceptance")
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(child), 10, "the transmit process to die with its parent")
    # The lock is free: a new daemon (one process this time) starts and finishes the work.
    thread = world.config.read_text().replace('transmit = "process"', 'transmit = "thread"')
    world.config.write_text(thread)
    world.add_input("second", 20)
    world.settle()
    world.assert_every_version_once()


def test_an_observer_in_the_parent_hears_what_the_child_dead_letters(tmp_path):
    """The webhook observer (an installed plugin) is loaded in both processes: only the
    parent calls it, for a refusal the child met (a CA that did not sign the receiver's
    certificate: the handshake is refused, which no retry mends)."""
    import trustme
    from webhooks import Receiver

    receiver = Receiver()
    bad_ca = tmp_path / "another-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bad_ca))
    (tmp_path / "w").mkdir()
    world = World(tmp_path / "w")
    world.start_sandbox()
    body = world.config.read_text()
    world.config.write_text(re.sub(r'(?m)^(\s*)ca = ".*"$', rf'\1ca = "{bad_ca}"', body, count=1))
    process_mode(world)
    world.add_input("refused", 12)
    env = {**os.environ, "S321_WEBHOOK_URL": receiver.url}
    try:
        proc = s321("run", "-c", world.config, "--once", env=env)
    finally:
        receiver.close()
        world.stop_sandbox()
    bodies = receiver.bodies
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "dead 12" in proc.stdout
    dead = [b for b in bodies if b["event"] == "dead"]
    assert len(dead) == 1 and dead[0]["count"] == 12, bodies  # told once, by the parent
    assert "certificate refused" in dead[0]["error"]
    assert world.ledger_states() == {State.DEAD: 12}


def test_healthz_is_ok_only_once_the_transmit_process_is_ready(world):
    """A daemon answering 200 sends: its transmit process has read the config. Before,
    /healthz said ok while the child was still starting, and a config changed in that
    moment was the one the child read."""
    import json
    import urllib.request

    proc = world.daemon(wait_up=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{world.http_port}/healthz", timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except urllib.error.HTTPError as exc:  # 503 while the child starts
                assert time.monotonic() < deadline, "never healthy"
                assert json.loads(exc.read())["transmit"] == "starting"
                time.sleep(0.05)
        assert body["ok"] is True and body["transmit"] == "ready"
    finally:
        world.stop(proc)

"""Stop means stop (issue 15): SIGINT and SIGTERM end `s321 run --once` within 2 s
with its summary printed and exit 130, leaving records recoverable (queued, or `sent`
and sent again by the next run, accepted once). With the receiver down, the run says
once which host and port it tries, that the connection was refused, and when it gives
up. A real process, a real closed port, a real sandbox."""

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.ledger import Ledger
from s321.sandbox import Faults, Sandbox

RECORDS = [{"ref": f"#30{i:02d}", **marketplace_fields()} for i in range(5)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def p2p(options: dict) -> str:
    return (f'plugin = "p2p-socket"\nhost = "{options["host"]}"\nport = {options["port"]}\n'
            f'ca = "{options["ca"]}"\ncert = {{ file = "{options["cert"]["file"]}" }}\n'
            f'key = {{ file = "{options["key"]["file"]}" }}\nbackoff_initial = 0.2\nbackoff_max = 0.5')


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--once"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """stderr read until a line holds `text`; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(0.2):
            line = proc.stderr.readline()
            seen += line
            if text in line:
                return seen
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"{text!r} not seen in: {seen}")


def stop_within_2s(proc: subprocess.Popen[str], sig: int) -> tuple[str, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, _err = proc.communicate(timeout=10)
    return out, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_with_the_peer_down_the_run_says_where_and_until_when_and_stops_on_a_signal(tmp_path, sig) -> None:
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        options = sandbox.transport_options()
    options["port"] = closed_port()  # the certificates are real; nobody listens there
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", RECORDS)
    config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=p2p(options))
    proc = start(config)
    try:
        said = wait_for(proc, "cannot reach the receiver")
        line = said.splitlines()[-1]
        assert f"127.0.0.1:{options['port']}" in line and "connection refused" in line, line
        assert "connection lost" not in said and "gives_up_at" in line, line
        out, took = stop_within_2s(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 2.0, took
    assert proc.returncode == 130
    assert "shop -> p2p-socket: received 5" in out and "interrupted" in out, out
    ledger = Ledger(tmp_path / "s321-ledger.sqlite")
    try:
        assert ledger.counts("shop") == {"queued": 5}
    finally:
        ledger.close()


def test_records_on_the_wire_at_a_stop_are_sent_again_and_accepted_once(tmp_path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", RECORDS)
    with Sandbox(tmp_path / "slow", faults=Faults(ack_delay=60.0)).start() as slow:
        config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=p2p(slow.transport_options()))
        proc = start(config)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ledger = Ledger(tmp_path / "s321-ledger.sqlite")
                try:
                    if ledger.counts("shop").get("sent") == 5:
                        break
                finally:
                    ledger.close()
                time.sleep(0.1)
            out, took = stop_within_2s(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert took < 2.0 and proc.returncode == 130, (took, out)
        assert "awaiting an ack" in out or "interrupted" in out, out
        store_db = slow.store.path if hasattr(slow.store, "path") else None
    # The receiver comes back (the same store, answering at once): sent again, accepted once.
    with Sandbox(tmp_path / "slow", db=store_db).start() as sandbox:
        config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=p2p(sandbox.transport_options()))
        again = subprocess.run([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--once"],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        ledger = Ledger(tmp_path / "s321-ledger.sqlite")
        try:
            assert ledger.counts("shop") == {"accepted": 5}
        finally:
            ledger.close()
        assert sorted(sandbox.store.accepted_counts().values()) == [1] * 5

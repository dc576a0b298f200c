"""Stop means stop (issue 15): SIGINT and SIGTERM end `s321 run --once` within 2 s
with its summary printed and exit 130, leaving records recoverable (queued, or `sent`
and sent again by the next run, accepted once). With the receiver down, the run says
once which host and port it tries, that the connection was refused, and when it gives
up. A real process, a real closed port, a real sandbox."""

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321 import app
from s321.ledger import Ledger
from s321.observers import Observers
from s321.sandbox import Faults, Sandbox
from s321.worker import CHUNK, PipelineWorker
from ports import free_port

RECORDS = [{"ref": f"#30{i:02d}", **marketplace_fields()} for i in range(5)]


def closed_port() -> int:
    return free_port()  # nobody listens there, and no one else is handed it


def p2p(options: dict) -> str:
    return (f'plugin = "p2p-socket"\nhost = "{options["host"]}"\nport = {options["port"]}\n'
            f'ca = "{options["ca"]}"\ncert = {{ file = "{options["cert"]["file"]}" }}\n'
            f'key = {{ file = "{options["key"]["file"]}" }}\nbackoff_initial = 0.2\nbackoff_max = 0.5')


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--once"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


def wait_for(proc: subprocess.Popen[bytes], text: str, timeout: float = 30.0) -> str:
    """stderr read (unbuffered: select sees only what Python has not buffered) until a
    line holds `text`; returns what was read up to that line."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(0.2):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk.decode("utf-8", "replace")
            for line in seen.splitlines():
                if text in line:
                    return seen[:seen.index(line) + len(line)]
    raise AssertionError(f"{text!r} not seen in: {seen}")


def stop_within_2s(proc: subprocess.Popen[bytes], sig: int) -> tuple[str, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, _err = proc.communicate(timeout=10)
    return out.decode("utf-8"), time.monotonic() - t0


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


class StopAfter:
    """A stop that is set after it has been asked `n` times: the signal arriving while a
    file is being read, between its chunks."""

    def __init__(self, n: int):
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_a_stop_while_a_file_is_read_leaves_it_to_be_read_again(tmp_path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    orders = [{"ref": f"#5{i:04d}", **marketplace_fields()} for i in range(2 * CHUNK + 10)]
    write_jsonl(inbox / "orders.jsonl", orders)
    config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out",
                                   extra=f'archive_dir = "{tmp_path / "archive"}"')
    registry, loaded = app.load(config)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        worker = PipelineWorker(loaded.pipelines["shop"], loaded.rates, ledger, Observers(registry.pm))
        worker.stop = StopAfter(1)  # not yet before the file; set after its first chunk
        worker.ingest(settle=False, transmit=False)
        assert ledger.counts("shop") == {"queued": CHUNK}  # what was read is committed ...
        assert (inbox / "orders.jsonl").exists()  # ... and the file stays, not marked read
        worker.stop = None
        worker.ingest(settle=False, transmit=False)
        assert ledger.counts("shop") == {"queued": len(orders)}
        assert worker.counts["unchanged"] == CHUNK  # read again: nothing twice
        assert not (inbox / "orders.jsonl").exists()
    finally:
        ledger.close()

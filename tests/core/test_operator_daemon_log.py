"""The daemon talks (issue 15): at its default level (info) it logs its lifecycle
without personal data: start (pipelines, inboxes, HTTP address), each input file read
with its counts, each batch acknowledged with rejections by code, stop; at
`--log-level warning` (quiet) none of it. A real daemon process and sandbox."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import US_BUYER, jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.sandbox import Faults, Sandbox
from ports import free_port

RECORDS = [{"ref": "#4001", **marketplace_fields()}, {"ref": "#4002", **marketplace_fields()},
           {"ref": "#4003", **marketplace_fields(tracking_number=None)}]




def run_daemon(tmp_path: Path, sandbox: Sandbox, *extra: str) -> list[dict]:
    inbox = tmp_path / "in"
    inbox.mkdir()
    o = sandbox.transport_options()
    transport = (f'plugin = "p2p-socket"\nhost = "{o["host"]}"\nport = {o["port"]}\nca = "{o["ca"]}"\n'
                 f'cert = {{ file = "{o["cert"]["file"]}" }}\nkey = {{ file = "{o["key"]["file"]}" }}')
    cfg = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=transport,
                                extra="settle_seconds = 0.2")
    port = free_port()
    cfg.write_text(cfg.read_text() + f'\n[daemon]\nhttp = "127.0.0.1:{port}"\nrescan_seconds = 0.5\n')
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg), "--log-json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        write_jsonl(inbox / "orders.jsonl", RECORDS)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(sandbox.store.accepted_counts().values()) \
                + sum(sandbox.store.rejection_counts().values()) < 2:
            time.sleep(0.1)
        time.sleep(0.5)  # the ack is logged after the receiver stored it
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    for value in (US_BUYER["name"], US_BUYER["email"], US_BUYER["address"]["line1"], US_BUYER["phone"]):
        assert value not in err
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")], port


@pytest.fixture
def sandbox(tmp_path: Path):
    with Sandbox(tmp_path / "sandbox", faults=Faults(reject_fraction=0.5, seed=7)).start() as sb:
        yield sb


def test_the_daemon_logs_its_lifecycle_at_its_default_level(tmp_path: Path, sandbox: Sandbox) -> None:
    lines, port = run_daemon(tmp_path, sandbox)
    events = {line["event"]: line for line in lines}
    running = events["daemon running"]
    assert running["pipelines"] == ["shop"] and running["http"] == f"127.0.0.1:{port}"
    assert events["pipeline started"]["inbox"] == str(tmp_path / "in")
    read = events["input read"]
    assert (read["units"], read["valid"], read["invalid"], read["skipped"]) == (3, 2, 1, 0)
    acked = [line for line in lines if line["event"] == "batch acknowledged"]
    assert sum(a["accepted"] + a["rejected"] for a in acked) == 2
    rejected = sum(a["rejected"] for a in acked)
    assert rejected == sum(a.get("rejections", {}).get("injected-rejection", 0) for a in acked)
    assert {"daemon stopping", "daemon stopped"} <= set(events)


def test_quiet_leaves_the_lifecycle_out(tmp_path: Path, sandbox: Sandbox) -> None:
    lines, _port = run_daemon(tmp_path, sandbox, "--log-level", "warning")
    assert not {"daemon running", "input read", "batch acknowledged"} & {line["event"] for line in lines}

"""A daemon and its PostgreSQL ledger's database (issue 18), against a real server the
tests start and stop (tests/pgserver.py): a daemon started while the database is down
waits for it (log, /healthz 503 "ledger unavailable", `s321 status`) and starts working
when it comes back; a daemon whose database goes away while it runs reports its
pipelines failing and recovers by itself; `run --once` fails fast with exit 2. The
daemon and the CLI run in subprocesses; the password never reaches their output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from ports import free_port
from s321.ledger_open import open_ledger

PASSWORD = "hunter2-secret"  # the test server trusts local users: any password is taken


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def healthz(port: int) -> tuple[int | None, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, {}


def s321(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def config_on(tmp_path: Path, url: str, port: int) -> Path:
    """A one-pipeline daemon config (inbox -> file transport) on the database at `url`,
    its password written in the URL (so that a leak would show)."""
    with_password = url.replace("s321@", f"s321:{PASSWORD}@")
    cfg = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out",
                                extra=f'archive_dir = "{tmp_path / "done"}"\nsettle_seconds = 0')
    (tmp_path / "in").mkdir(exist_ok=True)
    cfg.write_text(cfg.read_text() + f'\n[ledger]\nurl = "{with_password}"\n\n[daemon]\nhttp = "127.0.0.1:{port}"\n'
                   'rescan_seconds = 0.2\npoll_interval = 0.1\nshutdown_timeout = 2\n')
    return cfg


def orders(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"ref": f"#{prefix}{i}", **marketplace_fields(tracking_number=f"1Z{prefix}{i:06d}")} for i in range(n)]


def stored(url: str) -> int:
    ledger = open_ledger(url)
    try:
        return sum(ledger.counts().values())
    finally:
        ledger.close()


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(cfg: Path) -> subprocess.Popen[str]:
        log = (tmp_path / "daemon.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_daemon_started_before_its_database_waits_for_it_then_works(tmp_path, pg_server, pg_url,
                                                                      daemon_log) -> None:
    port = free_port()
    cfg = config_on(tmp_path, pg_url, port)
    write_jsonl(tmp_path / "in" / "orders.jsonl", orders("A", 3))
    pg_server.stop()
    try:
        proc = daemon_log(cfg)
        # It does not exit: it says it waits, in /healthz and in the log.
        code, body = wait_for(lambda: healthz(port)[0] and healthz(port), what="the daemon's /healthz")
        assert code == 503 and body["ledger"].startswith("ledger unavailable: "), body
        assert "cannot connect" in body["ledger"] and PASSWORD not in json.dumps(body)
        wait_for(lambda: "waiting for the ledger's database" in (tmp_path / "daemon.log").read_text(),
                 what="the wait in the log")
        # `s321 status` cannot read the ledger either: it says why, and what the daemon says.
        status = s321("status", "-c", cfg)
        assert status.returncode == 2, status.stdout + status.stderr
        assert "cannot connect" in status.stderr and "daemon: ledger unavailable" in status.stderr, status.stderr
        assert PASSWORD not in status.stdout + status.stderr
        assert proc.poll() is None
    finally:
        pg_server.start()
    # Back: it opens the ledger, starts its pipeline and files the inbox.
    wait_for(lambda: healthz(port)[0] == 200, timeout=60, what="the daemon healthy once the database is back")
    wait_for(lambda: stored(pg_url) == 3, what="the inbox stored in the ledger")
    wait_for(lambda: list((tmp_path / "out").glob("*")), what="a batch written by the file transport")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "ledger reachable again" in log and "daemon running" in log
    assert PASSWORD not in log and "Traceback" not in log


def test_a_daemon_waiting_for_its_database_stops_cleanly_on_sigterm(tmp_path, pg_server, pg_url,
                                                                    daemon_log) -> None:
    port = free_port()
    cfg = config_on(tmp_path, pg_url, port)
    pg_server.stop()
    try:
        proc = daemon_log(cfg)
        wait_for(lambda: healthz(port)[0] == 503, what="the daemon waiting")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        pg_server.start()
    log = (tmp_path / "daemon.log").read_text()
    assert "daemon stopped" in log and "Traceback" not in log and PASSWORD not in log


def test_a_daemon_that_loses_its_database_reports_failing_and_recovers(tmp_path, pg_server, pg_url,
                                                                       daemon_log) -> None:
    port = free_port()
    cfg = config_on(tmp_path, pg_url, port)
    proc = daemon_log(cfg)
    wait_for(lambda: healthz(port)[0] == 200, what="the daemon's /healthz")
    write_jsonl(tmp_path / "in" / "first.jsonl", orders("B", 2))
    wait_for(lambda: stored(pg_url) == 2, what="the first file stored")
    pg_server.stop()
    try:
        code, body = wait_for(lambda: healthz(port)[0] == 503 and healthz(port), what="/healthz failing")
        error = body["pipelines"]["shop"]["error"]
        # Lost between transactions, or during a COMMIT (then in doubt: a kind of unavailable).
        assert ("LedgerUnavailable" in error or "LedgerInDoubt" in error) and PASSWORD not in error, body
        write_jsonl(tmp_path / "in" / "second.jsonl", orders("C", 2))  # arrives meanwhile
        time.sleep(1.0)
        assert proc.poll() is None
    finally:
        pg_server.start()
    wait_for(lambda: healthz(port)[0] == 200, timeout=90, what="the pipeline recovered")
    wait_for(lambda: stored(pg_url) == 4, timeout=60, what="the file that came meanwhile stored")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "pipeline resumed" in log and PASSWORD not in log


def test_run_once_without_its_database_fails_fast_and_clearly(tmp_path, pg_server, pg_url) -> None:
    cfg = config_on(tmp_path, pg_url, free_port())
    write_jsonl(tmp_path / "in" / "orders.jsonl", orders("D", 1))
    pg_server.stop()
    try:
        proc = s321("run", "-c", cfg, "--once")  # returns: it does not wait for the database
    finally:
        pg_server.start()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot connect to the ledger's database" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stdout + proc.stderr

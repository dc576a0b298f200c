"""The command line on a PostgreSQL ledger (issue 18), against a real server the tests
start (tests/pgserver.py): `check --connect` reaches the database and says its schema
version, `ledger migrate` makes and keeps the schema, the operator commands (`status`,
`show`, `dlq`, `resend`, `delete`) work as on SQLite, and two daemons sharing one inbox
and one ledger read each input file once. The CLI runs in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from ports import free_port
from s321.ledger_open import open_ledger
from s321.ledger_schema import SCHEMA_VERSION


def s321(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def pg_config(tmp_path: Path, url: str, ledger_extra: str = "", daemon: str = "", name: str = "s321.toml") -> Path:
    """A one-pipeline config (records-jsonl inbox -> file transport) on the ledger at `url`."""
    config = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out",
                                   extra=f'archive_dir = "{tmp_path / "done"}"\nsettle_seconds = 0')
    named = config.with_name(name)
    named.write_text(config.read_text() + f'\n[ledger]\nurl = "{url}"\n{ledger_extra}\n{daemon}\n')
    return named


ORDERS = [{"ref": f"#{1000 + i}", **marketplace_fields(tracking_number=f"1ZPG{i:06d}")} for i in range(3)]


def test_check_connect_reaches_the_database_and_reports_its_schema_version(tmp_path, pg_url) -> None:
    (tmp_path / "in").mkdir()
    config = pg_config(tmp_path, pg_url, 'password = {env = "S321_TEST_DB_PASSWORD"}')
    proc = s321("check", "-c", config, "--connect", env={"S321_TEST_DB_PASSWORD": "hunter2-secret"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ledger: reachable: postgresql {pg_url}, schema {SCHEMA_VERSION}" in proc.stdout
    assert "hunter2" not in proc.stdout + proc.stderr


def test_check_connect_never_shows_a_password_written_in_the_url(tmp_path, pg_url) -> None:
    (tmp_path / "in").mkdir()
    with_password = pg_url.replace("s321@", "s321:hunter2-secret@")
    proc = s321("check", "-c", pg_config(tmp_path, with_password), "--connect")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "postgresql://s321:***@" in proc.stdout
    assert "hunter2" not in proc.stdout + proc.stderr


def test_check_connect_says_clearly_that_the_database_cannot_be_reached(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    nobody = f"postgresql://s321:hunter2-secret@127.0.0.1:{free_port()}/s321"
    proc = s321("check", "-c", pg_config(tmp_path, nobody), "--connect")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "ledger: FAILED" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stdout + proc.stderr


def test_ledger_migrate_makes_the_schema_then_finds_it_current(tmp_path, pg_url) -> None:
    (tmp_path / "in").mkdir()
    config = pg_config(tmp_path, pg_url)
    first = s321("ledger", "migrate", "-c", config)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"schema 0 -> {SCHEMA_VERSION}" in first.stdout
    again = s321("ledger", "migrate", "-c", config)
    assert again.returncode == 0 and f"schema {SCHEMA_VERSION}, current; nothing to do" in again.stdout
    check = s321("ledger", "check", "-c", config, "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert (report["backend"], report["schema_version"], report["ok"]) == ("postgresql", SCHEMA_VERSION, True)


def test_status_show_dlq_resend_and_delete_work_on_postgresql(tmp_path, pg_url) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", ORDERS)
    config = pg_config(tmp_path, pg_url)
    run = s321("run", "-c", config, "--once")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "received 3" in run.stdout and "delivered 3" in run.stdout

    status = s321("status", "-c", config, "--json")
    assert status.returncode == 0, status.stderr
    rows = [json.loads(line) for line in status.stdout.splitlines()]
    assert {(r["pipeline"], r["state"], r["count"]) for r in rows} == {("shop", "delivered", 3)}, rows

    story = s321("show", "-c", config, "#1000", "--json")
    assert story.returncode == 0, story.stderr
    assert json.loads(story.stdout)["state"] == "delivered"

    resent = s321("resend", "-c", config, "#1001")
    assert resent.returncode == 0 and "queued as replace" in resent.stdout, resent.stdout + resent.stderr
    deleted = s321("delete", "-c", config, "#1002")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr

    # A refused link dead-letters what was queued (as the transmitter does).
    ledger = open_ledger(pg_url)
    try:
        dead = ledger.dead_letter_queued("shop", "FatalError: certificate refused")
    finally:
        ledger.close()
    assert len(dead) == 2
    listed = s321("dlq", "list", "-c", config, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["ref"] for line in listed.stdout.splitlines()} == {"#1001", "#1002"}
    retried = s321("dlq", "retry", "-c", config, "#1001", "#1002")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    again = s321("run", "-c", config, "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    story = json.loads(s321("show", "-c", config, "#1002", "--json").stdout)
    assert story["state"] == "delivered" and story["action"] == "delete"
    assert s321("dlq", "list", "-c", config, "--json").stdout.strip() == ""


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""


def _received(metrics: str) -> tuple[set[str], float]:
    """The daemon label and the `received` count of one daemon's /metrics."""
    daemons, total = set(), 0.0
    for line in metrics.splitlines():
        if line.startswith("s321_consignments_total{") and 'outcome="received"' in line:
            daemons.add(line.split('daemon="', 1)[1].split('"', 1)[0])
            total += float(line.rsplit(" ", 1)[1])
    return daemons, total


def test_two_daemons_on_one_ledger_read_each_file_of_a_shared_inbox_once(tmp_path, pg_url) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    ports = [free_port(), free_port()]
    configs = [pg_config(tmp_path, pg_url, daemon=f'[daemon]\nhttp = "127.0.0.1:{port}"\nrescan_seconds = 0.1\n'
                         f'poll_interval = 0.05\nshutdown_timeout = 2', name=f"d{i}.toml")
               for i, port in enumerate(ports)]
    assert s321("ledger", "migrate", "-c", configs[0]).returncode == 0
    log = (tmp_path / "daemons.log").open("ab")
    procs = [subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(c)], stdout=subprocess.DEVNULL,
                              stderr=log, env=dict(os.environ)) for c in configs]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while not _get(f"http://127.0.0.1:{port}/healthz") and time.monotonic() < deadline:
                time.sleep(0.1)
        files, per_file = 12, 5
        for f in range(files):
            write_jsonl(tmp_path / f".{f}.tmp", [{"ref": f"F{f}-{i}", **marketplace_fields(
                tracking_number=f"1ZF{f:03d}{i:03d}")} for i in range(per_file)])
            (tmp_path / f".{f}.tmp").rename(inbox / f"orders-{f:02d}.jsonl")
        expected = files * per_file
        deadline = time.monotonic() + 60
        ledger = open_ledger(pg_url)
        try:
            while time.monotonic() < deadline:
                if ledger.counts("shop") == {"delivered": expected} and not list(inbox.iterdir()):
                    break
                time.sleep(0.2)
            assert ledger.counts("shop") == {"delivered": expected}
        finally:
            ledger.close()
        labels, received = set(), 0.0
        for port in ports:
            daemons, n = _received(_get(f"http://127.0.0.1:{port}/metrics"))
            assert len(daemons) == 1, daemons
            labels |= daemons
            received += n
        assert len(labels) == 2  # each daemon says who it is
        assert received == expected  # no file was read by both
        sent = Counter(r["transaction_id"] for batch in (tmp_path / "out").glob("*.json")
                       for r in json.loads(batch.read_text())["records"])
        assert len(sent) == expected and set(sent.values()) == {1}, "a record went out twice"
        assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [f"orders-{f:02d}.jsonl" for f in range(files)]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            assert proc.wait(timeout=30) == 0, (tmp_path / "daemons.log").read_text()[-3000:]
        log.close()


def test_ledger_copy_moves_a_sqlite_ledger_to_postgresql_verified(tmp_path, pg_url) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", ORDERS + [{"ref": "#BAD", **marketplace_fields(tracking_number=None)}])
    sqlite_config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    assert s321("run", "-c", sqlite_config, "--once").returncode == 1  # one invalid record
    source = f"sqlite://{tmp_path / 's321-ledger.sqlite'}"
    proc = s321("ledger", "copy", "--from", source, "--to", pg_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"-> {pg_url}" in proc.stdout and "verified:" in proc.stdout
    assert any(line.split()[:2] == ["consignments", "4"] for line in proc.stdout.splitlines()), proc.stdout
    # The copy is the ledger: the operator commands read it through a config naming it.
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "in").mkdir()
    pg_cfg = pg_config(tmp_path / "pg", pg_url)
    story = json.loads(s321("show", "-c", pg_cfg, "#1001", "--json").stdout)
    assert story["state"] == "delivered"
    # Never over a ledger that holds records.
    again = s321("ledger", "copy", "--from", source, "-c", pg_cfg, "--json")
    assert again.returncode == 2 and "not empty" in again.stderr, again.stdout + again.stderr
    assert "Traceback" not in again.stderr

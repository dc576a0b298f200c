"""The ledger never lies and faults are weather (issue 13, defects 3 to 7), on real
processes, real files and real file systems: a second daemon on a held ledger is
refused; an empty or damaged ledger is an error, never a new ledger; a read-only or
full disk fails the pipeline visibly and it resumes by itself; an input is archived
only after the commit that covers it is on disk; `run --once` fails when a pipeline does.

The file-system faults use real tmpfs mounts (the tests run as root, as CI does).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from builders import marketplace_fields, write_config, write_jsonl
from faults import fill, remount, tmpfs
from s321.ledger import Ledger
from s321.ledger_schema import SCHEMA_VERSION
from s321.lock import LedgerBusy, LedgerLock
from s321.sqlitefile import StoreFileError
from s321.states import State
from ports import free_port

CODE = "DUR001"


def s321(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *args], capture_output=True, text=True,
                          timeout=timeout)




def config(tmp: Path, ledger: Path, http: int | None = None) -> Path:
    (tmp / "inbox").mkdir(exist_ok=True)
    daemon = f'[daemon]\nhttp = "127.0.0.1:{http}"\nrescan_seconds = 0.2\npoll_interval = 0.05\n' if http else ""
    return write_config(tmp, f"""
        [ledger]
        path = "{ledger}"

        {daemon}
        [pipelines.shop]
        originator_code = "{CODE}"
        filer_type = "online_marketplace"
        mode_of_transport = "air"
        settle_seconds = 0
        archive_dir = "{tmp / 'archive'}"

        [pipelines.shop.source]
        plugin = "records-jsonl"
        path = "{tmp / 'inbox'}"

        [pipelines.shop.transport]
        plugin = "file"
        directory = "{tmp / 'outbox'}"
    """)


def drop(tmp: Path, name: str, refs: list[str]) -> Path:
    path = tmp / "inbox" / name
    write_jsonl(path, [{"ref": r, **marketplace_fields(originator_code=CODE)} for r in refs])
    return path


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def daemon(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.stderr.read() if proc.stderr else ""


# --------------------------------------------------------------------------- 3: one daemon per ledger


def test_a_second_run_on_a_held_ledger_is_refused_naming_the_holder(tmp_path: Path) -> None:
    port = free_port()
    cfg = config(tmp_path, tmp_path / "ledger.sqlite", http=port)
    proc = daemon(cfg)
    try:
        wait_for(lambda: _up(port), what="the daemon")
        second = s321("run", "-c", str(cfg), "--once")
        assert second.returncode == 2, second
        assert "in use by s321 run (the daemon)" in second.stderr and f"pid {proc.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        also = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert also.wait(timeout=30) == 2 and "in use by" in (also.stderr.read() if also.stderr else "")
        # Operator commands work alongside the daemon.
        assert s321("status", "-c", str(cfg)).returncode == 0
    finally:
        stop(proc)
    # SIGKILL: the kernel releases the lock, nothing stale is left behind.
    proc = daemon(cfg)
    wait_for(lambda: _up(port), what="the daemon again")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    LedgerLock(tmp_path / "ledger.sqlite").acquire("test").release()


def _up(port: int) -> bool:
    try:
        health(port)
        return True
    except OSError:
        return False


def test_the_lock_is_held_within_one_process_too(tmp_path: Path) -> None:
    first = Ledger.held(tmp_path / "ledger.sqlite", holder="first")
    try:
        with pytest.raises(LedgerBusy, match="in use by first"):
            Ledger.held(tmp_path / "ledger.sqlite", holder="second")
    finally:
        first.close()
    Ledger.held(tmp_path / "ledger.sqlite", holder="third").close()  # released by close()


# --------------------------------------------------------------------------- 5: a ledger never lies


def test_an_empty_ledger_file_is_an_error_never_a_new_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    cfg = config(tmp_path, ledger)
    ledger.write_bytes(b"")
    drop(tmp_path, "a.jsonl", ["A-1"])
    for args in (["status", "-c", str(cfg)], ["run", "-c", str(cfg), "--once"], ["run", "-c", str(cfg)]):
        done = s321(*args)
        assert done.returncode == 2, (args, done)
        assert "the ledger file is empty (0 bytes)" in done.stderr and "Traceback" not in done.stderr
    assert ledger.stat().st_size == 0  # not made anew
    assert (tmp_path / "inbox" / "a.jsonl").exists()  # nothing read, nothing archived
    check = s321("ledger", "check", "-c", str(cfg))
    assert check.returncode == 2 and "empty" in check.stderr


def test_a_ledger_damaged_in_the_middle_is_refused_at_start_and_found_by_ledger_check(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    cfg = config(tmp_path, path)
    drop(tmp_path, "a.jsonl", [f"A-{i}" for i in range(300)])
    assert s321("run", "-c", str(cfg), "--once").returncode == 0
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert pages > 4
    with open(path, "r+b") as f:  # a page of the consignments' B-tree overwritten
        f.seek(page_size * (pages // 2))
        f.write(os.urandom(page_size))
    check = s321("ledger", "check", "-c", str(cfg))
    assert check.returncode == 3 and "DAMAGED" in check.stdout, check
    run = s321("run", "-c", str(cfg), "--once")
    assert run.returncode == 2 and "damaged" in run.stderr and "Traceback" not in run.stderr, run
    status = s321("status", "-c", str(cfg))
    assert "Traceback" not in status.stderr


def test_a_truncated_ledger_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreFileError, match="damaged"):
        Ledger(path)


def test_ledger_init_makes_a_ledger_only_where_none_is(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    cfg = config(tmp_path, path)
    assert s321("ledger", "init", "-c", str(cfg)).returncode == 0
    again = s321("ledger", "init", "-c", str(cfg))
    assert again.returncode == 2 and "a file is there already" in again.stderr
    check = s321("ledger", "check", "-c", str(cfg), "--json")
    assert json.loads(check.stdout) == {"ledger": str(path), "backend": "sqlite", "schema_version": SCHEMA_VERSION,
                                        "ok": True, "problems": [], "counts": {}}


@pytest.mark.parametrize("command", [("status",), ("status", "--findings"), ("show", "#1001"), ("dlq", "list"),
                                     ("revalidate",)])
def test_commands_that_read_the_ledger_never_make_one(tmp_path: Path, command: tuple[str, ...]) -> None:
    """A mistyped `[ledger] path` must not answer "no record has been received yet" from
    an empty ledger made on the spot (and left behind): as `ledger check` does, these say
    there is no ledger there."""
    path = tmp_path / "state" / "ledgr.sqlite"
    cfg = config(tmp_path, path)
    done = s321(*command, "-c", str(cfg))
    assert done.returncode == 2, done
    assert f"{path}: no ledger there" in done.stderr and "Traceback" not in done.stderr
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize("command", [("run", "--once"), ("ledger", "init")])
def test_a_ledger_path_under_a_file_is_said_not_a_traceback(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "state").write_text("not a folder\n")
    path = tmp_path / "state" / "ledger.sqlite"
    cfg = config(tmp_path, path)
    done = s321(*command, "-c", str(cfg))
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr and "Not a directory" in done.stderr, done.stderr


# --------------------------------------------------------------------------- 4 and 7: failures are seen


def test_run_once_fails_and_archives_nothing_when_its_ledger_is_read_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        cfg = config(tmp_path, disk / "ledger.sqlite")
        assert s321("ledger", "init", "-c", str(cfg)).returncode == 0
        remount(disk, "ro")
        drop(tmp_path, "a.jsonl", ["A-1", "A-2"])
        done = s321("run", "-c", str(cfg), "--once")
        assert done.returncode in (2, 3), done  # 2: could not open it; 3: the pipeline failed
        assert "read-only" in (done.stdout + done.stderr).lower() or "readonly" in (done.stdout + done.stderr)
        assert "Traceback" not in done.stderr
        assert (tmp_path / "inbox" / "a.jsonl").exists()
        assert not (tmp_path / "archive").exists() or not list((tmp_path / "archive").iterdir())


def test_run_once_exit_status_says_a_pipeline_failed(tmp_path: Path) -> None:
    """The ledger opens, then the disk fills up: the pipeline fails, exit 3, with why."""
    with tmpfs(tmp_path / "disk", size="2m") as disk:
        cfg = config(tmp_path, disk / "ledger.sqlite")
        assert s321("ledger", "init", "-c", str(cfg)).returncode == 0
        reader = sqlite3.connect(disk / "ledger.sqlite")  # keeps the -wal and -shm files there
        try:
            reader.execute("SELECT COUNT(*) FROM consignments").fetchone()
            fill(disk)
            drop(tmp_path, "a.jsonl", [f"A-{i}" for i in range(400)])
            done = s321("run", "-c", str(cfg), "--once")
        finally:
            reader.close()
        assert done.returncode == 3, done
        assert "pipeline failed" in done.stdout + done.stderr and "full" in (done.stdout + done.stderr)
        assert (tmp_path / "inbox" / "a.jsonl").exists()  # not archived: not committed


# --------------------------------------------------------------------------- 6: faults are weather


def test_a_full_disk_fails_the_pipeline_visibly_and_it_resumes_by_itself(tmp_path: Path) -> None:
    port = free_port()
    with tmpfs(tmp_path / "disk", size="3m") as disk:
        cfg = config(tmp_path, disk / "ledger.sqlite", http=port)
        proc = daemon(cfg)
        try:
            wait_for(lambda: _up(port), what="the daemon")
            fill(disk)
            drop(tmp_path, "a.jsonl", [f"A-{i}" for i in range(400)])
            code, body = wait_for(lambda: (lambda h: h if h[0] == 503 else None)(health(port)), 30,
                                  "healthz to say the pipeline fails")
            assert "full" in body["pipelines"]["shop"]["error"], body
            status = s321("status", "-c", str(cfg))
            assert "pipeline shop is failing" in status.stderr and "full" in status.stderr, status
            assert (tmp_path / "inbox" / "a.jsonl").exists()  # nothing archived that is not committed
            (disk / "filler").unlink()
            wait_for(lambda: health(port)[0] == 200, 60, "the pipeline to resume")
            wait_for(lambda: not (tmp_path / "inbox" / "a.jsonl").exists(), 30, "the input to be archived")
        finally:
            log = stop(proc)
        assert "pipeline failed, retrying" in log and "pipeline resumed" in log
        ledger = Ledger(disk / "ledger.sqlite")
        try:
            counts = ledger.counts("shop")
        finally:
            ledger.close()
        assert sum(counts.values()) == 400 and State.QUEUED not in counts, counts


# --------------------------------------------------------------------------- 7: durable before archived


def test_an_input_is_archived_only_after_the_commit_that_covers_it_is_on_disk(tmp_path: Path, monkeypatch) -> None:
    from s321 import app, worker as worker_module
    from s321.observers import Observers

    cfg = config(tmp_path, tmp_path / "ledger.sqlite")
    drop(tmp_path, "a.jsonl", [f"A-{i}" for i in range(700)])  # two ledger chunks
    registry, loaded = app.load(cfg)
    ledger = Ledger(loaded.config.ledger.path, loaded.config.ledger.synchronous)
    events: list[str] = []
    ledger._db.set_trace_callback(lambda sql: events.append(sql.strip().split("(")[0][:40]))
    real_move = worker_module.shutil.move
    monkeypatch.setattr(worker_module.shutil, "move", lambda a, b: (events.append("MOVE"), real_move(a, b))[1])
    real_fsync = worker_module._fsync_dir
    monkeypatch.setattr(worker_module, "_fsync_dir", lambda d: (events.append(f"FSYNC {Path(d).name}"),
                                                               real_fsync(d))[1])
    try:
        w = worker_module.PipelineWorker(loaded.pipelines["shop"], loaded.rates, ledger, Observers(registry.pm))
        assert w.ingest(settle=False, transmit=False) == 700
    finally:
        ledger.close()
    move = events.index("MOVE")
    # The input row is written in the last transaction before the move, under synchronous=FULL.
    last_insert = max(i for i, e in enumerate(events) if e.startswith("INSERT INTO inputs"))
    full = max(i for i, e in enumerate(events[:last_insert]) if e == "PRAGMA synchronous=FULL")
    commit = min(i for i, e in enumerate(events) if i > last_insert and e == "COMMIT")
    assert full < last_insert < commit < move, events
    assert "PRAGMA synchronous=NORMAL" in events[commit:move]
    assert events[move + 1:move + 3] == ["FSYNC archive", "FSYNC inbox"] or \
        sorted(events[move + 1:move + 3]) == ["FSYNC archive", "FSYNC inbox"]
    assert (tmp_path / "archive" / "a.jsonl").exists()


def test_a_file_committed_but_not_archived_before_a_crash_is_archived_by_the_next_run(tmp_path: Path) -> None:
    """Killed between the durable commit and the move: the next run reads nothing again
    (the ledger says the file was read) and finishes the move."""
    cfg = config(tmp_path, tmp_path / "ledger.sqlite")
    path = drop(tmp_path, "a.jsonl", ["A-1", "A-2"])
    st = path.stat()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        ledger.ingest("shop", CODE, "records-jsonl", [], input_file=(str(path), st.st_size, st.st_mtime_ns))
    finally:
        ledger.close()
    done = s321("run", "-c", str(cfg), "--once")
    assert done.returncode == 0, done
    assert not path.exists() and (tmp_path / "archive" / "a.jsonl").exists()


def test_a_new_ledger_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """A process that dies while making a ledger leaves no empty or half-made file that
    the next start would refuse: the file is made under another name and linked."""
    from s321.sqlitefile import SqliteFile

    path = tmp_path / "ledger.sqlite"
    with pytest.raises(sqlite3.OperationalError):
        SqliteFile(path, "CREATE TABLE made (a); THIS IS NOT SQL;")  # dies half-way
    assert not path.exists() and list(tmp_path.iterdir()) == []
    ledger = Ledger(path)
    ledger.close()
    assert path.stat().st_size > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite"]

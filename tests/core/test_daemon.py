"""The daemon as an operator runs it: a subprocess watching an inbox, serving /healthz
and /metrics, reloading on SIGHUP, stopping cleanly on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from ports import free_port




def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(text, name, **labels):
    """The value of one sample in Prometheus text format, labels in any order (those not
    named, such as `daemon`, are not compared)."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if not head.startswith(name + "{"):
            continue
        found = dict(part.split("=", 1) for part in head[len(name) + 1:-1].split(","))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return None


@pytest.fixture
def daemon(tmp_path):
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    port = free_port()
    cfg = jsonl_pipeline_config(tmp_path, inbox, outbox,
                                extra=f'archive_dir = "{tmp_path / "done"}"\nsettle_seconds = 0.2')
    cfg.write_text(cfg.read_text() + f'\n[daemon]\nhttp = "127.0.0.1:{port}"\nrescan_seconds = 0.5\n'
                   'poll_interval = 0.1\nshutdown_timeout = 2\n')
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/healthz")[0] == 200, what="the daemon's /healthz")
    yield proc, base, inbox, outbox, tmp_path, cfg
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_the_daemon_picks_up_a_file_dropped_into_the_inbox(daemon):
    proc, base, inbox, outbox, tmp, _cfg = daemon
    tmpname = inbox / ".orders.jsonl.tmp"
    write_jsonl(tmpname, [{"ref": f"A{i}", **marketplace_fields()} for i in range(3)]
                + [{"ref": "BAD", **marketplace_fields(tracking_number=None)}])
    tmpname.rename(inbox / "orders.jsonl")  # a rename into place, as a careful writer does
    wait_for(lambda: list(outbox.glob("*.json")), what="a batch in the outbox")
    wait_for(lambda: (tmp / "done" / "orders.jsonl").exists(), what="the input archived")
    _code, text = get(base + "/metrics")
    assert metric(text, "s321_consignments_total", pipeline="shop", outcome="received") == 4
    assert metric(text, "s321_consignments_total", pipeline="shop", outcome="invalid") == 1
    assert metric(text, "s321_consignments_total", pipeline="shop", outcome="sent") == 3
    assert metric(text, "s321_queue_depth", pipeline="shop", state="queued") == 0
    code, body = get(base + "/healthz")
    assert code == 200 and json.loads(body)["pipelines"]["shop"]["alive"] is True


def test_sigterm_stops_the_daemon_cleanly(daemon):
    proc = daemon[0]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_sighup_reloads_the_config_and_restarts_changed_pipelines(daemon):
    proc, base, inbox, _outbox, tmp, cfg = daemon
    new_out = tmp / "out2"
    cfg.write_text(cfg.read_text().replace(f'directory = "{tmp / "out"}"', f'directory = "{new_out}"'))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    write_jsonl(inbox / "later.jsonl", [{"ref": "L1", **marketplace_fields()}])
    wait_for(lambda: list(new_out.glob("*.json")), what="a batch through the reloaded pipeline")
    assert proc.poll() is None


def test_a_broken_config_on_reload_keeps_the_daemon_running(daemon):
    proc, base, _inbox, _outbox, _tmp, cfg = daemon
    cfg.write_text(cfg.read_text().replace('plugin = "file"', 'plugin = "flie"'))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None and get(base + "/healthz")[0] == 200


def test_a_file_too_young_to_read_is_read_once_settled_not_at_the_next_rescan(tmp_path):
    """The inbox watch wakes the daemon as a file lands; the file is younger than
    settle_seconds and left for later. It is read as soon as it has settled, not at
    the next periodic rescan (a minute away here): a lone file waited up to
    rescan_seconds before (bench/latency.py: 5 s of a 6 s latency)."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    port = free_port()
    cfg = jsonl_pipeline_config(tmp_path, inbox, outbox, extra="settle_seconds = 0.5")
    cfg.write_text(cfg.read_text() + f'\n[daemon]\nhttp = "127.0.0.1:{port}"\nrescan_seconds = 60\n'
                   'poll_interval = 0.5\nshutdown_timeout = 2\n')
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(base + "/healthz")[0] == 200, what="the daemon's /healthz")
        time.sleep(1.0)  # its first scan is done and its inbox watch is up
        staged = tmp_path / "orders.jsonl"
        write_jsonl(staged, [{"ref": f"Y{i}", **marketplace_fields()} for i in range(2)])
        os.utime(staged)  # modified now: too young to read when the watch reports it
        staged.rename(inbox / "orders.jsonl")
        wait_for(lambda: list(outbox.glob("*.json")), timeout=20, what="the settled file's batch")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)

"""The webhook observer against a real HTTP server on a loopback port: what it posts
for rejections, dead letters and failed pipelines, that the payload holds no personal
data, and that a receiver that is down never holds a run up."""

import os
import subprocess
import sys
import threading
import time

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from webhooks import Receiver
from s321.findings import error
from s321.plugins import webhook_observer
from s321.registry import load

PERSONAL = ["Ada Quartermaine", "Elmwood", "Springfield", "62701", "ada.quartermaine@example.com",
            "555 0142", "Brightwave", "Keji Road"]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def no_poster_left():
    """The process's poster thread is stopped after each test: a thread left running
    keeps later tests in this process from forking (the parallel preview's workers)."""
    yield
    webhook_observer.close()
    assert not [t for t in threading.enumerate() if t.name == "s321-webhook"]


def test_a_cbp_rejection_is_posted_with_codes_and_fields_only(receiver, monkeypatch):
    monkeypatch.setenv(webhook_observer.URL_ENV, receiver.url)
    monkeypatch.delenv(webhook_observer.EVENTS_ENV, raising=False)
    registry = load()  # through the entry-point group, like any observer plugin
    assert any(p.name == "webhook-observer" and p.status == "loaded" for p in registry.plugins)
    finding = error("value-over-limit", "total_value_usd", "Ada Quartermaine's order is worth 912.00 USD")
    registry.pm.hook.consignment_rejected(pipeline="shop", transaction_id="T1", stage="cbp",
                                          findings=[finding])
    registry.pm.hook.consignment_rejected(pipeline="shop", transaction_id="T2", stage="validation",
                                          findings=[finding])  # not asked for by default
    [body] = receiver.wait_for(1)
    assert {k: body[k] for k in ("event", "pipeline", "transaction_id", "stage", "findings")} == {
        "event": "rejected", "pipeline": "shop", "transaction_id": "T1", "stage": "cbp",
        "findings": [{"code": "value-over-limit", "field": "total_value_usd", "severity": "error"}]}
    assert body["source"] == "s321" and body["at"].endswith("Z")
    assert webhook_observer.poster().flush()
    assert len(receiver.bodies) == 1 and b"Quartermaine" not in receiver.raw[0]


def test_off_without_a_url(monkeypatch):
    monkeypatch.delenv(webhook_observer.URL_ENV, raising=False)
    assert webhook_observer.poster() is None
    webhook_observer.consignment_rejected(pipeline="shop", transaction_id="T1", stage="cbp", findings=[])


def test_a_receiver_that_is_down_never_holds_the_pipeline_up(monkeypatch):
    down = Receiver()
    url = down.url
    down.close()  # nothing listens there now
    monkeypatch.setenv(webhook_observer.URL_ENV, url)
    started = time.monotonic()
    for i in range(50):
        webhook_observer.consignment_rejected(pipeline="shop", transaction_id=f"T{i}", stage="cbp",
                                              findings=[])
    assert time.monotonic() - started < 1.0  # queued, not sent in the caller's thread
    pending = webhook_observer.poster().queue
    while not pending.empty():  # no need to wait for the retries at exit
        pending.get_nowait()
        pending.task_done()


def test_run_once_posts_invalid_records_and_a_failed_pipeline_without_personal_data(tmp_path, receiver):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [{"ref": "A-1", **marketplace_fields()},
                                         {"ref": "A-2", **marketplace_fields(tracking_number=None)}])
    (tmp_path / "blocker").write_text("a file where the outbox folder should be")
    cfg = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "blocker" / "out",
                                extra="retry = { ack_timeout = 1, max_elapsed = 2 }")
    env = {**os.environ, webhook_observer.URL_ENV: receiver.url,
           webhook_observer.EVENTS_ENV: "invalid,failed,dead,stalled,rejected"}
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg), "--once"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    events = {b["event"]: b for b in receiver.bodies}  # flushed before the process exited
    assert events["invalid"]["findings"][0]["field"] == "tracking_number"
    assert events["failed"]["pipeline"] == "shop" and events["failed"]["error"]
    everything = b"".join(receiver.raw).decode()
    for word in PERSONAL:
        assert word not in everything, word

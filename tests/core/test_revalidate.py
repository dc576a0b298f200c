"""A fixed order is filed (issue 15): an order invalid because the tracking table
lacked its number is mapped again from the raw unit the ledger kept (its export is
archived by then), once the table is fixed, and filed exactly once; a run with nothing
changed files nothing more. `revalidate --include-filed --dry-run` counts replaces and
sends none; `ledger purge` removes kept raw units past retention."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builders import write_config
from s321 import app, ids, refile
from s321.contracts import RawUnit
from s321.ledger import Ledger
from s321.observers import Observers
from s321.worker import PipelineWorker
from s321.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "contrib" / "samples" / "shop"
ORDER = "#1002"


def s321(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


@pytest.fixture
def shop(tmp_path: Path):
    inbox, tables = tmp_path / "inbox", tmp_path / "tables"
    inbox.mkdir()
    tables.mkdir()
    shutil.copy(SHOP / "orders_export.csv", inbox)
    for name in ("catalog.csv", "vendors.csv"):
        shutil.copy(SHOP / name, tables)
    lines = (SHOP / "tracking.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    missing = [line for line in lines if line.startswith(ORDER + ",")]
    assert len(missing) == 1
    (tables / "tracking.csv").write_text("".join(l for l in lines if l not in missing), encoding="utf-8")
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        o = sandbox.transport_options()
        config = write_config(tmp_path, f"""
            [ledger]
            path = "{tmp_path / 'ledger.sqlite'}"

            [pipelines.shop]
            originator_code = "E2E001"
            filer_type = "online_marketplace"
            mode_of_transport = "air"
            archive_dir = "{tmp_path / 'archive'}"
            [pipelines.shop.defaults]
            marketplace_seller_id = "HOUSE"
            identified_marketplace_merchant = true
            seller = {{ name = "Northwind Goods Ltd", address = {{ line1 = "1 Quay", city = "Vancouver", country = "CA" }} }}
            [pipelines.shop.source]
            plugin = "shopify-csv"
            path = "{inbox}"
            catalog = "{tables / 'catalog.csv'}"
            vendors = "{tables / 'vendors.csv'}"
            tracking = "{tables / 'tracking.csv'}"
            [pipelines.shop.transport]
            plugin = "p2p-socket"
            host = "{o['host']}"
            port = {o['port']}
            ca = "{o['ca']}"
            cert = {{ file = "{o['cert']['file']}" }}
            key = {{ file = "{o['key']['file']}" }}
        """)
        yield sandbox, config, tables / "tracking.csv", missing[0], tmp_path


def txid_of(order: str) -> str:
    return ids.transaction_id("E2E001", "shopify", f"shopify:{order}")


def show(config: Path, ref: str) -> dict:
    proc = s321("show", "-c", config, ref, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_fix_the_table_and_the_order_is_filed_exactly_once(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    first = s321("run", "-c", config, "--once")
    assert first.returncode == 1, first.stdout + first.stderr
    before = show(config, ORDER)
    assert before["state"] == "invalid"
    assert "tracking_number" in {f["field"] for f in before["findings"] if f["severity"] == "error"}
    assert not list((tmp / "inbox").glob("*.csv"))  # archived: only the ledger has the order now
    accepted = sum(sandbox.store.accepted_counts().values())

    with tracking.open("a", encoding="utf-8") as fh:
        fh.write(row)
    second = s321("run", "-c", config, "--once")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "revalidated 1, sent 1, accepted 1" in second.stdout, second.stdout
    after = show(config, ORDER)
    assert after["state"] == "accepted"
    assert [e["event"] for e in after["history"]][:2] == ["invalid", "queued"]
    assert "revalidated" in after["history"][1]["detail"]
    txid = after["transaction_id"]
    assert sandbox.store.accepted_counts().get(txid) == 1
    assert sum(sandbox.store.accepted_counts().values()) == accepted + 1

    third = s321("run", "-c", config, "--once")
    assert third.returncode == 0 and "sent 0" in third.stdout, third.stdout
    assert sandbox.store.accepted_counts().get(txid) == 1


def test_revalidate_on_demand_and_a_dry_run_of_filed_records(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    assert s321("run", "-c", config, "--once").returncode == 1
    still = s321("revalidate", "-c", config, "-p", "shop")
    assert still.returncode == 1 and "0 queued (now valid)" in still.stdout, still.stdout + still.stderr
    with tracking.open("a", encoding="utf-8") as fh:
        fh.write(row)
    dry = s321("revalidate", "-c", config, "--include-filed", "--dry-run", "--json")
    assert dry.returncode == 1, dry.stderr  # the sample's other invalid orders stay invalid
    counts = json.loads(dry.stdout)
    assert (counts["now_valid"], counts["replaces"], counts["dry_run"]) == (1, 0, True)
    assert show(config, ORDER)["state"] == "invalid"  # a dry run changes nothing
    done = s321("revalidate", "-c", config)
    assert "1 queued (now valid)" in done.stdout, done.stdout
    assert show(config, ORDER)["state"] == "queued"


def test_purge_removes_kept_raw_units_past_retention(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    assert s321("run", "-c", config, "--once").returncode == 1
    db = tmp / "ledger.sqlite"
    kept = sqlite3.connect(db).execute("SELECT COUNT(*) FROM raw_units").fetchone()[0]
    assert kept >= 1
    recent = s321("ledger", "purge", "-c", config, "--older-than", "1")
    assert recent.returncode == 0 and " 0 kept raw units" in recent.stdout, recent.stdout + recent.stderr
    gone = s321("ledger", "purge", "-c", config, "--older-than", "0")
    assert gone.returncode == 0 and f" {kept} kept raw units" in gone.stdout
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM raw_units").fetchone()[0] == 0


def test_a_filed_record_is_replaced_only_on_request(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    s321("run", "-c", config, "--once")
    with tracking.open("a", encoding="utf-8") as fh:
        fh.write(row)
    assert s321("run", "-c", config, "--once").returncode == 0
    txid = show(config, ORDER)["transaction_id"]
    # The carrier's number for #1002 changes: the filed record would change.
    tracking.write_text(tracking.read_text(encoding="utf-8").replace(row, row.replace("LX000700037HK",
                                                                                      "LX000799999HK")),
                        encoding="utf-8")
    dry = s321("revalidate", "-c", config, "--include-filed", "--dry-run", "--json")
    assert json.loads(dry.stdout)["replaces"] == 1, dry.stdout
    by_itself = s321("run", "-c", config, "--once")
    assert "sent 0" in by_itself.stdout, by_itself.stdout  # a table change never replaces filings by itself
    assert show(config, ORDER)["state"] == "accepted"
    asked = s321("revalidate", "-c", config, "--include-filed")
    assert "1 replaces queued" in asked.stdout, asked.stdout
    filed = s321("run", "-c", config, "--once")
    assert "sent 1, accepted 1" in filed.stdout, filed.stdout
    story = show(config, ORDER)
    assert story["state"] == "accepted" and "LX000799999HK" in story["references"]
    assert [v["action"] for v in sandbox.store.accepted_records(txid)] == ["add", "replace"]


def test_the_daemon_files_the_fixed_order_when_the_table_changes(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    text = config.read_text(encoding="utf-8").replace('archive_dir =', 'settle_seconds = 0.2\narchive_dir =')
    config.write_text(text + '\n[daemon]\nrescan_seconds = 0.5\n', encoding="utf-8")
    txid = txid_of(ORDER)
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--log-json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        def state() -> str | None:
            ledger = Ledger(tmp / "ledger.sqlite")
            try:
                return (ledger.get(txid) or {}).get("state")
            finally:
                ledger.close()

        wait(lambda: state() == "invalid")
        with tracking.open("a", encoding="utf-8") as fh:
            fh.write(row)
        wait(lambda: sandbox.store.accepted_counts().get(txid) == 1)
        wait(lambda: state() == "accepted")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert '"event": "invalid records revalidated"' in err and '"now_valid": 1' in err
    assert sandbox.store.accepted_counts().get(txid) == 1


def wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_running_worker_reads_a_changed_table_even_when_the_cli_revalidated_first(shop) -> None:
    sandbox, config, tracking, row, tmp = shop
    registry, loaded = app.load(config)
    ledger = Ledger(tmp / "ledger.sqlite")
    try:
        worker = PipelineWorker(loaded.pipelines["shop"], loaded.rates, ledger, Observers(registry.pm))
        worker.revalidate_if_changed()
        worker.ingest(settle=False, transmit=False)
        assert ledger.get(txid_of(ORDER))["state"] == "invalid"
        with tracking.open("a", encoding="utf-8") as fh:
            fh.write(row)
        assert s321("revalidate", "-c", config).stdout.startswith("shop: 4 examined, 1 queued")
        before = worker.processor
        assert worker.revalidate_if_changed() is None  # the ledger has seen this change ...
        assert worker.processor is not before  # ... and the worker reads the fixed table all the same
        [(_txid, _state, blob)] = [u for u in ledger.raw_units("shop", include_filed=True) if u[0] == txid_of(ORDER)]
        assert worker.processor.process_unit(refile.unpack(blob)).status.value == "valid"
        worker.close()
    finally:
        ledger.close()


def test_a_unit_that_cannot_be_pickled_is_stored_without_its_raw_unit() -> None:
    unit = RawUnit("k", "f.csv:3", {"lock": threading.Lock()})
    assert refile.pack(unit) is None
    plain = RawUnit("k", "f.csv:3", {"name": "#1001"})
    assert refile.unpack(refile.pack(plain) or b"") == plain

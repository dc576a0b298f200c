"""Input files claimed in the ledger before they are read (issue 18): a read stopped
half-way gives its claim back at once, so another daemon sharing the inbox reads the
file now rather than after the lease; and claiming never waits on a FIFO swapped in
for an input. Real ledgers (SQLite file, PostgreSQL server), real files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321 import app
from s321.hookspecs import hookimpl
from s321.inputs import NotRegularFile
from s321.ledger_open import open_ledger
from s321.observers import Observers
from s321.worker import CHUNK, PipelineWorker, _sha256


class StopAtFirstRejection:
    """An observer that stops ingestion when the first invalid record is stored, as
    SIGTERM would: between two chunks of the file."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    @hookimpl
    def consignment_rejected(self, pipeline: str, transaction_id: str, stage: str, findings: list[Any]) -> None:
        self.stop.set()


def test_a_read_stopped_half_way_gives_its_claim_back_to_the_other_daemons(tmp_path: Path, pg_url: str) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    orders = inbox / "orders.jsonl"
    write_jsonl(orders, [{"ref": "BAD", **marketplace_fields(tracking_number=None)}]
                + [{"ref": f"O{i}", **marketplace_fields(tracking_number=f"1ZW{i:08d}")} for i in range(2 * CHUNK)])
    config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    registry, loaded = app.load(config)
    stop = threading.Event()
    registry.pm.register(StopAtFirstRejection(stop))
    first, other = open_ledger(pg_url), open_ledger(pg_url)
    try:
        worker = PipelineWorker(loaded.pipelines["shop"], loaded.rates, first, Observers(registry.pm))
        worker.stop = stop
        worker.ingest(settle=False, transmit=False)
        assert stop.is_set() and worker.counts["received"] == CHUNK  # one chunk, then the stop
        st = orders.stat()
        key = ("shop", str(orders), st.st_size, st.st_mtime_ns, _sha256(orders))
        assert not other.input_seen(*key[:4])
        assert other.claim_input(*key)  # at once: no lease to wait out
        assert not first.claim_input(*key)  # and now it is the other's
    finally:
        first.close()
        other.close()


def test_an_input_swapped_for_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    fifo = inbox / "orders.jsonl"
    os.mkfifo(fifo)  # after the inbox was listed: a reader that opens it waits for a writer
    registry, loaded = app.load(jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out"))
    ledger = open_ledger(tmp_path / "ledger.sqlite")
    worker = PipelineWorker(loaded.pipelines["shop"], loaded.rates, ledger, Observers(registry.pm))
    refused: list[BaseException] = []

    def ingest() -> None:
        try:
            worker.ingest([fifo], transmit=False)
        except NotRegularFile as exc:  # the source's own refusal, naming the file
            refused.append(exc)

    done = threading.Thread(target=ingest, daemon=True)
    done.start()
    done.join(10)
    try:
        assert not done.is_alive(), "ingest blocked on a FIFO"
        assert refused and "FIFO" in str(refused[0]) and str(fifo) in str(refused[0])
    finally:
        if done.is_alive():  # let the blocked open return, so the test run can end
            with open(fifo, "w"):
                pass
        ledger.close()


def test_a_newer_file_waits_while_another_daemon_reads_an_older_one(tmp_path: Path, pg_url: str) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    older, newer = inbox / "1-export.jsonl", inbox / "2-re-export.jsonl"
    write_jsonl(older, [{"ref": "O1", **marketplace_fields(tracking_number="1ZOLD")}])
    write_jsonl(newer, [{"ref": "O1", **marketplace_fields(tracking_number="1ZNEW")}])
    st = older.stat()
    os.utime(newer, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))  # strictly later: read after
    registry, loaded = app.load(jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out"))
    reading, other = open_ledger(pg_url), open_ledger(pg_url)
    try:
        # One daemon holds the older file (reading it); the other comes along.
        assert reading.claim_input("shop", str(older), st.st_size, st.st_mtime_ns, _sha256(older))
        worker = PipelineWorker(loaded.pipelines["shop"], loaded.rates, other, Observers(registry.pm))
        assert worker.ingest(settle=False, transmit=False) == 0  # the re-export waits its turn
        reading.release_input("shop", str(older))  # (or stores it: then it is skipped as read)
        assert worker.ingest(settle=False, transmit=False) == 2
        [txid] = other.find("O1")
        assert json.loads((other.get(txid) or {})["record"])["tracking_number"] == "1ZNEW"  # the later export
    finally:
        reading.close()
        other.close()

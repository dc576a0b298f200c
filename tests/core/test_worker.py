"""PipelineWorker: a large input is transmitted while it is still being read, and
that changes nothing about what is filed (real ledger file, real TLS to the sandbox)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl

from s321 import app
from s321.ledger import Ledger
from s321.observers import Observers
from s321.runner import drive
from s321.sandbox import Sandbox
from s321.worker import CHUNK, PipelineWorker

ORDERS = 3 * CHUNK + 100  # several ledger chunks, so there is a "between chunks"
BATCH = 200


def p2p_table(sandbox: Sandbox) -> str:
    o = sandbox.transport_options()
    return (f'plugin = "p2p-socket"\nhost = "{o["host"]}"\nport = {o["port"]}\nca = "{o["ca"]}"\n'
            f'cert = {{ file = "{o["cert"]["file"]}" }}\nkey = {{ file = "{o["key"]["file"]}" }}')


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[PipelineWorker]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl",
                [{"ref": f"O{i}", **marketplace_fields(tracking_number=f"TRK{i:08d}")}
                 for i in range(ORDERS)])
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        config = jsonl_pipeline_config(tmp_path, inbox, "unused", extra=f"batch_size = {BATCH}",
                                       transport=p2p_table(sandbox))
        registry, loaded = app.load(config)
        ledger = Ledger(tmp_path / "ledger.sqlite")
        w = PipelineWorker(loaded.pipelines["shop"], loaded.rates, ledger, Observers(registry.pm))
        try:
            yield w
        finally:
            w.close()
            ledger.close()


def test_batches_leave_while_a_large_input_is_still_being_read(worker: PipelineWorker) -> None:
    assert worker.ingest(settle=False) == ORDERS
    states = worker.ledger.counts("shop")
    on_the_way = states.get("sent", 0) + states.get("accepted", 0)
    # Full batches only: every batch sent so far held `batch_size` records.
    assert on_the_way >= BATCH and on_the_way % BATCH == 0
    assert sum(states.values()) == ORDERS

    drive(worker, budget=30)
    assert worker.ledger.counts("shop") == {"accepted": ORDERS}
    assert worker.counts["sent"] == ORDERS  # none sent twice
    assert worker.counts["accepted"] == ORDERS


def test_without_transmit_ingestion_only_queues(worker: PipelineWorker) -> None:
    worker.ingest(settle=False, transmit=False)
    assert worker.ledger.counts("shop") == {"queued": ORDERS}
    assert worker.counts["sent"] == 0

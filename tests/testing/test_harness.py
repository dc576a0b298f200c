"""The plugin author's fixtures and doubles do what they say: the harness runs a real
pipeline from a config dict, the faulty transport fails exactly as told, the ledger
is a real WAL file, the sandbox answers on loopback, and logs are captured."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from s321.errors import FatalError, RetriableError
from s321.logs import get_logger
from s321.pipeline import Status
from s321.testing import FaultyTransport, PipelineHarness, pipeline_config, sample_batch, toml
from s321.testing.samples import marketplace_record, records_jsonl


def jsonl_config(folder: Path, count: int = 4, **pipeline: Any) -> dict[str, Any]:
    inbox = folder / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "orders.jsonl").write_bytes(records_jsonl(count))
    return pipeline_config({"plugin": "records-jsonl", "path": str(inbox)}, **pipeline)


FAST_RETRY = {"initial": 0.01, "maximum": 0.05, "ack_timeout": 0.3}


def test_preview_and_run_once_work_on_a_config_dict(tmp_path: Path, s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, count=3))
    outcomes = harness.preview()
    assert [o.status for o in outcomes] == [Status.VALID] * 3
    [summary] = harness.run_once()
    assert (summary.counts["accepted"], summary.error) == (3, None)
    assert sorted(harness.receiver.accepted.values()) == [1, 1, 1]
    assert harness.ledger.counts("test") == {"accepted": 3}


def test_the_harness_config_is_a_real_file_the_cli_accepts(tmp_path: Path, s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, currency_rates={"JPY": Decimal("0.0067")}))
    assert tomllib.loads(harness.config_path.read_text())["currency_rates"]["JPY"] == "0.0067"
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "check", "-c", str(harness.config_path)],
                          capture_output=True, text=True, check=False)
    # The CLI does not know the harness's `memory` transport: everything else checks out.
    assert "transport.plugin: unknown transport 'memory'" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_a_retriable_send_failure_is_retried_and_filed_once(tmp_path: Path, s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, batch_size=2, retry=FAST_RETRY))
    faulty = harness.wrap_transport().fail_send(2)
    harness.settle()
    assert harness.ledger.counts("test") == {"accepted": 4}
    assert list(faulty.pending_faults()) == []
    assert sorted(harness.receiver.accepted.values()) == [1, 1, 1, 1]


def test_a_fatal_send_failure_dead_letters_the_batch(tmp_path: Path, s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, batch_size=2, retry=FAST_RETRY))
    harness.wrap_transport().fail_send(1, FatalError)
    [summary] = harness.run_once()
    assert (summary.counts["dead"], summary.counts["accepted"]) == (2, 2)
    assert summary.error and "injected" in summary.error  # the operator is told
    assert harness.ledger.counts("test") == {"dead": 2, "accepted": 2}


def test_lost_acks_and_lost_receipts_end_accepted_once(tmp_path: Path, s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, batch_size=1, retry=FAST_RETRY))
    faulty = harness.wrap_transport().lose_acks(1).fail_send(1, after_delivery=True).fail_acks(1)
    harness.settle()
    assert harness.ledger.counts("test") == {"accepted": 4}
    assert faulty.lost and max(harness.receiver.received.values()) >= 2
    assert set(harness.receiver.accepted.values()) == {1}


def test_a_connect_failure_leaves_the_records_queued_for_the_next_run(tmp_path: Path,
                                                                      s321_harness: Any) -> None:
    harness = s321_harness(jsonl_config(tmp_path, retry=FAST_RETRY))
    harness.wrap_transport().fail_connect(100)
    [first] = harness.run_once()
    assert first.queued == 4 and "injected" in (first.error or "")


def test_faults_fire_as_many_times_as_told(s321_faulty_transport: FaultyTransport) -> None:
    faulty = s321_faulty_transport.fail_connect(2, FatalError)
    for _ in range(2):
        with pytest.raises(FatalError, match="injected"):
            faulty.connect()
    faulty.connect()
    faulty.fail_send(1, RetriableError("the line is busy"))
    with pytest.raises(RetriableError, match="busy"):
        faulty.send(sample_batch(1))
    faulty.send(sample_batch(1))
    assert len(faulty.acks()) == 1 and faulty.connects == 1


def test_the_memory_receiver_answers_a_repeated_add_as_a_duplicate(s321_faulty_transport: FaultyTransport) -> None:
    faulty = s321_faulty_transport
    faulty.connect()
    batch = sample_batch(2)
    faulty.send(batch)
    faulty.send(batch)
    first, again = faulty.acks()
    assert {r.status for r in first.results} == {"accepted"}
    assert {e.code for r in again.results for e in r.errors} == {"duplicate"}


def test_the_ledger_fixture_is_a_real_sqlite_file_in_wal_mode(s321_ledger: Any) -> None:
    assert s321_ledger.path.is_file()
    with sqlite3.connect(s321_ledger.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_pipeline_files_to_the_sandbox_fixture(tmp_path: Path, s321_sandbox: Any, s321_harness: Any) -> None:
    transport = {"plugin": "p2p-socket", **s321_sandbox.transport_options()}
    harness = s321_harness(jsonl_config(tmp_path, count=2, transport=transport))
    [summary] = harness.run_once()
    assert summary.counts["accepted"] == 2
    assert sorted(s321_sandbox.store.accepted_counts().values()) == [1, 1]


def test_the_logs_fixture_captures_redacted_lines(s321_logs: Any) -> None:
    get_logger("plugin-test").info("hello", customer={"name": "Imogen Vasquez-Thorne"}, count=2)
    assert '"event": "hello"' in s321_logs.text
    assert "Imogen" not in s321_logs.text


def test_a_harness_refuses_a_plugin_that_does_not_load(tmp_path: Path) -> None:
    class Broken:
        from s321.hookspecs import hookimpl

        @hookimpl
        def register_sources(self, register: Any) -> None:
            raise RuntimeError("half-written plugin")

    with pytest.raises(Exception, match="half-written plugin"):
        PipelineHarness(tmp_path, jsonl_config(tmp_path), plugins=[("broken", Broken())])


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_leaf = st.one_of(st.booleans(), st.integers(-10**6, 10**6), _text,
                  st.floats(allow_nan=False, allow_infinity=False))
_tables = st.recursive(st.dictionaries(_text, _leaf, max_size=4),
                       lambda inner: st.dictionaries(_text, st.one_of(inner, st.lists(_leaf, max_size=3)),
                                                     max_size=4), max_leaves=12)


@settings(max_examples=50, deadline=None)
@given(_tables)
def test_toml_written_by_the_harness_reads_back_the_same(table: dict[str, Any]) -> None:
    assert tomllib.loads(toml.dumps(table)) == table


def test_sample_records_are_valid_under_the_pilot_profile(tmp_path: Path, s321_harness: Any) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text('{"ref": "c-1", ' + __import__("json").dumps(
        marketplace_record(5))[1:] + "\n")
    harness = s321_harness(pipeline_config({"plugin": "records-jsonl", "path": str(inbox)}))
    [outcome] = harness.preview()
    assert outcome.status is Status.VALID, outcome.findings

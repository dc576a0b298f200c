"""Find records by the names people use (issue 15): `s321 show REF` by order name,
bill, tracking number or transaction id, with the state history, attempts, answers
and findings; `status --findings` lists invalid, rejected and dead records with their
findings; `run` names a rejected record by its order or bill. A real sandbox over
p2p-socket, the CLI in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.sandbox import Faults, Sandbox


def s321(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


GOOD = {"ref": "#1001", **marketplace_fields(tracking_number="YT2503000000700000", house_bill_number="HB-77")}
BAD = {"ref": "#1002", **marketplace_fields(tracking_number=None)}


def p2p(sandbox: Sandbox) -> str:
    o = sandbox.transport_options()
    return (f'plugin = "p2p-socket"\nhost = "{o["host"]}"\nport = {o["port"]}\nca = "{o["ca"]}"\n'
            f'cert = {{ file = "{o["cert"]["file"]}" }}\nkey = {{ file = "{o["key"]["file"]}" }}')


@pytest.fixture
def world(tmp_path: Path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [GOOD, BAD])
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        yield jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=p2p(sandbox)), inbox


def test_show_finds_a_record_by_each_of_its_names_and_tells_its_story(world) -> None:
    config, _inbox = world
    assert s321("run", "-c", config, "--once").returncode == 1
    stories = [json.loads(s321("show", "-c", config, ref, "--json").stdout)
               for ref in ("#1001", "1001", "hb-77", "YT2503000000700000")]
    assert len({s["transaction_id"] for s in stories}) == 1
    story = stories[0]
    assert story["state"] == "accepted" and story["attempts"] == 1
    assert [e["event"] for e in story["history"]] == ["queued", "sent", "accepted"]
    assert story["ack"]["status"] == "accepted"
    by_txid = s321("show", "-c", config, story["transaction_id"])
    assert by_txid.returncode == 0 and "accepted" in by_txid.stdout and "#1001" in by_txid.stdout
    invalid = s321("show", "-c", config, "#1002")
    assert invalid.returncode == 0
    assert "missing-required" in invalid.stdout or "tracking_number" in invalid.stdout, invalid.stdout
    unknown = s321("show", "-c", config, "#9999")
    assert unknown.returncode == 2 and "no record named '#9999'" in unknown.stderr


def test_status_findings_lists_invalid_records_with_their_findings(world) -> None:
    config, _inbox = world
    s321("run", "-c", config, "--once")
    proc = s321("status", "-c", config, "--findings", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["ref"], r["state"]) for r in rows] == [("#1002", "invalid")]
    assert "tracking_number" in {f["field"] for f in rows[0]["findings"]}
    assert s321("status", "-c", config, "--findings", "-p", "shop", "--json").stdout == proc.stdout
    for command in (("status", "--findings"), ("status",), ("dlq", "list")):
        # A mistyped name is said, never answered with "nothing there".
        mistyped = s321(*command, "-c", config, "-p", "Shop")
        assert mistyped.returncode == 2 and "no such pipeline: Shop (known: shop)" in mistyped.stderr, mistyped
    alone = s321("status", "-c", config, "-p", "shop", "--json")
    assert alone.returncode == 0 and {json.loads(line)["pipeline"] for line in alone.stdout.splitlines()} == {"shop"}
    text = s321("status", "-c", config, "--findings")
    assert "#1002" in text.stdout and "tracking_number" in text.stdout


def test_run_names_a_rejected_record_by_its_order(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [GOOD])
    with Sandbox(tmp_path / "sandbox", faults=Faults(reject_fraction=1.0, seed=1)).start() as sandbox:
        config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", transport=p2p(sandbox))
        proc = s321("run", "-c", config, "--once")
        assert "rejected #1001 (" in proc.stdout, proc.stdout
        rows = [json.loads(line) for line in
                s321("status", "-c", config, "--findings", "--json").stdout.splitlines()]
        assert [(r["ref"], r["state"], r["findings"][0]["code"]) for r in rows] == \
            [("#1001", "rejected", "injected-rejection")]

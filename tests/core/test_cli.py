"""The CLI as a user runs it: preview (text and JSON, exit codes), run --once into the
file transport, schema. Subprocesses, real files."""

import json
import os
import subprocess
import sys

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.plugins.wire_s321 import S321Json


def s321(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=dict(os.environ))


def setup(tmp_path, records):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", records)
    return jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")


GOOD = {"ref": "A-1", **marketplace_fields()}
BAD = {"ref": "A-2", **marketplace_fields(tracking_number=None)}


def test_preview_json_gives_one_object_a_line_and_exit_1_when_something_is_invalid(tmp_path):
    cfg = setup(tmp_path, [GOOD, BAD])
    proc = s321("preview", "-c", cfg, "-p", "shop", "--json")
    assert proc.returncode == 1, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["ref"], r["status"]) for r in rows] == [("A-1", "valid"), ("A-2", "invalid")]
    assert rows[1]["source"] == f"{tmp_path / 'in' / 'orders.jsonl'}:2"
    assert rows[1]["findings"][0]["field"] == "tracking_number"
    assert rows[0]["record"]["transaction_id"].startswith("T")
    assert set(rows[0]) >= {"ref", "status", "source", "record", "findings"}


def test_preview_exits_0_when_nothing_is_invalid_and_shows_counts(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    proc = s321("preview", "-c", cfg, "-p", "shop")
    assert proc.returncode == 0, proc.stderr
    assert "1 valid, 0 invalid, 0 skipped" in proc.stdout


def test_preview_groups_findings_by_code_with_locations(tmp_path):
    cfg = setup(tmp_path, [BAD, dict(BAD, ref="A-3")])
    proc = s321("preview", "-c", cfg, "-p", "shop")
    assert "missing-one-of (error) x2" in proc.stdout
    assert f"{tmp_path / 'in' / 'orders.jsonl'}:1: tracking_number:" in proc.stdout


def test_preview_exits_2_when_the_input_cannot_be_read(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    proc = s321("preview", "-c", cfg, "-p", "shop", tmp_path / "missing.jsonl")
    assert proc.returncode == 2 and "missing.jsonl" in proc.stderr


def test_preview_json_of_an_empty_input_says_so_on_stderr(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = s321("preview", "-c", cfg, "-p", "shop", empty, "--json")
    assert proc.stdout == "" and "nothing to preview" in proc.stderr


def test_preview_of_named_files_overrides_the_configured_source(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    other = write_jsonl(tmp_path / "other.jsonl", [BAD])
    proc = s321("preview", "-c", cfg, "-p", "shop", other, "--json")
    assert [json.loads(line)["ref"] for line in proc.stdout.splitlines()] == ["A-2"]


def test_a_malformed_line_is_a_finding_and_the_rest_still_goes_through(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    with (tmp_path / "in" / "orders.jsonl").open("a") as fh:
        fh.write('{"ref": "broken", \n')
        fh.write(json.dumps(dict(GOOD, ref="A-9")) + "\n")
    proc = s321("preview", "-c", cfg, "-p", "shop", "--json")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["valid", "invalid", "valid"]
    assert rows[1]["source"].endswith("orders.jsonl:2") and rows[1]["findings"][0]["code"] == "malformed-json"


def test_transaction_ids_are_the_same_on_every_run(tmp_path):
    cfg = setup(tmp_path, [GOOD, BAD])
    runs = [[json.loads(x)["record"] for x in s321("preview", "-c", cfg, "-p", "shop", "--json").stdout.splitlines()]
            for _ in range(2)]
    assert runs[0][0]["transaction_id"] == runs[1][0]["transaction_id"]


def test_run_once_writes_valid_records_into_the_file_transport(tmp_path):
    cfg = setup(tmp_path, [GOOD, BAD, dict(GOOD, ref="A-4")])
    proc = s321("run", "-c", cfg, "--once")
    assert proc.returncode == 1, proc.stderr  # exit 1: the data has findings (one invalid)
    assert "shop -> file: received 3, valid 2, invalid 1, skipped 0, sent 2" in proc.stdout
    [batch_file] = list((tmp_path / "out").iterdir())  # no temporary file left behind
    batch = S321Json().decode_batch(batch_file.read_bytes())
    assert batch_file.name == f"{batch.batch_id}.json"
    assert batch.originator_code == "MKT001" and len(batch.records) == 2


def test_run_names_an_unknown_pipeline(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    proc = s321("run", "-c", cfg, "-p", "nope", "--once")
    assert proc.returncode == 2 and "no such pipeline: nope" in proc.stderr


def test_schema_record_and_config_are_json_schema():
    record = json.loads(s321("schema", "record").stdout)
    assert {"transaction_id", "ultimate_deliver_to", "items", "total_value_usd"} <= set(record["properties"])
    config = json.loads(s321("schema", "config").stdout)
    assert "pipelines" in config["properties"]


def test_run_once_feeds_a_progress_display_live_counts_and_whether_acks_come(tmp_path):
    from s321 import app
    cfg = setup(tmp_path, [GOOD, BAD, dict(GOOD, ref="A-4")])
    seen = {}

    def watch(counts, acknowledges, running):
        while running():
            pass
        seen.update(counts=dict(counts["shop"]), acknowledges=dict(acknowledges))

    registry, loaded = app.load(cfg)
    app.run_once(registry, loaded, watch=watch)
    assert seen["acknowledges"] == {"shop": False}  # the file transport gets no acks
    assert (seen["counts"]["received"], seen["counts"]["sent"], seen["counts"]["invalid"]) == (3, 2, 1)


def test_every_command_runs_with_the_collector_tuned_for_batches():
    # Python's default (700 allocations) collects dozens of times while one batch of
    # records is built; see s321.gctune for the figures.
    code = "import gc, s321.cli; s321.cli.main(['plugins']); print(gc.get_threshold())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "(100000, 50, 100)"

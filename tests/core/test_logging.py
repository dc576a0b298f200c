"""Personal data never reaches the logs: a pipeline over known names, logged at debug."""

import io
import json
import os
import subprocess
import sys

from builders import US_BUYER, jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321 import logs
from s321.record import Address, Party

PERSONAL = ["Ada Quartermaine", "Elmwood", "Springfield", "62701", "ada.quartermaine@example.com",
            "555 0142", "Brightwave", "Keji Road"]


def test_a_pipeline_run_logs_no_personal_data(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    bad = marketplace_fields(tracking_number=None)
    write_jsonl(inbox / "a.jsonl", [{"ref": "A-1", **marketplace_fields()}, {"ref": "A-2", **bad}, {"ref": 7}])
    cfg = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "--log-level", "debug", "run", "-c", cfg, "--once"],
                          capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 1, proc.stderr  # 1: the data has findings (A-2 and 7 are invalid)
    assert "batch sent" in proc.stderr  # the log is there ...
    for word in PERSONAL:
        assert word not in proc.stderr  # ... and holds none of these


def test_log_lines_are_json_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    logs.configure(level="info", stream=out)
    logs.get_logger("t").info("hello", count=3)
    line = json.loads(out.getvalue())
    assert (line["event"], line["count"], line["level"]) == ("hello", 3, "info")


def test_personal_fields_are_redacted_whatever_the_caller_passes():
    out = io.StringIO()
    logs.configure(level="info", json=True, stream=out)
    party = Party.model_validate(US_BUYER)
    logs.get_logger("t").info("careless", party=party, deliver=party.address, name="Ada Quartermaine",
                              extra={"customer": {"email": "ada.quartermaine@example.com"}, "count": 2},
                              addresses=[Address(line1="12 Elmwood Ave")])
    text = out.getvalue()
    for word in PERSONAL:
        assert word not in text
    assert json.loads(text)["extra"]["count"] == 2

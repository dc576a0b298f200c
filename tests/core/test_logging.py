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


def _logged_failure(json_lines: bool, exc: BaseException) -> str:
    out = io.StringIO()
    logs.configure(level="info", json=json_lines, stream=out)
    try:
        try:
            raise KeyError(PERSONAL[0])  # a value looked up, quoted by its error
        except KeyError as cause:
            raise exc from cause
    except BaseException:
        logs.get_logger("t").exception("relay failed on a message")
    return out.getvalue()


def test_a_logged_traceback_keeps_where_and_what_kind_not_the_message():
    """`log.exception` writes the traceback, whose messages may quote the input that
    failed (`int('Ada Quartermaine')`): the frames and exception types stay, the messages
    of errors that can quote data do not, in JSON and on a terminal alike."""
    for json_lines in (True, False):
        text = _logged_failure(json_lines, ValueError(f"invalid literal for int(): '{PERSONAL[1]} {PERSONAL[2]}'"))
        for word in PERSONAL:
            assert word not in text
        assert "ValueError" in text and "KeyError" in text and "test_logging.py" in text
        assert "relay failed on a message" in text


def test_a_logged_traceback_keeps_the_message_of_a_system_error():
    """What the system says (a file, a disk, a socket, the database) quotes no record and
    is what an operator needs: it stays."""
    text = _logged_failure(True, OSError(28, "No space left on device"))
    assert "No space left on device" in text
    for word in PERSONAL:
        assert word not in text


def test_objects_of_unknown_kinds_are_logged_by_their_type():
    """A source's unit or a shop order passed to a log call by mistake is not written
    out field by field."""
    import dataclasses

    @dataclasses.dataclass
    class Order:
        name: str
        street: str

    out = io.StringIO()
    logs.configure(level="info", json=True, stream=out)
    logs.get_logger("t").info("careless", unit=Order("Ada Quartermaine", "12 Elmwood Ave"),
                              deep=[[[[[[[["Ada Quartermaine"]]]]]]]])
    text = out.getvalue()
    for word in PERSONAL:
        assert word not in text
    assert "Order" in text


def test_a_pipeline_failing_on_a_bug_says_its_type_not_a_message_quoting_a_record(tmp_path, monkeypatch, capsys):
    """A bug's error (a KeyError of a buyer's name) reaches the run's summary, the log,
    the daemon's /healthz and the observers' pipeline_failing: its type and where it was
    raised are said, its message is not."""
    from s321.cli import main
    from s321.worker import PipelineWorker

    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"ref": "A-1", **marketplace_fields()}])
    cfg = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")

    def broken_ingest(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise KeyError(PERSONAL[0])

    monkeypatch.setattr(PipelineWorker, "ingest", broken_ingest)
    assert main(["--log-level", "info", "run", "-c", str(cfg), "--once"]) == 3
    out, err = capsys.readouterr()
    for word in PERSONAL:
        assert word not in out + err
    assert "pipeline failed: KeyError" in out and "broken_ingest" in err  # the frame, for a bug report

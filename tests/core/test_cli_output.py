"""An output that cannot be written: stdout closed by the shell (`>&-`) or on a full
disk (/dev/full) is said as `cannot write the output: reason`, exit 2, never a
traceback nor a failure of the input; a closed stderr (`2>&-`) drops the errors but
keeps the exit status."""

import os
import subprocess
import sys

import pytest

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


def s321(*args, stdout=subprocess.PIPE, close=None, buffered=False):
    """Run `s321 ARGS`; `close` is a shell redirection closing a stream (`>&-`, `2>&-`)."""
    env = dict(os.environ)
    if buffered:  # as a user's shell runs it: stdout block-buffered, failing at exit
        env.pop("PYTHONUNBUFFERED", None)
    command = [sys.executable, "-m", "s321.cli", *map(str, args)]
    if close:
        command = ["sh", "-c", f'exec "$@" {close}', "sh", *command]
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=120)


@pytest.fixture
def cfg(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [{"ref": f"A-{i}", **marketplace_fields()} for i in range(3)])
    path = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    path.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite"}"\n' + path.read_text())
    assert s321("ledger", "init", "-c", path).returncode == 0
    return path


COMMANDS = {
    "check": lambda cfg: ["check", "-c", cfg],
    "plugins": lambda cfg: ["plugins"],
    "preview": lambda cfg: ["preview", "-c", cfg, "-p", "shop"],
    "preview --json": lambda cfg: ["preview", "-c", cfg, "-p", "shop", "--json"],
    "status": lambda cfg: ["status", "-c", cfg],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_closed_stdout_is_said_in_one_line_and_exit_2(cfg, command):
    proc = s321(*COMMANDS[command](cfg), stdout=None, close=">&-")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "s321: cannot write the output: standard output is closed\n"


@needs_dev_full
@pytest.mark.parametrize("buffered", [False, True], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_stdout_is_said_in_one_line_and_exit_2(cfg, command, buffered):
    with open("/dev/full", "w") as full:
        proc = s321(*COMMANDS[command](cfg), stdout=full, buffered=buffered)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "s321: cannot write the output: No space left on device\n"


def test_a_closed_stderr_keeps_a_config_errors_exit_2_and_stdout_clean(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipelines.shop\n")
    proc = s321("check", "-c", bad, close="2>&-")
    assert proc.returncode == 2
    assert proc.stdout == ""  # the error is dropped, not written where the output goes


def test_a_closed_stderr_leaves_a_good_run_alone(cfg):
    proc = s321("check", "-c", cfg, close="2>&-")
    assert proc.returncode == 0
    assert "ok (1 pipelines: shop)" in proc.stdout


def test_a_reader_that_goes_away_still_stops_quietly(cfg):
    proc = subprocess.run(f'"{sys.executable}" -m s321.cli preview -c "{cfg}" -p shop --json | head -c 1',
                          shell=True, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert proc.stdout == "{" and proc.stderr == ""


def test_an_output_whose_encoding_cannot_write_a_name_is_said_not_a_traceback(tmp_path):
    """PYTHONIOENCODING=ascii (or a Latin-1 terminal) and a buyer named Zoë: a line
    saying what to set, exit 2, and never the name in the message."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    fields = marketplace_fields()
    fields["ultimate_deliver_to"] = {**fields["ultimate_deliver_to"], "name": "Zoë Ŝmith"}
    write_jsonl(inbox / "orders.jsonl", [{"ref": "A-1", **fields}])
    cfg = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "preview", "-c", str(cfg), "-p", "shop", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Zo" not in proc.stderr
    assert "cannot write the output: its encoding, ascii" in proc.stderr and "PYTHONIOENCODING=utf-8" in proc.stderr

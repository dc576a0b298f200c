"""The CLI a person expects: --version, help, an example and the exit codes in every
command's help, --log-level anywhere, shell completion, colour and tables on a real
terminal (a pty), a quiet broken pipe, `run -p NAME` as a daemon. Subprocesses."""

import argparse
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.cli import _subparsers, build_parser
from s321.cli.exitcodes import EPILOG, Exit

GOOD = {"ref": "A-1", **marketplace_fields()}
BAD = {"ref": "A-2", **marketplace_fields(tracking_number=None)}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def s321(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, **kw)


def setup(tmp_path, records, extra=""):
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", records)
    return jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out", extra=extra)


def on_a_terminal(*args, timeout=60):
    """Run s321 with stdout and stderr on a pseudo-terminal; return exit code and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env={**os.environ, "COLUMNS": "160",
                                                                   "TERM": "xterm-256color"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout), b"".join(chunks).decode("utf-8", "replace")


# --------------------------------------------------------------------------- help


def test_version_and_help_alone():
    proc = s321("--version")
    assert proc.returncode == 0 and re.fullmatch(r"s321 \d+\.\d+\.\d+\S*\n", proc.stdout)
    proc = s321()
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: s321") and "preview" in proc.stdout
    assert "exit codes" in proc.stdout and "3    a pipeline failed" in proc.stdout


def test_every_command_and_option_is_described_and_every_help_ends_with_an_example():
    parser = build_parser()
    commands = dict(_subparsers(parser))
    assert {"check", "preview", "run", "status", "dlq list", "sandbox", "relay", "completion"} <= set(commands)
    for path, command in commands.items():
        assert command.description, path
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"s321 {path}: {action.option_strings or action.dest} has no description"
        text = command.format_help()
        assert "example:\n  s321 " in text, path
        assert text.rstrip().endswith(EPILOG.splitlines()[-1]), path


def test_the_exit_codes_in_the_help_are_the_ones_the_code_returns():
    for code in Exit:
        assert re.search(rf"^  {int(code)}\s+\S", EPILOG, re.M), code
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for line in EPILOG.splitlines()[1:]:
        number, meaning = line.split(maxsplit=1)
        assert f"| {number} | {meaning} |" in docs


def test_log_level_works_before_and_after_the_command(tmp_path):
    cfg = setup(tmp_path, [GOOD])
    after = s321("run", "-c", cfg, "--once", "--log-level", "info")
    assert after.returncode == 0, after.stderr
    assert "batch sent" in after.stderr
    (tmp_path / "in" / "more.jsonl").write_text(json.dumps(dict(GOOD, ref="A-7")) + "\n")
    before = s321("--log-level", "info", "run", "-c", cfg, "--once")
    assert "batch sent" in before.stderr
    quiet = s321("run", "-c", cfg, "--once")
    assert "batch sent" not in quiet.stderr
    wrong = s321("run", "-c", cfg, "--once", "--log-level", "loud")
    assert wrong.returncode == 2 and "invalid choice: 'loud'" in wrong.stderr


def test_shell_completion_for_bash_and_zsh(tmp_path):
    for shell, marker in (("bash", "complete "), ("zsh", "#compdef s321")):
        proc = s321("completion", shell)
        assert proc.returncode == 0 and marker in proc.stdout, shell
    # What the shell does on <TAB>: run s321 with the line typed so far in the environment.
    out = tmp_path / "completions"
    for line, expected in (("s321 pre", {"preview"}), ("s321 preview --js", {"--json"}),
                           ("s321 schema ", {"config", "record"})):
        s321(env={"_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
                  "_ARGCOMPLETE_STDOUT_FILENAME": str(out)})
        assert expected <= set(out.read_text().replace("\x0b", " ").split()), line


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_are_the_same_everywhere(tmp_path):
    assert s321("check", "-c", tmp_path / "nope.toml").returncode == Exit.CANNOT_RUN
    assert s321("status", "-c", tmp_path / "nope.toml").returncode == Exit.CANNOT_RUN
    assert s321("plugins", "-c", tmp_path / "nope.toml").returncode == Exit.CANNOT_RUN
    assert s321("preview", "--bogus").returncode == Exit.CANNOT_RUN
    cfg = setup(tmp_path, [GOOD, BAD])
    assert s321("preview", "-c", cfg, "-p", "shop").returncode == Exit.FINDINGS
    assert s321("run", "-c", cfg, "--once").returncode == Exit.FINDINGS
    assert s321("resend", "-c", cfg, "T-NOT-THERE").returncode == Exit.CANNOT_RUN
    # A transport that cannot deliver: the pipeline failed and records are still owed.
    (tmp_path / "blocker").write_text("a file where the outbox folder should be")
    down = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "blocker" / "out",
                                 extra="retry = { ack_timeout = 1, max_elapsed = 2 }")
    (tmp_path / "in" / "new.jsonl").write_text(json.dumps(dict(GOOD, ref="A-8")) + "\n")
    proc = s321("run", "-c", down, "--once", "-p", "shop")
    assert proc.returncode == Exit.FAILED, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- on a terminal


def test_preview_lists_orders_with_errors_first_and_an_empty_result_says_so(tmp_path):
    cfg = setup(tmp_path, [GOOD, BAD, dict(BAD, ref="A-3")])
    out = s321("preview", "-c", cfg, "-p", "shop").stdout
    assert "\x1b[" not in out  # not a terminal: plain text for scripts
    listing = out[out.index("orders with errors:"):]
    assert listing.index("A-2 (invalid)") < listing.index("A-3 (invalid)")
    assert "A-1" not in listing
    assert "missing-one-of (error) x2" in out
    (tmp_path / "empty.jsonl").write_text("")
    proc = s321("preview", "-c", cfg, "-p", "shop", tmp_path / "empty.jsonl")
    assert "nothing to preview: the input holds no records" in proc.stdout


def test_on_a_terminal_errors_are_red_and_findings_a_table(tmp_path):
    cfg = setup(tmp_path, [GOOD, BAD])
    code, out = on_a_terminal("preview", "-c", cfg, "-p", "shop")
    assert code == Exit.FINDINGS
    assert "\x1b[1;31m" in out  # bold red: the invalid order
    plain = ANSI.sub("", out)
    assert "findings by code" in plain and "┃ finding" in plain and "missing-one-of" in plain
    code, out = on_a_terminal("check", "-c", tmp_path / "nope.toml")
    assert code == Exit.CANNOT_RUN and "\x1b[1;31m" in out and "no such file" in out


def test_preview_json_into_a_closed_pipe_exits_quietly(tmp_path):
    cfg = setup(tmp_path, [dict(GOOD, ref=f"A-{i}") for i in range(600)])
    proc = subprocess.run(f"{sys.executable} -m s321.cli preview -c {cfg} -p shop --json | head -n 2",
                          shell=True, capture_output=True, text=True, env=dict(os.environ))
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""


# --------------------------------------------------------------------------- run -p as a daemon


def test_run_p_name_without_once_starts_only_that_pipeline(tmp_path):
    cfg = setup(tmp_path, [GOOD], extra="settle_seconds = 0")
    other_in = tmp_path / "other-in"
    other_in.mkdir()
    write_jsonl(other_in / "orders.jsonl", [dict(GOOD, ref="B-1")])
    text = cfg.read_text()
    block = text[text.index("[pipelines.shop]"):]
    cfg.write_text(text + block.replace("pipelines.shop", "pipelines.other")
                   .replace(str(tmp_path / "in"), str(other_in)).replace(str(tmp_path / "out"),
                                                                          str(tmp_path / "other-out")))
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(cfg), "-p", "shop"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "out").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list((tmp_path / "out").glob("*.json")), "the pipeline named did not run"
        time.sleep(1.5)  # the other pipeline, were it started, would have sent by now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert not (tmp_path / "other-out").exists() or not list((tmp_path / "other-out").iterdir())


def test_the_sandbox_listens_on_a_fixed_documented_port():
    args = build_parser().parse_args(["sandbox"])
    assert args.port == 4321
    assert "(default 4321)" in s321("sandbox", "--help").stdout
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert "| `s321 sandbox --port` | `4321` |" in docs


def test_run_with_every_pipeline_disabled_says_so(tmp_path):
    """Not a silent success: a config whose pipelines are all `enabled = false` runs
    nothing, and a cron job's log should say why."""
    cfg = setup(tmp_path, [marketplace_fields()], extra="enabled = false")
    done = s321("run", "-c", cfg, "--once")
    assert done.returncode == 0
    assert "every pipeline has enabled = false: nothing to run" in done.stderr

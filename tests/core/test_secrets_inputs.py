"""Files that are not files: FIFOs and devices are refused (never read, never waited
on) as secret files, source paths and preview arguments; secret files may be symlinks
to a regular file of bounded size; inbox patterns stay in their folder and symlinks
out of an inbox are not followed unless configured; `s321 keys generate` never writes
through a symlink; a secret where a variable name belongs is not echoed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321 import app
from s321.errors import ConfigError
from s321.inputs import NotRegularFile, input_files
from s321.relay import keys
from s321.secrets import MAX_SECRET_FILE, Secret


class Holder(BaseModel):
    secret: Secret


def resolve(ref, base: Path):
    return Holder.model_validate({"secret": ref}, context={"base_dir": str(base)}).secret


def message(info) -> str:
    """What a user sees: the config's error lines print messages, never the input."""
    return " ".join(e["msg"] for e in info.value.errors(include_input=False, include_url=False))


def s321(*args, timeout=30):
    """The CLI in its own process, with a timeout: a FIFO read would block forever."""
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------- secrets


def test_a_fifo_secret_is_refused_at_once(fifo, tmp_path):
    with pytest.raises(ValidationError) as info:
        resolve({"file": str(fifo)}, tmp_path)
    assert "FIFO" in str(info.value) and str(fifo) in str(info.value)


def test_dev_zero_as_a_secret_is_refused_not_read(tmp_path):
    with pytest.raises(ValidationError) as info:
        resolve({"file": "/dev/zero"}, tmp_path)
    assert "character device" in str(info.value)


def test_a_secret_file_over_the_cap_is_refused(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"k" * (MAX_SECRET_FILE + 1))
    with pytest.raises(ValidationError) as info:
        resolve({"file": "big"}, tmp_path)
    assert "over" in str(info.value) and "kkkk" not in str(info.value)


def test_a_secret_file_may_be_a_symlink_to_a_regular_file(tmp_path):
    (tmp_path / "real").write_text("s3cret-value\n")
    (tmp_path / "mounted").symlink_to(tmp_path / "real")
    assert resolve({"file": "mounted"}, tmp_path).get_secret_value() == "s3cret-value"


def test_a_symlink_to_a_fifo_is_refused_after_following_it(fifo, tmp_path):
    (tmp_path / "link").symlink_to(fifo)
    with pytest.raises(ValidationError, match="FIFO"):
        resolve({"file": "link"}, tmp_path)


def test_a_secret_where_a_variable_name_belongs_is_not_echoed(tmp_path):
    leaked = "S3CRET-hunter2/abc+="
    with pytest.raises(ValidationError) as info:
        resolve({"env": leaked}, tmp_path)
    assert leaked not in message(info)
    assert "not shown" in message(info)


def test_a_proper_variable_name_is_still_named_when_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("S321_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ValidationError, match="S321_TEST_UNSET_VAR"):
        resolve({"env": "S321_TEST_UNSET_VAR"}, tmp_path)


# ---------------------------------------------------------------- inputs


def config_for(tmp_path, source_path, extra_source=""):
    source = f'plugin = "records-jsonl"\npath = "{source_path}"\n{extra_source}'
    return jsonl_pipeline_config(tmp_path, source_path, tmp_path / "out", source=source)


def test_a_fifo_as_a_preview_argument_is_refused_with_a_message(fifo, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    done = s321("preview", "-c", config_for(tmp_path, inbox), "-p", "shop", fifo)
    assert done.returncode == 2
    assert "FIFO" in done.stderr and str(fifo) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_fifo_as_the_source_path_is_refused_with_a_message(fifo, tmp_path):
    done = s321("preview", "-c", config_for(tmp_path, fifo), "-p", "shop")
    assert done.returncode == 2
    assert "FIFO" in done.stderr and "Traceback" not in done.stderr


def test_a_fifo_or_device_named_directly_raises_not_regular(fifo):
    with pytest.raises(NotRegularFile, match="FIFO"):
        list(input_files([fifo], "*"))
    with pytest.raises(NotRegularFile, match="character device"):
        list(input_files([Path("/dev/null")], "*"))


def test_a_fifo_in_an_inbox_is_not_listed(fifo, tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    os.mkfifo(tmp_path / "b.jsonl")
    assert list(input_files([tmp_path], "*.jsonl")) == [tmp_path / "a.jsonl"]


def test_a_pattern_cannot_leave_its_folder(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (tmp_path / "outside.jsonl").write_text("{}\n")
    assert list(input_files([inbox], "../*.jsonl")) == []
    cfg = config_for(tmp_path, inbox, 'pattern = "../*.jsonl"')
    with pytest.raises(ConfigError) as info:
        app.load(cfg)
    assert "pattern" in "\n".join(info.value.lines)


def test_a_symlink_out_of_the_inbox_is_not_followed_unless_configured(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    fields = {k: v for k, v in marketplace_fields().items() if k != "originator_code"}
    write_jsonl(elsewhere / "secret.jsonl", [{"ref": "outside", **fields}])
    write_jsonl(inbox / "own.jsonl", [{"ref": "inside", **fields}])
    (inbox / "link.jsonl").symlink_to(elsewhere / "secret.jsonl")
    (inbox / "inner-link.jsonl").symlink_to(inbox / "own.jsonl")  # stays inside: fine
    assert sorted(p.name for p in input_files([inbox], "*.jsonl")) == ["inner-link.jsonl", "own.jsonl"]
    _reg, loaded = app.load(config_for(tmp_path, inbox))
    assert {o.ref for o in app.preview(loaded, "shop")} == {"inside"}
    _reg, loaded = app.load(config_for(tmp_path, inbox, "follow_symlinks = true"))
    assert {o.ref for o in app.preview(loaded, "shop")} == {"inside", "outside"}


# ---------------------------------------------------------------- keys generate


def test_keys_generate_does_not_write_through_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("unchanged\n")
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "relay.key_secret").symlink_to(victim)
    with pytest.raises(FileExistsError):
        keys.generate("relay", folder)
    assert victim.read_text() == "unchanged\n"
    keys.generate("relay", folder, force=True)  # replaces the link, not its target
    assert victim.read_text() == "unchanged\n"
    secret = folder / "relay.key_secret"
    assert not secret.is_symlink() and "secret-key" in secret.read_text()
    assert oct(secret.stat().st_mode & 0o777) == "0o600"


def test_keys_generate_refuses_a_dangling_symlink_at_the_key_path(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    target = tmp_path / "would-be-created"
    (folder / "c.key_secret").symlink_to(target)
    done = s321("keys", "generate", "c", "--dir", folder)
    assert done.returncode != 0 and "exists" in done.stderr
    assert not target.exists()

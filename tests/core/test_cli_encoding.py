"""Config files and regime profiles as editors save them: Latin-1 from Notepad is refused
with the file, line and column of the first byte that is not UTF-8 (exit 2, no
traceback); a leading UTF-8 byte-order mark (Windows editors) is accepted."""

import os
import subprocess
import sys

import pytest

from builders import jsonl_pipeline_config
from s321 import regimes


def s321(*args):
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ))


def config(tmp_path, extra=""):
    (tmp_path / "in").mkdir()
    return jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out", extra=extra)


def test_a_config_that_is_not_utf8_names_the_file_line_and_column_of_the_byte(tmp_path):
    cfg = tmp_path / "latin.toml"
    cfg.write_bytes(b'# saved by Notepad\nname = "caf\xe9"\n')
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{cfg}: not UTF-8 (byte 0xe9 at line 2, column 12); save it as UTF-8" in proc.stderr


def test_the_column_counts_characters_not_bytes(tmp_path):
    cfg = tmp_path / "mixed.toml"
    cfg.write_bytes('x = "é"\ny = "'.encode() + b"\xff\"\n")
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2 and "(byte 0xff at line 2, column 6)" in proc.stderr, proc.stderr


def test_a_config_with_a_byte_order_mark_is_read(tmp_path):
    cfg = config(tmp_path)
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 0, proc.stderr
    assert "ok (1 pipelines: shop)" in proc.stdout


def _with_profile(tmp_path, data):
    """A config whose pipeline uses the profile `data` (bytes), in its own folder."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "mine.toml").write_bytes(data)
    cfg = config(tmp_path)
    body = cfg.read_text().replace('profile = "pilot-2019"', 'profile = "mine"')
    cfg.write_text('profile_paths = ["profiles"]\n' + body)
    return cfg


def test_a_profile_that_is_not_utf8_is_a_config_error_naming_the_profile(tmp_path):
    bundled = regimes.available()["pilot-2019"].read_bytes()
    cfg = _with_profile(tmp_path, bundled + b"# Donn\xe9es\n")
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    profile = tmp_path / "profiles" / "mine.toml"
    line = bundled.count(b"\n") + 1
    assert f"pipelines.shop.profile: {profile}: not UTF-8 (byte 0xe9 at line {line}, column 7); " \
        "save it as UTF-8" in proc.stderr


def test_a_profile_with_a_byte_order_mark_is_read(tmp_path):
    bundled = regimes.available()["pilot-2019"].read_bytes()
    cfg = _with_profile(tmp_path, b"\xef\xbb\xbf" + bundled)
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 0, proc.stderr


def test_sandbox_rates_from_a_config_with_a_byte_order_mark(tmp_path):
    from s321.sandbox.cli import parse_rates

    cfg = config(tmp_path)
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    assert str(parse_rates(str(cfg))["EUR"]) == "1.08"


def test_sandbox_rates_from_a_file_that_is_not_utf8_name_the_file(tmp_path):
    from s321.sandbox.cli import parse_rates

    rates = tmp_path / "rates.toml"
    rates.write_bytes(b'# taux de change \xe0 jour\nEUR = "1.08"\n')
    with pytest.raises(ValueError, match=r"rates.toml: not UTF-8 \(byte 0xe0 at line 1, column 18\)"):
        parse_rates(str(rates))

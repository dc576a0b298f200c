"""What the docs and the help show can be typed as shown: the p2p-socket example of the
plugin reference passes `s321 check`, its errors show an example for the field they
are about, and `s321 keys generate -d DIR NAME` (the help's example) works."""

import os
import subprocess
import sys
from pathlib import Path

from builders import jsonl_pipeline_config
from s321.sandbox.certs import ensure_dev_certs

PAGE = Path(__file__).parents[2] / "docs" / "plugins-reference.md"


def s321(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=dict(os.environ), timeout=60)


def _example_table(plugin):
    """The body of the TOML example under the plugin's heading, without its header."""
    section = PAGE.read_text(encoding="utf-8").split(f"### `{plugin}`", 1)[1]
    block = section.split("```toml\n", 1)[1].split("\n```", 1)[0]
    header, body = block.split("\n", 1)
    assert header == "[pipelines.NAME.transport]"
    return body


def _p2p_config(tmp_path, transport):
    (tmp_path / "in").mkdir()
    # Real files, named as the example names them: `check` loads them.
    ensure_dev_certs(tmp_path / "certs")
    return jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out", transport=transport)


def test_the_p2p_socket_example_of_the_plugin_reference_passes_check(tmp_path):
    cfg = _p2p_config(tmp_path, _example_table("p2p-socket"))
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 0, proc.stderr


def test_the_plugin_reference_names_cert_and_key_as_references():
    section = PAGE.read_text(encoding="utf-8").split("### `p2p-socket`", 1)[1].split("\n### ", 1)[0]
    for option, example in (("cert", "certs/client.pem"), ("key", "certs/client.key")):
        row = next(line for line in section.splitlines() if line.startswith(f"| `{option}` |"))
        assert "path (relative to the config file)" not in row, row
        assert f'`{{ file = "{example}" }}`' in row, row


def test_a_plain_path_for_cert_is_refused_with_a_certificate_as_the_example(tmp_path):
    cfg = _p2p_config(tmp_path, 'plugin = "p2p-socket"\nhost = "h"\nport = 4321\nca = "certs/ca.pem"\n'
                      'cert = "certs/client.pem"\nkey = "certs/client.key"')
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2
    lines = {line.split(": ")[1]: line for line in proc.stderr.splitlines()}
    assert '{file = "client.pem"}' in lines["pipelines.shop.transport.cert"]
    assert '{file = "client.key"}' in lines["pipelines.shop.transport.key"]


def test_keys_generate_takes_d_as_the_short_form_of_dir_as_its_help_shows(tmp_path):
    for command in (["keys"], ["keys", "generate"]):
        assert "s321 keys generate -d keys client-a" in s321(*command, "--help").stdout
    proc = s321("keys", "generate", "-d", "keys", "client-a", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "keys" / "client-a.key").is_file()
    assert (tmp_path / "keys" / "client-a.key_secret").is_file()

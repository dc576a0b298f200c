"""Listening addresses: a port outside 0-65535 is refused where it is written (the
config's field, the command line's option), and an address that cannot be listened on
(in use) is said as `cannot listen on HOST:PORT: reason`, exit 2, never a traceback."""

import os
import socket
import subprocess
import sys

import pytest

from builders import jsonl_pipeline_config
from s321.sandbox.server import Sandbox


def s321(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=timeout)


def config(tmp_path, tail=""):
    (tmp_path / "in").mkdir()
    cfg = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out")
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite"}"\n' + cfg.read_text() + tail)
    return cfg


@pytest.fixture
def taken_port():
    """A loopback port something else listens on."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:65536", "localhost:port"])
def test_check_refuses_a_daemon_http_port_outside_the_range(tmp_path, address):
    cfg = config(tmp_path, f'\n[daemon]\nhttp = "{address}"\n')
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2, proc.stderr
    assert f"{cfg}: daemon.http: HOST:PORT, the port 0-65535" in proc.stderr


@pytest.mark.parametrize("address", ["127.0.0.1:0", ":9321", "[::1]:65535", "localhost:9321"])
def test_check_accepts_a_daemon_http_address_with_a_port_in_the_range(tmp_path, address):
    proc = s321("check", "-c", config(tmp_path, f'\n[daemon]\nhttp = "{address}"\n'))
    assert proc.returncode == 0, proc.stderr


def test_check_refuses_a_console_listen_port_outside_the_range(tmp_path):
    cfg = config(tmp_path, '\n[console]\nlisten = "127.0.0.1:70000"\n')
    proc = s321("check", "-c", cfg)
    assert proc.returncode == 2, proc.stderr
    assert f"{cfg}: console.listen: HOST:PORT, the port 0-65535" in proc.stderr


def test_the_daemon_says_its_http_address_is_in_use_and_exits_2(tmp_path, taken_port):
    cfg = config(tmp_path, f'\n[daemon]\nhttp = "127.0.0.1:{taken_port}"\nshutdown_timeout = 1\n')
    proc = s321("run", "-c", cfg)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"{cfg}: daemon.http: cannot listen on 127.0.0.1:{taken_port}: Address already in use"
            in proc.stderr)


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_sandbox_refuses_a_port_outside_the_range_as_a_usage_error(tmp_path, port):
    proc = s321("sandbox", "--port", port, "--certs-dir", tmp_path / "certs", "--db", tmp_path / "sb.sqlite")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"argument --port: {port!r}: a port, 0-65535" in proc.stderr
    assert not (tmp_path / "certs").exists()  # refused before anything is made


def test_a_sandbox_server_on_a_port_outside_the_range_raises_oserror_saying_so(tmp_path):
    sandbox = Sandbox(tmp_path, port=99999)
    try:
        with pytest.raises(OSError, match="port must be 0-65535"):
            sandbox.start()
    finally:
        sandbox.store.close()


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1"])
def test_console_refuses_a_listen_port_outside_the_range_as_a_usage_error(tmp_path, listen):
    proc = s321("console", "-c", config(tmp_path), "--listen", listen)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"argument --listen: {listen!r}: HOST:PORT, the port 0-65535" in proc.stderr


def test_console_says_its_address_is_in_use_and_exits_2(tmp_path, taken_port):
    from s321.console.auth import hash_password

    cfg = config(tmp_path, f'\n[console.users.ann]\nrole = "viewer"\npassword_hash = "{hash_password("s3cret")}"\n')
    proc = s321("console", "-c", cfg, "--listen", f"127.0.0.1:{taken_port}")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in proc.stderr
    assert "s321 console on" not in proc.stdout  # never said to serve where it cannot

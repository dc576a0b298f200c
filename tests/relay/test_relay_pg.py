"""The relay keeps its routing table beside its ledger in one SQLite file: a PostgreSQL
`[ledger] url` is refused at start with a message naming the key (issue 18), never a
traceback, never the password."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from s321.relay import keys


def test_the_relay_refuses_a_postgresql_ledger_clearly(tmp_path: Path) -> None:
    for name in ("relay", "alice"):
        keys.generate(name, tmp_path)
    config = tmp_path / "relay.toml"
    config.write_text(textwrap.dedent(f"""
        [relay]
        bind = "tcp://127.0.0.1:1"
        secret_key = {{file = "{tmp_path / ('relay' + keys.SECRET_SUFFIX)}"}}

        [ledger]
        url = "postgresql://s321:hunter2-secret@127.0.0.1:1/relay"

        [upstreams.cbp]
        plugin = "file"
        directory = "{tmp_path / 'out'}"

        [clients.alice]
        public_key = "{tmp_path / ('alice' + keys.PUBLIC_SUFFIX)}"
        originator_codes = ["MKT001"]
        upstream = "cbp"
        """), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "relay", "-c", str(config)], capture_output=True,
                          text=True, env=dict(os.environ), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ledger.url" in proc.stderr and "SQLite" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stdout + proc.stderr

"""The recovery path of docs/operations.md ("Recovering a ledger"), proven against the
sandbox over its real TLS link: a ledger lost after its inputs were archived is rebuilt
by putting the archived inputs back; nothing is lost, nothing is filed twice, and a
consignment that changed since is filed as its new version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from builders import jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.ledger import Ledger
from s321.sandbox import Sandbox
from s321.states import State


def p2p_table(sandbox: Sandbox) -> str:
    o = sandbox.transport_options()
    return (f'plugin = "p2p-socket"\nhost = "{o["host"]}"\nport = {o["port"]}\nca = "{o["ca"]}"\n'
            f'cert = {{ file = "{o["cert"]["file"]}" }}\nkey = {{ file = "{o["key"]["file"]}" }}')


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--once"],
                          capture_output=True, text=True, timeout=120)


def test_rebuilding_a_lost_ledger_from_archived_inputs_files_nothing_twice(tmp_path: Path) -> None:
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    orders = [{"ref": f"O{i}", **marketplace_fields(tracking_number=f"TRK{i:06d}")} for i in range(40)]
    write_jsonl(inbox / "001.jsonl", orders[:25])
    write_jsonl(inbox / "002.jsonl", orders[25:])
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        config = jsonl_pipeline_config(tmp_path, inbox, "unused", transport=p2p_table(sandbox),
                                       extra=f'archive_dir = "{archive}"\nsettle_seconds = 0')
        assert run_once(config).returncode == 0
        assert sorted(p.name for p in archive.iterdir()) == ["001.jsonl", "002.jsonl"]
        first = sandbox.store.acceptances()
        assert len(first) == 40

        # The ledger is lost (its disk died); the archive survived.
        for f in tmp_path.glob("s321-ledger.sqlite*"):
            f.unlink()
        for f in archive.iterdir():
            shutil.move(str(f), inbox / f.name)
        # Meanwhile one order changed: its new version must reach the receiver.
        orders[3]["ultimate_deliver_to"]["address"]["line2"] = "Apt 2"
        write_jsonl(inbox / "003.jsonl", [orders[3]])

        done = run_once(config)
        assert done.returncode == 0, done.stdout + done.stderr
        after = sandbox.store.acceptances()
        # Every repeat was recognised: the only new acceptance is the changed order.
        assert len(after) == 41, after[40:]
        changed = after[40]
        assert changed[1] in ("add", "replace")  # add: the rebuilt ledger knew of no filing
        held = sandbox.store.held()
        assert held[changed[0]][2] == changed[3]
        assert sandbox.store.accepted_records(changed[0])[-1]["ultimate_deliver_to"]["address"]["line2"] == "Apt 2"
        ledger = Ledger(tmp_path / "s321-ledger.sqlite")
        try:
            assert ledger.counts("shop") == {State.ACCEPTED: 40}
            for txid, (state, version, digest) in held.items():
                row = ledger.get(txid)
                assert row is not None and row["content_hash"] == row["accepted_hash"] == digest
        finally:
            ledger.close()

"""docs/operations.md's walk-through of the operator's loop, run as written: a finding,
the table fixed, the record filed, `s321 show` saying accepted. The block's commands
run in a shell, one by one, in a folder laid out as the doc says, against a real
sandbox; each must exit 0 unless its comment says `exit N`."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from s321.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
SHOP = ROOT / "contrib" / "samples" / "shop"
HEADING = "## The operator's loop: from a finding to an accepted filing"


def walkthrough() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(HEADING):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the walk-through has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def expected_exit(line: str) -> int:
    comment = line.partition("  #")[2]
    found = re.search(r"\bexit (\d+)", comment)
    return int(found.group(1)) if found else 0


def folder(tmp_path: Path, sandbox: Sandbox) -> Path:
    """What the doc describes: s321.toml, inbox/ with the sample export, tables/ with
    the sample tables, #1002 missing from the tracking table."""
    work = tmp_path / "work"
    (work / "inbox").mkdir(parents=True)
    (work / "tables").mkdir()
    shutil.copy(SHOP / "orders_export.csv", work / "inbox")
    for name in ("catalog.csv", "vendors.csv"):
        shutil.copy(SHOP / name, work / "tables")
    rows = (SHOP / "tracking.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (work / "tables" / "tracking.csv").write_text("".join(r for r in rows if not r.startswith("#1002,")),
                                                  encoding="utf-8")
    o = sandbox.transport_options()
    (work / "s321.toml").write_text(f"""
[ledger]
path = "ledger.sqlite"

[pipelines.shop]
originator_code = "E2E001"
filer_type = "online_marketplace"
mode_of_transport = "air"
archive_dir = "archive"
[pipelines.shop.defaults]
marketplace_seller_id = "HOUSE"
identified_marketplace_merchant = true
seller = {{ name = "Northwind Goods Ltd", address = {{ line1 = "1 Quay", city = "Vancouver", country = "CA" }} }}
[pipelines.shop.source]
plugin = "shopify-csv"
path = "inbox"
catalog = "tables/catalog.csv"
vendors = "tables/vendors.csv"
tracking = "tables/tracking.csv"
[pipelines.shop.transport]
plugin = "p2p-socket"
host = "{o['host']}"
port = {o['port']}
ca = "{o['ca']}"
cert = {{ file = "{o['cert']['file']}" }}
key = {{ file = "{o['key']['file']}" }}
""", encoding="utf-8")
    return work


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    lines = walkthrough()
    assert len(lines) >= 5
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        work = folder(tmp_path, sandbox)
        outputs = []
        for line in lines:
            proc = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, env=env,
                                  timeout=120)
            assert proc.returncode == expected_exit(line), f"{line}\n{proc.stdout}\n{proc.stderr}"
            outputs.append(proc.stdout)
        shows = [out for line, out in zip(lines, outputs) if line.startswith("s321 show")]
        assert "state      invalid" in shows[0] and "tracking_number" in shows[0]
        assert "state      accepted" in shows[-1] and "revalidated" in shows[-1]
        assert "#1002" in outputs[1] and "tracking_number" in outputs[1]
        assert "revalidated 1, sent 1, accepted 1" in outputs[4], outputs[4]
        assert "sent 0" in outputs[-1]
        filed = [txid for txid, n in sandbox.store.accepted_counts().items() if n]
        assert all(n == 1 for n in sandbox.store.accepted_counts().values()) and filed

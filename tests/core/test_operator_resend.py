"""Nothing known to be invalid is transmitted (issue 15): `resend` and `dlq retry`
validate each record against its pipeline's current profile and rates first, refuse
one with error findings (printing them, exit 1) and queue nothing for it; records are
named by order, bill or tracking number, several at once. Real files and ledger, the
CLI in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import ITEM, jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321.ledger import Ledger

OVER = {"ref": "#2001", **marketplace_fields(items=[{**ITEM, "quantity": 1, "listed_price": "900.00"}])}
IN_EUR = {"ref": "#2002", **marketplace_fields(items=[{**ITEM, "currency": "EUR"}])}
PLAIN = {"ref": "#2003", **marketplace_fields()}


def s321(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s321.cli", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def setup(tmp_path: Path) -> Path:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [OVER, IN_EUR, PLAIN])
    config = jsonl_pipeline_config(tmp_path, inbox, tmp_path / "out")
    assert s321("run", "-c", config, "--once").returncode == 1  # #2001 is over the limit
    return config


def without_eur(config: Path) -> None:
    """The config as an operator changed it since: no rate for EUR any more."""
    config.write_text(config.read_text(encoding="utf-8").replace('EUR = "1.08"\n', ""), encoding="utf-8")


def states(tmp_path: Path) -> dict[str, str]:
    ledger = Ledger(tmp_path / "s321-ledger.sqlite")
    try:
        return {ref: (ledger.get(ledger.find(ref)[0]) or {})["state"] for ref in ("#2001", "#2002", "#2003")}
    finally:
        ledger.close()


def test_resend_refuses_a_record_over_the_limit_and_sends_nothing(tmp_path: Path) -> None:
    config = setup(tmp_path)
    files = sorted((tmp_path / "out").glob("*.json"))
    proc = s321("resend", "-c", config, "#2001")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not-section-321" in proc.stderr and "#2001" in proc.stderr
    assert states(tmp_path)["#2001"] == "invalid"
    again = s321("run", "-c", config, "--once")
    assert again.returncode == 0 and "sent 0" in again.stdout, again.stdout
    assert sorted((tmp_path / "out").glob("*.json")) == files  # nothing went out


def test_resend_validates_against_the_current_rates_and_takes_several_names(tmp_path: Path) -> None:
    config = setup(tmp_path)
    without_eur(config)
    proc = s321("resend", "-c", config, "2002", "#2003")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unknown-currency-rate" in proc.stderr
    assert "#2003" not in proc.stderr and "queued as replace" in proc.stdout
    assert states(tmp_path) == {"#2001": "invalid", "#2002": "delivered", "#2003": "queued"}
    unknown = s321("resend", "-c", config, "#2003", "#nope")
    assert unknown.returncode == 2 and "no record named '#nope'" in unknown.stderr


def test_dlq_retry_refuses_a_dead_record_that_is_now_invalid(tmp_path: Path) -> None:
    config = setup(tmp_path)
    ledger = Ledger(tmp_path / "s321-ledger.sqlite")
    try:
        txids = [ledger.find(ref)[0] for ref in ("#2002", "#2003")]
        ledger.resend(txids[0]), ledger.resend(txids[1])
        ledger.claim("shop", "B-dead", 10)
        ledger.requeue(txids, "certificate refused", dead=txids)
    finally:
        ledger.close()
    without_eur(config)
    proc = s321("dlq", "retry", "-c", config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 dead records queued again, 1 refused" in proc.stdout
    assert "unknown-currency-rate" in proc.stderr
    assert states(tmp_path) == {"#2001": "invalid", "#2002": "dead", "#2003": "queued"}
    history = json.loads(s321("show", "-c", config, "#2003", "--json").stdout)["history"]
    assert [e["event"] for e in history][-2:] == ["dead", "queued"]

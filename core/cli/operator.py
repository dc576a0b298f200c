"""Operator commands over the ledger: status, dlq list/retry, resend, delete."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.daemon import live_health
from s321.ledger import Ledger
from s321.record import Action


def configure(sub: Any) -> None:
    p = sub.add_parser("status", help="per pipeline and state: counts, oldest queued, last error")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status)

    p = sub.add_parser("dlq", help="the dead-letter queue")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="{list,retry}")
    q = dlq_sub.add_parser("list", help="dead records and the error that put them there")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("-p", "--pipeline")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=dlq_list)
    q = dlq_sub.add_parser("retry", help="queue dead records again with a fresh retry budget")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("transaction_ids", nargs="*", help="transaction ids; default: all dead records")
    q.set_defaults(func=dlq_retry)

    p = sub.add_parser("resend", help="queue one consignment again (replace once accepted)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("transaction_id", help="the consignment's transaction id")
    p.set_defaults(func=lambda a: _requeue(a, None))

    p = sub.add_parser("delete", help="queue a delete of an accepted consignment")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("transaction_id", help="the consignment's transaction id")
    p.set_defaults(func=lambda a: _requeue(a, Action.DELETE))


def _ledger(args: argparse.Namespace) -> Ledger | None:
    loaded = load_or_report(args.config)
    if loaded is None:
        return None
    cfg = loaded[1].config.ledger
    return Ledger(cfg.path, cfg.synchronous)


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(time.time() - ts))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def status(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    if ledger is None:
        return Exit.CANNOT_RUN
    rows = ledger.status()
    _daemon_errors(args)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return Exit.OK
    if not rows:
        console.line(f"{ledger.path}: empty: no record has been received yet", "warning")
        return Exit.OK
    if console.is_terminal():
        console.table(["pipeline", "state", "count", "oldest queued", "last error"], [
            (row["pipeline"], row["state"], str(row["count"]),
             _age(row["oldest_queued"]) if row["state"] == "queued" else "", row["last_error"] or "")
            for row in rows])
        return Exit.OK
    last_pipeline = None
    for row in rows:
        if row["pipeline"] != last_pipeline:
            last_pipeline = row["pipeline"]
            print(f"{last_pipeline}:" + (f"  last error: {row['last_error']}" if row["last_error"] else ""))
        oldest = f"  oldest {_age(row['oldest_queued'])}" if row["state"] == "queued" else ""
        print(f"  {row['state']:<9} {row['count']:>8}{oldest}")
    return Exit.OK


def _daemon_errors(args: argparse.Namespace) -> None:
    """A running daemon's failing pipelines, from its /healthz: what it may not have been
    able to write to the ledger (a full disk, a read-only file system)."""
    loaded = load_or_report(args.config)
    health = live_health(loaded[1].config.daemon.http) if loaded else None
    for name, pipeline in sorted(((health or {}).get("pipelines") or {}).items()):
        if isinstance(pipeline, dict) and pipeline.get("error"):
            console.error(f"daemon: pipeline {name} is failing: {pipeline['error']}")


def dlq_list(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    if ledger is None:
        return Exit.CANNOT_RUN
    for row in ledger.dead(args.pipeline):
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{row['transaction_id']}  {row['pipeline']}  {row['ref']}  attempts {row['attempts']}: "
                  f"{row['last_error']}")
    return Exit.OK


def dlq_retry(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    if ledger is None:
        return Exit.CANNOT_RUN
    n = ledger.retry_dead(args.transaction_ids or None)
    print(f"{n} dead records queued again")
    return Exit.OK


def _requeue(args: argparse.Namespace, action: Action | None) -> int:
    ledger = _ledger(args)
    if ledger is None:
        return Exit.CANNOT_RUN
    try:
        print(ledger.resend(args.transaction_id, action))
    except (KeyError, ValueError) as exc:
        console.error(f"s321: {exc.args[0]}")
        return Exit.CANNOT_RUN
    return Exit.OK



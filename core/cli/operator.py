"""Operator commands over the ledger: status, show, dlq list/retry, resend, delete.

Records are named as people name them: an order name (`#1001` or `1001`), a master or
house bill, a tracking number, or a transaction id; several at once. `resend` and
`dlq retry` validate first (s321.refile): a record with error findings is refused,
with its findings, and nothing is queued for it.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from s321 import refile
from s321.cli import console
from s321.cli import revalidate as revalidate_cmd
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.config import LoadedConfig
from s321.daemon import live_health
from s321.ledger import Ledger, LedgerUnavailable
from s321.ledger_open import open_ledger
from s321.record import Action

REF_HELP = "order name, bill or house bill number, tracking number, or transaction id (several allowed)"


def configure(sub: Any) -> None:
    p = sub.add_parser("status", help="per pipeline and state: counts, oldest queued, last error",
                       description="Per pipeline and state: counts, the oldest queued record and the "
                       "last error; with --findings, every invalid, rejected and dead record with its "
                       "findings instead.")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--findings", action="store_true",
                   help="list the invalid, rejected and dead records with their findings")
    p.add_argument("-p", "--pipeline", help="only this pipeline")
    p.set_defaults(func=status)

    p = sub.add_parser("show", help="one record's story: states, attempts, answers, findings",
                       description="Print what the ledger knows of a record: its state, versions, "
                       "references, every event (read, sent, answered, queued again, dead), the "
                       "receiver's last answer and its findings.",
                       epilog="example:\n  s321 show -c s321.toml '#1001'")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("refs", nargs="+", metavar="REF", help=REF_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object a record")
    p.set_defaults(func=show)

    p = sub.add_parser("dlq", help="the dead-letter queue")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="{list,retry}")
    q = dlq_sub.add_parser("list", help="dead records and the error that put them there")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("-p", "--pipeline", help="only this pipeline")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=dlq_list)
    q = dlq_sub.add_parser("retry", help="queue dead records again with a fresh retry budget",
                           description="Queue dead records again with a fresh retry budget, each "
                           "validated first against its pipeline's current profile: one with error "
                           "findings stays dead and its findings are printed (exit 1).")
    q.add_argument("-c", "--config", required=True)
    q.add_argument("refs", nargs="*", metavar="REF", help=REF_HELP + "; default: all dead records")
    q.set_defaults(func=dlq_retry)

    p = sub.add_parser("resend", help="file records again, as a new version (validated first)",
                       description="Queue the current content of each record again as a new "
                       "version (a replace once the receiver holds one, else an add), so that a "
                       "receiver that lost it applies it. Each is validated first against its "
                       "pipeline's current profile and rates: one with error findings is refused, "
                       "its findings printed, and nothing is sent for it (exit 1).")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("refs", nargs="+", metavar="REF", help=REF_HELP)
    p.set_defaults(func=lambda a: _requeue(a, None))

    p = sub.add_parser("delete", help="queue a delete of filed consignments")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("refs", nargs="+", metavar="REF", help=REF_HELP)
    p.set_defaults(func=lambda a: _requeue(a, Action.DELETE))

    revalidate_cmd.configure(sub)


def _open(args: argparse.Namespace) -> tuple[LoadedConfig, Ledger] | None:
    loaded = load_or_report(args.config)
    if loaded is None:
        return None
    ledger = open_ledger(loaded[1].config.ledger, existing=True)
    name = getattr(args, "pipeline", None)
    if name and name not in loaded[1].pipelines:
        # A pipeline since removed from the config may still have records: the ledger's names count.
        known = sorted({*loaded[1].pipelines, *(row["pipeline"] for row in ledger.status())})
        if name not in known:
            ledger.close()
            console.error(f"{args.config}: no such pipeline: {name} (known: {', '.join(known)})")
            return None
    return loaded[1], ledger


def _ledger(args: argparse.Namespace) -> Ledger | None:
    opened = _open(args)
    return opened[1] if opened else None


def resolve_refs(ledger: Ledger, refs: list[str]) -> list[str] | None:
    """Transaction ids of the records named, in order, once each; None (after saying
    which) when a name finds no record or more than one."""
    txids: list[str] = []
    ok = True
    for ref in refs:
        found = ledger.find(ref)
        if not found:
            console.error(f"s321: no record named {ref!r} in {ledger.describe()} ({REF_HELP.split(' (')[0]})")
            ok = False
        elif len(found) > 1:
            console.error(f"s321: {ref!r} names {len(found)} records: {', '.join(found)}; give the transaction id")
            ok = False
        elif found[0] not in txids:
            txids.append(found[0])
    return txids if ok else None


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(time.time() - ts))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def status(args: argparse.Namespace) -> int:
    try:
        ledger = _ledger(args)
    except LedgerUnavailable:
        _daemon_errors(args)  # a running daemon says it waits for the database
        raise
    if ledger is None:
        return Exit.CANNOT_RUN
    if args.findings:
        return _findings(ledger, args)
    rows = [row for row in ledger.status() if not args.pipeline or row["pipeline"] == args.pipeline]
    _daemon_errors(args)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return Exit.OK
    if not rows:
        console.line(f"{ledger.describe()}: empty: no record has been received yet", "warning")
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


def _findings(ledger: Ledger, args: argparse.Namespace) -> int:
    rows = ledger.needing_attention(args.pipeline)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return Exit.OK
    if not rows:
        console.line("no invalid, rejected or dead records", "ok")
        return Exit.OK
    for row in rows:
        console.line(f"{row['pipeline']}  {row['state']:<8} {row['ref']}  {row['transaction_id']}"
                     + (f"  ({row['source']})" if row["source"] else ""),
                     "error" if row["state"] != "invalid" else "warning")
        for f in row["findings"]:
            print(f"    {f.get('code')} {f.get('field') or '-'}: {f.get('message')}")
        if row["state"] == "dead" and row["last_error"]:
            print(f"    {row['last_error']}")
    return Exit.OK


def show(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    if ledger is None:
        return Exit.CANNOT_RUN
    txids = resolve_refs(ledger, args.refs)
    if txids is None:
        return Exit.CANNOT_RUN
    for txid in txids:
        row = ledger.get(txid) or {}
        history = ledger.history(txid)
        findings = json.loads(row.get("findings") or "[]")
        ack = json.loads(row["ack"]) if row.get("ack") else None
        if args.json:
            keep = ("transaction_id", "pipeline", "ref", "source", "state", "action", "version", "accepted_version",
                    "attempts", "last_error", "reason")
            print(json.dumps({**{k: row.get(k) for k in keep}, "references": ledger.references_of(txid),
                              "history": history, "findings": findings, "ack": ack}))
            continue
        console.line(f"{row['ref']}  {txid}  ({row['pipeline']})", "ok" if row["state"] == "accepted" else None)
        print(f"  state      {row['state']}" + (f" (version {row['version']})" if row.get("version") else ""))
        if row.get("accepted_version"):
            print(f"  accepted   version {row['accepted_version']}")
        print(f"  read at    {row.get('source') or '-'}")
        print(f"  references {', '.join(ledger.references_of(txid))}")
        print(f"  attempts   {row['attempts']}" + (f"; last error: {row['last_error']}" if row.get("last_error") else ""))
        print("  history")
        for event in history:
            version = f" v{event['version']}" if event["version"] else ""
            print(f"    {_when(event['at'])}  {event['event']:<10}{version}  {event['detail'] or ''}".rstrip())
        if ack:
            errors = ", ".join(f"{e.get('code')} {e.get('field') or '-'}" for e in ack.get("errors") or [])
            print(f"  last answer {ack.get('status')}" + (f": {errors}" if errors else ""))
        if findings:
            print("  findings")
            for f in findings:
                where = f" at {f['location']}" if f.get("location") else ""
                print(f"    {f.get('severity')} {f.get('code')} {f.get('field') or '-'}{where}: {f.get('message')}")
    return Exit.OK


def _daemon_errors(args: argparse.Namespace) -> None:
    """A running daemon's failing pipelines, from its /healthz: what it may not have been
    able to write to the ledger (a full disk, a read-only file system)."""
    loaded = load_or_report(args.config)
    health = live_health(loaded[1].config.daemon.http) if loaded else None
    if isinstance((health or {}).get("ledger"), str):
        console.error(f"daemon: {health['ledger']}")  # type: ignore[index]
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


def _report_refused(ledger: Ledger, refused: list[refile.Refused], what: str) -> None:
    for r in refused:
        row = ledger.get(r.transaction_id) or {}
        console.error(f"s321: {row.get('ref', '')} {r.transaction_id}: not {what}: "
                      + (r.reason or "it does not pass validation against the current profile"))
        for f in r.findings:
            console.error(f"    {f.code} {f.field or '-'}: {f.message}")


def dlq_retry(args: argparse.Namespace) -> int:
    opened = _open(args)
    if opened is None:
        return Exit.CANNOT_RUN
    loaded, ledger = opened
    if args.refs:
        txids = resolve_refs(ledger, args.refs)
        if txids is None:
            return Exit.CANNOT_RUN
    else:
        txids = [row["transaction_id"] for row in ledger.dead()]
    ok, refused = refile.checked(loaded, ledger, txids)
    _report_refused(ledger, refused, "queued again")
    n = ledger.retry_dead(ok) if ok else 0
    print(f"{n} dead records queued again" + (f", {len(refused)} refused" if refused else ""))
    return Exit.FINDINGS if refused else Exit.OK


def _requeue(args: argparse.Namespace, action: Action | None) -> int:
    opened = _open(args)
    if opened is None:
        return Exit.CANNOT_RUN
    loaded, ledger = opened
    txids = resolve_refs(ledger, args.refs)
    if txids is None:
        return Exit.CANNOT_RUN
    ok, refused = refile.checked(loaded, ledger, txids, action)
    _report_refused(ledger, refused, "sent")
    failed = False
    for txid in ok:
        try:
            print(ledger.resend(txid, action))
        except (KeyError, ValueError) as exc:
            console.error(f"s321: {exc.args[0]}")
            failed = True
    if failed:
        return Exit.CANNOT_RUN
    return Exit.FINDINGS if refused else Exit.OK

"""`s321 ledger init|check|purge`: make a new ledger file where none is, check an
existing one (SQLite's integrity check of every page and index, and the counts per
state), or remove the raw input it keeps past a retention period."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.ledger import Ledger
from s321.sqlitefile import StoreFileError


def configure(sub: Any) -> None:
    p = sub.add_parser("ledger", help="make or check the ledger file",
                       description="The ledger file: `init` makes a new one where no file is; "
                       "`check` runs SQLite's integrity check over an existing one and counts "
                       "its records per state.")
    ledger_sub = p.add_subparsers(dest="ledger_command", required=True, metavar="{init,check,purge}")
    q = ledger_sub.add_parser("init", help="make a new, empty ledger (refused if a file is there)",
                              description="Make a new, empty ledger at the config's ledger path. "
                              "Refused when any file is there: a ledger is never made anew over one.",
                              epilog="example:\n  s321 ledger init -c s321.toml")
    q.add_argument("-c", "--config", required=True, help="the config file (TOML)")
    q.set_defaults(func=init)
    q = ledger_sub.add_parser("check", help="integrity check and counts per state",
                              description="Check the ledger file page by page and count its records "
                              "per state. Exit 0 when sound, 3 when damaged, 2 when it cannot be opened.",
                              epilog="example:\n  s321 ledger check -c s321.toml --json")
    q.add_argument("-c", "--config", required=True, help="the config file (TOML)")
    q.add_argument("--json", action="store_true", help="one JSON object")
    q.set_defaults(func=check)
    q = ledger_sub.add_parser("purge", help="remove raw input kept past retention",
                              description="Remove the raw units the ledger keeps of invalid records "
                              "(to map them again when a table is fixed) that were stored more than "
                              "DAYS days ago. Their records and history stay; they can no longer be "
                              "revalidated without reading their input file again.",
                              epilog="example:\n  s321 ledger purge -c s321.toml --older-than 30")
    q.add_argument("-c", "--config", required=True, help="the config file (TOML)")
    q.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                   help="remove what was stored more than this many days ago")
    q.set_defaults(func=purge)


def init(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    path = loaded[1].config.ledger.path
    if path.exists() or path.is_symlink():
        console.error(f"{path}: a file is there already; `ledger init` makes a ledger only where none is"
                      f" (use `s321 ledger check` to look at it)")
        return Exit.CANNOT_RUN
    Ledger(path).close()
    print(f"{path}: new ledger")
    return Exit.OK


def check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    path = loaded[1].config.ledger.path
    if not path.exists():
        console.error(f"{path}: no ledger there (a first `s321 run` makes one, or `s321 ledger init`)")
        return Exit.CANNOT_RUN
    try:
        ledger = Ledger(path)
    except StoreFileError as exc:
        console.error(str(exc))
        return Exit.CANNOT_RUN
    try:
        problems, counts = ledger.check()
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"ledger": str(path), "ok": not problems, "problems": problems, "counts": counts}))
    else:
        print(f"{path}: {'ok' if not problems else 'DAMAGED'}")
        for problem in problems:
            console.error(f"  {problem}")
        for state, n in sorted(counts.items()):
            print(f"  {state}: {n}")
    return Exit.FAILED if problems else Exit.OK


def purge(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    if args.older_than < 0:
        console.error(f"--older-than {args.older_than:g}: give a number of days, 0 or more")
        return Exit.CANNOT_RUN
    path = loaded[1].config.ledger.path
    if not path.exists():
        console.error(f"{path}: no ledger there")
        return Exit.CANNOT_RUN
    ledger = Ledger(path, loaded[1].config.ledger.synchronous)
    try:
        n = ledger.purge_raw(time.time() - args.older_than * 86400)
    finally:
        ledger.close()
    print(f"{path}: {n} kept raw units older than {args.older_than:g} days removed")
    return Exit.OK

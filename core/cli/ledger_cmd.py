"""`s321 ledger init|check|purge|migrate|copy`: make a new ledger where none is, check an
existing one (SQLite's integrity check of every page and index, and the counts per
state), remove the raw input it keeps past a retention period, bring a database's
schema to this version of s321, or copy a whole ledger from one backend to another
(SQLite to PostgreSQL and back), verified."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.ledger_open import open_ledger
from s321.sqlitefile import StoreFileError

COMMANDS = "{init,check,purge,migrate,copy}"


def configure(sub: Any) -> None:
    p = sub.add_parser("ledger", help="make, check, migrate or copy the ledger",
                       description="The ledger: `init` makes a new one where none is; "
                       "`check` checks an existing one and counts its records per state; "
                       "`migrate` brings a database's schema to this version of s321; "
                       "`copy` moves a whole ledger to another backend.")
    ledger_sub = p.add_subparsers(dest="ledger_command", required=True, metavar=COMMANDS)
    q = ledger_sub.add_parser("init", help="make a new, empty ledger (refused if one is there)",
                              description="Make a new, empty ledger where the config says. "
                              "Refused when any file is there (SQLite) or the database holds a ledger "
                              "already (PostgreSQL): a ledger is never made anew over one.",
                              epilog="example:\n  s321 ledger init -c s321.toml")
    q.add_argument("-c", "--config", required=True, help="the config file (TOML)")
    q.set_defaults(func=init)
    q = ledger_sub.add_parser("check", help="integrity check and counts per state",
                              description="Check the ledger (a SQLite file page by page) and count its "
                              "records per state. Exit 0 when sound, 3 when damaged, 2 when it cannot be "
                              "opened.",
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
    q = ledger_sub.add_parser("migrate", help="bring the ledger's schema to this version of s321",
                              description="Bring the ledger's schema to the version this s321 writes "
                              "(an empty database gets the whole schema). Safe while daemons run: on "
                              "PostgreSQL it holds an advisory lock, and daemons that start meanwhile "
                              "wait for it. Refused when a newer s321 wrote the ledger.",
                              epilog="example:\n  s321 ledger migrate -c s321.toml")
    q.add_argument("-c", "--config", required=True, help="the config file (TOML)")
    q.set_defaults(func=migrate)
    q = ledger_sub.add_parser("copy", help="copy a whole ledger to another backend, verified",
                              description="Copy every table of a ledger into an empty one (a SQLite "
                              "file to a PostgreSQL database, or back), then compare the two: counts "
                              "per table and content hashes. Stop the daemons first. A PostgreSQL "
                              "password comes from the config (-c, for --to) or from PGPASSWORD / "
                              "~/.pgpass, never from the command line.",
                              epilog="example:\n  s321 ledger copy --from sqlite:///srv/s321/s321-ledger.sqlite "
                              "--to postgresql://s321@db.example:5432/s321")
    q.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="the ledger to copy: sqlite:///ABSOLUTE/PATH, a path, or postgresql://USER@HOST:PORT/DB")
    q.add_argument("--to", dest="target", metavar="URL",
                   help="the empty ledger to fill (default: the ledger of -c CONFIG)")
    q.add_argument("-c", "--config", help="the config whose ledger is the target (with its password)")
    q.add_argument("--json", action="store_true", help="one JSON object")
    q.set_defaults(func=copy)


def init(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    section = loaded[1].config.ledger
    if section.backend == "postgresql":
        from s321.ledger_migrate import migrate as migrate_schema

        before, after = migrate_schema(section)
        if before:
            console.error(f"{section.describe()}: the database holds a ledger already (schema {before});"
                          f" `ledger init` makes one only where none is (use `s321 ledger check`)")
            return Exit.CANNOT_RUN
        print(f"{section.describe()}: new ledger (schema {after})")
        return Exit.OK
    path = section.path
    if path.exists() or path.is_symlink():
        console.error(f"{path}: a file is there already; `ledger init` makes a ledger only where none is"
                      f" (use `s321 ledger check` to look at it)")
        return Exit.CANNOT_RUN
    open_ledger(path).close()
    print(f"{path}: new ledger")
    return Exit.OK


def check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    section = loaded[1].config.ledger
    where = section.describe()
    if section.backend == "sqlite" and not section.path.exists():
        console.error(f"{where}: no ledger there (a first `s321 run` makes one, or `s321 ledger init`)")
        return Exit.CANNOT_RUN
    try:
        ledger = open_ledger(section)
    except StoreFileError as exc:
        console.error(str(exc))
        return Exit.CANNOT_RUN
    try:
        problems, counts = ledger.check()
        version = ledger.schema_version()
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"ledger": where, "backend": section.backend, "schema_version": version,
                          "ok": not problems, "problems": problems, "counts": counts}))
    else:
        print(f"{where}: {'ok' if not problems else 'DAMAGED'} ({section.backend}, schema {version})")
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
    section = loaded[1].config.ledger
    if section.backend == "sqlite" and not section.path.exists():
        console.error(f"{section.path}: no ledger there")
        return Exit.CANNOT_RUN
    ledger = open_ledger(section)
    try:
        n = ledger.purge_raw(time.time() - args.older_than * 86400)
    finally:
        ledger.close()
    print(f"{section.describe()}: {n} kept raw units older than {args.older_than:g} days removed")
    return Exit.OK


def migrate(args: argparse.Namespace) -> int:
    from s321.ledger_migrate import migrate as migrate_schema

    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    section = loaded[1].config.ledger
    before, after = migrate_schema(section)
    if before == after:
        print(f"{section.describe()}: schema {after}, current; nothing to do")
    else:
        print(f"{section.describe()}: schema {before} -> {after}")
    return Exit.OK


def copy(args: argparse.Namespace) -> int:
    from s321.ledger_copy import copy_ledger

    target: Any = args.target
    if target is None:
        if args.config is None:
            console.error("s321 ledger copy: give --to URL, or -c CONFIG to copy into that config's ledger")
            return Exit.CANNOT_RUN
        loaded = load_or_report(args.config)
        if loaded is None:
            return Exit.CANNOT_RUN
        target = loaded[1].config.ledger
    # A copy that differs after it was made raises (S321Error, exit 2): printed here is
    # only a verified one.
    report = copy_ledger(args.source, target)
    if args.json:
        print(json.dumps({"source": report.source, "target": report.target, "verified": True,
                          "tables": {t: {"rows": n, "sha256": report.hashes.get(t)}
                                     for t, n in report.counts.items()}}))
        return Exit.OK
    print(f"{report.source} -> {report.target}")
    width = max((len(t) for t in report.counts), default=0)
    for table, n in report.counts.items():
        print(f"  {table:<{width}}  {n:>9} rows  sha256 {(report.hashes.get(table) or '')[:16]}")
    print(f"verified: {sum(report.counts.values())} rows in {len(report.counts)} tables, counts and content "
          "hashes equal on both sides")
    return Exit.OK

"""`s321 revalidate`: map and validate again, with the tables, defaults and profile as
they are now, the records kept with their raw unit (s321.refile): the never-filed
invalid ones, or with `--include-filed` the filed ones too (`--dry-run` counts the
replaces that would go out, and changes nothing)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from s321 import app, refile
from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.errors import ConfigError
from s321.ledger_open import open_ledger


def configure(sub: Any) -> None:
    p = sub.add_parser("revalidate", help="map and validate invalid records again, now",
                       description="Map and validate again, with the enrichment tables, defaults "
                       "and profile as they are now, every never-filed invalid record of the pipelines "
                       "(from its raw unit kept in the ledger: the input file is not needed); those now "
                       "valid are queued and go out with the next run. The daemon does this by itself "
                       "when a table, the defaults or the profile change. Records already filed are "
                       "revalidated only with --include-filed (a changed one goes as a replace): "
                       "try it with --dry-run first.",
                       epilog="example:\n  s321 revalidate -c s321.toml -p shop")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-p", "--pipeline", action="append", default=[],
                   help="only this pipeline (repeatable); default: every pipeline")
    p.add_argument("--include-filed", action="store_true",
                   help="also records already filed (a changed one is sent as a replace)")
    p.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object a pipeline")
    p.set_defaults(func=revalidate)


def revalidate(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    cfg = loaded[1]
    unknown = [p for p in args.pipeline if p not in cfg.pipelines]
    if unknown:
        console.error(f"{args.config}: no such pipeline: {', '.join(unknown)} (known: {', '.join(cfg.pipelines)})")
        return Exit.CANNOT_RUN
    names = args.pipeline or list(cfg.pipelines)
    ledger = open_ledger(cfg.config.ledger, existing=True)
    still_invalid = 0
    try:
        for name in names:
            try:
                processor = app.open_pipeline(cfg, name)
            except ConfigError as exc:
                for line in exc.lines:
                    console.error(line)
                return Exit.CANNOT_RUN
            report = refile.revalidate(processor, ledger, args.include_filed, args.dry_run)
            if not args.dry_run and not args.include_filed:
                ledger.set_fingerprint(name, refile.fingerprint(cfg.pipelines[name], cfg.rates))
            still_invalid += report.still_invalid
            if args.json:
                print(json.dumps(report.as_dict()))
                continue
            would = "would be " if args.dry_run else ""
            line = (f"{name}: {report.examined} examined, {report.now_valid} {would}queued (now valid), "
                    f"{report.still_invalid} still invalid")
            if args.include_filed:
                line += f", {report.replaces} replaces {'would go' if args.dry_run else 'queued'}"
            if report.unreadable:
                line += f", {len(report.unreadable)} kept units unreadable (read their files again)"
            console.line(line, "warning" if report.still_invalid else None)
    finally:
        ledger.close()
    return Exit.FINDINGS if still_invalid else Exit.OK

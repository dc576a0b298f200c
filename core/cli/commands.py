"""One function per command: call the core, print the result, return the exit code."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s321 import app
from s321.errors import ConfigError, S321Error
from s321.pipeline import Status

EXTENSIONS: list[Callable[[Any], None]] = []
"""Functions adding further subcommands (sandbox, relay, ...), each given the subparsers."""


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def load_or_report(path: str) -> tuple[Any, Any] | None:
    try:
        return app.load(path)
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return None


def plugins(args: argparse.Namespace) -> int:
    registry = app.load_registry(args.config)
    if args.json:
        for info in registry.plugins:
            print(json.dumps(info.as_dict()))
        return 0
    for info in registry.plugins:
        dist = f"{info.distribution} {info.version}" if info.distribution else "?"
        print(f"{info.name:<18} {info.status:<8} {dist}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, name in info.components:
            print(f"    {kind:<10} {name}")
    return 0


def check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    registry, cfg = loaded
    print(f"{args.config}: ok ({len(cfg.pipelines)} pipelines: {', '.join(cfg.pipelines)})")
    if not args.connect:
        return 0
    failed = 0
    for name, result in app.probe_transports(cfg):
        ok, message = result
        failed += not ok
        print(f"{name}: {'reachable' if ok else 'FAILED'}: {message}")
    return 1 if failed else 0


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(app.schema(args.kind), indent=2))
    return 0


def preview(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 2
    _registry, cfg = loaded
    counts: Counter[str] = Counter()
    by_code: dict[str, list[str]] = {}
    skipped: Counter[str] = Counter()
    try:
        for outcome in app.preview(cfg, args.pipeline, [Path(f) for f in args.files]):
            counts[outcome.status.value] += 1
            if args.json:
                print(outcome.to_json())
                continue
            if outcome.status is Status.SKIPPED:
                skipped[outcome.reason or "?"] += 1
            for f in outcome.findings:
                by_code.setdefault(f"{f.code} ({f.severity.value})", []).append(
                    f"{f.location or outcome.source}: {f.field or '-'}: {f.message}")
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return 2
    except OSError as exc:
        _err(f"cannot read input: {exc}")
        return 2
    if not args.json:
        print(f"pipeline {args.pipeline}: " + ", ".join(
            f"{counts.get(s.value, 0)} {s.value}" for s in Status))
        for reason, n in skipped.most_common():
            print(f"  skipped x{n}: {reason}")
        for code, lines in sorted(by_code.items()):
            print(f"  {code} x{len(lines)}")
            for line in lines:
                print(f"    {line}")
    if sum(counts.values()) == 0 and args.files:
        return 2
    return 1 if counts.get(Status.INVALID.value) else 0


def run(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 2
    registry, cfg = loaded
    unknown = [p for p in args.pipeline if p not in cfg.pipelines]
    if unknown:
        _err(f"{args.config}: no such pipeline: {', '.join(unknown)} (known: {', '.join(cfg.pipelines)})")
        return 2
    if not args.once:
        from s321.daemon import Daemon
        return Daemon(args.config).run_forever()
    watch = None
    if sys.stderr.isatty() and not args.json:
        from s321.cli.progress import show as watch
    summaries = app.run_once(registry, cfg, args.pipeline, watch=watch)
    for s in summaries:
        if args.json:
            print(json.dumps(s.as_dict()))
            continue
        c = s.counts
        line = (f"{s.pipeline} -> {s.transport}: received {c['received']}, valid {c['valid']}, "
                f"invalid {c['invalid']}, skipped {c['skipped']}, sent {c['sent']}")
        if c["unchanged"]:
            line += f" ({c['unchanged']} already in the ledger, unchanged)"
        if s.acknowledges:
            line += f", accepted {c['accepted']}, rejected {c['rejected']}"
        if c["retried"] or c["dead"]:
            line += f", retried {c['retried']}, dead {c['dead']}"
        print(line)
        if s.queued or s.awaiting_ack:
            print(f"  still owed: {s.queued} queued, {s.awaiting_ack} awaiting an ack (kept in the ledger)")
        for txid, findings in s.rejections:
            for f in findings:
                print(f"  rejected {txid}: {f.code} {f.field or '-'}: {f.message}")
        if s.error:
            print(f"  error: {s.error}")
    return 1 if any(s.error for s in summaries) else 0


__all__ = ["EXTENSIONS", "S321Error"]

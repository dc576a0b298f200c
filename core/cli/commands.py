"""One function per command: call the core, print the result, return the exit code."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s321 import app, logs
from s321.cli import console
from s321.cli.exitcodes import Exit
from s321.cli.preview_view import PreviewView
from s321.errors import ConfigError, S321Error
from s321.pipeline import Status

EXTENSIONS: list[Callable[[Any], None]] = []
"""Functions adding further subcommands (sandbox, relay, ...), each given the subparsers."""


def _err(line: str) -> None:
    console.error(line)


def load_or_report(path: str) -> tuple[Any, Any] | None:
    try:
        return app.load(path)
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return None


def plugins(args: argparse.Namespace) -> int:
    try:
        registry = app.load_registry(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return Exit.CANNOT_RUN
    if args.json:
        for info in registry.plugins:
            print(json.dumps(info.as_dict()))
        return Exit.OK
    if console.is_terminal():
        console.table(["plugin", "status", "distribution", "components", "error"], [
            (info.name, info.status,
             f"{info.distribution} {info.version}" if info.distribution else "?",
             "\n".join(f"{kind} {name}" for kind, name in info.components), info.error or "")
            for info in registry.plugins])
        return Exit.OK
    for info in registry.plugins:
        dist = f"{info.distribution} {info.version}" if info.distribution else "?"
        print(f"{info.name:<18} {info.status:<8} {dist}")
        if info.error:
            print(f"    error: {info.error}")
        for kind, name in info.components:
            print(f"    {kind:<10} {name}")
    return Exit.OK


def check(args: argparse.Namespace) -> int:
    try:
        report = app.check(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return Exit.CANNOT_RUN
    for line in report.errors:
        _err(line)
    for line in report.warnings:
        console.warn(f"warning: {line}")
    if report.errors:
        return Exit.CANNOT_RUN
    assert report.loaded is not None
    cfg = report.loaded
    warned = f", {len(report.warnings)} warnings" if report.warnings else ""
    console.line(f"{args.config}: ok ({len(cfg.pipelines)} pipelines: {', '.join(cfg.pipelines)}{warned})",
                 "warning" if report.warnings else "ok")
    if not args.connect:
        return Exit.OK
    failed = 0 if _reach_ledger(cfg.config.ledger) else 1
    for name, result in app.probe_transports(cfg):
        ok, message = result
        failed += not ok
        console.line(f"{name}: {'reachable' if ok else 'FAILED'}: {message}", "ok" if ok else "error")
    return Exit.FAILED if failed else Exit.OK


def _reach_ledger(section: Any) -> bool:
    """`check --connect`: open the ledger (reach the database) and say its backend,
    where it is (a URL without its password) and its schema version."""
    from s321.ledger_open import open_ledger

    where = section.describe()
    if section.backend == "sqlite" and not section.path.exists():
        console.line(f"ledger: {where}: no file yet (a first `s321 run` makes one)", "warning")
        return True
    try:
        ledger = open_ledger(section)
        try:
            version = ledger.schema_version()
        finally:
            ledger.close()
    except S321Error as exc:
        console.line(f"ledger: FAILED: {exc}", "error")
        return False
    console.line(f"ledger: reachable: {section.backend} {where}, schema {version}", "ok")
    return True


def completion(args: argparse.Namespace) -> int:
    import argcomplete
    print(argcomplete.shellcode(["s321"], shell=args.shell))
    return Exit.OK


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(app.schema(args.kind), indent=2))
    return Exit.OK


def preview(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    _registry, cfg = loaded
    view = PreviewView(args.pipeline)
    try:
        for outcome in app.preview(cfg, args.pipeline, [Path(f) for f in args.files],
                                   jobs=getattr(args, "jobs", None) or cfg.config.preview.jobs):
            if args.json:
                view.counts[outcome.status.value] += 1
                print(outcome.to_json())
            else:
                view.add(outcome)
    except ConfigError as exc:
        for line in exc.lines:
            _err(line)
        return Exit.CANNOT_RUN
    except BrokenPipeError:
        raise  # our reader went away, not our input: main() stops quietly
    except OSError as exc:
        _err(f"cannot read input: {exc}")
        return Exit.CANNOT_RUN
    if not args.json:
        view.render()
    elif view.total == 0:  # stdout stays JSON lines (none); say why on stderr
        _err(f"pipeline {args.pipeline}: nothing to preview: the input holds no records")
    if view.total == 0 and args.files:
        return Exit.CANNOT_RUN
    return Exit.FINDINGS if view.counts.get(Status.INVALID.value) else Exit.OK


def run(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    registry, cfg = loaded
    unknown = [p for p in args.pipeline if p not in cfg.pipelines]
    if unknown:
        _err(f"{args.config}: no such pipeline: {', '.join(unknown)} (known: {', '.join(cfg.pipelines)})")
        return Exit.CANNOT_RUN
    if not args.pipeline and not any(p.config.enabled for p in cfg.pipelines.values()):
        # Said, not a silent success: a daemon still runs (a SIGHUP may enable one).
        console.warn(f"{args.config}: every pipeline has enabled = false: nothing to "
                     f"{'run' if args.once else 'run until a reload enables one'}")
    if not args.once:
        from s321.daemon import Daemon
        if getattr(args, "log_level", None) is None:  # the daemon tells its story by default
            logs.configure(level="info", json=getattr(args, "log_json", None))
        return Daemon(args.config, only=args.pipeline or None).run_forever()
    watch = None
    if sys.stderr.isatty() and not args.json:
        from s321.cli.progress import show as watch
    from s321.runner import run_once
    stop = threading.Event()  # SIGINT / SIGTERM: stop within seconds, still print the summary
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summaries = run_once(registry, cfg, args.pipeline or None, watch=watch, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for s in summaries:
        if args.json:
            print(json.dumps(s.as_dict()))
            continue
        c = s.counts
        # Revalidated: invalid before, valid now (a table, the defaults or the profile changed).
        revalidated = f"revalidated {c['revalidated']}, " if c["revalidated"] else ""
        line = (f"{s.pipeline} -> {s.transport}: received {c['received']}, valid {c['valid']}, "
                f"invalid {c['invalid']}, skipped {c['skipped']}, {revalidated}sent {c['sent']}")
        if c["unchanged"]:
            line += f" ({c['unchanged']} already in the ledger, unchanged)"
        if s.acknowledges:
            line += f", accepted {c['accepted']}, rejected {c['rejected']}"
        else:
            line += f", delivered {c['delivered']}"
        if c["retried"] or c["dead"]:
            line += f", retried {c['retried']}, dead {c['dead']}"
        console.line(line, "error" if s.error else ("warning" if c["invalid"] or c["rejected"] else None))
        if s.queued or s.awaiting_ack:
            console.line(f"  still owed: {s.queued} queued, {s.awaiting_ack} awaiting an ack "
                         f"(kept in the ledger)", "warning")
        for txid, findings in s.rejections:
            name = s.names.get(txid)
            for f in findings:
                console.line(f"  rejected {name + ' ' if name else ''}({txid}): {f.code} {f.field or '-'}: {f.message}",
                             "error")
        if s.error:
            console.line(f"  error: {s.error}", "error")
    return Exit.INTERRUPTED if stop.is_set() else run_exit_code(summaries)


def run_exit_code(summaries: list[Any]) -> Exit:
    """3 when a pipeline failed or still owes records, else 1 when a record was invalid."""
    if any(s.error or s.queued or s.awaiting_ack for s in summaries):
        return Exit.FAILED
    if any(s.counts.get("invalid") for s in summaries):
        return Exit.FINDINGS
    return Exit.OK


__all__ = ["EXTENSIONS", "S321Error"]

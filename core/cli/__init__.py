"""The `s321` command line: parses arguments and calls the core (`s321.app`); it holds
no logic of its own beyond choosing how to show results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from s321 import gctune, logs
from s321.cli import commands, operator
from s321.relay import cli as relay_cli
from s321.sandbox import cli as sandbox_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s321", description="Transmit CBP Section 321 advance data.")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
    parser.add_argument("--log-json", action="store_true", default=None,
                        help="JSON log lines even on a terminal")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list plugins, their status and components")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("-c", "--config", help="honour this config's plugin block list")
    p.set_defaults(func=commands.plugins)

    p = sub.add_parser("check", help="validate a config; exit 0 when valid, else 1")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--connect", action="store_true",
                   help="also connect to each transport and report reachability, sending no data")
    p.set_defaults(func=commands.check)

    p = sub.add_parser("schema", help="JSON Schema of the config or the record")
    p.add_argument("kind", choices=["config", "record"])
    p.set_defaults(func=commands.schema)

    p = sub.add_parser("preview", help="map and validate, transmit nothing")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-p", "--pipeline", required=True)
    p.add_argument("files", nargs="*", help="input files (default: the configured source)")
    p.add_argument("--json", action="store_true", help="one JSON object per unit")
    p.set_defaults(func=commands.preview)

    p = sub.add_parser("run", help="run the configured pipelines")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    p.add_argument("-p", "--pipeline", action="append", default=[], help="only this pipeline (repeatable)")
    p.add_argument("--json", action="store_true", help="summaries as JSON lines")
    p.set_defaults(func=commands.run)

    operator.configure(sub)
    sandbox_cli.configure(sub)
    relay_cli.configure(sub)
    for extension in commands.EXTENSIONS:
        extension(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(level=args.log_level, json=args.log_json)
    gctune.for_batches()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `s321` command line: parses arguments and calls the core (`s321.app`); it holds
no logic of its own beyond choosing how to show results.

Every command has a description and ends its help with an example; `--log-level` and
`--log-json` work before or after the command; exit codes are those of
`s321.cli.exitcodes`, the same for every command. Shell completion (bash, zsh) comes
from argcomplete: `eval "$(s321 completion bash)"` (or `zsh`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version

import argcomplete

from s321 import gctune, logs, parallel
from s321.cli import ace, commands, console, console_cmd, ledger_cmd, operator
from s321.cli.exitcodes import EPILOG, Exit
from s321.errors import S321Error
from s321.relay import cli as relay_cli
from s321.sandbox import cli as sandbox_cli

EXAMPLES: dict[str, str] = {
    "plugins": "s321 plugins --json",
    "check": "s321 check -c s321.toml --connect",
    "schema": "s321 schema config > s321.schema.json",
    "preview": "s321 preview -c s321.toml -p shop exports/orders_export.csv",
    "run": "s321 run -c s321.toml --once -p shop",
    "status": "s321 status -c s321.toml --json",
    "dlq": "s321 dlq list -c s321.toml",
    "dlq list": "s321 dlq list -c s321.toml -p shop",
    "dlq retry": "s321 dlq retry -c s321.toml T0A1B2C3D4",
    "resend": "s321 resend -c s321.toml T0A1B2C3D4",
    "delete": "s321 delete -c s321.toml T0A1B2C3D4",
    "completion": "s321 completion bash > ~/.local/share/bash-completion/completions/s321",
    "ledger": "s321 ledger check -c s321.toml",
    "ledger init": "s321 ledger init -c s321.toml",
    "ledger check": "s321 ledger check -c s321.toml --json",
    "ledger migrate": "s321 ledger migrate -c s321.toml",
    "ledger copy": "s321 ledger copy --from sqlite:///srv/s321/s321-ledger.sqlite --to postgresql://s321@db:5432/s321",
    "sandbox": "s321 sandbox --port-file sandbox.port",
    "sandbox report": "s321 sandbox report --db .s321-sandbox/sandbox.sqlite",
    "relay": "s321 relay -c relay.toml",
    "keys": "s321 keys generate -d keys client-a",
    "keys generate": "s321 keys generate -d keys client-a",
}
"""One example per command, shown at the end of its help."""

LOG_LEVELS = ("debug", "info", "warning", "error")

COMMON_HELP: dict[str, str] = {
    "config": "the config file (TOML)",
    "pipeline": "the pipeline, by its name in the config",
    "json": "one JSON object a line, for scripts",
    "db": "the sandbox's SQLite file",
    "log_level": "debug, info, warning, error (default: warning; info for the daemon, `s321 run` without --once)",
    "log_json": "JSON log lines even on a terminal",
}
"""Descriptions of options that several commands share, for any option added without one."""


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; text laid out in lines (examples, the exit
    codes) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _version() -> str:
    try:
        return version("s321")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "unknown"


def _jobs(text: str) -> int | str:
    try:
        return parallel.parse_jobs(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: auto, or a number of processes (1 or more)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s321", description="Transmit CBP Section 321 advance data: ingest, map, validate, transmit.",
        epilog="example:\n  s321 check -c s321.toml && s321 run -c s321.toml --once\n\n" + EPILOG,
        formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"s321 {_version()}",
                        help="print the version and exit")
    parser.add_argument("--log-level", default=None, type=str.lower, choices=LOG_LEVELS,
                        help=COMMON_HELP["log_level"])
    parser.add_argument("--log-json", action="store_true", default=None, help=COMMON_HELP["log_json"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list plugins, their status and components",
                       description="List the installed plugins, whether each loaded, and the "
                       "components (sources, transports, ...) each registers.")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("-c", "--config", help="honour this config's plugin block list")
    p.set_defaults(func=commands.plugins)

    p = sub.add_parser("check", help="validate a config: every error in one pass",
                       description="Validate a config in one pass: its structure, plugin names "
                       "and options, profiles, and every enrichment table a pipeline names "
                       "(opened and read). Inputs that do not exist are warnings. Exit 0 when "
                       "valid, 2 when not, 3 when --connect finds the ledger or a transport unreachable.")
    p.add_argument("-c", "--config", required=True, help=COMMON_HELP["config"])
    p.add_argument("--connect", action="store_true",
                   help="also open the ledger (its database: backend, where, schema version) and connect "
                   "to each transport, reporting reachability; sends no data")
    p.set_defaults(func=commands.check)

    p = sub.add_parser("schema", help="JSON Schema of the config or the record",
                       description="Print a JSON Schema: `config` (with each plugin's own "
                       "options, for editors) or `record` (the consignment).")
    p.add_argument("kind", choices=["config", "record"], help="config or record")
    p.set_defaults(func=commands.schema)

    p = sub.add_parser("preview", help="map and validate, transmit nothing",
                       description="Map and validate a pipeline's input and show the result; "
                       "nothing is written to the ledger or sent. Orders with errors are "
                       "listed first. Exit 1 when a record is invalid.")
    p.add_argument("-c", "--config", required=True, help=COMMON_HELP["config"])
    p.add_argument("-p", "--pipeline", required=True, help=COMMON_HELP["pipeline"])
    p.add_argument("files", nargs="*", help="input files (default: the configured source)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per unit (keys: ref, status, source, reason, record, findings)")
    p.add_argument("--jobs", type=_jobs, metavar="N",
                   help="processes to work in: auto (every core, for an input of 1 MB or "
                   "more) or a number; 1 works in this process only (default: [preview] "
                   "jobs of the config, auto)")
    p.set_defaults(func=commands.preview)

    p = sub.add_parser("run", help="run the configured pipelines",
                       description="Run the pipelines: as a daemon (until SIGTERM or Ctrl-C; "
                       "SIGHUP reloads the config), or with --once, process what is there "
                       "and exit. -p limits either to the pipelines named.")
    p.add_argument("-c", "--config", required=True, help=COMMON_HELP["config"])
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    p.add_argument("-p", "--pipeline", action="append", default=[],
                   help="only this pipeline (repeatable); default: every enabled pipeline")
    p.add_argument("--json", action="store_true", help="summaries as JSON lines")
    p.set_defaults(func=commands.run)

    p = sub.add_parser("completion", help="print the shell completion script (bash or zsh)",
                       description="Print the script that completes s321's commands and options "
                       "in bash or zsh (argcomplete). Load it from your shell's start-up file.")
    p.add_argument("shell", choices=["bash", "zsh"], help="bash or zsh")
    p.set_defaults(func=commands.completion)

    operator.configure(sub)
    ledger_cmd.configure(sub)
    console_cmd.configure(sub)
    sandbox_cli.configure(sub)
    relay_cli.configure(sub)
    ace.configure(sub)
    for extension in commands.EXTENSIONS:
        extension(sub)
    _finish(parser)
    return parser


def _subparsers(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{path} {name}".strip()
                yield full, child
                yield from _subparsers(child, full)


def _finish(parser: argparse.ArgumentParser) -> None:
    """What every command gets, whoever added it: the logging options (so that they work
    after the command too), a description, a description for shared options, an example
    and the exit codes at the end of its help."""
    for path, child in _subparsers(parser):
        child.formatter_class = _Formatter
        known = {s for a in child._actions for s in a.option_strings}
        if "--log-level" not in known:
            # SUPPRESS: given here, it overrides the top-level value; absent, it leaves it.
            child.add_argument("--log-level", default=argparse.SUPPRESS, type=str.lower,
                               choices=LOG_LEVELS, help=COMMON_HELP["log_level"])
        if "--log-json" not in known:
            child.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS,
                               help=COMMON_HELP["log_json"])
        for action in child._actions:
            if not action.help:
                action.help = COMMON_HELP.get(action.dest)
        if not child.description:
            help_line = _help_of(parser, path)
            child.description = (help_line[0].upper() + help_line[1:] + ".") if help_line else None
        example = EXAMPLES.get(path)
        if example and not (child.epilog or "").startswith("example"):
            child.epilog = f"example:\n  {example}\n\n{EPILOG}"
        elif child.epilog and EPILOG not in child.epilog:
            child.epilog = f"{child.epilog.rstrip()}\n\n{EPILOG}"


def _help_of(parser: argparse.ArgumentParser, path: str) -> str | None:
    """The one-line help a command was added with (shown in its parent's list)."""
    *parents, name = path.split(" ")
    current = parser
    for part in parents:
        current = dict(_subparsers(current))[part]
    for action in current._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        # `s321` alone, or a command group without its subcommand (`s321 dlq`).
        target = parser
        if args.command:
            target = dict(_subparsers(parser)).get(args.command, parser)
        target.print_help(sys.stderr if args.command else sys.stdout)
        return Exit.CANNOT_RUN if args.command else Exit.OK
    try:
        with console.guarded_output():  # first: logging writes to the stderr it leaves
            logs.configure(level=args.log_level or "warning", json=args.log_json)
            gctune.for_batches()
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except S321Error as exc:  # a ledger in use, empty or damaged; a file that cannot be read or written
        console.error(f"s321: {exc}")
        return Exit.CANNOT_RUN
    except BrokenPipeError:
        # The reader went away (`s321 preview --json | head`): stop quietly. Python
        # would flush stdout again at exit and complain, so point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.OK


if __name__ == "__main__":
    sys.exit(main())

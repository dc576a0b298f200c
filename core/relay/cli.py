"""`s321 relay -c relay.toml` and `s321 keys generate NAME`: argument parsing and
printing only; the work is in the relay modules. `configure(subparsers)` adds both."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import zmq
from s321 import app
from s321.errors import ConfigError
from s321.registry import Registry
from s321.relay import config, keys
from s321.relay.server import RelayServer, status_report


def configure(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "relay", help="relay batches for clients without a link of their own (ZeroMQ, CURVE)",
        description="Take batches from the clients listed in relay.toml, store them, forward "
                    "them through each client's upstream and route the acknowledgements back.")
    p.add_argument("-c", "--config", required=True, help="relay.toml")
    p.add_argument("--check", action="store_true", help="validate relay.toml and exit (0 when valid)")
    p.add_argument("--status", action="store_true",
                   help="per lane and state: counts and last error; acks waiting per client")
    p.add_argument("--json", action="store_true", help="with --status: one JSON object a line")
    p.set_defaults(func=relay)

    k = subparsers.add_parser("keys", help="CURVE key pairs for the relay and its clients")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    g = ksub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (mode 0600)")
    g.add_argument("name", help="letters, digits, '.', '_' or '-'")
    g.add_argument("-d", "--dir", type=Path, default=Path("."), help="folder for the files (default: here)")
    g.add_argument("--force", action="store_true", help="replace an existing key pair")
    g.set_defaults(func=generate)


def relay(args: argparse.Namespace) -> int:
    if args.status:
        return status(args.config, args.json)
    return serve(args.config, check_only=args.check)


def status(config_path: str | Path, as_json: bool = False, registry: Registry | None = None) -> int:
    try:
        loaded = config.load(config_path, registry or app.load_registry(config_path))
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    for row in status_report(loaded):
        if as_json:
            print(json.dumps(row))
        elif "client" in row:
            print(f"client {row['client']}: {row['undelivered_acks']} acks not yet delivered")
        else:
            error = f"  last error: {row['last_error']}" if row["last_error"] else ""
            print(f"{row['pipeline']}  {row['state']:<9} {row['count']:>8}{error}")
    return 0


def serve(config_path: str | Path, registry: Registry | None = None, check_only: bool = False) -> int:
    """Run the relay until SIGTERM or SIGINT. `registry` is for callers that built one
    (tests adding plugins); by default the plugins are loaded like `s321 run` does."""
    registry = registry or app.load_registry(config_path)
    try:
        loaded = config.load(config_path, registry)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1 if check_only else 2
    if check_only:
        print(f"{config_path}: ok ({len(loaded.clients)} clients: {', '.join(loaded.clients)})")
        return 0
    server = RelayServer(loaded, registry)
    try:
        server.start()
    except zmq.ZMQError as exc:
        print(f"s321 relay: cannot listen on {loaded.config.relay.bind}: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"relay public key: {server.public_key}")
    print(f"ledger: {loaded.config.ledger.describe()}")  # a path, or a URL without its password
    print(f"listening on {server.endpoint}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


def generate(args: argparse.Namespace) -> int:
    try:
        public_path, secret_path, public = keys.generate(args.name, args.dir, force=args.force)
    except (ValueError, FileExistsError, OSError) as exc:
        print(f"s321 keys: {exc}", file=sys.stderr)
        return 2
    print(f"public key: {public}")
    print(f"public key file: {public_path}   (give it to the peer)")
    print(f"secret key file: {secret_path}   (mode 0600; reference it as {{file = \"...\"}})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m s321.relay.cli relay -c relay.toml`: these commands without the rest
    of the `s321` CLI (until it lists them)."""
    from s321 import logs

    parser = argparse.ArgumentParser(prog="s321")
    parser.add_argument("--log-level", default="info")
    configure(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    logs.configure(level=args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""`s321 sandbox` (serve) and `s321 sandbox report` (how often each consignment was
accepted): argument parsing and printing only; the work is in the sandbox modules."""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from s321 import private, regimes, rules
from s321.framing import DEFAULT_MAX_FRAME
from s321.sandbox.certs import DevCerts, ensure_dev_certs, server_context
from s321.sandbox.connection import bindings
from s321.sandbox.drop import add_drop_arguments, start_drop
from s321.sandbox.faults import Faults, FaultState
from s321.sandbox.review import Reviewer
from s321.sandbox.server import SandboxServer
from s321.sandbox.store import SandboxStore

STATE_DIR = Path(".s321-sandbox")


def configure(subparsers: Any) -> None:
    """Add `sandbox` (and `sandbox report`) to the `s321` subcommands."""
    p = subparsers.add_parser(
        "sandbox", help="run a CBP stand-in that acknowledges (mutual TLS, loopback)",
        description="Listen for p2p-socket clients, review each record against its regime "
                    "profile and acknowledge it. Dev certificates are made on first start.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=4321, help="port (default 4321); 0 picks a free one")
    p.add_argument("--port-file", type=Path, help="also write the chosen port to this file")
    p.add_argument("--certs-dir", type=Path, default=STATE_DIR / "certs",
                   help=f"where dev certificates are made and kept (default {STATE_DIR}/certs)")
    p.add_argument("--cert", type=Path, help="your own server certificate (PEM), with --key and --ca")
    p.add_argument("--key", type=Path, help="its private key (PEM)")
    p.add_argument("--ca", type=Path, help="CA whose client certificates are accepted (PEM)")
    p.add_argument("--db", type=Path, default=STATE_DIR / "sandbox.sqlite",
                   help=f"SQLite file of what was accepted (default {STATE_DIR}/sandbox.sqlite)")
    p.add_argument("--profile-paths", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder with more regime profiles (*.toml); repeatable")
    p.add_argument("--rates", help='currency rates: "CAD=0.73,EUR=1.08", or a TOML file with a '
                                   "[currency_rates] table (an s321 config will do); default USD only")
    p.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help="largest frame body, bytes")
    p.add_argument("--idle-timeout", type=float, default=300.0,
                   help="close a connection silent for this many seconds")
    p.add_argument("--bind", action="append", default=[], metavar="CERT=CODE[,CODE...]",
                   help="bind a client certificate (PEM file or SHA-256 fingerprint) to the "
                        "originator codes it may file for; repeatable. With any --bind, other "
                        "certificates are refused and other codes rejected (originator-refused)")
    lim = p.add_argument_group("connection limits")
    lim.add_argument("--handshake-timeout", type=float, default=3.0,
                     help="seconds a new connection has for TLS and HELLO (default 3)")
    lim.add_argument("--max-connections", type=int, default=256,
                     help="connections at once; when full, the longest idle is closed (default 256)")
    lim.add_argument("--max-per-peer", type=int, default=32,
                     help="connections at once from one address (default 32)")
    f = p.add_argument_group("fault injection")
    f.add_argument("--reject-fraction", type=float, default=0.0,
                   help="reject this share of good records (code injected-rejection)")
    f.add_argument("--seed", type=int, help="seed for --reject-fraction")
    f.add_argument("--ack-delay", type=float, default=0.0, help="seconds from RECEIPT to ACK")
    f.add_argument("--drop-after-frames", type=int,
                   help="cut a connection after its N-th frame, unanswered (HELLO is frame 1)")
    f.add_argument("--drop-connections", type=int, default=1,
                   help="how many connections --drop-after-frames cuts (0: all; default 1)")
    f.add_argument("--refuse-for", type=float, default=0.0,
                   help="reset connections for this many seconds after start")
    add_drop_arguments(p)
    p.set_defaults(func=serve)

    sub = p.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND")
    r = sub.add_parser("report", help="how often each consignment was accepted")
    r.add_argument("--db", type=Path, default=STATE_DIR / "sandbox.sqlite")
    r.add_argument("--json", action="store_true", help="one JSON object a line")
    r.set_defaults(func=report)


def _port(text: str) -> int:
    """`--port`: refused by the parser, before any certificate is made for it."""
    port = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port, 0-65535 (0: any free one)")
    return port


def serve(args: argparse.Namespace) -> int:
    try:
        for folder in [args.db.parent] + ([] if args.cert else [args.certs_dir]):
            private.ensure_dir(folder)  # state folders: owner-only when made here
        certs = _certs(args)
        rates = parse_rates(args.rates)
        faults = Faults(reject_fraction=args.reject_fraction, seed=args.seed,
                        ack_delay=args.ack_delay, drop_after_frames=args.drop_after_frames,
                        drop_connections=args.drop_connections, refuse_for=args.refuse_for)
        context = server_context(certs.server_cert, certs.server_key, certs.ca)
        identities = bindings(args.bind) if args.bind else None
    except (ValueError, OSError) as exc:
        print(f"s321 sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        store = SandboxStore(args.db)
    except (OSError, sqlite3.Error) as exc:
        print(f"s321 sandbox: {args.db}: cannot be used as the sandbox database: {exc}",
              file=sys.stderr)
        return 2
    state = FaultState(faults)
    reviewer = Reviewer(store, rates, args.profile_paths, state)
    server = SandboxServer(context, reviewer, state,
                           host=args.host, port=args.port, max_frame=args.max_frame,
                           idle_timeout=args.idle_timeout, handshake_timeout=args.handshake_timeout,
                           max_connections=args.max_connections, max_per_peer=args.max_per_peer,
                           identities=identities)
    try:
        server.start()
    except OSError as exc:
        print(f"s321 sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        store.close()
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if args.port_file:
        args.port_file.write_text(f"{server.port}\n", encoding="utf-8")
    print(f"ca: {certs.ca.resolve()}")
    if not args.cert:  # dev certificates: say where a pipeline finds its client identity
        print(f"client cert: {certs.client_cert.resolve()}")
        print(f"client key: {certs.client_key.resolve()}")
    print(f"db: {args.db.resolve()}")
    drop = start_drop(args, reviewer)
    if drop is not None:
        print(f"drop: {args.drop.resolve()}")
    print(f"listening on {args.host}:{server.port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    if drop is not None:
        drop.stop()
    store.close()
    return 0


def report(args: argparse.Namespace) -> int:
    if not args.db.is_file():
        print(f"s321 sandbox report: {args.db}: no such file", file=sys.stderr)
        return 2
    store = SandboxStore(args.db)
    try:
        counts = store.accepted_counts()
        rejections = store.rejection_counts()
    finally:
        store.close()
    if args.json:
        for txid, n in counts.items():
            print(json.dumps({"transaction_id": txid, "accepted": n}))
        print(json.dumps({"consignments": len(counts), "acceptances": sum(counts.values()),
                          "rejections": rejections}))
        return 0
    for txid, n in counts.items():
        print(f"{txid}  accepted {n}" + ("  (more than once!)" if n > 1 else ""))
    print(f"{len(counts)} consignments, {sum(counts.values())} acceptances")
    for code, n in rejections.items():
        print(f"rejected {code}: {n}")
    return 0


def _certs(args: argparse.Namespace) -> DevCerts:
    own = (args.cert, args.key, args.ca)
    if any(own) and not all(own):
        raise ValueError("--cert, --key and --ca go together")
    if all(own):
        # The client side of your own PKI is yours to hand out; only the server's is used.
        return DevCerts(ca=args.ca, server_cert=args.cert, server_key=args.key,
                        client_cert=args.cert, client_key=args.key)
    return ensure_dev_certs(args.certs_dir)


def parse_rates(value: str | None) -> dict[str, Decimal]:
    """`CAD=0.73,EUR=1.08`, or a TOML file with a `[currency_rates]` table or bare codes."""
    rates: dict[str, Any] = {}
    if value and "=" in value:
        for part in value.split(","):
            code, _, rate = part.partition("=")
            rates[code.strip()] = rate.strip()
    elif value:
        try:
            raw = tomllib.loads(regimes.toml_text(Path(value).read_bytes()))
        except ValueError as exc:  # not UTF-8, not TOML
            raise ValueError(f"{value}: {exc}") from None
        rates = raw.get("currency_rates", raw)
    out = {"USD": Decimal(1)}
    for code, rate in rates.items():
        try:
            number = Decimal(str(rate))
        except InvalidOperation:
            raise ValueError(f"rate for {code}: {rate!r} is not a number") from None
        if not rules.is_currency(code) or number <= 0:
            raise ValueError(f"rates: {code}={rate} is not an ISO 4217 code with a rate > 0")
        out[code.upper()] = number
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m s321.sandbox.cli sandbox ...`: the same commands without the rest of
    the `s321` CLI (scripts, and tests that need a sandbox in its own process)."""
    from s321 import logs

    parser = argparse.ArgumentParser(prog="s321")
    configure(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    logs.configure(level="info")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

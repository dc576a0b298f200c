"""`s321 console -c CONFIG`: serve the web console (s321.console); `s321 console
hash-password`: the argon2id hash of a password, for `[console.users.NAME]`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.config import host_port


def configure(sub: Any) -> None:
    p = sub.add_parser("console", help="serve the web console over the ledger",
                       description="Serve the broker's web console (docs/console.md) over the config's "
                       "ledger: overview, records, findings, dead letters, for the users in "
                       "[console.users]. Plain HTTP on loopback unless a certificate is given.",
                       epilog="example:\n  s321 console -c s321.toml --listen 127.0.0.1:9322")
    p.add_argument("-c", "--config", help="the config file (TOML)")
    p.add_argument("--listen", metavar="HOST:PORT", type=_listen,
                   help="overrides [console] listen (default 127.0.0.1:9322)")
    p.add_argument("--certificate", type=Path, help="PEM certificate: serve HTTPS (with --private-key)")
    p.add_argument("--private-key", type=Path, help="PEM private key of the certificate")
    p.set_defaults(func=serve)
    console_sub = p.add_subparsers(dest="console_command", metavar="{hash-password}")
    q = console_sub.add_parser("hash-password", help="print an argon2id hash for [console.users.NAME]",
                               description="Read a password (asked twice on a terminal, else one line of "
                               "standard input) and print its argon2id hash, for `password_hash`.",
                               epilog="example:\n  s321 console hash-password")
    q.set_defaults(func=hash_password)


def _listen(text: str) -> str:
    try:
        return host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def serve(args: argparse.Namespace) -> int:
    if not args.config:
        console.error("s321 console: -c CONFIG is required (or `s321 console hash-password`)")
        return Exit.CANNOT_RUN
    loaded = load_or_report(args.config)
    if loaded is None:
        return Exit.CANNOT_RUN
    from s321.console import server  # starlette and uvicorn only when serving

    try:
        section = server.settings(loaded[1], args.listen, args.certificate, args.private_key)
    except ValidationError as exc:
        for e in exc.errors():
            console.error(f"s321 console: {'.'.join(map(str, e['loc'])) or 'console'}: {e['msg']}")
        return Exit.CANNOT_RUN
    if not section.users:
        console.error(f"s321 console: {args.config}: no [console.users.NAME] tables: nobody could log in"
                      " (make a hash with `s321 console hash-password`)")
        return Exit.CANNOT_RUN
    listener = server.listen(section)  # in use: S321Error, said by main() (exit 2)
    print(f"s321 console on {server.address(section)} (Ctrl-C stops it)", flush=True)
    server.serve(loaded[1], section, listener)
    return Exit.OK


def hash_password(args: argparse.Namespace) -> int:
    from s321.console.auth import hash_password as make_hash

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            console.error("s321 console hash-password: the two passwords differ")
            return Exit.CANNOT_RUN
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        console.error("s321 console hash-password: an empty password is refused")
        return Exit.CANNOT_RUN
    print(make_hash(password))
    return Exit.OK

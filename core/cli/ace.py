"""`s321 ace check-trip|manifest-list`: check ACE truck trip files before anything is sent,
and print a trip's shipment control number list for the driver and the broker. Parses
arguments and calls `s321.plugins.ace_truck`; no logic of its own."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from s321 import private
from s321.cli import console
from s321.cli.commands import load_or_report
from s321.cli.exitcodes import Exit
from s321.config import LoadedConfig
from s321.ledger import Ledger
from s321.ledger_open import NoLedger, open_ledger
from s321.plugins.ace_truck.labels import manifest_list
from s321.plugins.ace_truck.serializer import ledger_states, trip_places
from s321.plugins.ace_truck.trip import TripBook, TripError, at_risk, exposed, load_trip


def configure(sub: Any) -> None:
    p = sub.add_parser("ace", help="ACE truck eManifest: check trip files, print shipment lists",
                       description="ACE truck eManifest (serializer ace-truck-309, docs/ace-truck.md): "
                       "`check-trip` validates trip files (fields, shipment control numbers, and whether "
                       "ACE would still get the trip in time); `manifest-list` prints a trip's shipment "
                       "control numbers for the driver and the broker.",
                       epilog="example:\n  s321 ace check-trip trips/")
    ace_sub = p.add_subparsers(dest="ace_command", required=True, metavar="{check-trip,manifest-list}")
    q = ace_sub.add_parser("check-trip", help="validate trip files (TOML or JSON)",
                           description="Validate trip files, or every trip file of a folder, together "
                           "(a shipment on two trips is refused). Exit 0 when valid and in time, 1 when a "
                           "trip would reach ACE too late, 2 when a file is invalid.",
                           epilog="example:\n  s321 ace check-trip trips/")
    q.add_argument("paths", nargs="*", help="trip files or folders (default with -c: the config's trip files)")
    q.add_argument("-c", "--config", help="also look each trip's shipments up in this config's ledger: a "
                   "trip whose shipments are not all answered within --warn-minutes of its deadline is at risk")
    q.add_argument("--warn-minutes", type=float, default=30.0, metavar="MINUTES",
                   help="how long before the deadline an unanswered trip is at risk (default 30)")
    q.set_defaults(func=check_trip)
    q = ace_sub.add_parser("manifest-list", help="a trip's shipment control numbers, printable",
                           description="Print a trip's shipment control number list (no crew data). "
                           "With -c, each shipment's state in the ledger is shown too.",
                           epilog="example:\n  s321 ace manifest-list trips/NWTK2612070001.toml -c s321.toml")
    q.add_argument("trip", help="the trip file")
    q.add_argument("-c", "--config", help="look the shipments up in this config's ledger")
    q.add_argument("-o", "--output", help="write the list to this file instead of printing it")
    q.set_defaults(func=list_trip)


def check_trip(args: argparse.Namespace) -> int:
    loaded = None
    if args.config:
        loaded = load_or_report(args.config)
        if loaded is None:
            return Exit.CANNOT_RUN
    paths = [Path(p) for p in args.paths]
    if not paths:
        if loaded is None:
            console.error("name trip files or folders, or a config (-c) whose trip files to check")
            return Exit.CANNOT_RUN
        paths = trip_places(loaded[1].pipelines.values())
    try:
        book = TripBook.load(paths)
    except TripError as exc:
        for line in exc.problems:
            console.error(line)
        return Exit.CANNOT_RUN
    ledger = _ledger_if_any(loaded[1]) if loaded is not None else None
    now = datetime.now(UTC)
    late = 0
    try:
        for path, trip in book.trips.items():
            loose = exposed(path)
            if loose:
                console.warn(loose)
            problem = trip.timing_problem(now)
            if problem is None and ledger is not None:
                problem = at_risk(trip, ledger_states(ledger, trip.shipments), now, args.warn_minutes)
            if problem:
                late += 1
                console.warn(f"{path}: {problem}")
            else:
                print(f"{path}: trip {trip.trip_number}, {len(trip.shipments)} shipments, file with ACE by "
                      f"{trip.deadline().astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC")
    finally:
        if ledger is not None:
            ledger.close()
    return Exit.FINDINGS if late else Exit.OK


def list_trip(args: argparse.Namespace) -> int:
    try:
        trip = load_trip(Path(args.trip))
    except TripError as exc:
        for line in exc.problems:
            console.error(line)
        return Exit.CANNOT_RUN
    ledger = None
    if args.config:
        loaded = load_or_report(args.config)
        if loaded is None:
            return Exit.CANNOT_RUN
        ledger = _ledger_if_any(loaded[1])
    try:
        def state_of(scn: str) -> str | None:
            assert ledger is not None
            rows = [ledger.get(t) for t in ledger.find(scn)]
            return ", ".join(str(r["state"]) for r in rows if r) or None

        text = manifest_list(trip, state_of if ledger is not None else None)
    finally:
        if ledger is not None:
            ledger.close()
    if args.output:
        # Plates, trailer and shipment numbers: private like everything else s321 writes.
        with os.fdopen(private.create(args.output), "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"{args.output}: shipment list of trip {trip.trip_number}")
    else:
        print(text, end="")
    return Exit.OK


def _ledger_if_any(loaded: LoadedConfig) -> Ledger | None:
    """The config's ledger, or None before a first run made one (nothing is queued yet;
    a trip file is checked without it, never by making an empty ledger)."""
    try:
        return open_ledger(loaded.config.ledger, existing=True)
    except NoLedger:
        return None

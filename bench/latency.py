"""Latency of a running daemon: from a file landing in its inbox to the last of its
records acknowledged, as an operator feels it.

It starts `s321 sandbox` and `s321 run -c CONFIG` (the daemon, with the defaults a user
gets: p2p-socket over mutual TLS, the SQLite ledger, an archive folder), then lands
Shopify exports of `--orders` orders each in the inbox (written beside it, then renamed
in: a file appears whole), one every `--interval` seconds (0: the next one lands when
the previous is acknowledged). A file is done when every valid record of it is
`accepted` in the ledger, which is read alongside the daemon (the valid records and
their transaction ids come from a preview of the same file beforehand). Prints p50, p99
and max over the files and writes them, with every file's latency, to `--out`:

    python bench/latency.py                        # 1,000 files of 100 orders, one every 0.25 s
    python bench/latency.py --files 50             # a quick check that it works
    python bench/latency.py --interval 0           # one file at a time: latency without queueing
    python bench/latency.py --settle 0             # no settle time (files land by rename)

Speed is measured here, never asserted by tests (docs/performance.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate
from throughput import RATES, machine, p2p_transport, sandbox, Settings


def split_export(export: Path, folder: Path, orders: int) -> list[Path]:
    """The export cut into files of `orders` orders each (an order's rows stay together)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with export.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        out: Any = None
        writer: Any = None
        count, last = 0, None
        for row in reader:
            if row[0] != last:
                last = row[0]
                if count % orders == 0:
                    if out is not None:
                        out.close()
                    path = folder / f"orders-{len(files) + 1:05d}.csv"
                    files.append(path)
                    out = path.open("w", encoding="utf-8", newline="")
                    writer = csv.writer(out)
                    writer.writerow(header)
                count += 1
            writer.writerow(row)
        if out is not None:
            out.close()
    return files


def config_text(work: Path, shop: generate.ShopFiles, inbox: Path, transport: str,
                settle: float | None) -> str:
    rates = "\n".join(f'{code} = "{rate}"' for code, rate in RATES.items())
    return f"""\
[currency_rates]
{rates}

[ledger]
path = "{work / 'ledger.sqlite'}"

[pipelines.shop]
originator_code = "NWG321"
filer_type = "online_marketplace"
mode_of_transport = "air"
profile = "pilot-2019"
archive_dir = "{work / 'archive'}"
{f"settle_seconds = {settle}" if settle is not None else ""}

[pipelines.shop.defaults]
marketplace_seller_id = "NWG-HOUSE"
identified_marketplace_merchant = true

[pipelines.shop.defaults.seller]
name = "Northwind Goods Ltd"
address = {{ line1 = "1200 Waterfront Road", city = "Vancouver", state_or_province = "BC", \
postal_code = "V6B 1A1", country = "CA" }}

[pipelines.shop.source]
plugin = "shopify-csv"
path = "{inbox}"
catalog = "{shop.catalog}"
vendors = "{shop.vendors}"
tracking = "{shop.tracking}"

{transport}"""


def valid_ids(config: Path, files: list[Path]) -> list[list[str]]:
    """The transaction ids of each file's valid records, from one preview of them all
    (a preview a file would load the enrichment tables a thousand times)."""
    from s321 import app
    _registry, loaded = app.load(config)
    by_file: dict[str, list[str]] = {f.name: [] for f in files}
    for o in app.preview(loaded, "shop", files):
        if o.status.value == "valid" and o.record is not None:
            by_file[Path(o.source.rpartition(":")[0]).name].append(o.record.transaction_id)
    return [by_file[f.name] for f in files]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from s321.ledger import Ledger

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    total = args.files * args.orders
    data = args.data.resolve() / f"latency-{total}-seed{args.seed}"
    if not (data / ".complete").exists():
        shutil.rmtree(data, ignore_errors=True)
        shop = generate.write_shop(data, total, args.seed)
        split_export(shop.orders, data / "files", args.orders)
        (data / ".complete").write_text("ok\n")
    shop = generate.ShopFiles(data / "orders_export.csv", data / "catalog.csv",
                              data / "vendors.csv", data / "tracking.csv")
    files = sorted((data / "files").glob("*.csv"))[:args.files]
    inbox, staging = work / "inbox", work / "staging"
    inbox.mkdir()
    staging.mkdir()
    log = work / "latency.log"
    python = [sys.executable]
    settings = Settings(data, work, 1, None, None, "NORMAL", ())
    with sandbox(work / "sandbox", log, python) as (port, certs, usage):
        config = work / "s321.toml"
        config.write_text(config_text(work, shop, inbox, p2p_transport(port, certs, settings),
                                      args.settle), encoding="utf-8")
        print(f"previewing {len(files)} files for their valid records ...", flush=True)
        expected = valid_ids(config, files)
        with log.open("ab") as err:
            daemon = subprocess.Popen([*python, "-m", "s321.cli", "run", "-c", str(config)],
                                      stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        try:
            ledger_path = work / "ledger.sqlite"
            wait_for(lambda: ledger_path.exists() or daemon.poll() is not None, 30, "the daemon")
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon stopped (exit {daemon.returncode}); see {log}")
            time.sleep(1.0)  # its inbox watch is up
            ledger = Ledger(ledger_path)
            latencies = measure(ledger, files, expected, inbox, staging, args.interval,
                                args.timeout, daemon)
            ledger.close()
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
    done = [s for s in latencies if s is not None]
    return {
        "files": len(files), "orders_per_file": args.orders, "interval": args.interval,
        "settle_seconds": args.settle,
        "acknowledged_files": len(done), "records": sum(len(e) for e in expected),
        "p50_seconds": round(percentile(done, 50), 4) if done else None,
        "p99_seconds": round(percentile(done, 99), 4) if done else None,
        "max_seconds": round(max(done), 4) if done else None,
        "mean_seconds": round(statistics.fmean(done), 4) if done else None,
        "sandbox": usage, "latencies": [round(s, 4) if s is not None else None for s in latencies],
    }


def measure(ledger: Any, files: list[Path], expected: list[list[str]], inbox: Path,
            staging: Path, interval: float, timeout: float, daemon: subprocess.Popen[bytes]
            ) -> list[float | None]:
    """Land the files and time each until its records are all accepted."""
    landed: dict[int, float] = {}
    waiting: dict[int, list[str]] = {}  # file index -> its ids not yet seen accepted
    latencies: list[float | None] = [None] * len(files)
    next_file, next_at = 0, time.monotonic()
    deadline = None
    while next_file < len(files) or waiting:
        now = time.monotonic()
        ready = (not waiting) if interval == 0 else now >= next_at
        if next_file < len(files) and ready:
            copy = staging / files[next_file].name
            shutil.copyfile(files[next_file], copy)
            os.rename(copy, inbox / copy.name)  # lands whole
            landed[next_file] = time.monotonic()
            waiting[next_file] = list(expected[next_file])
            next_file += 1
            next_at += interval
            if next_file % 100 == 0:
                print(f"  {next_file} files landed", flush=True)
            deadline = time.monotonic() + timeout
        for index in list(waiting):
            ids = waiting[index]
            # The last record goes last: while it is not accepted, nothing else is asked.
            while ids and (ledger.get(ids[-1]) or {}).get("state") == "accepted":
                ids.pop()
            if not ids:
                latencies[index] = time.monotonic() - landed.pop(index)
                del waiting[index]
        if deadline is not None and time.monotonic() > deadline and waiting:
            print(f"  {len(waiting)} file(s) not acknowledged within {timeout} s", flush=True)
            break
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon stopped (exit {daemon.returncode})")
        time.sleep(0.002)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=100, help="orders a file")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="seconds between files landing (0: each after the previous is acknowledged)")
    parser.add_argument("--settle", type=float,
                        help="the pipeline's settle_seconds (default: its own, 1 s: a file must be "
                             "that old to be read; files landed by rename need none)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="give up when no file lands and the last is not acknowledged in this long")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--data", type=Path, default=BENCH / ".data")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=BENCH / "latency.json")
    args = parser.parse_args(argv)
    keep = args.work is not None
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="s321-latency-"))).resolve()
    info = machine()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        result = run(args)
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)
    result.update(date=datetime.now(UTC).isoformat(timespec="seconds"), machine=info,
                  load_average=[load, os.getloadavg()[0]],
                  elapsed_seconds=round(time.perf_counter() - started, 1))
    print(f"{result['acknowledged_files']} of {result['files']} files of {args.orders} orders "
          f"(one every {args.interval} s): p50 {result['p50_seconds']} s, p99 {result['p99_seconds']} s, "
          f"max {result['max_seconds']} s; load average {load:.1f}..{os.getloadavg()[0]:.1f}")
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

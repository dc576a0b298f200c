"""Throughput and peak memory of s321, side by side with a hand-written baseline.

For each size it generates (once, cached) a Shopify export with its tables, then runs,
each stage in a fresh process (bench/stages.py) so that RSS peaks do not mix:

- `preview`: the framework's read -> map -> validate -> serialize (`s321 preview --json`);
- `baseline`: the same work by hand (bench/baseline.py: csv + the same pydantic models +
  json), and the ratio preview / baseline;
- `e2e`: what `s321 run --once` does: ingest into the durable SQLite ledger while
  transmitting over `p2p-socket` (mutual TLS) to `s321 sandbox` running in its own
  process, until every record is acknowledged.

The same stages run for an X12 309 manifest file and a Cargo-IMP FHL file of as many
bills / house waybills (`--sources`; their baseline is bench/baseline_carrier.py), a
carrier filing them under pilot-2019.

It prints a table and writes bench/results.json. Speed is never asserted by tests; this
is the one command that measures it (docs/performance.md):

    python bench/throughput.py [--sizes 10000,100000,1000000] [--quick] [--repeat 1]
                               [--sources shop,x12-309,cargo-imp-fhl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import generate

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
DATA_VERSION = "1"
"""Bump when generate.py changes what it writes: cached inputs are then made again."""
RATES = {"CAD": "0.73", "EUR": "1.08"}
SOURCES = ("shop", "x12-309", "cargo-imp-fhl")
CARRIER_MODE = {"x12-309": "truck", "cargo-imp-fhl": "air"}
"""A truck carrier's eManifest, an air forwarder's house waybills (security scan required)."""


@dataclass
class Settings:
    data: Path
    work: Path
    repeat: int
    batch_size: int | None
    """None: the pipeline's and the transport's defaults, as a user gets them."""
    window: int | None
    synchronous: str
    stages: tuple[str, ...]
    code: Path | None = None
    """Another checkout whose s321 code is measured (bench/checkout.py)."""
    sources: tuple[str, ...] = ("shop",)
    transmit: str | None = None
    """e2e: `[daemon] transmit` ("thread" or "process"); None: the daemon's default."""

    def python(self) -> list[str]:
        """The command that starts Python on the code measured."""
        if self.code is None:
            return [sys.executable]
        return [sys.executable, str(BENCH / "checkout.py"), str(self.code)]


SINGLE_RUN_FROM = 500_000
"""Sizes from this one up run each stage once, whatever --repeat says: they take minutes."""


# --------------------------------------------------------------------------- inputs


def shop_inputs(data: Path, size: int, seed: int) -> generate.ShopFiles:
    """The generated shop folder for `size` orders, made once and reused."""
    folder = data.resolve() / f"shop-{size}-seed{seed}-v{DATA_VERSION}"
    done = folder / ".complete"
    files = generate.ShopFiles(folder / "orders_export.csv", folder / "catalog.csv",
                               folder / "vendors.csv", folder / "tracking.csv")
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        print(f"  generating {size:,} orders ...", end="", flush=True)
        generate.write_shop(folder, size, seed)
        done.write_text("ok\n")
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    return files


def carrier_input(data: Path, kind: str, size: int, seed: int) -> Path:
    """The generated X12 309 or FHL file of `size` bills / houses, made once and reused."""
    folder = data.resolve() / f"{kind}-{size}-seed{seed}-v{DATA_VERSION}"
    path = folder / ("manifests.edi" if kind == "x12-309" else "houses.txt")
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        print(f"  generating {size:,} {kind} ...", end="", flush=True)
        (generate.write_x12 if kind == "x12-309" else generate.write_fhl)(path, size, seed)
        done.write_text("ok\n")
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def write_carrier_config(path: Path, kind: str, source: Path, work: Path,
                         e2e: tuple[Path, str, Settings] | None = None) -> Path:
    """A one-pipeline config (`carrier`): a carrier filing what it carries; as
    baseline_carrier.py assumes (originator CAR321, known carrier customers). With
    `e2e` (ledger, transport table, settings), as `write_config` sends the shop's."""
    if e2e is None:
        transport = file_transport(work / "outbox", "carrier")
        head = ""
    else:
        ledger, transport, settings = e2e
        transmit = f'\n[daemon]\ntransmit = "{settings.transmit}"\n' if settings.transmit else ""
        head = f'[ledger]\npath = "{ledger}"\nsynchronous = "{settings.synchronous}"\n{transmit}\n'
    batch = f"batch_size = {e2e[2].batch_size}\n" if e2e and e2e[2].batch_size else ""
    path.write_text(f"""\
{head}[pipelines.carrier]
originator_code = "CAR321"
filer_type = "carrier"
mode_of_transport = "{CARRIER_MODE[kind]}"
profile = "pilot-2019"
{batch}
[pipelines.carrier.retry]
ack_timeout = 3600.0

[pipelines.carrier.defaults]
known_carrier_customer = true

[pipelines.carrier.source]
plugin = "{kind}"
path = "{source}"

{transport}
""", encoding="utf-8")
    return path


def write_config(path: Path, files: generate.ShopFiles, ledger: Path, transport: str,
                 settings: Settings) -> Path:
    """A one-pipeline config (`shop`): an online marketplace filing its own orders."""
    rates = "\n".join(f'{code} = "{rate}"' for code, rate in RATES.items())
    path.write_text(f"""\
[currency_rates]
{rates}

[ledger]
path = "{ledger}"
synchronous = "{settings.synchronous}"
{f'{chr(10)}[daemon]{chr(10)}transmit = "{settings.transmit}"{chr(10)}' if settings.transmit else ""}

[pipelines.shop]
originator_code = "NWG321"
filer_type = "online_marketplace"
mode_of_transport = "air"
profile = "pilot-2019"
{f"batch_size = {settings.batch_size}" if settings.batch_size else ""}

[pipelines.shop.retry]
ack_timeout = 3600.0   # the whole transmission of a large file must fit in one run

[pipelines.shop.defaults]
marketplace_seller_id = "NWG-HOUSE"
identified_marketplace_merchant = true

[pipelines.shop.defaults.seller]
name = "Northwind Goods Ltd"
address = {{ line1 = "1200 Waterfront Road", city = "Vancouver", state_or_province = "BC", \
postal_code = "V6B 1A1", country = "CA" }}

[pipelines.shop.source]
plugin = "shopify-csv"
path = "{files.orders}"
catalog = "{files.catalog}"
vendors = "{files.vendors}"
tracking = "{files.tracking}"

{transport}
""", encoding="utf-8")
    return path


def file_transport(folder: Path, pipeline: str = "shop") -> str:
    return f'[pipelines.{pipeline}.transport]\nplugin = "file"\ndirectory = "{folder}"\n'


def p2p_transport(port: int, certs: Path, settings: Settings, pipeline: str = "shop") -> str:
    return (f'[pipelines.{pipeline}.transport]\nplugin = "p2p-socket"\nhost = "127.0.0.1"\n'
            f'port = {port}\nca = "{certs / "ca.pem"}"\n'
            f'cert = {{ file = "{certs / "client.pem"}" }}\n'
            f'key = {{ file = "{certs / "client.key"}" }}\n'
            + (f"max_batch = {settings.batch_size}\n" if settings.batch_size else "")
            + (f"window = {settings.window}\n" if settings.window else ""))


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    """What a finished child process used: its peak RSS and CPU seconds (wait4)."""

    returncode: int
    max_rss_mb: float
    cpu_seconds: float


def _reap(proc: subprocess.Popen[bytes]) -> Child:
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Child(proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def run_stage(args: list[str], log: Path, settings: Settings) -> dict[str, Any]:
    """Run `stages.py ARGS` in a fresh interpreter; its JSON result plus its peak RSS."""
    with tempfile.TemporaryFile() as out, log.open("ab") as err:
        proc = subprocess.Popen([*settings.python(), str(BENCH / "stages.py"), *args],
                                stdout=out, stderr=err, cwd=ROOT)
        child = _reap(proc)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if child.returncode != 0:
        raise RuntimeError(f"stage {args[0]} failed (exit {child.returncode}); see {log}")
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    result["max_rss_mb"] = round(child.max_rss_mb, 1)
    result["process_cpu_seconds"] = round(child.cpu_seconds, 2)
    return result


@contextmanager
def sandbox(folder: Path, log: Path, python: list[str] | None = None
            ) -> Iterator[tuple[int, Path, dict[str, Any]]]:
    """`s321 sandbox` in its own process on a free loopback port, with a fresh store.
    Yields (port, certs folder, a dict that gets the sandbox's CPU and peak RSS)."""
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    port_file.unlink(missing_ok=True)
    (folder / "sandbox.sqlite").unlink(missing_ok=True)
    certs = folder / "certs"
    rates = ",".join(f"{code}={rate}" for code, rate in RATES.items())
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*(python or [sys.executable]), "-m", "s321.cli", "sandbox", "--port", "0", "--port-file", str(port_file),
             "--certs-dir", str(certs), "--db", str(folder / "sandbox.sqlite"), "--rates", rates],
            stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    usage: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start; see {log}")
            time.sleep(0.05)
        yield int(port_file.read_text()), certs, usage
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            child = _reap(proc)
            usage.update(max_rss_mb=round(child.max_rss_mb, 1),
                         cpu_seconds=round(child.cpu_seconds, 2))


# --------------------------------------------------------------------------- one size


def measure(size: int, settings: Settings, seed: int) -> dict[str, Any]:
    files = shop_inputs(settings.data, size, seed)
    work = settings.work / f"size-{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "stages.log"
    preview_config = write_config(work / "preview.toml", files, work / "preview-ledger.sqlite",
                                  file_transport(work / "outbox"), settings)
    repeat = 1 if size >= SINGLE_RUN_FROM else settings.repeat
    runs: dict[str, list[dict[str, Any]]] = {"preview": [], "baseline": [], "tables": [], "e2e": []}
    for _ in range(repeat):
        # Interleaved, so that a change in the machine's load hits both alike.
        if "baseline" in settings.stages:
            runs["baseline"].append(run_stage(
                ["baseline", "--folder", str(files.orders.parent)], log, settings))
        if "preview" in settings.stages:
            runs["preview"].append(run_stage(["preview", "--config", str(preview_config)], log,
                                             settings))
    if "preview" in settings.stages:
        # What the enrichment tables alone take: the rest of the preview's peak is the
        # streaming part, which must not grow with the input.
        runs["tables"].append(run_stage(["tables", "--config", str(preview_config)], log, settings))
    if "e2e" in settings.stages:
        for _ in range(repeat):
            ledger = work / "ledger.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{ledger}{suffix}").unlink(missing_ok=True)
            with sandbox(work / "sandbox", log, settings.python()) as (port, certs, usage):
                config = write_config(work / "e2e.toml", files, ledger,
                                      p2p_transport(port, certs, settings), settings)
                result = run_stage(["e2e", "--config", str(config)], log, settings)
            result["sandbox"] = usage
            runs["e2e"].append(result)
    return {"size": size, "source": "shop", **{stage: _fastest(r) for stage, r in runs.items() if r},
            "runs": runs}


def measure_carrier(kind: str, size: int, settings: Settings, seed: int) -> dict[str, Any]:
    """Preview and hand-written baseline of one X12 309 or FHL file, interleaved."""
    source = carrier_input(settings.data, kind, size, seed)
    work = settings.work / f"{kind}-{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "stages.log"
    config = write_carrier_config(work / "preview.toml", kind, source, work)
    repeat = 1 if size >= SINGLE_RUN_FROM else settings.repeat
    runs: dict[str, list[dict[str, Any]]] = {"preview": [], "baseline": [], "e2e": []}
    for _ in range(repeat):
        if "baseline" in settings.stages:
            runs["baseline"].append(run_stage(
                ["baseline-carrier", "--kind", kind, "--file", str(source)], log, settings))
        if "preview" in settings.stages:
            runs["preview"].append(run_stage(
                ["preview", "--config", str(config), "--pipeline", "carrier"], log, settings))
    if "e2e" in settings.stages:  # as for the shop: a run --once to the sandbox
        for _ in range(repeat):
            ledger = work / "ledger.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{ledger}{suffix}").unlink(missing_ok=True)
            with sandbox(work / "sandbox", log, settings.python()) as (port, certs, usage):
                e2e_config = write_carrier_config(
                    work / "e2e.toml", kind, source, work,
                    (ledger, p2p_transport(port, certs, settings, "carrier"), settings))
                result = run_stage(["e2e", "--config", str(e2e_config), "--pipeline", "carrier"],
                                   log, settings)
            result["sandbox"] = usage
            runs["e2e"].append(result)
    return {"size": size, "source": kind, **{stage: _fastest(r) for stage, r in runs.items() if r},
            "runs": runs}


def _fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with its rates: on a machine shared with other work, the best
    of a few runs is what the code can do (timeit's reasoning); every run is kept in
    the results file."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["per_second"] = round(best["records"] / best["seconds"]) if best["seconds"] else 0
    best["per_cpu_second"] = (round(best["records"] / best["cpu_seconds"])
                              if best["cpu_seconds"] else 0)
    if best.get("ingest_seconds"):
        best["ingest_per_second"] = round(best["received"] / best["ingest_seconds"])
    if best.get("records") and "sandbox" in best and "process_cpu_seconds" in best:
        # CPU of both ends per acknowledged record: what bounds the rate on 2 cores.
        cpu = best["process_cpu_seconds"] + best["sandbox"].get("cpu_seconds", 0)
        best["cpu_us_per_record"] = round(cpu / best["records"] * 1e6)
        # Each end's own (whole processes, start-up included): which one bounds the rate.
        best["client_us_per_record"] = round(best["process_cpu_seconds"] / best["records"] * 1e6)
        best["sandbox_us_per_record"] = round(best["sandbox"].get("cpu_seconds", 0) / best["records"] * 1e6)
        # Of the client's, the transmit process's (`[daemon] transmit`: none with a thread).
        if "transmit_cpu_seconds" in best:
            best["transmit_us_per_record"] = round(best["transmit_cpu_seconds"] / best["records"] * 1e6)
        # The run's own process, busy the whole time (near 100 %): it is what bounds the rate.
        if best["seconds"]:
            best["parent_busy"] = round(best["cpu_seconds"] / best["seconds"], 3)
    if len(runs) > 1:
        best["all_seconds"] = [round(r["seconds"], 3) for r in runs]
    return best


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(),
            "commit": commit or None}


def table(results: list[dict[str, Any]]) -> str:
    cols = ("source", "size", "preview/s", "baseline/s", "ratio", "e2e acked/s", "ingest/s", "drain s",
            "CPU µs/rec", "client µs/rec", "of it transmit", "parent busy", "sandbox µs/rec", "RSS preview", "of it tables", "RSS baseline", "RSS e2e", "RSS sandbox")
    rows = [cols]
    for r in results:
        p, b, t, e = r.get("preview"), r.get("baseline"), r.get("tables"), r.get("e2e")
        rows.append((
            r.get("source", "shop"), f"{r['size']:,}", _n(p, "per_second"), _n(b, "per_second"),
            f"{p['per_second'] / b['per_second']:.2f}" if p and b else "-",
            _n(e, "per_second"), _n(e, "ingest_per_second"),
            f"{e['transmit_seconds']:.1f}" if e and "transmit_seconds" in e else "-",
            _n(e, "cpu_us_per_record"), _n(e, "client_us_per_record"), _n(e, "transmit_us_per_record"),
            f"{e['parent_busy']:.0%}" if e and "parent_busy" in e else "-", _n(e, "sandbox_us_per_record"),
            _mb(p), f"{table_mb(r):.0f} MB" if t else "-", _mb(b), _mb(e),
            _mb(e["sandbox"] if e else None)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _n(stage: dict[str, Any] | None, key: str) -> str:
    return f"{stage[key]:,}" if stage and key in stage else "-"


def _mb(stage: dict[str, Any] | None) -> str:
    return f"{stage['max_rss_mb']:.0f} MB" if stage and "max_rss_mb" in stage else "-"


def table_mb(result: dict[str, Any]) -> float:
    """What loading the enrichment tables added to the peak RSS."""
    t = result["tables"]
    return round(t["max_rss_mb"] - t["rss_before_mb"], 1)


def memory_growth(results: list[dict[str, Any]]) -> dict[str, float]:
    """Peak RSS at the largest size over that at the second largest, per stage (the
    carrier sources' stages named with their source); and the same for the shop
    preview without its enrichment tables (the streaming part)."""
    growth: dict[str, float] = {}
    for source in dict.fromkeys(r.get("source", "shop") for r in results):
        mine = sorted((r for r in results if r.get("source", "shop") == source), key=lambda r: r["size"])
        if len(mine) < 2:
            continue
        small, large = mine[-2], mine[-1]
        prefix = "" if source == "shop" else f"{source} "
        growth.update({prefix + stage: round(large[stage]["max_rss_mb"] / small[stage]["max_rss_mb"], 3)
                       for stage in ("preview", "baseline", "e2e") if stage in small and stage in large})
        if all("preview" in r and "tables" in r for r in (small, large)):
            base = [r["preview"]["max_rss_mb"] - table_mb(r) for r in (small, large)]
            growth["preview without tables"] = round(base[1] / base[0], 3)
    return growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated order counts (default 10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="sizes 2000,20000")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"runs per stage below {SINGLE_RUN_FROM:,}; the fastest is shown")
    parser.add_argument("--sources", default=",".join(SOURCES),
                        help="which inputs: shop, x12-309, cargo-imp-fhl")
    parser.add_argument("--stages", default="preview,baseline,e2e",
                        help="which of preview, baseline, e2e to run")
    parser.add_argument("--batch-size", type=int,
                        help="records per batch (pipeline batch_size and p2p max_batch; "
                             "default: theirs)")
    parser.add_argument("--window", type=int, help="p2p batches in flight (default: its own)")
    parser.add_argument("--transmit", choices=("thread", "process"),
                        help="e2e: transmit beside ingest (thread) or in a process of its own "
                             "(default: the daemon's default)")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL",
                        help="the ledger's SQLite synchronous setting")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--data", type=Path, default=BENCH / ".data",
                        help="where generated inputs are kept between runs")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    parser.add_argument("--code", type=Path,
                        help="measure the s321 code of this checkout (e.g. a git worktree)")
    args = parser.parse_args(argv)
    sizes = ([int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes
             else list(QUICK_SIZES if args.quick else DEFAULT_SIZES))
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    scratch = args.work or Path(tempfile.mkdtemp(prefix="s321-bench-"))
    settings = Settings(args.data, scratch, max(1, args.repeat), args.batch_size, args.window,
                        args.synchronous, stages, args.code.resolve() if args.code else None,
                        tuple(s.strip() for s in args.sources.split(",") if s.strip()), args.transmit)
    info = machine()
    print(f"{info['cpu_model']}, {info['nproc']} cores, Python {info['python']}, "
          f"commit {info['commit']}", flush=True)
    started = time.perf_counter()
    results = []
    loads = []
    try:
        for size in sizes:
            for source in settings.sources:
                print(f"{source} size {size:,}", flush=True)
                loads.append(os.getloadavg()[0])
                results.append(measure(size, settings, args.seed) if source == "shop"
                               else measure_carrier(source, size, settings, args.seed))
                loads.append(os.getloadavg()[0])
                print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print()
    order = {source: i for i, source in enumerate(settings.sources)}
    results.sort(key=lambda r: (order[r.get("source", "shop")], r["size"]))
    print(table(results))
    growth = memory_growth(results)
    if growth:
        print("peak RSS, largest size / second largest: "
              + ", ".join(f"{k} x{v:.2f}" for k, v in growth.items()))
    print(f"took {elapsed / 60:.1f} min; load average during the run "
          f"{min(loads):.1f}..{max(loads):.1f} (the table is only as quiet as the machine)")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": {"batch_size": settings.batch_size, "window": settings.window,
                     "synchronous": settings.synchronous, "repeat": settings.repeat,
                     "transmit": settings.transmit or "the daemon's default",
                     "seed": args.seed, "sandbox": "separate process (s321 sandbox)",
                     "code": str(settings.code) if settings.code else "this checkout"},
        "load_average": {"min": min(loads), "max": max(loads)},
        "elapsed_seconds": round(elapsed, 1),
        "memory_growth": growth,
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ledger's own costs as it grows: a ledger file filled with `--fill` records (each
ingested, claimed and acknowledged, as a day's work leaves them), then ingest, claim and
resolve of `--measure` more, timed (wall and CPU µs a record). What a large ledger costs
on top of a small one is where its writes land: on pages of indexes keyed by hashes
(random, a page read and written a record once they outgrow the cache) or on the last
pages of ones keyed in the order records arrive.

    python bench/ledger_scale.py --fill 500000           # ~2 min to fill
    python bench/checkout.py /tmp/before bench/ledger_scale.py --fill 500000   # older code

Speed is measured here, never asserted by tests (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate
import throughput


def templates(data: Path) -> list[Any]:
    """Valid outcomes of 2,000 generated orders, to be copied under new ids."""
    from s321 import app
    from s321.pipeline import Status

    files = throughput.shop_inputs(data, 2000, generate.DEFAULT_SEED)
    tmp = Path(tempfile.mkdtemp(prefix="s321-scale-cfg-"))
    try:
        settings = throughput.Settings(data, tmp, 1, None, None, "NORMAL", ())
        config = throughput.write_config(tmp / "c.toml", files, tmp / "l.sqlite",
                                         throughput.file_transport(tmp / "out"), settings)
        _registry, loaded = app.load(config)
        return [o for o in app.preview(loaded, "shop", [files.orders])
                if o.status is Status.VALID and o.record is not None]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def outcomes(base: list[Any], start: int, count: int) -> list[Any]:
    """`count` valid outcomes numbered from `start`: ids like real ones (hashes, in no order)."""
    import hashlib

    from s321.pipeline import Outcome
    out = []
    for i in range(start, start + count):
        t = base[i % len(base)]
        txid = hashlib.sha256(f"scale-{i}".encode()).hexdigest()[:26].upper()
        out.append(Outcome(f"#S{i}", t.status, t.source, t.record.model_copy(update={"transaction_id": txid})))
    return out


def cycle(ledger: Any, items: list[Any], batch: int, clock: dict[str, list[float]]) -> None:
    """Ingest (500 a transaction), claim (`batch` a batch) and accept everything."""
    from s321.contracts import Ack, AckStatus, RecordAck

    def timed(name: str, fn: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        clock[name][0] += time.perf_counter() - w
        clock[name][1] += time.process_time() - c
        return result

    for i in range(0, len(items), 500):
        chunk = items[i:i + 500]
        timed("ingest", lambda: ledger.ingest("shop", "NWG321", "shopify", chunk))
    n = 0
    while rows := timed("claim", lambda: ledger.claim("shop", f"B{time.monotonic_ns()}", batch)):
        ack = Ack(batch_id=rows[0].batch_id, received_at=datetime.now(UTC), results=[
            RecordAck(transaction_id=r.transaction_id, status=AckStatus.ACCEPTED, version=r.version)
            for r in rows])
        timed("resolve", lambda: ledger.resolve(ack))
        n += len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill", type=int, default=500_000)
    parser.add_argument("--measure", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=BENCH / ".data")
    parser.add_argument("--work", type=Path, help="folder of the ledger file (default: a temporary one)")
    args = parser.parse_args(argv)
    from s321 import gctune, logs
    from s321.ledger import Ledger

    logs.configure(level="warning")
    gctune.for_batches()
    base = templates(args.data)
    work = args.work or Path(tempfile.mkdtemp(prefix="s321-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "ledger.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ledger = Ledger(path)
    try:
        fill: dict[str, list[float]] = {k: [0.0, 0.0] for k in ("ingest", "claim", "resolve")}
        for start in range(0, args.fill, 50_000):
            cycle(ledger, outcomes(base, start, min(50_000, args.fill - start)), args.batch, fill)
        clock: dict[str, list[float]] = {k: [0.0, 0.0] for k in ("ingest", "claim", "resolve")}
        cycle(ledger, outcomes(base, args.fill, args.measure), args.batch, clock)
    finally:
        ledger.close()
    per = {k: {"wall_us": round(v[0] / args.measure * 1e6, 1), "cpu_us": round(v[1] / args.measure * 1e6, 1)}
           for k, v in clock.items()}
    fill_s = round(sum(v[0] for v in fill.values()), 1)
    result = {"fill": args.fill, "measure": args.measure, "fill_seconds": fill_s, "per_record": per,
              "file_mb": round(path.stat().st_size / 1e6, 1)}
    print(json.dumps(result))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

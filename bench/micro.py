"""Per-record cost of each step of the pipeline, in microseconds of CPU time, measured
one step at a time over the same generated orders: the tool behind the before/after
figures of docs/performance.md. Not a test; nothing here asserts a speed.

    python bench/micro.py [--orders 5000] [--repeat 3] [--only presence,rules]

Steps: parse (CSV -> raw units), map, model (Consignment.model_validate), derive,
presence, rules, transaction_id, process_unit (all of the preview's per-unit work),
outcome_json (what `preview --json` prints an outcome as), content_hash, filed_json (the
stored JSON and content hash of a record, from one dump: ingest's share of it), ledger_ingest,
ledger_claim, encode_batch (of models), encode_stored_batch (what a claim sends),
decode_batch, review+decode (the sandbox's per-record decode, review and store),
ack_codec (encode + decode an ack), ledger_resolve. Run with the collector settings of
every `s321` process (s321.gctune).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate
import throughput


def timed(fn: Callable[[], Any], count: int, repeat: int) -> float:
    """Best of `repeat` runs of fn(), in CPU microseconds per record."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best / count * 1e6


def per_item(fn: Callable[[Any], Any], items: list[Any], repeat: int, chunk: int = 100) -> float:
    """Microseconds per item: for each chunk of `chunk` items the fastest of `repeat`
    passes, summed. Another process taking the CPU for a while spoils a pass of one
    chunk, not the figure: on a shared machine this is far steadier than one timing."""
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    best = [float("inf")] * len(chunks)
    for _ in range(repeat):
        for j, part in enumerate(chunks):
            t0 = time.perf_counter()
            for item in part:
                fn(item)
            best[j] = min(best[j], time.perf_counter() - t0)
    return sum(best) / max(1, len(items)) * 1e6


def stepper(make: Callable[[], Any]) -> Callable[[Any], Any]:
    """A function that takes the next item of a generator (made again when used up),
    so that a streaming parser can be timed unit by unit."""
    state = {"it": make()}

    def step(_: Any) -> Any:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = make()
            return next(state["it"])
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated step names")
    parser.add_argument("--data", type=Path, default=BENCH / ".data")
    args = parser.parse_args(argv)

    from s321 import app, ids, logs, rules, validation
    from s321.contracts import Ack, AckStatus, Batch, RecordAck
    from s321.ledger import Ledger
    from s321.pipeline import Processor, Status
    from s321.plugins.shopify_csv import read_export
    from s321.plugins.wire_s321 import S321Json
    from s321.record import Consignment
    from s321.sandbox.review import Reviewer
    from s321.sandbox.store import SandboxStore

    logs.configure(level="warning")
    try:  # the collector settings every `s321` process runs with (older code has none)
        from s321 import gctune
        gctune.for_batches()
    except ImportError:
        pass
    files = throughput.shop_inputs(args.data, args.orders, generate.DEFAULT_SEED)
    tmp = Path(tempfile.mkdtemp(prefix="s321-micro-"))
    settings = throughput.Settings(args.data, tmp, 1, 500, 4, "NORMAL", ())
    config = throughput.write_config(tmp / "micro.toml", files, tmp / "ledger.sqlite",
                                     throughput.file_transport(tmp / "outbox"), settings)
    _registry, loaded = app.load(config)
    pipeline = loaded.pipelines["shop"]
    processor = Processor(pipeline, loaded.rates)
    profile, rates, files_as = pipeline.profile, loaded.rates, pipeline.config.files_as

    units = list(read_export(files.orders))
    mapped = [processor.mapper.map(u) for u in units]
    fields = []
    for unit, m in zip(units, mapped):
        if m.record is not None:
            f = dict(m.record)
            f["transaction_id"] = ids.transaction_id("NWG321", "shopify", unit.key)
            fields.append(f)
    models = [rules.derive(Consignment.model_validate(f), rates) for f in fields]
    outcomes = [processor.process_unit(u) for u in units]
    valid = [o.record for o in outcomes if o.status is Status.VALID and o.record is not None]
    n, nv = len(units), len(valid)
    batches = [valid[i:i + 500] for i in range(0, nv, 500)]
    wire = S321Json()

    def make_batch(records: list[Consignment], i: int) -> Batch:
        return Batch(batch_id=f"B{i}", originator_code="NWG321", profile="pilot-2019",
                     sent_at=datetime.now(UTC), records=records)

    # A claimed batch carries the ledger's stored JSON (StoredBatch), not models.
    stored = [[r.model_dump_json(exclude_none=True) for r in b] for b in batches]

    def stored_batch(records_json: list[str], i: int) -> Batch:
        from s321.contracts import StoredBatch
        return StoredBatch.of(f"B{i}", "NWG321", "pilot-2019", datetime.now(UTC), records_json)

    encoded = [wire.encode_batch(make_batch(b, i)) for i, b in enumerate(batches)]
    acks = [Ack(batch_id=f"B{i}", received_at=datetime.now(UTC),
                results=[RecordAck(transaction_id=r.transaction_id, status=AckStatus.ACCEPTED)
                         for r in b]) for i, b in enumerate(batches)]
    encoded_acks = [wire.encode_ack(a) for a in acks]

    def ledger_steps() -> dict[str, float]:
        """ingest, claim and resolve against a fresh ledger file each time."""
        out: dict[str, float] = {}
        best: dict[str, float] = {}
        for r in range(args.repeat):
            ledger = Ledger(tmp / f"ledger-{r}.sqlite")
            c0 = time.process_time()
            for i in range(0, n, 500):
                ledger.ingest("shop", "NWG321", "shopify", outcomes[i:i + 500])
            c1 = time.process_time()
            claimed = []
            while True:
                rows = ledger.claim("shop", f"B{len(claimed)}", 500)
                if not rows:
                    break
                claimed.append(rows)
            c2 = time.process_time()
            for i, rows in enumerate(claimed):
                ledger.resolve(Ack(batch_id=f"B{i}", received_at=datetime.now(UTC), results=[
                    RecordAck(transaction_id=row.transaction_id, status=AckStatus.ACCEPTED)
                    for row in rows]))
            c3 = time.process_time()
            ledger.close()
            for name, dt, count in (("ledger_ingest", c1 - c0, n), ("ledger_claim", c2 - c1, nv),
                                    ("ledger_resolve", c3 - c2, nv)):
                best[name] = min(best.get(name, float("inf")), dt / count * 1e6)
        out.update(best)
        return out

    def review_all() -> None:
        store = SandboxStore(tmp / f"sandbox-{time.monotonic_ns()}.sqlite")
        reviewer = Reviewer(store, rates)
        for data in encoded:
            reviewer.review(wire.decode_batch(data))
        store.close()

    numbers = list(range(n))
    steps: dict[str, Callable[[], float]] = {
        "parse": lambda: per_item(stepper(lambda: read_export(files.orders)), numbers, args.repeat),
        "map": lambda: per_item(processor.mapper.map, units, args.repeat),
        "model": lambda: per_item(Consignment.model_validate, fields, args.repeat),
        "derive": lambda: per_item(lambda m: rules.derive(m, rates), models, args.repeat),
        "presence": lambda: per_item(lambda m: validation.presence(m, profile, files_as), models,
                                     args.repeat),
        "rules": lambda: per_item(lambda m: rules.check(m, rates, profile.value_limit_usd),
                                  models, args.repeat),
        "transaction_id": lambda: per_item(lambda u: ids.transaction_id("NWG321", "shopify", u.key),
                                           units, args.repeat),
        "process_unit": lambda: per_item(processor.process_unit, units, args.repeat),
        "outcome_json": lambda: per_item(
            lambda o: o.to_json() if hasattr(o, "to_json") else app.dumps(o.as_dict()), outcomes, args.repeat),
        "content_hash": lambda: per_item(ids.content_hash, models, args.repeat),
        "filed_json": lambda: per_item(ids.filed_json, valid, args.repeat),
        "encode_batch": lambda: per_item(lambda ib: wire.encode_batch(make_batch(ib[1], ib[0])),
                                         list(enumerate(batches)), args.repeat, 1) / 500,
        "encode_stored_batch": lambda: per_item(
            lambda ib: wire.encode_batch(stored_batch(ib[1], ib[0])), list(enumerate(stored)), args.repeat, 1) / 500,
        "decode_batch": lambda: per_item(wire.decode_batch, encoded, args.repeat, 1) / 500,
        "review+decode": lambda: timed(review_all, nv, args.repeat),
        "ack_codec": lambda: per_item(lambda a: wire.decode_ack(wire.encode_ack(a)), acks,
                                      args.repeat, 1) / 500,
    }
    wanted = set(args.only.split(",")) if args.only else None
    unknown = (wanted or set()) - set(steps) - {"ledger_ingest", "ledger_claim", "ledger_resolve"}
    if unknown:
        parser.error(f"unknown step {', '.join(sorted(unknown))}; steps: "
                     f"{', '.join([*steps, 'ledger_ingest', 'ledger_claim', 'ledger_resolve'])}")
    results: dict[str, float] = {}
    for name, measure in steps.items():
        if wanted is None or name in wanted:
            results[name] = measure()
            print(f"{name:>15}: {results[name]:8.1f} us/record", flush=True)
    if wanted is None or wanted & {"ledger_ingest", "ledger_claim", "ledger_resolve"}:
        for name, value in ledger_steps().items():
            results[name] = value
            print(f"{name:>15}: {value:8.1f} us/record", flush=True)
    del encoded_acks
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

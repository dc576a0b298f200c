"""Where the preview's time goes, phase by phase, inside one real run: the framework's
duplicate-key pass, read, map, model, derive, presence, rules, outcome and serialization, then the
hand-written baseline's phases, each with a timer around it (microseconds per order).

Unlike bench/micro.py (each step alone over and over), this keeps caches and memory as
a real run has them. Usage (a folder made by `generate.py shop`):

    python bench/phases.py SHOP_DIR [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import baseline as hand_written
import throughput


def framework(config: Path, clock: Counter[str]) -> None:
    from s321 import app, ids, rules, validation
    from s321 import config as config_mod
    from s321.findings import has_errors
    from s321.pipeline import Outcome, Processor, Status
    from s321.record import Consignment

    registry = app.load_registry(config)
    pc = time.perf_counter
    t = pc()
    loaded = config_mod.load(config, registry)
    processor = Processor(loaded.pipelines["shop"], loaded.rates)
    clock["load"] += pc() - t
    pipeline = loaded.pipelines["shop"]
    ctx, profile = pipeline.context, pipeline.profile
    t = pc()
    processor.repeated_keys(None)  # the first pass over the export, for duplicate keys
    clock["duplicate-key pass"] += pc() - t
    units = processor.source.read(None)
    with open("/dev/null", "w", encoding="utf-8") as out:
        while True:
            t = pc()
            unit = next(units, None)
            if unit is None:
                break
            t1 = pc()
            clock["read"] += t1 - t
            mapped = processor.mapper.map(unit)
            t2 = pc()
            clock["map"] += t2 - t1
            if mapped.record is None:
                outcome = Outcome(unit.key, Status.SKIPPED, unit.location, None, [],
                                  reason=mapped.skipped)
                t5 = t2
            else:
                fields = dict(mapped.record)
                fields["transaction_id"] = ids.transaction_id(ctx.originator_code, ctx.ids, unit.key)
                t3 = pc()
                clock["transaction id"] += t3 - t2
                c = Consignment.model_validate(fields)
                t4 = pc()
                clock["model"] += t4 - t3
                rules.derive(c, processor.rates)
                t4a = pc()
                clock["derive"] += t4a - t4
                found = validation.presence(c, profile, pipeline.config.files_as)
                t4b = pc()
                clock["presence"] += t4b - t4a
                found += rules.check(c, processor.rates, profile.value_limit_usd)
                t5 = pc()
                clock["rules"] += t5 - t4b
                findings = [f.at(unit.location) for f in (*mapped.findings, *found)]
                status = Status.INVALID if has_errors(findings) else Status.VALID
                outcome = Outcome(unit.key, status, unit.location, c, findings)
            t6 = pc()
            clock["outcome"] += t6 - t5
            out.write((outcome.to_json() if hasattr(outcome, "to_json")
                       else app.dumps(outcome.as_dict())) + "\n")
            clock["outcome json"] += pc() - t6


def baseline(folder: Path, clock: Counter[str]) -> None:
    from s321.record import Consignment

    pc = time.perf_counter
    t = pc()
    tables = hand_written.load_tables(folder)
    clock["load"] += pc() - t
    orders = hand_written.orders(folder / "orders_export.csv")
    with open("/dev/null", "w", encoding="utf-8") as out:
        while True:
            t = pc()
            order = next(orders, None)
            if order is None:
                break
            _line, rows = order
            t1 = pc()
            clock["read"] += t1 - t
            record, reason, findings = hand_written.to_record(rows[0]["Name"], rows, tables)
            t2 = pc()
            clock["map + transaction id"] += t2 - t1
            consignment = None
            if record:
                consignment = Consignment.model_validate(record)
                t3 = pc()
                clock["model"] += t3 - t2
                findings += hand_written.check(consignment)
                t2 = pc()
                clock["check"] += t2 - t3
            out.write(json.dumps({
                "ref": rows[0]["Name"], "reason": reason, "findings": findings,
                "record": consignment.model_dump(mode="json", exclude_none=True)
                if consignment else None}, ensure_ascii=False) + "\n")
            clock["record dump + json"] += pc() - t2


def main(argv: list[str] | None = None) -> int:
    from s321 import logs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder written by `generate.py shop`")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest per phase is kept")
    args = parser.parse_args(argv)
    logs.configure(level="warning")
    folder = args.folder.resolve()
    files = throughput.generate.ShopFiles(folder / "orders_export.csv", folder / "catalog.csv",
                                          folder / "vendors.csv", folder / "tracking.csv")
    tmp = Path(tempfile.mkdtemp(prefix="s321-phases-"))
    settings = throughput.Settings(tmp, tmp, 1, 500, 4, "NORMAL", ())
    config = throughput.write_config(tmp / "phases.toml", files, tmp / "ledger.sqlite",
                                     throughput.file_transport(tmp / "outbox"), settings)
    orders = sum(1 for _ in hand_written.orders(files.orders))
    best: dict[str, dict[str, float]] = {"framework": {}, "baseline": {}}
    for _ in range(args.repeat):
        for side, run, source in (("framework", framework, config), ("baseline", baseline, folder)):
            clock: Counter[str] = Counter()
            run(source, clock)  # type: ignore[operator]
            for phase, seconds in clock.items():
                best[side][phase] = min(best[side].get(phase, float("inf")), seconds)
    for side, phases in best.items():
        total = sum(phases.values()) / orders * 1e6
        print(f"{side}: {total:.1f} us an order")
        for phase, seconds in phases.items():
            print(f"  {phase:>22}: {seconds / orders * 1e6:7.1f}")
    ratio = sum(best["baseline"].values()) / sum(best["framework"].values())
    print(f"baseline / framework: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The preview of one generated input run with two versions of the code, alternately, in
fresh processes: the fairest before/after on a machine shared with other work (a change
of load hits both alike). Prints CPU µs a record, the best of the rounds, per side:

    git worktree add /tmp/before <commit>
    python bench/before_after.py /tmp/before --source shop --size 100000 --rounds 3
    python bench/before_after.py /tmp/before --source cargo-imp-fhl --size 100000

The inputs are those of throughput.py (bench/.data/, made once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import generate
import throughput


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="a checkout of the older code")
    parser.add_argument("--source", choices=throughput.SOURCES, default="shop")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--data", type=Path, default=BENCH / ".data")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s321-ab-") as tmp:
        work = Path(tmp)
        settings = throughput.Settings(args.data, work, 1, None, None, "NORMAL", ())
        if args.source == "shop":
            files = throughput.shop_inputs(args.data, args.size, args.seed)
            config = throughput.write_config(work / "preview.toml", files, work / "ledger.sqlite",
                                             throughput.file_transport(work / "outbox"), settings)
            pipeline = "shop"
        else:
            path = throughput.carrier_input(args.data, args.source, args.size, args.seed)
            config = throughput.write_carrier_config(work / "preview.toml", args.source, path, work)
            pipeline = "carrier"
        sides = {"before": [sys.executable, str(BENCH / "checkout.py"), str(args.before.resolve())],
                 "after": [sys.executable]}
        best: dict[str, float] = {}
        for n in range(args.rounds):
            for side, python in sides.items():
                done = subprocess.run([*python, str(BENCH / "stages.py"), "preview", "--config",
                                       str(config), "--pipeline", pipeline],
                                      capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                us = result["cpu_seconds"] / result["records"] * 1e6
                best[side] = min(best.get(side, us), us)
                # A parallel preview (s321.parallel): its workers' share of the CPU.
                workers = result.get("workers_cpu_seconds", 0.0) / result["records"] * 1e6
                split = f" (parent {us - workers:.1f} + workers {workers:.1f})" if workers else ""
                print(f"round {n + 1} {side:6}: {us:6.1f} µs a record (CPU){split}, "
                      f"{result['records'] / result['seconds']:,.0f}/s", flush=True)
    print(f"{args.source} {args.size:,}: before {best['before']:.1f}, after {best['after']:.1f} µs a "
          f"record (CPU, best of {args.rounds}): x{best['before'] / best['after']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

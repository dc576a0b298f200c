"""One benchmark stage, run in a fresh process by `throughput.py` so that peak memory
(ru_maxrss) and CPU time belong to that stage alone.

Stages: `preview` (the framework's read -> map -> validate -> serialize, as
`s321 preview --json` does it), `baseline` (bench/baseline.py, the same work by hand),
`baseline-carrier` (bench/baseline_carrier.py, the same for an X12 309 or FHL file),
`tables` (config and enrichment tables only, to tell their memory from the streaming
part's) and `e2e` (what `s321 run --once` does: ingest into the durable ledger while
transmitting over `p2p-socket` to a sandbox running in another process, then go on
until every record is acknowledged). Each prints
one JSON object: records, seconds (wall, from the start of the work), cpu_seconds.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def preview(config: Path, pipeline: str, out: str) -> dict[str, Any]:
    from s321 import app, logs
    from s321 import config as config_mod

    logs.configure(level="warning")
    # Loading the plugins is importing code, which the baseline does before its clock
    # starts too; reading the config and the enrichment tables is timed, on both sides.
    registry = app.load_registry(config)
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = config_mod.load(config, registry)
    counts: Counter[str] = Counter()
    # As `s321 preview` runs it: on every core for a large input (older code: one process).
    jobs = {"jobs": "auto"} if "jobs" in inspect.signature(app.preview).parameters else {}
    with open(out, "w", encoding="utf-8") as fh:
        for outcome in app.preview(loaded, pipeline, **jobs):
            counts[outcome.status.value] += 1
            # What `s321 preview --json` prints (older code: as_dict through json).
            fh.write(outcome.to_json() if hasattr(outcome, "to_json") else app.dumps(outcome.as_dict()))
            fh.write("\n")
    result = _result(t0, c0, sum(counts.values()), counts)
    # The preview's worker processes (s321.parallel): their CPU counts, their memory is
    # their own (the parent's peak RSS does not include it).
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_seconds"] += workers.ru_utime + workers.ru_stime
    result["workers_cpu_seconds"] = workers.ru_utime + workers.ru_stime
    result["workers_max_rss_mb"] = round(workers.ru_maxrss / 1024, 1)
    return result


def tables(config: Path, pipeline: str) -> dict[str, Any]:
    """Only what the preview holds for the whole run: config and enrichment tables."""
    from s321 import app, logs
    from s321 import config as config_mod
    from s321.pipeline import Processor

    logs.configure(level="warning")
    registry = app.load_registry(config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = config_mod.load(config, registry)
    Processor(loaded.pipelines[pipeline], loaded.rates)
    result = _result(t0, c0, 0, Counter())
    result["rss_before_mb"] = round(before, 1)
    return result


def baseline(folder: Path, out: str) -> dict[str, Any]:
    import baseline as hand_written

    t0, c0 = time.perf_counter(), time.process_time()
    counts = hand_written.run(folder, out)
    return _result(t0, c0, sum(counts.values()), Counter(counts))


def baseline_carrier(kind: str, path: Path, out: str) -> dict[str, Any]:
    import baseline_carrier as hand_written

    t0, c0 = time.perf_counter(), time.process_time()
    counts = hand_written.run(kind, path, out)
    return _result(t0, c0, sum(counts.values()), Counter(counts))


def e2e(config: Path, pipeline: str) -> dict[str, Any]:
    """Like `s321 run --once` (run_pipeline_once): `ingest_seconds` is when the input
    was all read and committed (batches going out meanwhile), `transmit_seconds` the
    rest, until the last ack."""
    import s321
    from s321 import app, logs
    from s321 import config as config_mod
    from s321.ledger_open import open_ledger
    from s321.observers import Observers
    from s321.runner import drive
    from s321.worker import PipelineWorker

    logs.configure(level="warning")
    registry = app.load_registry(config)
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = config_mod.load(config, registry)
    link = None
    setting = getattr(loaded.config.daemon, "transmit", "thread")
    # Code measured with --code from before the transmit process has no such module (and
    # the installed checkout's would not fit it): it transmits in a thread.
    if (Path(s321.__file__).parent / "transmit_process.py").exists():
        from s321 import transmit_process
        from s321.transmit_process import TransmitLink

        if hasattr(transmit_process, "choose"):  # as run --once starts it ("auto", the default: on 2 cores)
            setting = transmit_process.choose(setting, registry, [loaded.pipelines[pipeline]])
    if setting == "process":
        link = TransmitLink(config, Observers(registry.pm), once=True)
        link.prefork()
    ledger = open_ledger(loaded.config.ledger)
    if link is not None:
        link.start([pipeline])
    worker = PipelineWorker(loaded.pipelines[pipeline], loaded.rates, ledger,
                            Observers(registry.pm), **({"make_sender": link.sender} if link else {}))
    try:
        worker.recover()
        received = worker.ingest(settle=False)
        t_ingested = time.perf_counter()
        if link is not None:
            worker.sender.finish()
        else:
            drive(worker, budget=loaded.pipelines[pipeline].config.retry.ack_timeout)
    finally:
        worker.close()
        if link is not None:
            link.stop(30.0, drain=False)
    t_done = time.perf_counter()
    states = ledger.counts(pipeline)
    ledger.close()
    accepted = states.get("accepted", 0)
    result = _result(t0, c0, accepted, Counter(states))
    result.update({
        "received": received,
        "ingest_seconds": t_ingested - t0,
        "transmit_seconds": t_done - t_ingested,
        "error": worker.error,
    })
    if link is not None:  # the transmit process's CPU (reaped): the stage's own is the ingest's
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["transmit_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def _as_the_cli_does() -> None:
    """Process settings every `s321` command applies before it works."""
    try:
        from s321 import gctune
    except ImportError:  # older code, measured with throughput.py --code
        return
    gctune.for_batches()


def _result(t0: float, c0: float, records: int, counts: Counter[str]) -> dict[str, Any]:
    return {"records": records, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "counts": dict(counts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("preview", "baseline", "baseline-carrier", "tables", "e2e"))
    parser.add_argument("--config", type=Path)
    parser.add_argument("--pipeline", default="shop")
    parser.add_argument("--folder", type=Path, help="baseline: the generated shop folder")
    parser.add_argument("--kind", choices=("x12-309", "cargo-imp-fhl"), help="baseline-carrier: the source")
    parser.add_argument("--file", type=Path, help="baseline-carrier: the generated file")
    parser.add_argument("--out", default="/dev/null", help="where JSON outcomes go")
    args = parser.parse_args(argv)
    if not args.stage.startswith("baseline"):
        _as_the_cli_does()
    if args.stage == "preview":
        result = preview(args.config, args.pipeline, args.out)
    elif args.stage == "baseline":
        result = baseline(args.folder, args.out)
    elif args.stage == "baseline-carrier":
        result = baseline_carrier(args.kind, args.file, args.out)
    elif args.stage == "tables":
        result = tables(args.config, args.pipeline)
    else:
        result = e2e(args.config, args.pipeline)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`s321 run --once`: every enabled pipeline ingests what its source holds now (sending
full batches while it reads), then transmits through the ledger until nothing is due,
or until its ack timeout passes with work still owed (that work stays queued in the
ledger for the next run).

A receiver that cannot be reached is said once, at warning level, with the address
the transport names and the time the run gives up (the ack timeout from the start of
transmission). `stop` (set on SIGINT or SIGTERM) ends the run within about a second:
ingestion stops between chunks (a file not read to its end is read again next time),
transmission stops between passes; what is on the wire stays `sent` and is sent
again by the next run, so nothing is lost; every pipeline still gets its summary.

With `[daemon] transmit = "process"` (or "auto", the default, where
s321.transmit_process.choose says so) the run ingests in this process and transmits in
one child process (s321.transmit_process) for all its pipelines, told when each input is
read; the summary is the same, from the counts and rejections the child reports.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from s321.config import LoadedConfig
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.logs import error_text, get_logger
from s321.observers import Observers
from s321.registry import Registry
from s321.transmit_process import RemoteSender, TransmitLink, choose
from s321.transmitter import drive
from s321.worker import PipelineWorker

log = get_logger(__name__)

COUNTS = ("received", "unchanged", "valid", "invalid", "skipped", "revalidated", "sent", "accepted", "rejected",
          "delivered", "retried", "dead")


@dataclass
class RunSummary:
    pipeline: str
    transport: str
    counts: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[str, list[Any]]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    """Transaction id -> the record's key in its source (order name, bill number), for
    the rejections."""
    queued: int = 0
    awaiting_ack: int = 0
    error: str | None = None
    acknowledges: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "transport": self.transport,
                **{k: self.counts.get(k, 0) for k in COUNTS},
                "queued": self.queued, "awaiting_ack": self.awaiting_ack, "error": self.error}


STOP_GRACE = 1.5
"""Seconds `run_once` waits for its pipelines after a stop before it reports them: a
transport call that blocks (a connect timing out) is left behind, its records `sent`."""


def run_pipeline_once(worker: PipelineWorker, stop: threading.Event | None = None) -> RunSummary:
    p = worker.pipeline
    summary = RunSummary(p.name, p.transport.name)
    worker.observers.pipeline_started(p.name, p.context)
    failed = False
    try:
        summary.acknowledges = worker.transport.capabilities.acknowledges
        worker.recover()
        worker.revalidate_if_changed()  # a table fixed since: invalid records filed now
        worker.stop = stop
        worker.ingest(settle=False)
        if isinstance(worker.sender, RemoteSender):
            worker.sender.finish(stop)  # the transmit process sends what is due, then reports
        else:
            drive(worker, budget=p.config.retry.ack_timeout, stop=stop)
        summary.queued, summary.awaiting_ack = worker.outstanding()
        if stop is not None and stop.is_set():
            worker.error = "interrupted: what is owed stays in the ledger for the next run"
        elif (summary.queued or summary.awaiting_ack) and not worker.error:
            worker.error = "acknowledgements still outstanding at the end of the run"
    except Exception as exc:  # one pipeline's failure never takes the others down
        failed = True
        worker.error = f"pipeline failed: {error_text(exc)}"
        log.error("pipeline failed", pipeline=p.name, error=worker.error, exc_info=True)
    finally:
        try:
            worker.close()
        except Exception as exc:  # a ledger gone bad fails the close too: the run is failed already
            failed = True
            worker.error = worker.error or f"pipeline failed: {error_text(exc)}"
        summary.counts = worker.counts
        summary.rejections = worker.rejections
        if summary.rejections:
            try:
                summary.names = worker.ledger.names(txid for txid, _ in summary.rejections)
            except Exception:  # a ledger gone bad: the transaction ids still say which
                summary.names = {}
        # A failure, and records dead-lettered in this run, are errors the operator must see.
        if failed or summary.queued or summary.awaiting_ack or worker.stalled() or worker.counts["dead"] \
                or (stop is not None and stop.is_set()):
            summary.error = worker.error
        worker.observers.pipeline_finished(p.name, summary)
    return summary


def run_once(registry: Registry, loaded: LoadedConfig, only: list[str] | None = None,
             ledger: Ledger | None = None,
             watch: Callable[[dict[str, Counter[str]], dict[str, bool], Callable[[], bool]], None]
             | None = None, stop: threading.Event | None = None) -> list[RunSummary]:
    """Run the pipelines side by side (one thread each), so that one slow or failing
    transport does not hold the others up. `watch(counts, acknowledges, running)` is
    called in the calling thread with each pipeline's live counters and whether its
    transport acknowledges (for a progress display). Once `stop` is set, pipelines get
    STOP_GRACE seconds to finish; one still busy is reported from its live counters."""
    own = ledger is None
    observers = Observers(registry.pm)
    names = only or [n for n, p in loaded.pipelines.items() if p.config.enabled]
    link: TransmitLink | None = None
    if names and choose(loaded.config.daemon.transmit, registry, [loaded.pipelines[n] for n in names
                                                                 if n in loaded.pipelines]) == "process":
        link = TransmitLink(loaded.path, observers, once=True)
        if own:
            link.prefork()  # before the ledger is opened (s321.transmit_process)
    ledger = ledger or open_ledger(loaded.config.ledger, held=True, holder="s321 run --once")
    results: dict[str, RunSummary] = {}
    live: dict[str, Counter[str]] = {n: Counter() for n in names}
    acknowledges: dict[str, bool] = {n: True for n in names}
    if link is not None:  # from this (the main) thread, before the pipelines' threads start
        link.owner = ledger.owner
        link.start(names)

    def one(name: str) -> None:
        try:
            worker = PipelineWorker(loaded.pipelines[name], loaded.rates, ledger, observers,
                                    counts=live[name], make_sender=link.sender if link else None)
            acknowledges[name] = worker.transport.capabilities.acknowledges
        except Exception as exc:
            results[name] = RunSummary(name, loaded.pipelines[name].transport.name,
                                       error=f"{type(exc).__name__}: {exc}")
            if link is not None:
                link.tell("input_done", name)  # nothing comes from this pipeline: the child may end
            return
        try:
            results[name] = run_pipeline_once(worker, stop)
        except Exception as exc:  # even a failure to report must leave a summary
            results[name] = RunSummary(name, loaded.pipelines[name].transport.name,
                                       error=f"{type(exc).__name__}: {exc}")

    # Daemon threads: after a stop, one blocked in its transport must not keep the
    # process alive; its records are `sent` in the ledger and go again next run.
    threads = [threading.Thread(target=one, args=(n,), name=f"s321-{n}", daemon=True) for n in names]
    for t in threads:
        t.start()
    stopping = stop or threading.Event()
    if watch is not None:
        watch(live, acknowledges, lambda: any(t.is_alive() for t in threads) and not stopping.is_set())
    while any(t.is_alive() for t in threads) and not stopping.wait(0.1):
        pass
    grace = time.monotonic() + STOP_GRACE
    for t in threads:
        t.join(max(0.0, grace - time.monotonic()) if stopping.is_set() else None)
    if link is not None:  # it has reported (or stops now): its exit is the run's end
        link.stop(STOP_GRACE if stopping.is_set() else 30.0, drain=False)
    busy = [n for n, t in zip(names, threads) if t.is_alive()]
    for name in busy:
        log.warning("pipeline still busy at the stop; its records stay in the ledger", pipeline=name)
        results[name] = RunSummary(name, loaded.pipelines[name].transport.name, counts=live[name],
                                   error="interrupted while its transport was busy: what is owed stays "
                                         "in the ledger for the next run", acknowledges=acknowledges[name])
    if own and not busy:
        ledger.close()  # a busy pipeline may still write: the process's exit closes it
    return [results[n] for n in names]

"""Prometheus metrics of a running s321: consignments per pipeline and outcome, queue
depth read from the ledger at scrape time, and ack latency. One registry per daemon,
so tests and several daemons in one process do not share counters.

What a daemon did is labelled with its identity (`daemon="host:pid:…"`, the owner name
its ledger leases are taken in), so that the daemons sharing one PostgreSQL ledger can
be told apart; the queue depth is the ledger's, the same whichever daemon is asked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

OUTCOMES = ("received", "valid", "invalid", "skipped", "sent", "accepted", "rejected", "retried", "dead")


class _QueueDepth(Collector):
    def __init__(self, depth: Callable[[], dict[str, tuple[int, int]]]):
        self.depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("s321_queue_depth", "Records queued or awaiting an ack, per pipeline",
                                   labels=["pipeline", "state"])
        for pipeline, (queued, sent) in self.depth().items():
            family.add_metric([pipeline, "queued"], queued)
            family.add_metric([pipeline, "sent"], sent)
        yield family


class Metrics:
    def __init__(self, depth: Callable[[], dict[str, tuple[int, int]]] | None = None,
                 daemon: str | None = None):
        self.daemon = daemon or f"{socket.gethostname()}:{os.getpid()}"
        self.registry = CollectorRegistry()
        self._consignments = Counter("s321_consignments", "Consignments by pipeline and outcome",
                                     ["pipeline", "outcome", "daemon"], registry=self.registry)
        self._latency = Histogram("s321_ack_latency_seconds", "From batch sent to its acknowledgement",
                                  ["pipeline", "daemon"], registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self._lost = Counter("s321_batches_taken_over", "Batches this daemon sent whose lease another "
                             "daemon took over (this one renewed too late)", ["pipeline", "daemon"],
                             registry=self.registry)
        self._at_risk = Gauge("s321_deadlines_at_risk", "Transmissions at risk of missing the receiver's "
                              "deadline (ace-truck-309: trips due at ACE with shipments still unanswered)",
                              ["pipeline", "daemon"], registry=self.registry)
        if depth is not None:
            self.registry.register(_QueueDepth(depth))

    def count(self, pipeline: str, outcome: str, n: int = 1) -> None:
        self._consignments.labels(pipeline, outcome, self.daemon).inc(n)

    def ack_latency(self, pipeline: str, seconds: float) -> None:
        self._latency.labels(pipeline, self.daemon).observe(seconds)

    def batches_taken_over(self, pipeline: str, n: int) -> None:
        self._lost.labels(pipeline, self.daemon).inc(n)

    def at_risk(self, pipeline: str, n: int) -> None:
        self._at_risk.labels(pipeline, self.daemon).set(n)

    def prepare(self, pipeline: str) -> None:
        """Make every outcome of a pipeline visible at 0 from the start."""
        for outcome in OUTCOMES:
            self._consignments.labels(pipeline, outcome, self.daemon)
        self._lost.labels(pipeline, self.daemon)

    def render(self) -> bytes:
        return generate_latest(self.registry)

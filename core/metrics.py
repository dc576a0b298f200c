"""Prometheus metrics of a running s321: consignments per pipeline and outcome, queue
depth read from the ledger at scrape time, and ack latency. One registry per daemon,
so tests and several daemons in one process do not share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
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
    def __init__(self, depth: Callable[[], dict[str, tuple[int, int]]] | None = None):
        self.registry = CollectorRegistry()
        self._consignments = Counter("s321_consignments", "Consignments by pipeline and outcome",
                                     ["pipeline", "outcome"], registry=self.registry)
        self._latency = Histogram("s321_ack_latency_seconds", "From batch sent to its acknowledgement",
                                  ["pipeline"], registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        if depth is not None:
            self.registry.register(_QueueDepth(depth))

    def count(self, pipeline: str, outcome: str, n: int = 1) -> None:
        self._consignments.labels(pipeline, outcome).inc(n)

    def ack_latency(self, pipeline: str, seconds: float) -> None:
        self._latency.labels(pipeline).observe(seconds)

    def prepare(self, pipeline: str) -> None:
        """Make every outcome of a pipeline visible at 0 from the start."""
        for outcome in OUTCOMES:
            self._consignments.labels(pipeline, outcome)

    def render(self) -> bytes:
        return generate_latest(self.registry)

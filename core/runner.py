"""`s321 run --once` without a ledger: every pipeline's source -> mapping -> validation
-> transport, with a summary per pipeline.

Records are streamed in batches; a batch that hits a retriable transport error is sent
again (same transaction ids) after a backoff, so a receiver sees at worst a duplicate
`add`, which it answers as such. A fatal error stops that pipeline only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from s321 import ids
from s321.config import Pipeline
from s321.contracts import Ack, AckStatus, Batch, Transport
from s321.errors import FatalError, RetriableError, TransportError
from s321.findings import Finding, error
from s321.logs import get_logger
from s321.observers import Observers
from s321.pipeline import Outcome, Processor, Status
from s321.record import Consignment

log = get_logger(__name__)

COUNTS = ("received", "valid", "invalid", "skipped", "sent", "accepted", "rejected")


@dataclass
class RunSummary:
    pipeline: str
    transport: str
    counts: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[str, str, list[Finding]]] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    error: str | None = None
    acknowledges: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "transport": self.transport,
            **{k: self.counts.get(k, 0) for k in COUNTS},
            "batches": len(self.batches),
            "error": self.error,
        }


@dataclass
class RetryPolicy:
    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 5.0
    ack_timeout: float = 30.0


class PipelineRun:
    """One pass of one pipeline over what its source holds now."""

    def __init__(self, pipeline: Pipeline, rates: dict[str, Decimal], observers: Observers,
                 policy: RetryPolicy | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None):
        self.pipeline = pipeline
        self.rates = rates
        self.observers = observers
        self.policy = policy or RetryPolicy()
        self.on_outcome = on_outcome
        self.summary = RunSummary(pipeline.name, pipeline.transport.name)
        self.pending: dict[str, set[str]] = {}

    def run(self) -> RunSummary:
        p = self.pipeline
        self.observers.pipeline_started(p.name, p.context)
        transport: Transport | None = None
        try:
            processor = Processor(p, self.rates)
            transport = p.transport.factory(p.transport_options, p.context, p.serializer.factory())
            self.summary.acknowledges = transport.capabilities.acknowledges
            size = max(1, min(p.config.batch_size, transport.capabilities.max_batch))
            self._retry(transport, transport.connect)
            batch: list[Consignment] = []
            for outcome in processor.process():
                self._count(outcome)
                if outcome.status is Status.VALID and outcome.record is not None:
                    batch.append(outcome.record)
                    if len(batch) >= size:
                        self._send(transport, batch)
                        batch = []
            if batch:
                self._send(transport, batch)
            self._await_acks(transport, deadline=time.monotonic() + self.policy.ack_timeout)
        except TransportError as exc:
            self.summary.error = f"{type(exc).__name__}: {exc}"
            log.error("pipeline stopped", pipeline=p.name, error=self.summary.error)
        except Exception as exc:  # report, never take the other pipelines down
            self.summary.error = f"{type(exc).__name__}: {exc}"
            log.exception("pipeline failed", pipeline=p.name)
        finally:
            if transport is not None:
                try:
                    transport.close()
                except Exception:
                    log.warning("transport close failed", pipeline=p.name)
            self.observers.pipeline_finished(p.name, self.summary)
        return self.summary

    def _count(self, outcome: Outcome) -> None:
        self.summary.counts["received"] += 1
        self.summary.counts[outcome.status.value] += 1
        if outcome.status is Status.INVALID:
            txid = outcome.record.transaction_id if outcome.record else outcome.ref
            self.observers.consignment_rejected(self.pipeline.name, txid, "validation", outcome.findings)
        if self.on_outcome:
            self.on_outcome(outcome)

    def _send(self, transport: Transport, records: list[Consignment]) -> None:
        ctx = self.pipeline.context
        batch = Batch(batch_id=ids.batch_id(), originator_code=ctx.originator_code,
                      profile=ctx.profile, sent_at=datetime.now(UTC), records=records)
        window = max(1, transport.capabilities.window)
        while transport.capabilities.acknowledges and len(self.pending) >= window:
            self._collect(transport, timeout=self.policy.ack_timeout)
        self._retry(transport, lambda: transport.send(batch))
        self.summary.batches.append(batch.batch_id)
        self.summary.counts["sent"] += len(records)
        if transport.capabilities.acknowledges:
            self.pending[batch.batch_id] = {r.transaction_id for r in records}
        log.info("batch sent", pipeline=self.pipeline.name, batch_id=batch.batch_id, records=len(records))

    def _retry(self, transport: Transport, action: Callable[[], Any]) -> Any:
        delay = self.policy.first_delay
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return action()
            except RetriableError as exc:
                if attempt == self.policy.attempts:
                    raise
                log.warning("retrying", pipeline=self.pipeline.name, attempt=attempt, error=str(exc))
                time.sleep(delay)
                delay = min(delay * 2, self.policy.max_delay)
                try:
                    transport.close()
                    transport.connect()
                except RetriableError:
                    pass
        raise FatalError("unreachable")

    def _collect(self, transport: Transport, timeout: float) -> None:
        acks = transport.acks(timeout=timeout)
        if not acks:
            raise RetriableError(f"no acknowledgement within {timeout:g} s")
        for ack in acks:
            self._resolve(ack)

    def _await_acks(self, transport: Transport, deadline: float) -> None:
        while self.pending and time.monotonic() < deadline:
            for ack in transport.acks(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                self._resolve(ack)
        if self.pending:
            missing = sum(len(v) for v in self.pending.values())
            raise RetriableError(f"{missing} records sent but not acknowledged in time")

    def _resolve(self, ack: Ack) -> None:
        expected = self.pending.pop(ack.batch_id, set())
        for result in ack.results:
            if result.transaction_id not in expected:
                continue
            if result.status is AckStatus.ACCEPTED or _already_accepted(result.errors):
                self.summary.counts["accepted"] += 1
                continue
            self.summary.counts["rejected"] += 1
            findings = [error(e.code, e.field or "", e.message) for e in result.errors]
            self.summary.rejections.append((result.transaction_id, ack.batch_id, findings))
            self.observers.consignment_rejected(self.pipeline.name, result.transaction_id, "cbp", findings)


def _already_accepted(errors: list[Any]) -> bool:
    """A resent `add` that the receiver had accepted comes back as a duplicate: it is
    filed, once (DESIGN.md section 3)."""
    return bool(errors) and all(e.code == DUPLICATE for e in errors)


DUPLICATE = "duplicate"

"""One pipeline's durable runtime over the ledger: ingest input files, transmit what is
queued, resolve acknowledgements, retry with backoff, dead-letter past the budget.

Order of effects, which is what makes a crash harmless: units are committed to the
ledger before their input file is archived or the source acknowledged; records are
committed `sent` before their batch leaves; a record leaves `sent` only on an ack, or
by going back to the queue (same transaction id) when no ack came in time.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from s321 import ids
from s321.backoff import Backoff
from s321.config import Pipeline
from s321.contracts import Batch, Transport
from s321.errors import FatalError, RetriableError, classify
from s321.findings import error
from s321.inputs import input_files
from s321.ledger import Ledger, Row
from s321.logs import get_logger
from s321.observers import Observers
from s321.pipeline import Outcome, Processor, Status
from s321.states import State

log = get_logger(__name__)

CHUNK = 500
"""Units per ledger transaction while ingesting: big files never hold the lock long."""


class PipelineWorker:
    def __init__(self, pipeline: Pipeline, rates: dict[str, Decimal], ledger: Ledger,
                 observers: Observers, metrics: Any = None, clock: Callable[[], float] = time.time):
        self.pipeline = pipeline
        self.name = pipeline.name
        self.ledger = ledger
        self.observers = observers
        self.metrics = metrics
        self.clock = clock
        self.retry = pipeline.config.retry
        self.backoff = Backoff(initial=self.retry.initial, maximum=self.retry.maximum)
        self.processor = Processor(pipeline, rates)
        self.counts: Counter[str] = Counter()
        self.error: str | None = None
        self.rejections: list[tuple[str, list[Any]]] = []
        self._transport: Transport | None = None
        self._connect_failures = 0
        self._next_connect = 0.0
        self._inflight: dict[str, float] = {}
        self._fatal = False

    # ------------------------------------------------------------------ ingestion

    def pending_inputs(self, settle: bool = True) -> list[Path] | None:
        """Input files ready to read now, or None for a source that is not file-based.
        With `settle`, a file modified in the last `settle_seconds` is left for later
        (the daemon's guard against half-written files; `--once` takes what is there)."""
        opts = self.pipeline.source_options
        inputs = getattr(self.processor.source, "inputs", None)
        if callable(inputs):
            files = list(inputs())
        elif hasattr(opts, "path") and hasattr(opts, "pattern"):
            files = list(input_files(None, opts.path, opts.pattern))
        else:
            return None
        now = time.time()
        ready = []
        for f in files:
            if f.name.startswith(".") or f.suffix in (".tmp", ".part"):
                continue  # written under a temporary name: not complete yet
            try:
                st = f.stat()
            except OSError:
                continue
            if settle and now - st.st_mtime < self.pipeline.config.settle_seconds:
                continue  # still being written
            if not self.ledger.input_seen(self.name, str(f), st.st_size, st.st_mtime_ns):
                ready.append(f)
        return ready

    def ingest(self, paths: Iterable[Path] | None = None, settle: bool = True) -> int:
        """Read, map, validate and commit. Returns the number of units stored."""
        files = list(paths) if paths is not None else self.pending_inputs(settle)
        if files is None:
            return self._ingest_stream(self.processor.process(), None)
        total = 0
        for f in files:
            try:
                st = f.stat()
            except OSError as exc:
                log.warning("input vanished", pipeline=self.name, file=str(f), error=exc.strerror)
                continue
            total += self._ingest_stream(self.processor.process([f]), (str(f), st.st_size, st.st_mtime_ns))
            self._archive(f)
        return total

    def _ingest_stream(self, outcomes: Iterator[Outcome], input_file: tuple[str, int, int] | None) -> int:
        ctx = self.pipeline.context
        n = 0
        last_checkpoint = None
        while True:
            chunk = []
            for outcome in outcomes:
                chunk.append(outcome)
                if len(chunk) >= CHUNK:
                    break
            done = len(chunk) < CHUNK
            # The input is marked processed with its last chunk only, so a crash in
            # the middle makes the whole file be read again (idempotently).
            self.ledger.ingest(self.name, ctx.originator_code, ctx.source, chunk,
                               input_file=input_file if done else None)
            for outcome in chunk:
                self._observe(outcome)
                if outcome.checkpoint is not None:
                    last_checkpoint = outcome.checkpoint
            n += len(chunk)
            if done:
                break
        if last_checkpoint is not None:
            self.processor.source.ack(last_checkpoint)
        return n

    def _observe(self, outcome: Outcome) -> None:
        self.counts["received"] += 1
        self.counts[outcome.status.value] += 1
        self._metric("received")
        self._metric(outcome.status.value)
        if outcome.status is Status.INVALID:
            txid = outcome.record.transaction_id if outcome.record else outcome.ref
            self.observers.consignment_rejected(self.name, txid, "validation", outcome.findings)

    def _archive(self, path: Path) -> None:
        folder = self.pipeline.config.archive_dir
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():
            target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
        try:
            shutil.move(str(path), str(target))
        except OSError as exc:
            log.warning("archive failed", pipeline=self.name, file=str(path), error=exc.strerror)

    # ------------------------------------------------------------------ transmission

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            p = self.pipeline
            self._transport = p.transport.factory(p.transport_options, p.context, p.serializer.factory())
        return self._transport

    def recover(self) -> int:
        """After a start: records left `sent` by an earlier process get no ack on this
        connection; queue them again now (a receiver answers a duplicate)."""
        if not self.transport.capabilities.acknowledges:
            return 0
        rows = self.ledger.unacknowledged(self.name, sent_before=float("inf"))
        self.ledger.requeue([r.transaction_id for r in rows], "sent by an earlier run, not acknowledged")
        return len(rows)

    def _connected(self) -> bool:
        if self._fatal:
            return False
        now = self.clock()
        if now < self._next_connect:
            return False
        try:
            self.transport.connect()
        except RetriableError as exc:
            self._connect_failed(exc)
            return False
        except FatalError as exc:
            self.error = f"FatalError: {exc}"
            self._fatal = True
            log.error("transport refused", pipeline=self.name, error=str(exc))
            return False
        except Exception as exc:
            self._connect_failed(classify(exc))
            return False
        self._connect_failures = 0
        return True

    def _connect_failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self._next_connect = self.clock() + self.backoff.delay(self._connect_failures)
        self._connect_failures += 1
        log.warning("transport unreachable", pipeline=self.name, error=str(exc), attempt=self._connect_failures)

    def transmit(self) -> int:
        """Send due records while the window allows. Returns the number sent."""
        if not self._connected():
            return 0
        transport = self.transport
        caps = transport.capabilities
        size = max(1, min(self.pipeline.config.batch_size, caps.max_batch))
        window = max(1, caps.window)
        sent = 0
        while len(self._inflight) < window or not caps.acknowledges:
            batch_id = ids.batch_id()
            rows = self.ledger.claim(self.name, batch_id, size, now=self.clock())
            if not rows:
                break
            batch = Batch(batch_id=batch_id, originator_code=self.pipeline.context.originator_code,
                          profile=self.pipeline.context.profile, sent_at=datetime.now(UTC),
                          records=[r.record for r in rows if r.record is not None])
            try:
                transport.send(batch)
            except Exception as exc:
                self._send_failed(rows, classify(exc))
                break
            sent += len(rows)
            self.counts["sent"] += len(rows)
            self._metric("sent", len(rows))
            if caps.acknowledges:
                self._inflight[batch_id] = self.clock()
            log.info("batch sent", pipeline=self.name, batch_id=batch_id, records=len(rows))
        return sent

    def _send_failed(self, rows: list[Row], exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        txids = [r.transaction_id for r in rows]
        if isinstance(exc, FatalError):
            self.ledger.requeue(txids, self.error, dead=txids, now=now)
            self._dead(len(rows))
            log.error("batch refused, dead-lettered", pipeline=self.name, records=len(rows), error=str(exc))
            return
        self._requeue(rows, self.error, now)
        self._safe_close()
        self._next_connect = now + self.backoff.delay(self._connect_failures)
        self._connect_failures += 1

    def _requeue(self, rows: list[Row], reason: str, now: float) -> None:
        dead = [r.transaction_id for r in rows
                if r.queued_at is not None and now - r.queued_at > self.retry.max_elapsed]
        delays = {r.transaction_id: self.backoff.delay(r.attempts - 1) for r in rows}
        self.ledger.requeue([r.transaction_id for r in rows], reason, delays, dead=dead, now=now)
        retried = len(rows) - len(dead)
        self.counts["retried"] += retried
        self._metric("retried", retried)
        self._dead(len(dead))

    def _dead(self, n: int) -> None:
        if n:
            self.counts["dead"] += n
            self._metric("dead", n)

    def poll_acks(self, timeout: float = 0.0) -> int:
        """Collect acknowledgements and resolve them in the ledger; expire batches
        that waited too long. Returns the number of records resolved."""
        if self._transport is None or not self.transport.capabilities.acknowledges:
            return 0
        resolved = 0
        try:
            acks = self.transport.acks(timeout=timeout)
        except Exception as exc:
            err = classify(exc)
            self.error = f"{type(err).__name__}: {err}"
            log.warning("ack read failed", pipeline=self.name, error=str(err))
            self._safe_close()
            acks = []
        for ack in acks:
            sent_at = self._inflight.pop(ack.batch_id, None)
            moved = self.ledger.resolve(ack, now=self.clock())
            resolved += len(moved)
            if sent_at is not None and self.metrics is not None:
                self.metrics.ack_latency(self.name, self.clock() - sent_at)
            by_id = {r.transaction_id: r for r in ack.results}
            for txid, state in moved.items():
                self.counts[state.value] += 1
                self._metric(state.value)
                if state is State.REJECTED:
                    findings = [error(e.code, e.field or "", e.message) for e in by_id[txid].errors]
                    self.rejections.append((txid, findings))
                    self.observers.consignment_rejected(self.name, txid, "cbp", findings)
        self._expire()
        return resolved

    def _expire(self) -> None:
        now = self.clock()
        late = self.ledger.unacknowledged(self.name, sent_before=now - self.retry.ack_timeout)
        if late:
            log.warning("no acknowledgement in time, sending again", pipeline=self.name, records=len(late))
            self._requeue(late, f"no acknowledgement within {self.retry.ack_timeout:g} s", now)
            for batch_id in {r.batch_id for r in late}:
                self._inflight.pop(batch_id or "", None)

    def idle(self) -> bool:
        """Nothing due now: no queued record due, nothing awaiting an ack."""
        queued, sent, next_at = self.ledger.pending(self.name)
        awaiting = sent if self.transport.capabilities.acknowledges else 0
        return awaiting == 0 and (queued == 0 or (next_at or 0) > self.clock())

    def outstanding(self) -> tuple[int, int]:
        queued, sent, _ = self.ledger.pending(self.name)
        return queued, (sent if self.transport.capabilities.acknowledges else 0)

    def stalled(self) -> bool:
        return self._fatal

    def close(self) -> None:
        self._safe_close()

    def _safe_close(self) -> None:
        if self._transport is None:
            return
        try:
            self._transport.close()
        except Exception:
            log.warning("transport close failed", pipeline=self.name)
        if not self._fatal:
            self._transport = None
        if self._inflight:
            # Acks travel on the connection that is gone: send those batches again
            # (same transaction ids) rather than wait out the ack timeout.
            rows = self.ledger.sent_in(self.name, list(self._inflight))
            self.ledger.requeue([r.transaction_id for r in rows], "connection lost before the ack")
            self._inflight.clear()

    def _metric(self, name: str, n: int = 1) -> None:
        if self.metrics is not None and n:
            self.metrics.count(self.name, name, n)


"""Transmission over the ledger: claim queued records into batches, send them through
one transport, resolve acknowledgements, retry with backoff, dead-letter past the budget.

Promises: records are committed `sent` before their batch leaves; a record leaves
`sent` only on an ack (or, through a transport that gets none, as `delivered` once the
batch is handed over), or by going back to the queue (same transaction id) when its
connection was lost or no ack came within the ack timeout. A fatal error puts the
batch in the dead-letter queue; it is never retried by itself. A fatal error on
connect (a refused certificate or credential) puts every queued record of the pipeline
there, with that error, and so does each later pass while the link stays refused: no
record waits `queued` without a last error saying why (`s321 dlq retry` once fixed).

On a ledger that several daemons share (PostgreSQL), a claimed batch is leased to this
daemon: while it waits for the batch's acknowledgements it renews the lease every third
of `Ledger.lease_seconds`, so that a slow but live daemon's batch is not taken over and
sent twice; a batch the ledger says it no longer holds (another daemon took it over
after the lease ran out) is forgotten here, never sent again by this daemon. It waits,
drains and expires only what it holds; a dead daemon's batches are taken over by `claim`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from s321 import ids
from s321.backoff import Backoff
from s321.config import RetrySection
from s321.contracts import StoredBatch, Transport
from s321.errors import FatalError, RetriableError, classify
from s321.findings import error
from s321.ledger import Ledger, Row
from s321.logs import get_logger
from s321.observers import Observers
from s321.states import State

log = get_logger(__name__)


class Transmitter:
    """Sends what the ledger has queued under one name, through one transport, and
    resolves the acknowledgements. Used by pipelines and by the broker relay."""

    def __init__(self, ledger: Ledger, name: str, make_transport: Callable[[], Transport],
                 originator_code: str, profile: str, retry: RetrySection, batch_size: int = 100,
                 observers: Observers | None = None, metrics: Any = None,
                 counts: Counter[str] | None = None, clock: Callable[[], float] = time.time,
                 on_resolved: Callable[[str, State, Any, str], None] | None = None):
        self.ledger = ledger
        self.name = name
        self.make_transport = make_transport
        self.originator_code = originator_code
        self.profile = profile
        self.retry = retry
        self.batch_size = batch_size
        self.observers = observers
        self.metrics = metrics
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self.clock = clock
        self.on_resolved = on_resolved
        self.backoff = Backoff(initial=retry.initial, maximum=retry.maximum)
        self.error: str | None = None
        self.rejections: list[tuple[str, list[Any]]] = []
        self._transport: Transport | None = None
        self._connect_failures = 0
        self._next_connect = 0.0
        self._inflight: dict[str, float] = {}
        self._fatal = False
        self._shared = getattr(ledger, "backend", "sqlite") != "sqlite"
        self._renewed = 0.0  # monotonic time of the last lease renewal

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.make_transport()
        return self._transport

    def recover(self) -> int:
        """After a start: records left `sent` by an earlier process get no ack on this
        connection; queue them again now (a receiver answers a duplicate)."""
        caps = self.transport.capabilities
        if caps.acks_survive_reconnect:
            return 0  # the acks are still waiting: ack_timeout covers the rest
        # Without acknowledgements (a crash between writing a batch and recording it
        # delivered, or a pipeline switched from a transport that answers): sent again.
        rows = self.ledger.unacknowledged(self.name, sent_before=float("inf"))
        self.ledger.requeue([r.transaction_id for r in rows], "sent by an earlier run, not acknowledged")
        return len(rows)

    def _connected(self) -> bool:
        if self._fatal:
            self._dead_letter_queued()  # what was queued since: the link is refused still
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
            log.error("transport refused, queued records dead-lettered", pipeline=self.name, error=str(exc))
            if self.observers is not None:
                self.observers.pipeline_failing(self.name, self.error)
            self._dead_letter_queued()
            return False
        except Exception as exc:
            self._connect_failed(classify(exc))
            return False
        self._connect_failures = 0
        return True

    def _dead_letter_queued(self) -> None:
        if not self.ledger.owed(self.name, self.clock()).queued:
            return  # an index probe, not a write transaction on every idle pass
        dead = self.ledger.dead_letter_queued(self.name, self.error or "FatalError", now=self.clock())
        self._dead(dead, self.error or "FatalError")

    def _connect_failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self._next_connect = self.clock() + self.backoff.delay(self._connect_failures)
        self._connect_failures += 1
        # Said once per outage at warning level; each further attempt at debug.
        (log.warning if self._connect_failures == 1 else log.debug)(
            "transport unreachable", pipeline=self.name, error=str(exc), attempt=self._connect_failures)

    def batch_limit(self) -> int:
        """Records a batch holds at most: the pipeline's batch_size, capped by the transport."""
        return max(1, min(self.batch_size, self.transport.capabilities.max_batch))

    def transmit(self, max_batches: int | None = None) -> int:
        """Send due records while the window allows, `max_batches` batches at most.
        Returns the number sent."""
        self._watch_deadlines()
        if not self._connected():
            return 0
        transport = self.transport
        caps = transport.capabilities
        size = self.batch_limit()
        window = max(1, caps.window)
        sent = 0
        batches = 0
        while (len(self._inflight) < window or not caps.acknowledges) and batches != max_batches:
            batches += 1
            batch_id = ids.batch_id()
            rows = self.ledger.claim(self.name, batch_id, size, now=self.clock())
            if not rows:
                break
            rows = self._one_batch_key(rows)
            # The records travel as the ledger stored them; a transport that reads
            # `batch.records` gets models, decoded then.
            batch = StoredBatch.of(batch_id, self.originator_code, self.profile, datetime.now(UTC),
                                   [r.record_json for r in rows if r.record_json is not None])
            try:
                transport.send(batch)
            except Exception as exc:
                self._send_failed(rows, classify(exc))
                break
            sent += len(rows)
            self._count("sent", len(rows))
            if caps.acknowledges:
                self._inflight[batch_id] = self.clock()
            else:  # no answer will come: handed over is final (never sent again by itself)
                self.ledger.delivered([r.transaction_id for r in rows], now=self.clock())
                self._count("delivered", len(rows))
            log.info("batch sent", pipeline=self.name, batch_id=batch_id, records=len(rows))
        return sent

    def _watch_deadlines(self) -> None:
        """A serializer that knows deadlines of what it carries (ace-truck-309: ACE wants a
        trip an hour before the truck arrives) says what is at risk of missing one, on every
        pass, connected or not: each newly at risk to the observers (`pipeline_failing`),
        the number at risk to /metrics (s321_deadlines_at_risk)."""
        # The transport as made by an earlier pass (making one may fail: _connected says so).
        watch = getattr(getattr(self._transport, "serializer", None), "deadlines_at_risk", None)
        if not callable(watch):
            return
        count, news = watch()
        if self.observers is not None:
            for message in news:
                self.observers.pipeline_failing(self.name, message)
        gauge = getattr(self.metrics, "at_risk", None)
        if callable(gauge):
            gauge(self.name, count)

    def _one_batch_key(self, rows: list[Row]) -> list[Row]:
        """The rows that may share this batch: a serializer whose transmission is one unit
        (ace-truck-309: one trip) names each record's `batch_key`; rows of another key go
        back to the queue at once, unchanged (same action), for the next batch."""
        key = getattr(getattr(self.transport, "serializer", None), "batch_key", None)
        if not callable(key):
            return rows
        first = key(rows[0].record_json)
        keep = [r for r in rows if key(r.record_json) == first]
        if len(keep) < len(rows):
            held = [r for r in rows if key(r.record_json) != first]
            self.ledger.requeue([r.transaction_id for r in held], "waits for its own batch: one transmission is one trip",
                                now=self.clock(), epochs=_epochs(held))
        return keep

    def _send_failed(self, rows: list[Row], exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        txids = [r.transaction_id for r in rows]
        if isinstance(exc, FatalError):
            self.ledger.requeue(txids, self.error, dead=txids, now=now, epochs=_epochs(rows))
            self._dead(txids, self.error)
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
        self.ledger.requeue([r.transaction_id for r in rows], reason, delays, dead=dead, now=now,
                            epochs=_epochs(rows))
        self._count("retried", len(rows) - len(dead))
        self._dead(dead, f"past the retry budget ({self.retry.max_elapsed:g} s): {reason}")

    def _dead(self, transaction_ids: list[str], error: str) -> None:
        """Records the ledger just dead-lettered: counted, and told to the observers."""
        self._count("dead", len(transaction_ids))
        if transaction_ids and self.observers is not None:
            self.observers.consignments_dead_lettered(self.name, transaction_ids, error)

    def poll_acks(self, timeout: float = 0.0) -> int:
        """Collect acknowledgements and resolve them in the ledger; expire batches
        that waited too long. Returns the number of records resolved."""
        if self._transport is None or not self.transport.capabilities.acknowledges:
            return 0
        resolved = 0
        self.renew_leases()
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
            self._log_ack(ack, moved)
            resolved += len(moved)
            if sent_at is not None and self.metrics is not None:
                self.metrics.ack_latency(self.name, self.clock() - sent_at)
            by_id = {r.transaction_id: r for r in ack.results}
            for txid, state in moved.items():
                if state is State.QUEUED:
                    # Settled, with a version still to send (a newer one waited behind it,
                    # or the receiver's answer asks for a replace or an add): no answer yet.
                    self._count("followed")
                    continue
                self._count(state.value)
                if state is State.REJECTED:
                    findings = [error(e.code, e.field or "", e.message) for e in by_id[txid].errors]
                    self.rejections.append((txid, findings))
                    if self.observers is not None:
                        self.observers.consignment_rejected(self.name, txid, "cbp", findings)
                if self.on_resolved is not None:
                    self.on_resolved(txid, state, by_id[txid], ack.batch_id)
        self._expire()
        return resolved

    def renew_leases(self, force: bool = False) -> list[str]:
        """On a shared ledger: extend the leases of the batches this daemon waits on,
        every third of the lease, and forget those it no longer holds (taken over by
        another daemon, or all answered). Returns the batch ids forgotten."""
        if not self._shared or not self._inflight:
            return []
        now = time.monotonic()
        if not force and now - self._renewed < self.ledger.lease_seconds / 3:
            return []
        self._renewed = now
        lost = self.ledger.renew(self.name, list(self._inflight))
        for batch_id in lost:
            self._inflight.pop(batch_id, None)
        if lost:
            log.warning("batches taken over by another daemon, forgotten here", pipeline=self.name,
                        batches=len(lost))
            if self.metrics is not None:
                self.metrics.batches_taken_over(self.name, len(lost))
        return lost

    def _log_ack(self, ack: Any, moved: dict[str, State]) -> None:
        """One line a batch answered: how many accepted and rejected, rejections by code
        (codes only: a receiver's message may quote a record)."""
        states = Counter(moved.values())
        codes = Counter(e.code for r in ack.results if moved.get(r.transaction_id) is State.REJECTED
                        for e in r.errors)
        log.info("batch acknowledged", pipeline=self.name, batch_id=ack.batch_id,
                 accepted=states[State.ACCEPTED], rejected=states[State.REJECTED],
                 **({"rejections": dict(codes)} if codes else {}),
                 **({"queued_again": states[State.QUEUED]} if states[State.QUEUED] else {}))

    def _expire(self) -> None:
        now = self.clock()
        late = self.ledger.unacknowledged(self.name, sent_before=now - self.retry.ack_timeout)
        if late:
            log.warning("no acknowledgement in time, sending again", pipeline=self.name, records=len(late))
            self._requeue(late, f"no acknowledgement within {self.retry.ack_timeout:g} s", now)
            for batch_id in {r.batch_id for r in late}:
                self._inflight.pop(batch_id or "", None)

    def idle(self) -> bool:
        """Nothing due now: no queued record due, nothing awaiting an ack (of this
        daemon's, on a shared ledger whose acks come back on this daemon's connection)."""
        owed = self.ledger.owed(self.name, self.clock())
        return not owed.due and not (self._awaiting(owed.sent) and self.transport.capabilities.acknowledges)

    def _awaiting(self, sent_anywhere: bool) -> bool:
        """Whether acks are owed to this daemon. On a shared ledger, the records other
        daemons sent are answered on their connections (unless the acks outlive the
        connection, as files in a drop folder do: then any daemon may read them)."""
        if self._shared and not self.transport.capabilities.acks_survive_reconnect:
            return bool(self._inflight)
        return sent_anywhere

    def outstanding(self) -> tuple[int, int]:
        """(records queued, records awaiting an ack), counted: for a summary or a status.
        A loop that only asks whether anything is left wants `owes`."""
        queued, sent = self.ledger.in_flight(self.name)
        return queued, (sent if self.transport.capabilities.acknowledges else 0)

    def owes(self) -> tuple[bool, bool]:
        """`outstanding()` as yes or no, at the cost of an index probe whatever the
        queue's size: (anything queued, anything awaiting an ack)."""
        owed = self.ledger.owed(self.name, self.clock())
        return owed.queued, self._awaiting(owed.sent) and self.transport.capabilities.acknowledges

    def stalled(self) -> bool:
        return self._fatal

    def close(self) -> None:
        self._safe_close()

    def _safe_close(self) -> None:
        if self._transport is None:
            return
        caps = self._transport.capabilities
        try:
            self._transport.close()
        except Exception:
            log.warning("transport close failed", pipeline=self.name)
        if not self._fatal:
            self._transport = None
        if self._inflight and not caps.acks_survive_reconnect:
            # Acks travel on the connection that is gone: send those batches again
            # (same transaction ids) rather than wait out the ack timeout.
            rows = self.ledger.sent_in(self.name, list(self._inflight))
            self.ledger.requeue([r.transaction_id for r in rows], "connection lost before the ack")
            self._inflight.clear()

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] += n
            if self.metrics is not None:
                self.metrics.count(self.name, name, n)


def drive(worker: Any, budget: float, stop: threading.Event | None = None) -> None:
    """Transmit and collect acks until nothing is owed, or `budget` seconds pass (`run
    --once`, after its input is read). `worker`: a Transmitter, or a PipelineWorker."""
    deadline = time.monotonic() + budget
    gives_up = time.time() + budget
    announced = False
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        worker.transmit()
        if worker.error and not announced and not worker.counts["sent"]:
            announced = True
            log.warning("cannot reach the receiver; trying again until the run gives up",
                        pipeline=worker.name, error=worker.error,
                        gives_up_at=datetime.fromtimestamp(gives_up).strftime("%H:%M:%S"),
                        seconds=round(budget), setting="retry.ack_timeout")
        worker.poll_acks(timeout=0.2 if worker.owes()[1] else 0.0)
        if worker.stalled():
            return
        if worker.owes() == (False, False):
            return
        if worker.idle():
            time.sleep(0.05)


def _epochs(rows: list[Row]) -> dict[str, int]:
    """The lease each row was claimed under: a decision about it is fenced by that lease
    (another daemon that took the batch over since decides instead)."""
    return {r.transaction_id: r.lease_epoch for r in rows if r.lease_epoch is not None}

"""Transports for tests that are real `Transport` implementations: `MemoryTransport`
to an in-memory receiver that acknowledges like CBP, and `FaultyTransport`, which
wraps any transport and fails, or loses acknowledgements, when told to.

Promises: the memory receiver accepts each `add` once and answers a repeated one as a
`duplicate`, as the sandbox does; a fault fires exactly as many times as it was asked.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from s321.contracts import Ack, AckError, AckStatus, Batch, Capabilities, Receipt, RecordAck, Serializer, Transport
from s321.errors import RetriableError, TransportError
from s321.plugins.wire_s321 import S321Json
from s321.record import Action

INJECTED = "injected by FaultyTransport"


class MemoryReceiver:
    """The CBP side, in memory. Thread-safe: pipelines run in threads."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        """Transaction id -> how many times a record with it was accepted."""
        self.received: Counter[str] = Counter()
        """Transaction id -> how many times it arrived, accepted or not."""
        self.batches: list[Batch] = []
        self._filed: set[str] = set()
        self._lock = threading.Lock()

    def review(self, batch: Batch) -> Ack:
        results = []
        with self._lock:
            self.batches.append(batch)
            for record in batch.records:
                txid = record.transaction_id
                self.received[txid] += 1
                results.append(self._review_one(txid, record.action))
        return Ack(batch_id=batch.batch_id, received_at=datetime.now(UTC), results=results)

    def _review_one(self, txid: str, action: Action) -> RecordAck:
        if action is Action.ADD and txid in self._filed:
            return RecordAck(transaction_id=txid, status=AckStatus.REJECTED, errors=[
                AckError(code="duplicate", field="transaction_id", message="already filed")])
        if action is not Action.ADD and txid not in self._filed:
            return RecordAck(transaction_id=txid, status=AckStatus.REJECTED, errors=[
                AckError(code="unknown-transaction", field="transaction_id",
                         message=f"a {action.value} needs a filed transaction id")])
        if action is Action.DELETE:
            self._filed.discard(txid)
        else:
            self._filed.add(txid)
        self.accepted[txid] += 1
        return RecordAck(transaction_id=txid, status=AckStatus.ACCEPTED)


class MemoryTransport:
    """A connection to a `MemoryReceiver`. Batches go through the serializer both ways,
    as on a real wire; acks wait on this connection and are gone once it is closed."""

    def __init__(self, receiver: MemoryReceiver, serializer: Serializer | None = None,
                 capabilities: Capabilities | None = None):
        self.receiver = receiver
        self.serializer = serializer or S321Json()
        self.capabilities = capabilities or Capabilities(max_batch=500, window=4, acknowledges=True)
        self.connected = False
        self._acks: deque[Ack] = deque()

    def connect(self) -> None:
        self.connected = True

    def send(self, batch: Batch) -> Receipt:
        if not self.connected:
            raise RetriableError("not connected")
        wire = self.serializer.decode_batch(self.serializer.encode_batch(batch))
        ack = self.receiver.review(wire)
        if self.capabilities.acknowledges:
            self._acks.append(self.serializer.decode_ack(self.serializer.encode_ack(ack)))
        return Receipt(batch_id=batch.batch_id)

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        out = list(self._acks)
        self._acks.clear()
        return out

    def close(self) -> None:
        self.connected = False
        self._acks.clear()


ErrorSpec = type[TransportError] | TransportError


@dataclass
class _Fault:
    times: int
    error: ErrorSpec | None = None
    after_delivery: bool = False

    def exception(self, what: str) -> TransportError:
        if isinstance(self.error, TransportError):
            return self.error
        kind = self.error or RetriableError
        return kind(f"{what} failed: {INJECTED}")


class FaultyTransport:
    """Wraps `inner` (default: a `MemoryTransport` to a new `MemoryReceiver`) and
    misbehaves on command. Commands queue up; each fault fires `times` times:

        faulty.fail_connect(2)                    # the next 2 connects raise RetriableError
        faulty.fail_send(1, FatalError)           # the next send raises FatalError
        faulty.fail_send(1, after_delivery=True)  # delivered, but the send raises (lost receipt)
        faulty.fail_acks(1)                       # the next acks() raises RetriableError
        faulty.lose_acks(1)                       # the next ack is dropped on the way back

    `attach(inner)` swaps the wrapped transport and keeps the faults and the tallies.
    """

    def __init__(self, inner: Transport | None = None):
        self.receiver: MemoryReceiver | None = None
        if inner is None:
            self.receiver = MemoryReceiver()
            inner = MemoryTransport(self.receiver)
        self.inner: Transport = inner
        self.sent: list[Batch] = []
        """Every batch that reached the inner transport, in order (resends included)."""
        self.lost: list[Ack] = []
        """Every acknowledgement dropped by `lose_acks`."""
        self.connects = 0
        self.closes = 0
        self._faults: dict[str, deque[_Fault]] = {"connect": deque(), "send": deque(), "acks": deque(),
                                                  "lose": deque()}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ commands

    def fail_connect(self, times: int = 1, error: ErrorSpec = RetriableError) -> FaultyTransport:
        return self._queue("connect", _Fault(times, error))

    def fail_send(self, times: int = 1, error: ErrorSpec = RetriableError, *,
                  after_delivery: bool = False) -> FaultyTransport:
        return self._queue("send", _Fault(times, error, after_delivery))

    def fail_acks(self, times: int = 1, error: ErrorSpec = RetriableError) -> FaultyTransport:
        return self._queue("acks", _Fault(times, error))

    def lose_acks(self, times: int = 1) -> FaultyTransport:
        return self._queue("lose", _Fault(times))

    def attach(self, inner: Transport) -> FaultyTransport:
        with self._lock:
            self.inner = inner
        return self

    # ------------------------------------------------------------------ tallies

    def sends_of(self, transaction_id: str) -> int:
        """How many times a record with this transaction id reached the inner transport."""
        return sum(1 for b in self.sent for r in b.records if r.transaction_id == transaction_id)

    def lost_transaction_ids(self) -> list[str]:
        return [r.transaction_id for ack in self.lost for r in ack.results]

    # ------------------------------------------------------------------ the protocol

    @property
    def capabilities(self) -> Capabilities:
        # Read through: some transports learn theirs from the peer when they connect.
        return self.inner.capabilities

    def connect(self) -> None:
        with self._lock:
            fault = self._take("connect")
            if fault is not None:
                raise fault.exception("connect")
            self.inner.connect()
            self.connects += 1

    def send(self, batch: Batch) -> Receipt:
        with self._lock:
            fault = self._take("send")
            if fault is not None and not fault.after_delivery:
                raise fault.exception("send")
            receipt = self.inner.send(batch)
            self.sent.append(batch)
            if fault is not None:
                raise fault.exception("send (after delivery)")
            return receipt

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        with self._lock:
            fault = self._take("acks")
            if fault is not None:
                raise fault.exception("acks")
            kept = []
            for ack in self.inner.acks(timeout):
                if self._take("lose") is not None:
                    self.lost.append(ack)
                else:
                    kept.append(ack)
            return kept

    def close(self) -> None:
        with self._lock:
            self.closes += 1
            self.inner.close()

    # ------------------------------------------------------------------ faults

    def _queue(self, kind: str, fault: _Fault) -> FaultyTransport:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults[kind].append(fault)
        return self

    def _take(self, kind: str) -> _Fault | None:
        queue = self._faults[kind]
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times == 0:
            queue.popleft()
        return fault

    def pending_faults(self) -> Iterator[tuple[str, int]]:
        """(kind, times left) of every fault that has not fired yet."""
        for kind, queue in self._faults.items():
            for fault in queue:
                yield kind, fault.times


__all__ = ["FaultyTransport", "MemoryReceiver", "MemoryTransport"]

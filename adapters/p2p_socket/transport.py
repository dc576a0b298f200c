"""Transport `p2p-socket`: batches to a receiver over mutual TLS, acks back.

`send()` returns once the receiver sent a RECEIPT (the batch was taken for processing);
ACKs come later through `acks()`. Up to `window` batches are in flight. A batch stays
in flight until its ACK arrives, across links: whenever a new link opens (after a
reset, a timeout, a missed heartbeat, or `close()` then `connect()`), every batch in
flight is sent again with the same batch and transaction ids, and the receiver answers
a repeated `add` as a duplicate. Errors leave as RetriableError or FatalError only.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from s321.backoff import Backoff
from s321.contracts import (
    Ack,
    Batch,
    Capabilities,
    PipelineContext,
    Receipt,
    Serializer,
)
from s321.errors import (
    FatalError,
    ProtocolError,
    RetriableError,
    TransportError,
    classify,
)
from s321.framing import (
    FRAME_TOO_LARGE,
    MALFORMED_FRAME,
    UNEXPECTED_FRAME,
    Frame,
    FrameType,
    parse_json,
    peer_error,
)
from s321.logs import get_logger

from .link import Link, client_context, open_link
from .tls_files import tls_file_problem
from .options import P2POptions

log = get_logger(__name__)

# How long one blocking read may last before timers (heartbeat, receipt and ack
# deadlines) are looked at again.
_TICK = 1.0


@dataclass(slots=True)
class _InFlight:
    batch_id: str
    body: bytes
    sent_at: float | None = None
    receipt: Receipt | None = None


class P2PSocketTransport:
    def __init__(self, options: P2POptions, context: PipelineContext | None,
                 serializer: Serializer):
        self.options = options
        self.serializer = serializer
        self.pipeline = context.pipeline if context else None
        self.capabilities = Capabilities(max_batch=options.max_batch, window=options.window,
                                         acknowledges=True)
        self.backoff = Backoff(options.backoff_initial, options.backoff_max)
        self.links_opened = 0
        self._tls: ssl.SSLContext | None = None
        self._link: Link | None = None
        self._pending: dict[str, _InFlight] = {}
        self._acks: deque[Ack] = deque()
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error = "not connected yet"
        # The runtime may call from more than one thread; TLS allows one at a time.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the protocol

    def connect(self) -> None:
        """Open a link now (one attempt) unless one is open, and resend what is in flight."""
        with self._lock:
            if self._link is None:
                self._open()

    def probe(self) -> str:
        """Connect, handshake and close, sending no data (`s321 check --connect`)."""
        with self._lock:
            link = self._dial()
            try:
                return f"{link.tls_version}, {link.welcome.version} agreed with {link.peer}"
            finally:
                link.close()

    def send(self, batch: Batch) -> Receipt:
        """Hand one batch over and return its RECEIPT (its ACK comes through `acks()`).
        Waits while `window` batches are in flight. Rides out up to
        `reconnect_attempts` link failures, then raises RetriableError: the batch is
        then not in flight, and the runtime sends it again under the same ids."""
        with self._lock:
            body = self.serializer.encode_batch(batch)
            if len(body) > self.options.max_frame:
                raise FatalError(f"batch {batch.batch_id} is {len(body)} bytes, over max_frame "
                                 f"{self.options.max_frame}; lower the pipeline's batch_size")
            window_free = self._pump(
                lambda: len(self._pending) < self.options.window or batch.batch_id in self._pending,
                deadline=time.monotonic() + self.options.ack_timeout,
                budget=self.options.reconnect_attempts)
            if not window_free:
                raise RetriableError(f"window of {self.options.window} batches still full after "
                                     f"{self.options.ack_timeout:g} s without an ACK")
            entry = _InFlight(batch.batch_id, body)
            self._pending[batch.batch_id] = entry
            try:
                if self._link is not None:
                    try:
                        self._write_batch(self._link, entry)
                    except Exception as exc:
                        self._link_failed(exc)  # the pump reconnects and resends it
                self._pump(lambda: entry.receipt is not None, deadline=None,
                           budget=self.options.reconnect_attempts)
            except BaseException:
                # Not handed over: the runtime sends it again, under the same ids.
                self._pending.pop(batch.batch_id, None)
                raise
            assert entry.receipt is not None
            return entry.receipt

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        """ACKs that arrived, waiting up to `timeout` seconds for one. A lost link is
        reopened (with backoff) within that time rather than reported: only a
        FatalError leaves here."""
        with self._lock:
            if not self._acks and (self._pending or self._link is not None):
                self._pump(lambda: bool(self._acks), deadline=time.monotonic() + timeout,
                           budget=None)
            out = list(self._acks)
            self._acks.clear()
            return out

    def close(self) -> None:
        """Close the link. Batches in flight stay, to be resent on the next link."""
        with self._lock:
            if self._link is not None:
                self._link.close()
                self._link = None

    @property
    def in_flight(self) -> list[str]:
        """Batch ids sent and not acknowledged yet."""
        with self._lock:
            return list(self._pending)

    # ------------------------------------------------------------------ links

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            o = self.options
            passphrase = o.key_passphrase.get_secret_value() if o.key_passphrase else None
            try:
                self._tls = client_context(o.ca, o.cert, o.key, passphrase)
            except (ssl.SSLError, OSError) as exc:
                # Files that cannot be used are a configuration problem, not the peer's.
                problem = tls_file_problem(o.ca, o.cert, o.key, passphrase) or str(exc)
                raise FatalError(f"cannot use the TLS files: {problem}") from exc
        return self._tls

    def _dial(self) -> Link:
        o = self.options
        context = self._context()
        try:
            return open_link(o.host, o.port, o.tls_server_name, context, [self.serializer.name],
                             o.max_frame, o.connect_timeout, o.read_timeout)
        except Exception as exc:
            error = classify(exc)
            # Which receiver: an operator reading "connection refused" must know where.
            raise type(error)(f"{o.host}:{o.port}: {error}") from exc

    def _open(self) -> None:
        """One attempt to open a link and resend what is in flight; raises classified."""
        try:
            link = self._dial()
        except RetriableError as exc:
            self._note_failure(str(exc))
            raise
        self._link = link
        self.links_opened += 1
        log.info("link open", pipeline=self.pipeline, peer=link.peer, version=link.welcome.version,
                 in_flight=len(self._pending))
        try:
            for entry in list(self._pending.values()):
                self._write_batch(link, entry)
        except Exception as exc:
            self._link_failed(exc)
            raise RetriableError(self._last_error) from exc

    def _write_batch(self, link: Link, entry: _InFlight) -> None:
        if len(entry.body) > link.welcome.max_frame:
            raise ProtocolError(FRAME_TOO_LARGE,
                                f"batch {entry.batch_id} is {len(entry.body)} bytes; the receiver "
                                f"takes at most {link.welcome.max_frame}")
        entry.sent_at = time.monotonic()
        link.write(FrameType.BATCH, entry.body, self.options.read_timeout)

    def _note_failure(self, message: str) -> None:
        self._failures += 1
        self._last_error = message
        self._next_attempt = time.monotonic() + self.backoff.delay(self._failures - 1)

    def _link_failed(self, exc: BaseException) -> None:
        """Drop the link; raise if the failure is fatal, else schedule a reconnect."""
        error = classify(exc)
        if self._link is not None:
            self._link.close()
            self._link = None
        if isinstance(error, FatalError):
            raise error from exc
        self._note_failure(str(error))
        log.warning("link lost", pipeline=self.pipeline, error=str(error),
                    in_flight=len(self._pending))

    # ------------------------------------------------------------------ the read loop

    def _pump(self, done: Callable[[], bool], deadline: float | None, budget: int | None) -> bool:
        """Read and handle frames until `done()` or `deadline`, reopening a lost link
        (after its backoff). With a `budget`, raise RetriableError once that many link
        failures and failed attempts happened here. Returns `done()`."""
        failures = 0
        while not done():
            now = time.monotonic()
            if self._link is None:
                if budget is not None and failures > budget:
                    raise RetriableError(f"gave up after {failures} link failures: {self._last_error}")
                wait = self._next_attempt - now
                if deadline is not None and now + max(wait, 0) > deadline:
                    time.sleep(max(deadline - now, 0))
                    return done()
                if wait > 0:
                    time.sleep(wait)
                try:
                    self._open()
                except RetriableError:
                    failures += 1
                continue
            frame = None
            try:
                self._tick(now)
                remaining = _TICK if deadline is None else max(deadline - now, 0)
                frame = self._link.read(min(_TICK, self._heartbeat(self._link),
                                            self.options.read_timeout, remaining))
                if frame is not None:
                    self._handle(frame)
            except Exception as exc:
                self._link_failed(exc)
                failures += 1
            # Past the deadline, frames already here are still taken, without waiting.
            if frame is None and deadline is not None and time.monotonic() >= deadline:
                return done()
        return True

    def _tick(self, now: float) -> None:
        """Heartbeat on an idle link; give up on a link whose answers are overdue."""
        link = self._link
        assert link is not None
        o = self.options
        if link.ping_sent_at is not None and now - link.ping_sent_at > o.read_timeout:
            raise TimeoutError(f"no answer to a heartbeat within {o.read_timeout:g} s")
        for entry in self._pending.values():
            if entry.sent_at is None:
                continue
            limit, what = ((o.ack_timeout, "ACK") if entry.receipt else (o.read_timeout, "RECEIPT"))
            if now - entry.sent_at > limit:
                raise TimeoutError(f"no {what} for batch {entry.batch_id} within {limit:g} s")
        if link.ping_sent_at is None and now - link.last_rx >= self._heartbeat(link):
            link.write(FrameType.PING, b"", o.read_timeout)
            link.ping_sent_at = now

    def _heartbeat(self, link: Link) -> float:
        """The configured interval, shortened to half the server's idle limit so that
        a link in use is never closed as idle."""
        idle = link.welcome.idle_timeout
        interval = self.options.heartbeat_interval
        return min(interval, idle / 2) if idle else interval

    def _handle(self, frame: Frame) -> None:
        link = self._link
        assert link is not None
        if frame.type is FrameType.RECEIPT:
            try:
                receipt = Receipt.model_validate(parse_json(frame))
            except ValidationError:
                raise ProtocolError(MALFORMED_FRAME, "RECEIPT body is not a receipt") from None
            entry = self._pending.get(receipt.batch_id)
            if entry is not None:
                entry.receipt = receipt
                if not receipt.accepted_for_processing:
                    del self._pending[receipt.batch_id]  # refused: no ACK will follow
        elif frame.type is FrameType.ACK:
            try:
                ack = self.serializer.decode_ack(frame.body)
            except Exception as exc:
                raise ProtocolError(MALFORMED_FRAME, f"ACK body: {exc}") from None
            self._pending.pop(ack.batch_id, None)
            self._acks.append(ack)
            self._failures = 0  # the link did real work: the next failure starts small
        elif frame.type is FrameType.PING:
            link.write(FrameType.PONG, frame.body, self.options.read_timeout)
        elif frame.type is FrameType.PONG:
            pass
        elif frame.type is FrameType.ERROR:
            raise peer_error(frame)
        else:
            raise ProtocolError(UNEXPECTED_FRAME, f"{frame.type.name} is not expected from a server")


def check_connect(transport: object) -> tuple[bool, str]:
    """(ok, message) for `s321 check --connect`: the transport's probe(), or a connect
    and close where it has none. Sends no data."""
    try:
        probe = getattr(transport, "probe", None)
        if callable(probe):
            return True, str(probe())
        transport.connect()  # type: ignore[attr-defined]
        transport.close()  # type: ignore[attr-defined]
        return True, "connected"
    except TransportError as exc:
        kind = "retriable" if isinstance(exc, RetriableError) else "fatal"
        return False, f"{kind}: {exc}"

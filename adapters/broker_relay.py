"""Transport `broker-relay`: batches through a broker's s321 relay, over ZeroMQ with CURVE
encryption (protocol `s321-relay/1`, docs/relay.md), for filers without a link of their own.

`send()` returns once the relay has stored the batch durably (its RECEIPT); CBP's acks
come later through `acks()`, also after either side reconnected. The relay refusing
this client's key is a FatalError; a relay that does not answer in time (down, busy,
or a wrong `server_key`, which CURVE reports only as silence) is a RetriableError.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq
from pydantic import BaseModel, ConfigDict, Field
from s321.contracts import Ack, Batch, Capabilities, PipelineContext, Receipt, Serializer
from s321.errors import FatalError, RetriableError, TransportError
from s321.hookspecs import hookimpl
from s321.logs import get_logger
from s321.relay import keys, protocol
from zmq.utils.monitor import recv_monitor_message

log = get_logger(__name__)

_TICK = 0.1  # longest single wait, so monitor events are looked at often
_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
           | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class RelayClientOptions(BaseModel):
    """The `[pipelines.NAME.transport]` table of `plugin = "broker-relay"`."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(pattern=r"^(tcp://\S+:\d+|ipc://\S+)$",
                          description="the relay's address, e.g. tcp://relay.broker.example:5321")
    server_key: keys.PublicKey = Field(
        description="the relay's CURVE public key: Z85, or the relay's .key file")
    secret_key: keys.SecretKey = Field(
        description='this client\'s secret key: {file = "NAME.key_secret"} or {env = "VAR"}')
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds for handshake and WELCOME")
    receipt_timeout: float = Field(default=30.0, gt=0, description="seconds send() waits for a RECEIPT")
    heartbeat_interval: float = Field(default=5.0, gt=0, description="seconds between ZMTP pings")
    heartbeat_timeout: float = Field(default=15.0, gt=0, description="a silent relay is dropped after")
    reconnect_interval: float = Field(default=0.5, gt=0, description="first wait before reconnecting")
    reconnect_interval_max: float = Field(default=30.0, gt=0, description="longest wait between tries")
    window: int = Field(default=4, ge=1, le=1024,
                        description="batches in flight; the relay's max_in_flight caps it")
    max_batch: int = Field(default=500, ge=1, le=100_000,
                           description="records per batch; the relay's max_batch caps it")


class _Link:
    """What the socket monitor has told about the connection to the relay."""

    def __init__(self) -> None:
        self.tcp_seen = False
        self.up = False
        self.handshakes = 0
        self.handshake_failures = 0
        self.refused: str | None = None


class BrokerRelayTransport:
    def __init__(self, options: RelayClientOptions, context: PipelineContext | None,
                 serializer: Serializer):
        self.options = options
        self.serializer = serializer
        # One relay client may run several pipelines: each is a session, so that acks
        # go back to the pipeline whose ledger waits for them.
        self.session = (context.pipeline if context else "default")[:200]
        self.capabilities = Capabilities(max_batch=options.max_batch, window=options.window,
                                         acknowledges=True)
        self.welcome: dict[str, Any] | None = None
        self._sock: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        self._link = _Link()
        self._hello_due = False
        self._hello_refused: TransportError | None = None
        self._waiting: str | None = None
        self._answer: tuple[bytes, dict[str, Any]] | None = None
        self._acks: deque[tuple[Ack, int]] = deque()
        # Transmitter calls come from one thread; the lock makes any other caller safe,
        # and ZeroMQ sockets need exactly that: one thread at a time.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the protocol

    def connect(self) -> None:
        """Open the socket and complete the handshake and HELLO (one attempt) unless
        open. An open socket reconnects by itself; this only reports a refusal."""
        with self._lock:
            if self._sock is None:
                self._open()
            else:
                self._events()

    def probe(self) -> str:
        """Handshake and HELLO, sending no data (`s321 check --connect`); a socket
        opened for the probe is closed again."""
        with self._lock:
            opened = self._sock is None
            if opened:
                self._open()
            try:
                w = self.welcome or {}
                return (f"CURVE and {w.get('protocol')} with {self.options.endpoint}: client "
                        f"{w.get('client')}, originator codes {', '.join(w.get('originator_codes', []))}, "
                        f"max_batch {w.get('max_batch')}, max_in_flight {w.get('max_in_flight')}")
            finally:
                if opened:
                    self.close()

    def send(self, batch: Batch) -> Receipt:
        with self._lock:
            if self._sock is None:
                self._open()
            assert self._sock is not None
            body = self.serializer.encode_batch(batch)
            self._waiting, self._answer = batch.batch_id, None
            try:
                try:
                    self._sock.send_multipart([protocol.BATCH, self.session.encode(), body],
                                              zmq.NOBLOCK)
                except zmq.Again:
                    # ZMQ_IMMEDIATE: no connection with a completed handshake right now.
                    raise self._silence(f"batch {batch.batch_id} not sent: no connection to "
                                        f"the relay") from None
                waited = self._pump(lambda: self._answer is not None,
                                    time.monotonic() + self.options.receipt_timeout)
                if not waited or self._answer is None:
                    raise self._silence(f"no receipt for batch {batch.batch_id} within "
                                        f"{self.options.receipt_timeout:g} s")
                kind, answer = self._answer
                if kind == protocol.ERROR:
                    raise protocol.refusal(str(answer.get("code")), str(answer.get("message")))
                return Receipt(batch_id=batch.batch_id, detail=answer.get("detail"))
            finally:
                self._waiting, self._answer = None, None

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        """Acks that arrived, waiting up to `timeout` seconds for one. Each is confirmed
        to the relay only when handed out here; one lost before that comes again."""
        with self._lock:
            if self._sock is None:
                return []
            if not self._acks:
                self._pump(lambda: bool(self._acks), time.monotonic() + timeout)
            out = list(self._acks)
            self._acks.clear()
            for ack, upto in out:
                self._confirm(ack.batch_id, upto)
            return [ack for ack, _ in out]

    def close(self) -> None:
        """Close at once (ZMQ_LINGER 0). Batches awaiting acks are the Transmitter's to
        resend; acks the relay holds for them come on the next connection."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.disable_monitor()
                except zmq.ZMQError:
                    pass
                self._sock.close(linger=0)
            if self._monitor is not None:
                self._monitor.close(linger=0)
            self._sock = self._monitor = None
            self.welcome = None

    # ------------------------------------------------------------------ the socket

    def _open(self) -> None:
        o = self.options
        secret = o.secret_key.get_secret_value()
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.curve_secretkey = secret.encode("ascii")
        sock.curve_publickey = keys.public_of(secret).encode("ascii")
        sock.curve_serverkey = o.server_key.encode("ascii")
        sock.setsockopt(zmq.LINGER, 0)
        # Messages go only to a connection whose handshake completed: a send while the
        # relay is away fails at once instead of waiting in a queue that may be lost.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, int(o.reconnect_interval * 1000))
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(o.reconnect_interval_max * 1000))
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(o.heartbeat_interval * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(o.heartbeat_timeout * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, int(o.heartbeat_timeout * 1000))
        sock.setsockopt(zmq.HANDSHAKE_IVL, int(o.connect_timeout * 1000))
        self._monitor = sock.get_monitor_socket(_EVENTS)
        self._sock = sock
        self._link = _Link()
        self._hello_due = False
        self._hello_refused = None
        try:
            sock.connect(o.endpoint)
            deadline = time.monotonic() + o.connect_timeout
            if not self._pump(lambda: self.welcome is not None or self._hello_refused is not None,
                              deadline):
                raise self._silence(f"no answer from the relay within {o.connect_timeout:g} s")
            if self._hello_refused is not None:
                raise self._hello_refused
        except BaseException:
            self.close()
            raise
        log.info("relay link open", endpoint=o.endpoint, session=self.session,
                 client=(self.welcome or {}).get("client"))

    def _pump(self, done: Callable[[], bool], deadline: float) -> bool:
        """Handle monitor events and relay messages until `done()` or `deadline`
        (what is already there is taken even when the deadline has passed)."""
        assert self._sock is not None and self._monitor is not None
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while True:
            self._events()
            self._drain()
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller.poll(int(min(remaining, _TICK) * 1000) + 1)

    def _events(self) -> None:
        """Take the monitor's news; raise FatalError once the relay refused our key."""
        assert self._monitor is not None and self._sock is not None
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            kind = event["event"]
            if kind == zmq.EVENT_CONNECTED:
                self._link.tcp_seen = True
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._link.up = True
                self._link.handshakes += 1
                self._link.handshake_failures = 0
                # A new connection has a new routing id at the relay: say HELLO, so it
                # knows where this session's acks go now.
                self._hello_due = True
                if self._link.handshakes > 1:
                    log.info("relay link re-established", endpoint=self.options.endpoint,
                             session=self.session)
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._link.refused = f"ZAP status {event['value']}"
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                self._link.handshake_failures += 1
            elif kind == zmq.EVENT_DISCONNECTED and self._link.up:
                self._link.up = False
                log.warning("relay link lost, reconnecting", endpoint=self.options.endpoint,
                            session=self.session)
        if self._link.refused:
            raise FatalError(f"the relay at {self.options.endpoint} refused this client's key "
                             f"({self._link.refused}): is its public key listed in the "
                             f"broker's relay.toml?")
        if self._hello_due:
            hello = protocol.dumps({"protocol": protocol.PROTOCOL, "format": self.serializer.name})
            try:
                self._sock.send_multipart([protocol.HELLO, self.session.encode(), hello], zmq.NOBLOCK)
                self._hello_due = False
            except zmq.Again:
                pass  # the pipe is not attached yet: on the next turn

    def _drain(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._handle(frames)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("relay message not understood", endpoint=self.options.endpoint,
                          error=str(exc)[:200])

    def _handle(self, frames: list[bytes]) -> None:
        kind = frames[0]
        if kind == protocol.ACK and len(frames) == 3:
            upto = int(protocol.loads(frames[1])["upto"])
            try:
                ack = self.serializer.decode_ack(frames[2])
            except Exception as exc:  # each serializer has its own error: none may leave acks()
                raise ValueError(f"ACK body is not an acknowledgement: {exc}") from None
            self._acks.append((ack, upto))
            return
        body = protocol.loads(frames[1]) if len(frames) > 1 else {}
        if kind == protocol.WELCOME:
            self.welcome = body
            self.capabilities = Capabilities(
                max_batch=min(self.options.max_batch, int(body.get("max_batch") or self.options.max_batch)),
                window=min(self.options.window, int(body.get("max_in_flight") or self.options.window)),
                # The relay acknowledges what its upstream for this client acknowledges.
                acknowledges=bool(body.get("acknowledges", True)))
        elif kind in (protocol.RECEIPT, protocol.ERROR):
            batch_id = body.get("batch_id")
            if self._waiting is not None and batch_id in (self._waiting, None):
                self._answer = (kind, body)
            elif kind == protocol.ERROR and self.welcome is None:
                self._hello_refused = protocol.refusal(str(body.get("code")), str(body.get("message")))
            elif kind == protocol.ERROR:
                log.warning("relay error for a batch no longer waited for", batch_id=batch_id,
                            code=body.get("code"))
        else:
            log.warning("unknown message from the relay", kind=kind[:20].decode("ascii", "replace"))

    def _confirm(self, batch_id: str, upto: int) -> None:
        assert self._sock is not None
        note = protocol.dumps({"batch_id": batch_id, "upto": upto})
        try:
            self._sock.send_multipart([protocol.DELIVERED, self.session.encode(), note], zmq.NOBLOCK)
        except zmq.Again:
            pass  # unconfirmed: the relay sends the ack again, and the ledger ignores a repeat

    def _silence(self, what: str) -> TransportError:
        """Classify a missing answer. CURVE tells a client nothing when the server key
        is wrong: the connection just closes during the handshake, again and again."""
        link = self._link
        if link.refused:
            return FatalError(f"{what}: the relay refused this client's key ({link.refused})")
        if link.handshake_failures and not link.up:
            return RetriableError(
                f"{what}: the CURVE handshake with {self.options.endpoint} failed "
                f"{link.handshake_failures} times; is server_key the relay's public key?")
        if not link.tcp_seen and not link.handshakes:
            return RetriableError(f"{what}: the relay at {self.options.endpoint} is not reachable")
        return RetriableError(what)


@hookimpl
def register_transports(register: Any) -> None:
    register("broker-relay", BrokerRelayTransport, options=RelayClientOptions,
             description="batches through a broker's s321 relay (ZeroMQ, CURVE), with acknowledgements")

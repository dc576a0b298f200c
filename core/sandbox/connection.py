"""One client connection of the sandbox, on its own thread: the handshake, then BATCH
frames in and RECEIPT and ACK frames out.

Whatever a client sends, the worst that happens is an ERROR frame and a closed
connection: nothing here may stop the server or disturb another connection. A HELLO
nested too deeply or otherwise unreadable is `malformed-frame`. Where client
certificates are bound to originator codes (`identities`), a certificate bound to
none is refused at HELLO (`identity-refused`) and a record for another originator
code is rejected (`originator-refused`) without being reviewed.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from s321.contracts import Ack, AckError, AckStatus, Batch, Receipt, RecordAck, Serializer
from s321.errors import ProtocolError
from s321.framing import (
    IDLE_TIMEOUT,
    INTERNAL_ERROR,
    MALFORMED_BATCH,
    MALFORMED_FRAME,
    UNAVAILABLE,
    UNEXPECTED_FRAME,
    Frame,
    FrameStream,
    FrameType,
    choose_version,
    error_body,
    parse_hello,
    peer_error,
    welcome_body,
)
from s321.logs import get_logger
from s321.sandbox.faults import FaultState
from s321.sandbox.review import Reviewer

log = get_logger(__name__)

_POLL = 0.25  # how often a waiting connection looks at the stop flag
_DRAIN_SECONDS = 1.0
_DRAIN_BYTES = 8 * 1024 * 1024

IDENTITY_REFUSED = "identity-refused"
"""The client certificate is bound to no originator code of this sandbox."""
ORIGINATOR_REFUSED = "originator-refused"
"""A record (or batch) for an originator code its client certificate is not bound to."""

Identities = Mapping[str, frozenset[str]]
"""SHA-256 fingerprint (lower-case hex) of a client certificate -> its originator codes."""

_FINGERPRINT = re.compile(r"^(?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$")


@dataclass(frozen=True)
class Settings:
    serializers: Mapping[str, Serializer]
    max_frame: int
    idle_timeout: float
    handshake_timeout: float
    write_timeout: float = 30.0
    identities: Identities | None = None
    """None: any client certificate the CA signed may file for any originator code."""


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def parse_binding(text: str) -> tuple[str, frozenset[str]]:
    """`CERT=CODE[,CODE...]`, CERT a client certificate (PEM file) or its SHA-256
    fingerprint: the certificate's fingerprint and the codes it may file for."""
    cert, sep, codes = text.rpartition("=")
    names = frozenset(c.strip() for c in codes.split(",") if c.strip())
    if not sep or not cert or not names:
        raise ValueError(f"--bind {text!r}: give CERT=CODE[,CODE...], CERT a client "
                         "certificate file (PEM) or its SHA-256 fingerprint")
    if _FINGERPRINT.match(cert):
        return cert.replace(":", "").lower(), names
    try:
        pem = Path(cert).read_text(encoding="ascii")
        der = ssl.PEM_cert_to_DER_cert(pem)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"--bind: {cert}: not a readable PEM certificate ({exc})") from None
    return fingerprint(der), names


def bindings(texts: Iterable[str]) -> dict[str, frozenset[str]]:
    """Every `--bind`, merged: a certificate named twice may file for all its codes."""
    out: dict[str, frozenset[str]] = {}
    for text in texts:
        fp, codes = parse_binding(text)
        out[fp] = out.get(fp, frozenset()) | codes
    return out


class _Dropped(Exception):
    """The drop fault fired: cut the connection without a word."""


def close_gently(sock: socket.socket) -> None:
    """Close after a refusal so that the refusal reaches the client: stop writing,
    then read and discard what the client still sends for a moment. Closing with
    unread bytes would make the kernel reset the connection, and a reset can
    overtake the ERROR frame or TLS alert that explains it."""
    try:
        sock.shutdown(socket.SHUT_WR)  # on a TLS socket this also leaves TLS
        sock.settimeout(0.2)
        deadline = time.monotonic() + _DRAIN_SECONDS
        drained = 0
        while time.monotonic() < deadline and drained < _DRAIN_BYTES:
            data = sock.recv(65536)
            if not data:
                break
            drained += len(data)
    except (OSError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


class Connection:
    def __init__(self, sock: ssl.SSLSocket, peer: str, settings: Settings, reviewer: Reviewer,
                 faults: FaultState, stopping: threading.Event):
        self.sock = sock
        # Set by the server to close this connection when it needs the slot; read
        # between frames, so a batch under review is answered first.
        self.evicted = threading.Event()
        self.last_active = time.monotonic()
        self.originators: frozenset[str] | None = None  # None: any
        self.peer = peer
        self.settings = settings
        self.reviewer = reviewer
        self.faults = faults
        self.stopping = stopping
        self.stream = FrameStream(sock, settings.max_frame)
        self.drop_after = faults.drop_after()
        self.frames = 0
        self.silent = False
        self.scheduled: deque[tuple[float, bytes]] = deque()

    def run(self) -> None:
        try:
            serializer = self._handshake()
            self._serve(serializer)
        except _Dropped:
            log.info("connection dropped by fault injection", peer=self.peer, frames=self.frames)
            self.stream.close()
        except ProtocolError as exc:
            if exc.from_peer:
                log.info("client reported an error", peer=self.peer, code=exc.code)
                self.stream.close()
            else:
                self._refuse(exc.code, str(exc))
        except (EOFError, OSError) as exc:
            log.info("connection closed", peer=self.peer, reason=type(exc).__name__)
            self.stream.close()
        except Exception as exc:  # a bug here must cost one connection, not the server
            log.error("connection failed", peer=self.peer, error=type(exc).__name__)
            self._refuse(INTERNAL_ERROR, "the sandbox failed on this connection")

    # ------------------------------------------------------------------ frames

    def _receive(self, timeout: float) -> Frame | None:
        frame = self.stream.read(timeout)
        if frame is not None:
            self.last_active = time.monotonic()
            self.frames += 1
            self.silent = self.drop_after is not None and self.frames >= self.drop_after
        return frame

    def _send(self, ftype: FrameType, body: bytes) -> None:
        if not self.silent:
            self.stream.write(ftype, body, self.settings.write_timeout)

    def _refuse(self, code: str, message: str) -> None:
        log.info("connection refused", peer=self.peer, code=code)
        if not self.silent:
            try:
                self.stream.write(FrameType.ERROR, error_body(code, message), 5.0)
            except (OSError, ValueError):
                pass
        close_gently(self.sock)

    # ------------------------------------------------------------------ phases

    def _handshake(self) -> Serializer:
        frame = self._receive(self.settings.handshake_timeout)
        if frame is None:
            raise ProtocolError(IDLE_TIMEOUT,
                                f"no HELLO within {self.settings.handshake_timeout:g} s")
        try:
            hello = parse_hello(frame)
        except (RecursionError, ValueError):  # nested too deeply, numbers too long
            raise ProtocolError(MALFORMED_FRAME, "HELLO body is not a usable JSON object") from None
        self._identify()
        version = choose_version(hello, list(self.settings.serializers))
        self._send(FrameType.WELCOME, welcome_body(version, self.settings.max_frame,
                                                   self.settings.idle_timeout))
        if self.silent:
            raise _Dropped()
        return self.settings.serializers[version]

    def _identify(self) -> None:
        identities = self.settings.identities
        if identities is None:
            return
        der = self.sock.getpeercert(binary_form=True)
        codes = identities.get(fingerprint(der)) if der else None
        if not codes:
            raise ProtocolError(IDENTITY_REFUSED,
                                "this client certificate is bound to no originator code here; "
                                "ask the operator to bind it (s321 sandbox --bind CERT=CODE)")
        self.originators = codes

    def _serve(self, serializer: Serializer) -> None:
        last_rx = time.monotonic()
        while not self.stopping.is_set():
            if self.evicted.is_set():
                raise ProtocolError(UNAVAILABLE, "closed to make room for another client; "
                                                 "connect again")
            now = time.monotonic()
            while self.scheduled and self.scheduled[0][0] <= now:
                self._send(FrameType.ACK, self.scheduled.popleft()[1])
            idle_left = last_rx + self.settings.idle_timeout - now
            if idle_left <= 0:
                raise ProtocolError(IDLE_TIMEOUT,
                                    f"no frame for {self.settings.idle_timeout:g} s")
            wait = min(_POLL, idle_left)
            if self.scheduled:
                wait = min(wait, self.scheduled[0][0] - now)
            frame = self._receive(max(wait, 0.001))
            if frame is None:
                continue
            last_rx = time.monotonic()
            self._handle(frame, serializer)
            if self.silent:
                raise _Dropped()
        raise ProtocolError(UNAVAILABLE, "the sandbox is stopping")

    def _handle(self, frame: Frame, serializer: Serializer) -> None:
        if frame.type is FrameType.BATCH:
            self._batch(frame, serializer)
        elif frame.type is FrameType.PING:
            self._send(FrameType.PONG, frame.body)
        elif frame.type is FrameType.PONG:
            pass
        elif frame.type is FrameType.ERROR:
            raise peer_error(frame)
        else:
            raise ProtocolError(UNEXPECTED_FRAME, f"{frame.type.name} is not expected from a client")

    def _review(self, batch: Batch) -> Ack:
        """The reviewer's answer, after refusing the records this client may not send."""
        allowed = self.originators
        if allowed is None:
            return self.reviewer.review(batch)
        mine = [r for r in batch.records
                if batch.originator_code in allowed and (r.originator_code or batch.originator_code) in allowed]
        refused = {id(r) for r in batch.records} - {id(r) for r in mine}
        if not refused:
            return self.reviewer.review(batch)
        log.warning("records refused for their originator code", peer=self.peer,
                    batch_id=batch.batch_id, refused=len(refused))
        reviewed = iter(self.reviewer.review(batch.model_copy(update={"records": mine})).results
                        if mine else [])
        error = AckError(code=ORIGINATOR_REFUSED, field="originator_code",
                         message="this client certificate may not file for this originator code")
        results = [RecordAck(transaction_id=r.transaction_id, version=r.version,
                             status=AckStatus.REJECTED, errors=[error])
                   if id(r) in refused else next(reviewed) for r in batch.records]
        return Ack(batch_id=batch.batch_id, received_at=datetime.now(UTC), results=results)

    def _batch(self, frame: Frame, serializer: Serializer) -> None:
        try:
            batch = serializer.decode_batch(frame.body)
        except Exception as exc:
            raise ProtocolError(MALFORMED_BATCH, f"not a {serializer.name} batch: {exc}") from None
        self._send(FrameType.RECEIPT, Receipt(batch_id=batch.batch_id).model_dump_json().encode())
        ack = self._review(batch)
        accepted = sum(r.status is AckStatus.ACCEPTED for r in ack.results)
        log.info("batch reviewed", peer=self.peer, batch_id=batch.batch_id,
                 accepted=accepted, rejected=len(ack.results) - accepted)
        body = serializer.encode_ack(ack)
        delay = self.faults.faults.ack_delay
        if delay > 0:
            self.scheduled.append((time.monotonic() + delay, body))
        else:
            self._send(FrameType.ACK, body)

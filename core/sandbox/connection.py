"""One client connection of the sandbox, on its own thread: the handshake, then BATCH
frames in and RECEIPT and ACK frames out.

Whatever a client sends, the worst that happens is an ERROR frame and a closed
connection: nothing here may stop the server or disturb another connection.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from s321.contracts import AckStatus, Receipt, Serializer
from s321.errors import ProtocolError
from s321.framing import (
    IDLE_TIMEOUT,
    INTERNAL_ERROR,
    MALFORMED_BATCH,
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


@dataclass(frozen=True)
class Settings:
    serializers: Mapping[str, Serializer]
    max_frame: int
    idle_timeout: float
    handshake_timeout: float
    write_timeout: float = 30.0


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
        version = choose_version(parse_hello(frame), list(self.settings.serializers))
        self._send(FrameType.WELCOME, welcome_body(version, self.settings.max_frame,
                                                   self.settings.idle_timeout))
        if self.silent:
            raise _Dropped()
        return self.settings.serializers[version]

    def _serve(self, serializer: Serializer) -> None:
        last_rx = time.monotonic()
        while not self.stopping.is_set():
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

    def _batch(self, frame: Frame, serializer: Serializer) -> None:
        try:
            batch = serializer.decode_batch(frame.body)
        except Exception as exc:
            raise ProtocolError(MALFORMED_BATCH, f"not a {serializer.name} batch: {exc}") from None
        self._send(FrameType.RECEIPT, Receipt(batch_id=batch.batch_id).model_dump_json().encode())
        ack = self.reviewer.review(batch)
        accepted = sum(r.status is AckStatus.ACCEPTED for r in ack.results)
        log.info("batch reviewed", peer=self.peer, batch_id=batch.batch_id,
                 accepted=accepted, rejected=len(ack.results) - accepted)
        body = serializer.encode_ack(ack)
        delay = self.faults.faults.ack_delay
        if delay > 0:
            self.scheduled.append((time.monotonic() + delay, body))
        else:
            self._send(FrameType.ACK, body)

"""Framing for point-to-point links (transport `p2p-socket` and `s321 sandbox`):
length-prefixed frames, the version handshake and heartbeats, shared by both ends.

A frame is a 4-byte big-endian body length, a 1-byte type, then the body. Each end
refuses a frame whose announced body is over its own limit before reading the body,
so a peer can never make the other allocate more than it agreed to
(docs/wire-format.md, "Framing (p2p-socket)").
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from s321.errors import ProtocolError

HEADER = struct.Struct("!IB")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_RECV_CHUNK = 64 * 1024

# Error codes carried by ERROR frames; `s321.errors.classify` decides which are retriable.
VERSION_REFUSED = "version-refused"
FRAME_TOO_LARGE = "frame-too-large"
MALFORMED_FRAME = "malformed-frame"
UNEXPECTED_FRAME = "unexpected-frame"
MALFORMED_BATCH = "malformed-batch"
UNAVAILABLE = "unavailable"
IDLE_TIMEOUT = "idle-timeout"
INTERNAL_ERROR = "internal-error"


class FrameType(IntEnum):
    HELLO = 0x01     # client -> server: versions it speaks (JSON)
    WELCOME = 0x02   # server -> client: the version chosen, its limits (JSON)
    BATCH = 0x10     # client -> server: one batch, encoded by the agreed serializer
    RECEIPT = 0x11   # server -> client: batch taken for processing (JSON)
    ACK = 0x12       # server -> client: per-record results, encoded by the serializer
    PING = 0x20      # either way: are you there? (body echoed in the PONG)
    PONG = 0x21      # either way: answer to a PING
    ERROR = 0x7F     # either way: code + message (JSON); the sender then closes


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    body: bytes = b""


def encode(ftype: FrameType, body: bytes = b"") -> bytes:
    return HEADER.pack(len(body), ftype) + body


class FrameDecoder:
    """Turns a byte stream into frames. Raises ProtocolError for a frame over
    `max_frame` (as soon as its header is in, before its body) or of an unknown type."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Frame | None:
        if len(self._buf) < HEADER.size:
            return None
        length, code = HEADER.unpack_from(self._buf)
        if length > self.max_frame:
            raise ProtocolError(FRAME_TOO_LARGE,
                                f"frame of {length} bytes is over the limit of {self.max_frame}")
        try:
            ftype = FrameType(code)
        except ValueError:
            raise ProtocolError(MALFORMED_FRAME, f"unknown frame type 0x{code:02x}") from None
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        with memoryview(self._buf) as view:  # one copy of a body of megabytes, not two
            body = bytes(view[HEADER.size:end])
        del self._buf[:end]  # only once the view is released: a viewed bytearray cannot shrink
        return Frame(ftype, body)


class FrameStream:
    """Frames over one connected (TLS) socket. Used by one thread at a time: TLS
    objects must not be read and written concurrently."""

    def __init__(self, sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME):
        self.sock = sock
        self.decoder = FrameDecoder(max_frame)

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None if none is complete within `timeout` seconds.
        Raises EOFError when the peer closed, ProtocolError for a bad frame."""
        deadline = time.monotonic() + timeout
        first = True
        while True:
            frame = self.decoder.next()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not first:
                return None
            first = False
            # A zero timeout would switch the socket to non-blocking mode, where TLS
            # raises want-read errors instead of timing out; a millisecond does not.
            self.sock.settimeout(max(remaining, 0.001))
            try:
                data = self.sock.recv(_RECV_CHUNK)
            except TimeoutError:
                return None
            if not data:
                raise EOFError("the peer closed the connection")
            self.decoder.feed(data)

    def write(self, ftype: FrameType, body: bytes = b"", timeout: float = 30.0) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(encode(ftype, body))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- control bodies


def json_body(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def parse_json(frame: Frame) -> dict[str, Any]:
    """The JSON object in a control frame, or ProtocolError(malformed-frame)."""
    try:
        value = json.loads(frame.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError(MALFORMED_FRAME, f"{frame.type.name} body is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError(MALFORMED_FRAME, f"{frame.type.name} body must be a JSON object")
    return value


def error_body(code: str, message: str) -> bytes:
    return json_body({"code": code, "message": message})


def peer_error(frame: Frame) -> ProtocolError:
    """The ProtocolError an ERROR frame from the peer stands for."""
    try:
        body = parse_json(frame)
    except ProtocolError:
        body = {}
    code = str(body.get("code") or MALFORMED_FRAME)
    return ProtocolError(code, str(body.get("message") or "no message"), from_peer=True)


# --------------------------------------------------------------------------- handshake


@dataclass(frozen=True)
class Welcome:
    """What the server agreed to: the version, and the limits the client must respect."""

    version: str
    max_frame: int
    idle_timeout: float | None = None


def client_handshake(stream: FrameStream, versions: Sequence[str], timeout: float) -> Welcome:
    """Send HELLO, read WELCOME. Raises ProtocolError (version-refused, ...), EOFError,
    TimeoutError or a socket/TLS error; the caller closes the stream on any of them."""
    stream.write(FrameType.HELLO,
                 json_body({"versions": list(versions), "max_frame": stream.decoder.max_frame}),
                 timeout)
    frame = stream.read(timeout)
    if frame is None:
        raise TimeoutError(f"no answer to HELLO within {timeout:g} s")
    if frame.type is FrameType.ERROR:
        raise peer_error(frame)
    if frame.type is not FrameType.WELCOME:
        raise ProtocolError(UNEXPECTED_FRAME, f"expected WELCOME, got {frame.type.name}")
    body = parse_json(frame)
    version, max_frame = body.get("version"), body.get("max_frame")
    if version not in versions:
        raise ProtocolError(VERSION_REFUSED, f"server chose {version!r}, not one of {list(versions)}")
    if not isinstance(max_frame, int) or max_frame < 1:
        raise ProtocolError(MALFORMED_FRAME, "WELCOME.max_frame must be a positive integer")
    idle = body.get("idle_timeout")
    return Welcome(version, max_frame, float(idle) if isinstance(idle, (int, float)) else None)


@dataclass(frozen=True)
class Hello:
    versions: list[str]
    max_frame: int | None


def parse_hello(frame: Frame) -> Hello:
    if frame.type is not FrameType.HELLO:
        raise ProtocolError(UNEXPECTED_FRAME, f"expected HELLO first, got {frame.type.name}")
    body = parse_json(frame)
    versions = body.get("versions")
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise ProtocolError(MALFORMED_FRAME, "HELLO.versions must be a list of strings")
    max_frame = body.get("max_frame")
    return Hello(versions, max_frame if isinstance(max_frame, int) and max_frame > 0 else None)


def choose_version(hello: Hello, supported: Sequence[str]) -> str:
    """The first version in the client's order that the server speaks."""
    for version in hello.versions:
        if version in supported:
            return version
    raise ProtocolError(VERSION_REFUSED,
                        f"none of {hello.versions} is spoken here; supported: {list(supported)}")


def welcome_body(version: str, max_frame: int, idle_timeout: float) -> bytes:
    return json_body({"version": version, "max_frame": max_frame, "idle_timeout": idle_timeout})

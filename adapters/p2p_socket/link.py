"""One connection of transport `p2p-socket`: TCP, TLS 1.2 or later with a client
certificate, then the s321 handshake (HELLO / WELCOME).

The server's certificate is always verified, against the configured CA and for the
configured server name; there is no switch to turn that off.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

from s321.framing import Frame, FrameStream, FrameType, Welcome, client_handshake


def client_context(ca: Path, cert: Path | None, key: Path | None,
                   passphrase: str | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies the server against `ca` and presents `cert`.
    (`cert` None is for tests of a server's refusal only.) A key that needs a passphrase
    none was given for fails (s321.adapters.p2p_socket.tls_files says which file):
    OpenSSL never stops to ask for one on the terminal."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None,
                                password=passphrase if passphrase is not None else _no_passphrase)
    return context


def _no_passphrase() -> bytes:
    return b""


class Link:
    """An open, handshaken connection. Not thread-safe: its owner serialises use."""

    def __init__(self, stream: FrameStream, welcome: Welcome, peer: str):
        self.stream = stream
        self.welcome = welcome
        self.peer = peer
        self.last_rx = time.monotonic()
        self.ping_sent_at: float | None = None

    @property
    def tls_version(self) -> str:
        sock = self.stream.sock
        return (sock.version() or "TLS") if isinstance(sock, ssl.SSLSocket) else "plain"

    def read(self, timeout: float) -> Frame | None:
        frame = self.stream.read(timeout)
        if frame is not None:
            self.last_rx = time.monotonic()
            self.ping_sent_at = None
        return frame

    def write(self, ftype: FrameType, body: bytes, timeout: float) -> None:
        self.stream.write(ftype, body, timeout)

    def close(self) -> None:
        self.stream.close()


def open_link(host: str, port: int, server_name: str, context: ssl.SSLContext,
              versions: Sequence[str], max_frame: int, connect_timeout: float,
              read_timeout: float) -> Link:
    """Connect, complete TLS (within `connect_timeout`) and the handshake (within
    `read_timeout`). Raises what the socket, TLS or handshake raised: the caller
    classifies it."""
    raw = socket.create_connection((host, port), timeout=connect_timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise
    stream = FrameStream(tls, max_frame)
    try:
        welcome = client_handshake(stream, versions, read_timeout)
    except BaseException:
        stream.close()
        raise
    return Link(stream, welcome, f"{host}:{port}")

"""A scripted receiver for transport `p2p-socket`: a mutual-TLS server on loopback that
speaks the p2p framing (HELLO/WELCOME, BATCH, RECEIPT, ACK, PING/PONG, ERROR; see
docs/wire-format.md "Framing") and answers each batch as the conformance suite scripts.

It is the wire half of `s321.testing.scripted` for a long-lived link, and an example
for integrators of socket transports. What an answer says comes from the base class;
how it travels is here. Promises: one thread per connection, which keeps answering
PINGs while an answer is held back; nothing a client sends stops the server.

A link transport sends a batch again on every new link until the batch is answered
(docs/wire-format.md). So where a one-shot failure would only be ridden out and then
answered, this receiver stays as scripted *for that batch*: after DROP, BUSY or TIMEOUT
every link that brings the batch again is dropped, told busy, or left unanswered, and
the transport must give up with a RetriableError, never report an answer.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from s321.contracts import Batch, Receipt
from s321.errors import ProtocolError
from s321.framing import (
    DEFAULT_MAX_FRAME,
    MALFORMED_BATCH,
    UNAVAILABLE,
    UNEXPECTED_FRAME,
    Frame,
    FrameStream,
    FrameType,
    choose_version,
    error_body,
    parse_hello,
    welcome_body,
)
from s321.plugins.wire_s321 import S321Json
from s321.sandbox.certs import DevCerts, ensure_dev_certs, server_context
from s321.sandbox.connection import IDENTITY_REFUSED, close_gently
from s321.testing.scripted import Play, Script, ScriptedReceiver

_POLL = 0.05
"""How often a connection looks at its held answers and the stop flag, in seconds."""

_STICKY = frozenset({Play.DROP, Play.BUSY, Play.TIMEOUT})
"""Plays that hold for a batch on every link that brings it again."""

MALFORMED_ACK = b'{"format": "s321/1", "batch_id": '
"""What MALFORMED sends in an ACK frame: the start of a document, cut short."""

QUICK_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2.0, "read_timeout": 2.0, "reconnect_attempts": 1,
    "backoff_initial": 0.05, "backoff_max": 0.2,
}
"""Transport options that keep the suite's checks short: a silent receiver is noticed
in 2 s and a transport gives up after one reconnect."""


class P2PReceiver(ScriptedReceiver):
    """`with P2PReceiver(tmp_path) as receiver:` serves on a free loopback port with
    dev certificates made in `folder` (or `certs`); `receiver.options` is a
    `p2p-socket` table for it (QUICK_OPTIONS, then `overrides`)."""

    def __init__(self, folder: str | Path, *, certs: DevCerts | None = None,
                 idle_timeout: float = 300.0, **overrides: Any):
        super().__init__()
        self.certs = certs or ensure_dev_certs(Path(folder))
        self.wire = S321Json()
        self.idle_timeout = idle_timeout
        self._context = server_context(self.certs.server_cert, self.certs.server_key, self.certs.ca)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL * 4)
        self.port: int = self._listener.getsockname()[1]
        self.options: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "ca": str(self.certs.ca),
            "cert": {"file": str(self.certs.client_cert)}, "key": {"file": str(self.certs.client_key)},
            **QUICK_OPTIONS, **overrides}
        self._held: dict[str, Script] = {}  # batch id -> the sticky script it got
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._guard = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, name="p2p-receiver", daemon=True)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> P2PReceiver:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Release held answers, stop accepting, close every connection."""
        self.release()
        self._listener.close()
        if self._acceptor.is_alive():
            self._acceptor.join(2.0)
        with self._guard:
            threads = list(self._threads)
        for thread in threads:
            thread.join(2.0)

    def connections(self) -> int:
        with self._guard:
            return len(self._open)

    def _accept_loop(self) -> None:
        while not self.released.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            thread = threading.Thread(target=self._serve, args=(raw,), name="p2p-receiver-conn",
                                      daemon=True)
            with self._guard:
                self._open.add(raw)
                self._threads.append(thread)
            thread.start()

    # ------------------------------------------------------------------ one connection

    def _serve(self, raw: socket.socket) -> None:
        tls: ssl.SSLSocket | None = None
        try:
            raw.settimeout(5.0)
            tls = self._context.wrap_socket(raw, server_side=True)
            stream = FrameStream(tls, DEFAULT_MAX_FRAME)
            self._welcome(stream)
            self._exchange(stream)
        except _Closed:
            pass
        except ProtocolError as exc:
            # The client broke the protocol (or refused): say so, as the sandbox does.
            if tls is not None and not exc.from_peer:
                _refuse(tls, exc.code, str(exc))
        except (OSError, EOFError, ValueError):
            pass  # the client went away, or TLS failed: this connection only
        finally:
            (tls or raw).close()
            with self._guard:
                self._open.discard(raw)

    def _welcome(self, stream: FrameStream) -> None:
        frame = stream.read(5.0)
        if frame is None:
            raise _Closed()
        hello = parse_hello(frame)
        if self.script_for_credential() is not None:
            # The certificate was signed by the right CA; this receiver refuses it
            # as the protocol does, by identity (s321 sandbox --bind).
            assert isinstance(stream.sock, ssl.SSLSocket)
            _refuse(stream.sock, IDENTITY_REFUSED, "this client certificate is refused here")
            raise _Closed()
        version = choose_version(hello, [self.wire.name])
        stream.write(FrameType.WELCOME, welcome_body(version, DEFAULT_MAX_FRAME, self.idle_timeout))

    def _exchange(self, stream: FrameStream) -> None:
        scheduled: list[tuple[float, bytes]] = []  # LATE answers: (when, ACK body)
        while not self.released.is_set():
            now = time.monotonic()
            for due in [s for s in scheduled if s[0] <= now]:
                scheduled.remove(due)
                stream.write(FrameType.ACK, due[1])
            frame = stream.read(_POLL)
            if frame is None:
                continue
            if frame.type is FrameType.PING:
                stream.write(FrameType.PONG, frame.body)
            elif frame.type is FrameType.BATCH:
                self._batch(stream, frame, scheduled)
            elif frame.type is FrameType.ERROR:
                raise _Closed()
            elif frame.type is not FrameType.PONG:
                raise ProtocolError(UNEXPECTED_FRAME, f"{frame.type.name} is not expected from a client")

    def _batch(self, stream: FrameStream, frame: Frame, scheduled: list[tuple[float, bytes]]) -> None:
        try:
            batch = self.wire.decode_batch(frame.body)
        except Exception as exc:
            raise ProtocolError(MALFORMED_BATCH, f"not an s321/1 batch: {exc}") from None
        script = self._script_for(batch)
        ack = self.answer(batch, script)
        if script.play is Play.DROP:
            raise _Closed()  # no RECEIPT, no ACK: the connection just ends
        if script.play is Play.BUSY:
            assert isinstance(stream.sock, ssl.SSLSocket)
            _refuse(stream.sock, UNAVAILABLE, f"busy: try again in {script.retry_after} s")
            raise _Closed()
        if script.play is Play.TIMEOUT:
            return  # taken, never answered: not even a RECEIPT
        stream.write(FrameType.RECEIPT, Receipt(batch_id=batch.batch_id).model_dump_json().encode())
        if script.play is Play.MALFORMED:
            stream.write(FrameType.ACK, MALFORMED_ACK)
            return
        assert ack is not None
        body = self.wire.encode_ack(ack)
        if script.play is Play.LATE:
            # `hold()` would block this thread, and with it the PONGs the client waits for.
            scheduled.append((time.monotonic() + script.delay, body))
        else:
            stream.write(FrameType.ACK, body)

    def _script_for(self, batch: Batch) -> Script:
        with self._guard:
            held = self._held.get(batch.batch_id)
        if held is not None:
            return held
        script = self.script_for_batch()
        if script.play in _STICKY:
            with self._guard:
                self._held[batch.batch_id] = script
        return script


class _Closed(Exception):
    """This connection ends here, on purpose."""


def _refuse(sock: ssl.SSLSocket, code: str, message: str) -> None:
    """An ERROR frame, then a close that lets it reach the client first."""
    try:
        FrameStream(sock).write(FrameType.ERROR, error_body(code, message), 5.0)
    except (OSError, ValueError):
        pass
    close_gently(sock)


__all__ = ["MALFORMED_ACK", "QUICK_OPTIONS", "P2PReceiver"]

"""A scripted receiver for transport `broker-relay`: a ZeroMQ ROUTER with CURVE on
loopback that speaks the relay's client protocol `s321-relay/1` (HELLO/WELCOME, BATCH,
RECEIPT, ACK, ERROR, DELIVERED; see docs/relay.md and `s321.relay.protocol`) and
answers each batch as the conformance suite scripts.

It is the wire half of `s321.testing.scripted` for a relay: a batch is receipted at once
and acknowledged later, as the real relay does. Promises: one thread serves the socket
(ZeroMQ sockets are single-threaded), a LATE answer never blocks it, nothing a client
sends stops it, and `connections()` counts the TCP connections open at it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import zmq
from s321.plugins.wire_s321 import S321Json
from s321.relay import keys, protocol
from s321.testing.samples import ORIGINATOR
from s321.testing.scripted import Play, ScriptedReceiver
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

_POLL_MS = 50
"""How often the server looks at its held answers and the stop flag, in milliseconds."""

ZAP_DOMAIN = "s321-scripted-relay"

MALFORMED_ACK = b'{"format": "s321/1", "batch_id": '
"""What MALFORMED sends as the body of an ACK: the start of a document, cut short."""

QUICK_OPTIONS: dict[str, Any] = {
    "connect_timeout": 3.0, "receipt_timeout": 3.0, "reconnect_interval": 0.1,
    "reconnect_interval_max": 0.5,
}
"""Transport options that keep the suite's checks short: a batch that gets no RECEIPT
fails in 3 s, a dropped connection is made again within half a second."""


class RelayReceiver(ScriptedReceiver):
    """`with RelayReceiver(tmp_path) as receiver:` serves on a free loopback port with
    CURVE keys made in `folder`; `receiver.options` is a `broker-relay` table for it
    (QUICK_OPTIONS, then `overrides`). The key in the table is the only one let in.

    How each play travels: ACCEPT, REJECT, PARTIAL: a RECEIPT, then the ACK; LATE: the
    RECEIPT, the ACK `delay` seconds later; MALFORMED: the RECEIPT, then an ACK whose
    body is not an acknowledgement; DROP: every connection is closed (the socket is
    bound anew on the same port), nothing answered; REFUSE_CREDENTIAL: the ZAP check
    refuses the client's key at the handshake; TIMEOUT: the batch is taken and never
    answered, not even receipted; BUSY: ERROR `busy`, a code the client may retry.
    """

    def __init__(self, folder: str | Path, *, max_batch: int = 500, max_in_flight: int = 16,
                 **overrides: Any):
        super().__init__()
        folder = Path(folder)
        self.wire = S321Json()
        self.max_batch, self.max_in_flight = max_batch, max_in_flight
        _, server_secret, self.public_key = keys.generate("scripted-relay", folder, force=True)
        _, client_secret, self.client_key = keys.generate("scripted-client", folder, force=True)
        secret = zmq.auth.load_certificate(server_secret)[1]
        assert secret is not None
        self._secret = secret
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, _Gate(self))
        self._sock, self._monitor = self._bind("tcp://127.0.0.1:0")
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.options: dict[str, Any] = {
            "endpoint": self.endpoint, "server_key": self.public_key,
            "secret_key": {"file": str(client_secret)}, **QUICK_OPTIONS, **overrides}
        self._open = 0  # TCP connections open at the socket, from its monitor
        self._upto = 0
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="relay-receiver", daemon=True)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> RelayReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Release held answers, close the socket and the ZAP handler."""
        self.release()
        if self._thread.is_alive():
            self._thread.join(5.0)
        else:
            self._close_socket()
        self._auth.stop()
        self._ctx.term()

    def connections(self) -> int:
        with self._guard:
            return self._open

    def _bind(self, endpoint: str) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_secretkey = self._secret
        sock.curve_publickey = self.public_key.encode("ascii")
        sock.zap_domain = ZAP_DOMAIN.encode("ascii")
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                sock.bind(endpoint)
                return sock, monitor
            except zmq.ZMQError as exc:
                # After a DROP the old listener closes in ZeroMQ's own thread, a moment later.
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    sock.disable_monitor()
                    monitor.close(linger=0)
                    sock.close(linger=0)
                    raise
                time.sleep(0.02)

    def _close_socket(self) -> None:
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(linger=0)
        self._sock.close(linger=0)
        with self._guard:
            self._open = 0

    # ------------------------------------------------------------------ the loop

    def _serve(self) -> None:
        scheduled: list[tuple[float, list[bytes]]] = []  # LATE answers: (when, message)
        try:
            while not self.released.is_set():
                poller = zmq.Poller()
                poller.register(self._sock, zmq.POLLIN)
                poller.register(self._monitor, zmq.POLLIN)
                poller.poll(_POLL_MS)
                self._count()
                now = time.monotonic()
                for due in [s for s in scheduled if s[0] <= now]:
                    scheduled.remove(due)
                    self._send(due[1])
                while True:
                    try:
                        frames = self._sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) >= 3:
                        self._handle(frames, scheduled)
        finally:
            self._close_socket()

    def _count(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            with self._guard:
                self._open += 1 if event["event"] == zmq.EVENT_ACCEPTED else -1
                self._open = max(self._open, 0)

    def _handle(self, frames: list[bytes], scheduled: list[tuple[float, list[bytes]]]) -> None:
        peer, kind = frames[0], frames[1]
        body = frames[3] if len(frames) > 3 else b""
        if kind == protocol.HELLO:
            self._send([peer, protocol.WELCOME, protocol.dumps({
                "protocol": protocol.PROTOCOL, "client": "scripted", "originator_codes": [ORIGINATOR],
                "max_batch": self.max_batch, "max_in_flight": self.max_in_flight, "acknowledges": True})])
        elif kind == protocol.BATCH:
            self._batch(peer, body, scheduled)
        elif kind != protocol.DELIVERED:
            self._error(peer, None, protocol.MALFORMED_MESSAGE, f"unknown message type {kind[:20]!r}")

    def _batch(self, peer: bytes, body: bytes, scheduled: list[tuple[float, list[bytes]]]) -> None:
        try:
            batch = self.wire.decode_batch(body)
        except Exception as exc:
            self._error(peer, None, protocol.MALFORMED_BATCH, f"not an s321/1 batch: {exc}")
            return
        script = self.script_for_batch()
        ack = self.answer(batch, script)
        if script.play is Play.DROP:
            # ROUTER cannot close one peer's connection: closing the socket closes them all.
            self._close_socket()
            self._sock, self._monitor = self._bind(self.endpoint)
            return
        if script.play is Play.TIMEOUT:
            return  # taken, never answered
        if script.play is Play.BUSY:
            self._error(peer, batch.batch_id, protocol.BUSY, f"busy: try again in {script.retry_after} s")
            return
        self._send([peer, protocol.RECEIPT, protocol.dumps({
            "batch_id": batch.batch_id, "records": len(batch.records), "detail": "scripted receiver"})])
        self._upto += 1
        upto = protocol.dumps({"upto": self._upto})
        if script.play is Play.MALFORMED:
            self._send([peer, protocol.ACK, upto, MALFORMED_ACK])
            return
        assert ack is not None
        message = [peer, protocol.ACK, upto, self.wire.encode_ack(ack)]
        if script.play is Play.LATE:
            scheduled.append((time.monotonic() + script.delay, message))
        else:
            self._send(message)

    def _error(self, peer: bytes, batch_id: str | None, code: str, message: str) -> None:
        self._send([peer, protocol.ERROR, protocol.dumps({"batch_id": batch_id, "code": code,
                                                          "message": message})])

    def _send(self, message: list[bytes]) -> None:
        try:
            self._sock.send_multipart(message, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the peer is gone or its queue is full: as for a real relay, it asks again


class _Gate:
    """The ZAP check: only the receiver's client key, and not when the script refuses it."""

    def __init__(self, receiver: RelayReceiver):
        self.receiver = receiver

    def callback(self, domain: str, key: bytes) -> bool:
        if key.decode("ascii", "replace") != self.receiver.client_key:
            return False
        return self.receiver.script_for_credential() is None


__all__ = ["MALFORMED_ACK", "QUICK_OPTIONS", "RelayReceiver"]

"""A tiny Bazaarly receiver for tests: an HTTP server on loopback that takes s321/1
batches by POST and answers each with its acknowledgement, or, when the conformance
suite scripts it, rejects, answers garbage, hangs, drops, refuses the token.

It is the wire half of s321's scripted-receiver contract (`s321.testing.scripted`):
what an answer says is decided there, how it travels here. Standard library only;
the s321/1 serializer is the one s321 ships (`S321Json()`), used outside a pipeline.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from s321.plugins.wire_s321 import S321Json
from s321.testing.scripted import Play, ScriptedReceiver

TOKEN_ENV = "BAZAARLY_TEST_TOKEN"
"""The environment variable the receiver's `options` name for the token."""


class BazaarlyReceiver(ScriptedReceiver):
    """`with BazaarlyReceiver(token) as receiver:` serves on a free loopback port;
    `receiver.options` is a `bazaarly-http` table for it (the token as {env = TOKEN_ENV},
    which the caller sets to `token`)."""

    def __init__(self, token: str, max_batch: int = 500, timeout: float = 2.0):
        super().__init__()
        self.token = token
        self.max_batch = max_batch
        self.wire = S321Json()
        self._open = 0
        self._count_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/batches"
        self.options: dict[str, Any] = {"url": self.url, "token": {"env": TOKEN_ENV}, "timeout": timeout,
                                        "max_batch": max_batch}
        self._thread = threading.Thread(target=self._server.serve_forever, name="bazaarly-receiver", daemon=True)

    def connections(self) -> int:
        with self._count_lock:
            return self._open

    def _opened(self, delta: int) -> None:
        with self._count_lock:
            self._open += delta

    def __enter__(self) -> BazaarlyReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def _handler(receiver: BazaarlyReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection carries many batches

        def setup(self) -> None:
            super().setup()
            receiver._opened(+1)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                receiver._opened(-1)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the requests carry personal data

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/batches":
                return self._reply(404, b"no such endpoint")
            if (receiver.script_for_credential() is not None
                    or self.headers.get("Authorization") != f"Bearer {receiver.token}"):
                return self._reply(401, b"token refused")
            try:
                batch = receiver.wire.decode_batch(body)
            except Exception as exc:
                return self._reply(400, f"not an s321/1 batch: {exc}".encode())
            if len(batch.records) > receiver.max_batch:
                return self._reply(413, b"batch too large")
            script = receiver.script_for_batch()
            ack = receiver.answer(batch, script)
            if script.play is Play.DROP:
                self.close_connection = True
                self.connection.close()
            elif script.play is Play.TIMEOUT:
                receiver.hold(script)
                self.close_connection = True
            elif script.play is Play.BUSY:
                self._reply(503, b"busy", {"Retry-After": str(script.retry_after)})
            elif script.play is Play.MALFORMED:
                self._reply(200, b'{"format": "s321/1", "batch_id": ')
            else:
                assert ack is not None
                receiver.hold(script)  # LATE waits; the others do not
                self._reply(200, receiver.wire.encode_ack(ack))

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", receiver.wire.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler

"""The daemon's HTTP endpoint: `/healthz` (JSON, 200 when every pipeline thread is alive
and none has stopped on a fatal error, else 503) and Prometheus `/metrics`.

It keeps answering when peers hold connections open: a connection has
`REQUEST_TIMEOUT` seconds in all to send its request (one that trickles a byte at a
time is cut then too), one address holds at most `MAX_PER_PEER` connections, and a
newcomer takes the slot of the oldest, of its own address when that address is at its
share, else of any once `MAX_CONNECTIONS` are open (a scrape is answered in
milliseconds, so the oldest is the one that is not asking anything). So connections
held open from 127.0.0.1 never keep a scrape from 127.0.0.1, or `s321 status`, out.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from s321.errors import S321Error
from s321.metrics import Metrics

REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
MAX_PER_PEER = 8


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 would drop SYNs under a burst

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, tuple[str, float]] = {}
        self._per_ip: Counter[str] = Counter()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        ip = str(client_address[0])
        with self._lock:
            if self._per_ip[ip] >= MAX_PER_PEER:
                self._evict(min((s for s, (at, _) in self._open.items() if at == ip),
                                key=lambda s: self._open[s][1]))
            elif len(self._open) >= MAX_CONNECTIONS:
                self._evict(min(self._open, key=lambda s: self._open[s][1]))
            self._open[request] = (ip, time.monotonic())
            self._per_ip[ip] += 1
        return True

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._forget(request)
        super().shutdown_request(request)

    def _evict(self, request: Any) -> None:
        self._forget(request)
        _cut(request)

    def _forget(self, request: Any) -> None:
        entry = self._open.pop(request, None)
        if entry is not None:
            self._per_ip[entry[0]] -= 1
            if self._per_ip[entry[0]] <= 0:
                del self._per_ip[entry[0]]


def _cut(sock: socket.socket) -> None:
    """End a connection under its handler: the handler's thread sees the end of the
    stream and finishes (and closes it)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def serve(address: tuple[str, int], metrics: Metrics,
          health: Callable[[], tuple[bool, dict[str, Any]]]) -> ThreadingHTTPServer:
    """Listen on `address` and answer from a thread of its own. Raises S321Error
    (`cannot listen on HOST:PORT: reason`) when the address cannot be listened on."""
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT  # socket timeout: a silent peer is dropped

        def setup(self) -> None:
            super().setup()
            # The socket timeout is per read: a peer sending a byte every few seconds
            # would hold the connection for ever. The whole request gets REQUEST_TIMEOUT.
            self._deadline = threading.Timer(REQUEST_TIMEOUT, _cut, (self.connection,))
            self._deadline.daemon = True
            self._deadline.start()

        def parse_request(self) -> bool:
            self._deadline.cancel()  # the request is in: answering it is this side's work
            return super().parse_request()

        def finish(self) -> None:
            self._deadline.cancel()
            super().finish()

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/metrics":
                self._send(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                ok, detail = health()
                self._send(200 if ok else 503, json.dumps({"ok": ok, **detail}).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the log

    try:
        server = _BoundedServer(address, Handler)
    except (OSError, OverflowError) as exc:  # the address is taken, not this machine's, a bad port
        reason = getattr(exc, "strerror", None) or str(exc)
        raise S321Error(f"cannot listen on {address[0]}:{address[1]}: {reason}") from None
    threading.Thread(target=server.serve_forever, name="s321-http", daemon=True).start()
    return server

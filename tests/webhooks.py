"""A webhook receiver for tests: a real HTTP server on a loopback port that records every
JSON body POSTed to it, for the tests of observers that post to one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records every JSON body POSTed to `url` (answering `status`) until `close()`."""

    def __init__(self, status: int = 204):
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.raw.append(body)
                receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s321"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The bodies, once there are `n` of them or `timeout` seconds have passed."""
        return self.wait_until(lambda bodies: len(bodies) >= n, timeout)

    def wait_until(self, done: Callable[[list[dict[str, Any]]], bool],
                   timeout: float = 10) -> list[dict[str, Any]]:
        """The bodies, once `done(bodies)` or `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while not done(self.bodies) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

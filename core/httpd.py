"""The daemon's HTTP endpoint: `/healthz` (JSON, 200 when every pipeline thread is alive
and none has stopped on a fatal error, else 503) and Prometheus `/metrics`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from s321.metrics import Metrics


def serve(address: tuple[str, int], metrics: Metrics,
          health: Callable[[], tuple[bool, dict[str, Any]]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
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

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="s321-http", daemon=True).start()
    return server

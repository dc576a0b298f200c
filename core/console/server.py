"""Serving the console: uvicorn on the configured address, HTTPS with the operator's
certificate and key, plain HTTP only on loopback (the config refuses anything else).

Promises: at most MAX_CONNECTIONS connections are served, and one that has not sent its
request within HEADER_SECONDS is closed; a client's address is the connection's
(X-Forwarded-For is not believed); uvicorn's own access log is off (it would write
query strings, where searches are): the app logs each request without its query
(s321.console.app)."""

from __future__ import annotations

import socket
import time
import weakref
from pathlib import Path

import uvicorn

from s321.config import ConsoleSection, LoadedConfig
from s321.console.app import build, hosts_of
from s321.errors import S321Error


MAX_CONNECTIONS = 128
"""Open connections at most; a request beyond is answered 503 (uvicorn's limit_concurrency)."""
HEADER_SECONDS = 5
"""A connection that has not sent a whole request line and headers within this is closed
(and an idle keep-alive connection too)."""


class _Server(uvicorn.Server):
    """uvicorn's server, closing connections whose request headers have not all arrived
    within HEADER_SECONDS: uvicorn times out idle keep-alive connections only, and a
    client sending a request a byte at a time (or never finishing it) would keep its
    connection, and with MAX_CONNECTIONS of them, the console.

    This reads uvicorn's internals (`server_state.connections`; an h11 connection's
    `cycle`, `transport` and `timeout_keep_alive_task`), guarded: where they are not
    there, it closes nothing. tests/console/test_hardening.py holds it to its word."""

    _since: weakref.WeakKeyDictionary[object, tuple[int, float]]

    async def on_tick(self, counter: int) -> bool:
        if counter % 10 == 0:  # uvicorn ticks every 0.1 s
            self._close_unfinished(time.monotonic())
        return await super().on_tick(counter)

    def _close_unfinished(self, now: float) -> None:
        since = self.__dict__.setdefault("_since", weakref.WeakKeyDictionary())
        for conn in list(getattr(self.server_state, "connections", ())):
            cycle = getattr(conn, "cycle", False)
            waiting = cycle is None or (  # the first request, or the next one after a response
                cycle is not False and getattr(cycle, "response_complete", False)
                and getattr(conn, "timeout_keep_alive_task", True) is None)
            if not waiting:
                since.pop(conn, None)
                continue
            first = since.setdefault(conn, (id(cycle), now))
            if first[0] != id(cycle):
                since[conn] = first = (id(cycle), now)
            transport = getattr(conn, "transport", None)
            if now - first[1] > HEADER_SECONDS and transport is not None and not transport.is_closing():
                transport.close()


def settings(loaded: LoadedConfig, listen: str | None = None, certificate: Path | None = None,
             private_key: Path | None = None) -> ConsoleSection:
    """The config's `[console]` with the command line's overrides, checked again (a
    non-loopback address without a certificate is refused). Raises ValueError."""
    section = loaded.config.console
    changes = {k: v for k, v in (("listen", listen), ("certificate", certificate and certificate.resolve()),
                                 ("private_key", private_key and private_key.resolve())) if v is not None}
    if not changes:
        return section
    return ConsoleSection.model_validate({**section.model_dump(), **changes})


def address(section: ConsoleSection) -> str:
    host, port = section.listen.rsplit(":", 1)
    scheme = "https" if section.certificate else "http"
    return f"{scheme}://{host}:{port}/"


def listen(section: ConsoleSection) -> socket.socket:
    """The console's socket, bound before anything is served or said to be. Raises
    S321Error (`cannot listen on HOST:PORT: reason`) when the address is in use or not
    this machine's."""
    host, port = section.listen.rsplit(":", 1)
    host = host.strip("[]")
    try:
        return socket.create_server((host, int(port)), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise S321Error(f"cannot listen on {section.listen}: {exc.strerror or exc}") from None


def serve(loaded: LoadedConfig, section: ConsoleSection, listener: socket.socket) -> None:
    """Run on `listener` (from `listen`) until interrupted."""
    https = section.certificate is not None
    loaded.config.console = section
    host = section.listen.rsplit(":", 1)[0]
    app = build(loaded, https=https, hosts=hosts_of(section, https, f"{host}:{listener.getsockname()[1]}"))
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback
    # client as its address, and the login limiter counts by address.
    config = uvicorn.Config(app, access_log=False, log_level="warning", proxy_headers=False,
                            limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=HEADER_SECONDS,
                            ssl_certfile=str(section.certificate) if https else None,
                            ssl_keyfile=str(section.private_key) if https else None, server_header=False)
    try:
        _Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped gracefully, then raised it again
        pass

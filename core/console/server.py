"""Serving the console: uvicorn on the configured address, HTTPS with the operator's
certificate and key, plain HTTP only on loopback (the config refuses anything else).

Promises: a client's address is the connection's (X-Forwarded-For is not believed);
uvicorn's own access log is off (it would write query strings, where
searches are): the app logs each request without its query (s321.console.app)."""

from __future__ import annotations

import socket
from pathlib import Path

import uvicorn

from s321.config import ConsoleSection, LoadedConfig
from s321.console.app import build, hosts_of
from s321.errors import S321Error


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
                            ssl_certfile=str(section.certificate) if https else None,
                            ssl_keyfile=str(section.private_key) if https else None, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped gracefully, then raised it again
        pass

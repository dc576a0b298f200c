"""Serving the console: uvicorn on the configured address, HTTPS with the operator's
certificate and key, plain HTTP only on loopback (the config refuses anything else).

Promises: uvicorn's own access log is off (it would write query strings, where
searches are): the app logs each request without its query (s321.console.app)."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from s321.config import ConsoleSection, LoadedConfig
from s321.console.app import build


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


def serve(loaded: LoadedConfig, section: ConsoleSection) -> None:
    """Run until interrupted."""
    host, port = section.listen.rsplit(":", 1)
    https = section.certificate is not None
    loaded.config.console = section
    app = build(loaded, https=https)
    uvicorn.run(app, host=host.strip("[]"), port=int(port), access_log=False, log_level="warning",
                ssl_certfile=str(section.certificate) if https else None,
                ssl_keyfile=str(section.private_key) if https else None, server_header=False)

"""Transport `p2p-socket`: a point-to-point link over mutual TLS to CBP or a stand-in
(`s321 sandbox`), framed as docs/wire-format.md "Framing (p2p-socket)" describes.

`options` holds the config model, `link` one TLS connection and its handshake,
`transport` the batches in flight, reconnects and acknowledgements.
"""

from __future__ import annotations

from typing import Any

from s321.hookspecs import hookimpl

from .options import P2POptions
from .transport import P2PSocketTransport, check_connect

__all__ = ["P2POptions", "P2PSocketTransport", "check_connect", "register_transports"]


@hookimpl
def register_transports(register: Any) -> None:
    register("p2p-socket", P2PSocketTransport, options=P2POptions,
             description="batches over mutual TLS to CBP or `s321 sandbox`, with acknowledgements")

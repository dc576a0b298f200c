"""`s321 sandbox`: a stand-in for CBP that speaks the p2p-socket protocol over mutual TLS,
reviews each record against its regime profile, and acknowledges like the real thing
(duplicates, unknown transactions, coded errors). For tests, demos and integrators.

`Sandbox` runs one in-process; `SandboxStore` answers how often each consignment was
accepted; `Faults` makes it misbehave on purpose.
"""

from __future__ import annotations

from s321.sandbox.certs import DevCerts, ensure_dev_certs
from s321.sandbox.faults import Faults
from s321.sandbox.server import Sandbox, SandboxServer
from s321.sandbox.store import SandboxStore

__all__ = ["DevCerts", "Faults", "Sandbox", "SandboxServer", "SandboxStore", "ensure_dev_certs"]

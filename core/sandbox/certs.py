"""Development certificates for the sandbox, and the TLS settings of its server end.

`ensure_dev_certs(folder)` writes, once, a throw-away CA and a server and a client
certificate signed by it (PEM files a pipeline config can point at); later calls reuse
them. The CA's private key is never written, so nothing else can be signed with it.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from s321 import private

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
CLIENT_NAME = "client.s321.invalid"  # `.invalid` can never be a real host name


@dataclass(frozen=True)
class DevCerts:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> DevCerts:
        return cls(ca=folder / "ca.pem", server_cert=folder / "server.pem",
                   server_key=folder / "server.key", client_cert=folder / "client.pem",
                   client_key=folder / "client.key")

    def exist(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.server_cert, self.server_key,
                                         self.client_cert, self.client_key))


def ensure_dev_certs(folder: Path, server_names: tuple[str, ...] = SERVER_NAMES) -> DevCerts:
    """The dev certificates in `folder`, generated on first use."""
    certs = DevCerts.in_folder(Path(folder))
    if certs.exist():
        return certs
    private.ensure_dir(folder)
    # Imported here: trustme pulls in cryptography (some 30 ms), and every `s321`
    # command imports this module while only the first sandbox start needs it.
    import trustme

    ca = trustme.CA(organization_name="s321 sandbox (development only)")
    server = ca.issue_cert(*server_names, common_name="s321 sandbox")
    client = ca.issue_cert(CLIENT_NAME, common_name="s321 development client")
    ca.cert_pem.write_to_path(str(certs.ca))
    _write_chain(certs.server_cert, [b.bytes() for b in server.cert_chain_pems])
    _write_key(certs.server_key, server.private_key_pem.bytes())
    _write_chain(certs.client_cert, [b.bytes() for b in client.cert_chain_pems])
    _write_key(certs.client_key, client.private_key_pem.bytes())
    return certs


def _write_chain(path: Path, pems: list[bytes]) -> None:
    path.write_bytes(b"".join(pems))


def _write_key(path: Path, pem: bytes) -> None:
    # Created owner-only from the start: a key must never be readable by others, not
    # even for the moment between writing it and a chmod, nor left in an older file's
    # looser mode; a symlink in its place is refused.
    with os.fdopen(private.create(path), "wb") as fh:
        fh.write(pem)


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context that demands a client certificate signed by `client_ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(client_ca))
    context.load_cert_chain(str(cert), str(key))
    return context

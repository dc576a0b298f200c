"""Which of a `p2p-socket` pipeline's TLS files cannot be used, in words that name the
option: `ca`, `cert`, `key` or `key_passphrase`. OpenSSL says "PEM lib" for a swapped
certificate and key, a key that needs a passphrase and a wrong passphrase alike; the
files are looked at (for their PEM markers only; nothing of them is ever printed) to
tell the operator which one to fix. Used by the options at load (`s321 check`) and by
the transport when it builds its TLS context.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .link import client_context

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"


def tls_file_problem(ca: Path, cert: Path, key: Path, passphrase: str | None) -> str | None:
    """None when the files make a client context; else what is wrong, naming the option."""
    try:
        client_context(ca, cert, key, passphrase)
        return None
    except (ssl.SSLError, OSError) as exc:
        return _which(ca, cert, key, passphrase, exc)


def _which(ca: Path, cert: Path, key: Path, passphrase: str | None, exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or ""
    try:
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    except (ssl.SSLError, OSError) as ca_exc:
        return f"ca: {ca} holds no CA certificate that can be read ({_said(ca_exc)})"
    cert_text, key_text = _head(cert), _head(key)
    if _CERTIFICATE not in cert_text:
        swapped = " (it holds a private key: are cert and key swapped?)" if _PRIVATE_KEY in cert_text else ""
        return f"cert: {cert} holds no PEM certificate{swapped}"
    if _PRIVATE_KEY not in key_text:
        swapped = " (it holds a certificate: are cert and key swapped?)" if _CERTIFICATE in key_text else ""
        return f"key: {key} holds no PEM private key{swapped}"
    if reason == "KEY_VALUES_MISMATCH":
        return f"key: {key} is not the private key of the certificate in {cert}"
    if b"ENCRYPTED" in key_text:
        if passphrase is None:
            return f"key: {key} is encrypted: give key_passphrase"
        return f"key_passphrase: does not open {key}"
    return f"cert, key: {cert} and {key} cannot be used together ({_said(exc)})"


def _head(path: Path) -> bytes:
    """The file's first 64 kB (PEM markers are near its start), b"" if unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read(65536)
    except OSError:
        return b""


def _said(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    return getattr(exc, "strerror", None) or str(exc)

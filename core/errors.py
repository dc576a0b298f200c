"""Errors that cross module borders, and the one place transport failures are
classified as retriable or fatal.

`RetriableError`: try again later (refused, reset, timeout, the peer went away).
`FatalError`: trying again cannot help (certificate refused, protocol version
refused, authentication failed, bad configuration). Every transport raises only these
two from its data-plane methods, so the runtime's retry policy is the same for all.
"""

from __future__ import annotations

import errno
import socket
import ssl
import sys


class S321Error(Exception):
    """Base of all s321 errors."""


class ConfigError(S321Error):
    """A configuration that cannot be used; `lines` are `FILE: path: message` lines."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class PluginError(S321Error):
    """A plugin or component that cannot be found or loaded."""


class TransportError(S321Error):
    """Base of the two transport outcomes."""


class RetriableError(TransportError):
    """The operation may succeed if tried again later."""


class FatalError(TransportError):
    """Trying again cannot help; an operator must act."""


class ProtocolError(S321Error):
    """A link-protocol failure (framing, handshake), found here or reported by the peer
    in an ERROR frame. `code` is one of the codes listed in docs/wire-format.md."""

    def __init__(self, code: str, message: str, *, from_peer: bool = False):
        super().__init__(message)
        self.code = code
        self.from_peer = from_peer


# The peer is there but not now (stopping, overloaded, closing an idle link): the same
# exchange can succeed later. Every other protocol code means that resending the same
# bytes would fail the same way (a version, a frame size, a malformed document).
RETRIABLE_PROTOCOL_CODES = frozenset({"unavailable", "idle-timeout"})


_RETRIABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EAGAIN,
}


def classify(exc: BaseException) -> TransportError:
    """Map any exception raised while talking to a peer onto Retriable or Fatal."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, ProtocolError):
        kind = RetriableError if exc.code in RETRIABLE_PROTOCOL_CODES else FatalError
        who = "peer refused" if exc.from_peer else "protocol error"
        return kind(f"{who}: {exc.code}: {exc}")
    ssh = _classify_ssh(exc)
    if ssh is not None:
        return ssh
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FatalError(f"certificate refused: {getattr(exc, 'verify_message', None) or exc}")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        if any(word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE", "VERSION")):
            return FatalError(f"TLS refused: {exc.reason or exc}")
        return RetriableError(f"TLS error: {exc.reason or exc}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RetriableError(f"timed out: {exc}")
    if isinstance(exc, socket.gaierror):
        return RetriableError(f"cannot resolve host: {exc}")
    if isinstance(exc, ConnectionRefusedError):  # nobody listens there: never "lost"
        return RetriableError(f"connection refused: {exc.strerror or exc}")
    if isinstance(exc, (ConnectionError, EOFError)):
        return RetriableError(f"connection lost: {exc or type(exc).__name__}")
    if isinstance(exc, OSError) and exc.errno in _RETRIABLE_ERRNOS:
        return RetriableError(f"{exc.strerror or exc}")
    if isinstance(exc, PermissionError):
        return FatalError(f"permission denied: {exc}")
    if isinstance(exc, OSError):
        return RetriableError(f"I/O error: {exc}")
    return FatalError(f"{type(exc).__name__}: {exc}")


def _classify_ssh(exc: BaseException) -> TransportError | None:
    """paramiko's own errors. paramiko is looked up, not imported: if no module loaded
    it, none of its exceptions can exist, and the core stays quick to import."""
    paramiko = sys.modules.get("paramiko")
    if paramiko is None or not isinstance(exc, paramiko.SSHException):
        return None
    if isinstance(exc, paramiko.BadHostKeyException):
        return FatalError(f"host key refused: {exc}")
    if isinstance(exc, paramiko.AuthenticationException):
        return FatalError(f"authentication failed: {exc}")
    if isinstance(exc, paramiko.IncompatiblePeer):
        return FatalError(f"no SSH algorithms in common with the server: {exc}")
    # What is left ("Error reading SSH protocol banner", "Server connection dropped",
    # "SSH session not active", a channel refused) means the server is away or busy.
    return RetriableError(f"SSH error: {exc or type(exc).__name__}")

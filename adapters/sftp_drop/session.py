"""One authenticated SFTP session: TCP connect, SSH handshake, host key check *before*
any credential is sent, then key or password authentication and the sftp subsystem.

Nothing here consults ~/.ssh, an agent or a system known_hosts file: only what the
options name. Failures are raised as the TransportError that `classify` makes of them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from s321.adapters.sftp_drop.hostkeys import HostKeyPin, fingerprint
from s321.adapters.sftp_drop.options import SftpOptions
from s321.errors import FatalError, classify


@dataclass
class SftpSession:
    ssh: paramiko.Transport
    sftp: paramiko.SFTPClient
    host_key: str  # fingerprint of the verified server key
    auth: str  # "publickey" or "password"

    def alive(self) -> bool:
        return self.ssh.is_active() and not self.sftp.get_channel().closed

    def close(self) -> None:
        try:
            self.sftp.close()
        finally:
            self.ssh.close()


def load_user_key(options: SftpOptions) -> paramiko.PKey | None:
    """The private key named by `key`, decrypted with `key_passphrase`; FatalError when
    it cannot be used (retrying would read the same file)."""
    if options.key is None:
        return None
    path: Path = options.key
    secret = options.key_passphrase
    passphrase = secret.get_secret_value().encode("utf-8") if secret is not None else None
    try:
        return paramiko.PKey.from_path(path, passphrase)
    except FileNotFoundError:
        raise FatalError(f"sftp key {str(path)!r} does not exist") from None
    except OSError as exc:
        raise FatalError(f"sftp key {str(path)!r} cannot be read: {exc.strerror}") from None
    except Exception as exc:  # cryptography and paramiko each have their own key errors
        if passphrase is None and "password" in str(exc).lower():
            raise FatalError(f"sftp key {str(path)!r} is encrypted: set key_passphrase") from None
        why = ("wrong key_passphrase, or not a private key" if passphrase is not None
               else "not a private key in OpenSSH or PEM format")
        raise FatalError(f"sftp key {str(path)!r} cannot be used ({why}): "
                         f"{type(exc).__name__}") from None


def open_session(options: SftpOptions, pin: HostKeyPin, user_key: paramiko.PKey | None) -> SftpSession:
    sock: socket.socket | None = None
    ssh: paramiko.Transport | None = None
    try:
        sock = socket.create_connection((options.host, options.port), timeout=options.connect_timeout)
        # SFTP is request/reply: with Nagle on, the tail of a request can wait for the
        # server's delayed ACK (~40 ms) before it leaves, once per round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssh = paramiko.Transport(sock)
        ssh.banner_timeout = ssh.handshake_timeout = ssh.auth_timeout = options.connect_timeout
        security = ssh.get_security_options()
        security.key_types = pin.preferred_algorithms(list(security.key_types))
        ssh.start_client(timeout=options.connect_timeout)
        host_key = pin.verify(ssh.get_remote_server_key().asbytes())
        method = _authenticate(ssh, options, user_key)
        channel = ssh.open_session(timeout=options.op_timeout)
        channel.settimeout(options.op_timeout)
        channel.invoke_subsystem("sftp")
        sftp = paramiko.SFTPClient(channel)
        return SftpSession(ssh, sftp, host_key, method)
    except Exception as exc:
        if ssh is not None:
            ssh.close()
        elif sock is not None:
            sock.close()
        err = classify(exc)
        raise type(err)(f"sftp {options.where}: {err}") from exc


def _authenticate(ssh: paramiko.Transport, options: SftpOptions, user_key: paramiko.PKey | None) -> str:
    """Key first; the password only if the key is refused or the server asks for a
    second factor. No agent, no keys found lying around."""
    refused: list[str] = []
    if user_key is not None:
        try:
            further = ssh.auth_publickey(options.username, user_key)
        except paramiko.AuthenticationException as exc:
            refused.append(f"key {fingerprint(user_key.asbytes())} refused ({exc})")
        else:
            if ssh.is_authenticated():
                return "publickey"
            refused.append(f"key accepted but the server also wants {', '.join(further)}")
    if options.password is not None:
        try:
            ssh.auth_password(options.username, options.password.get_secret_value())
        except paramiko.AuthenticationException as exc:
            refused.append(f"password refused ({exc})")
        else:
            if ssh.is_authenticated():
                return "password"
    raise AuthenticationRefused(f"authentication failed for {options.username!r}: "
                                + "; ".join(refused or ["no method left to try"]))


class AuthenticationRefused(FatalError):
    """The server refused every credential we hold; retrying cannot help."""


def is_connection_failure(exc: BaseException) -> bool:
    """Whether an error leaves the session unusable, as opposed to one request refused
    (a missing file, a permission): after a timeout a late reply could still arrive."""
    return isinstance(exc, (EOFError, TimeoutError, ConnectionError, paramiko.SSHException))

"""Host key pinning: the server's key must match a known_hosts entry or a configured
SHA256 fingerprint. An unknown, changed or revoked key is refused with `HostKeyRefused`
(a FatalError) naming the fingerprint seen; nothing is ever added or accepted blindly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from s321.errors import FatalError
from s321.logs import get_logger

log = get_logger(__name__)

# The RSA key type signs with SHA-2 on modern servers; these are the names under which
# a server offers the same `ssh-rsa` key during key exchange.
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")


class HostKeyRefused(FatalError):
    """The server's host key does not match what is pinned for it."""


def fingerprint(blob: bytes) -> str:
    """A public key blob's fingerprint, as `ssh-keygen -lf` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def key_type(blob: bytes) -> str:
    """The key type named inside a public key blob (`ssh-ed25519`, `ssh-rsa`, ...)."""
    if len(blob) < 4:
        return "?"
    (size,) = struct.unpack(">I", blob[:4])
    return blob[4:4 + size].decode("ascii", "replace")


@dataclass(frozen=True)
class KnownKey:
    patterns: tuple[str, ...]
    marker: str | None  # None, "@revoked" or "@cert-authority"
    blob: bytes
    where: str  # FILE:LINE

    @property
    def key_type(self) -> str:
        return key_type(self.blob)


def read_known_hosts(path: Path) -> list[KnownKey]:
    """Entries of an OpenSSH known_hosts file; malformed lines are skipped with a warning,
    as ssh does. A missing or unreadable file is a FatalError: nothing could be verified."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FatalError(f"known_hosts {str(path)!r} cannot be read: {exc.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            log.warning("known_hosts line skipped", where=f"{path}:{number}", reason="too few fields")
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            log.warning("known_hosts line skipped", where=f"{path}:{number}", reason="key is not base64")
            continue
        if key_type(blob) != fields[1]:
            log.warning("known_hosts line skipped", where=f"{path}:{number}",
                        reason="key type field does not match the key")
            continue
        entries.append(KnownKey(tuple(fields[0].split(",")), marker, blob, f"{path}:{number}"))
    return entries


def host_entry_name(host: str, port: int) -> str:
    """How OpenSSH names a server in known_hosts: `host`, or `[host]:port` off port 22."""
    return host.lower() if port == 22 else f"[{host.lower()}]:{port}"


def matches(patterns: tuple[str, ...], name: str) -> bool:
    """OpenSSH host pattern-list matching: wildcards `*` `?`, negation `!`, hashed names."""
    hit = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if _matches_one(pattern, name):
            if negated:
                return False  # a negated match vetoes the entry, whatever else matched
            hit = True
    return hit


def _matches_one(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt_b64, digest_b64 = pattern[3:].split("|", 1)
            salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        except (ValueError, binascii.Error):
            return False
        mine = hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest()
        return hmac.compare_digest(mine, digest)
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, name) is not None


class HostKeyPin:
    """What the server's key must be: every accepted key of one host, or a fingerprint."""

    def __init__(self, host: str, port: int, known_hosts: Path | None = None,
                 expected_fingerprint: str | None = None):
        self.name = host_entry_name(host, port)
        self.source = str(known_hosts) if known_hosts else "host_key_fingerprint"
        self.expected = expected_fingerprint
        self.known: list[KnownKey] = []
        self.revoked: list[KnownKey] = []
        if known_hosts is not None:
            for entry in read_known_hosts(known_hosts):
                if entry.marker == "@revoked":
                    self.revoked.append(entry)  # revocations hold for whichever host they name
                elif entry.marker is None and matches(entry.patterns, self.name):
                    self.known.append(entry)

    def preferred_algorithms(self, offered: list[str]) -> list[str]:
        """The client's host key algorithms, those we hold a pinned key for first, so the
        server shows the key we can check rather than another one it also has."""
        wanted: list[str] = []
        for entry in self.known:
            kind = entry.key_type
            wanted += list(_RSA_ALGORITHMS) if kind == "ssh-rsa" else [kind]
        first = [a for a in dict.fromkeys(wanted) if a in offered]
        return first + [a for a in offered if a not in first]

    def verify(self, blob: bytes) -> str:
        """The fingerprint of `blob` if it is the pinned key; HostKeyRefused otherwise."""
        seen = fingerprint(blob)
        kind = key_type(blob)
        if any(entry.blob == blob for entry in self.revoked):
            raise HostKeyRefused(f"host key REVOKED: {self.name} presented {kind} {seen}, "
                                 f"which {self.source} marks @revoked")
        if self.expected is not None:
            if hmac.compare_digest(seen, self.expected.rstrip("=")):
                return seen
            raise HostKeyRefused(
                f"host key MISMATCH: {self.name} presented {kind} {seen}, but "
                f"host_key_fingerprint pins {self.expected}. If the server's key was "
                f"changed on purpose, confirm the new fingerprint with its operator")
        if any(entry.blob == blob for entry in self.known):
            return seen
        same_type = [e for e in self.known if e.key_type == kind]
        if same_type:
            pinned = ", ".join(f"{fingerprint(e.blob)} ({e.where})" for e in same_type)
            raise HostKeyRefused(
                f"host key CHANGED: {self.name} presented {kind} {seen}, but {self.source} "
                f"holds {pinned}. This may be an attack; if the key was changed on purpose, "
                f"confirm the new fingerprint with the server's operator and update the file")
        held = sorted({e.key_type for e in self.known})
        also = f" (it holds only {', '.join(held)} keys for this host)" if held else ""
        raise HostKeyRefused(
            f"host key UNKNOWN: {self.name} presented {kind} {seen}, which is not in "
            f"{self.source}{also}. Confirm the fingerprint with the server's operator, then "
            f"add the key (e.g. `ssh-keyscan -p PORT HOST >> {self.source}`)")

"""Who may use the console: users from the config (argon2id hashes only), roles as a
written matrix, server-side sessions and a login rate limit.

Promises: a password is checked only against its argon2id hash (argon2-cffi); a
session lives in this process's memory only (a restart logs everyone out; logout ends
it at once), its id is new at every login, it ends 30 minutes after its last use or 12
hours after login (the config may shorten or lengthen both), and it ends at once when
its user is no longer in the users the console was given; a client address or user name
that fails to log in too often is refused for a while, whatever the password.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from s321.config import ConsoleUser

ROLES = ("viewer", "operator", "admin")

PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "retry", "resend"}),
    "admin": frozenset({"read", "retry", "resend", "delete"}),
}
"""The roles matrix (docs/console.md shows it): what each role may do."""

_hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
"""Checked against when the user name is unknown, so that a login takes as long either way."""


def hash_password(password: str) -> str:
    """An argon2id hash for `[console.users.NAME] password_hash`."""
    return _hasher.hash(password)


def verify(users: dict[str, ConsoleUser], name: str, password: str) -> ConsoleUser | None:
    """The user when the password matches its hash; None otherwise (unknown or wrong)."""
    user = users.get(name)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user


def allowed(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    last_seen: float
    user: str | None = None
    """None for the anonymous session that carries the login form's CSRF token."""
    flash: dict[str, Any] | None = None
    """The outcome of the last action, shown once on the next page."""


@dataclass
class Sessions:
    """Server-side sessions, in memory."""

    idle_seconds: float = 30 * 60
    absolute_seconds: float = 12 * 3600
    _by_id: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self, user: str | None = None, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user)
        with self._lock:
            self._expire(now)
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None, now: float | None = None) -> Session | None:
        """The live session with this id, touched; None when unknown or expired."""
        if not session_id:
            return None
        now = time.time() if now is None else now
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.idle_seconds or now - session.created > self.absolute_seconds:
                del self._by_id[session_id]
                return None
            session.last_seen = now
            return session

    def login(self, old: Session | None, user: str, now: float | None = None) -> Session:
        """A new session (new id, new CSRF token) for `user`; the old one ends."""
        self.end(old)
        return self.new(user, now)

    def end(self, session: Session | None) -> None:
        if session is not None:
            with self._lock:
                self._by_id.pop(session.id, None)

    def end_users_not_in(self, users: set[str]) -> None:
        """Removing a user from the config ends its sessions."""
        with self._lock:
            for sid in [sid for sid, s in self._by_id.items() if s.user is not None and s.user not in users]:
                del self._by_id[sid]

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self._by_id.items()
                    if now - s.last_seen > self.idle_seconds or now - s.created > self.absolute_seconds]:
            del self._by_id[sid]


@dataclass
class LoginLimiter:
    """At most `attempts` failed logins per client address and per user name in
    `window` seconds; past that, refused until the oldest failure leaves the window."""

    attempts: int = 5
    window: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, keys: list[str], now: float | None = None) -> float:
        """Seconds until a login from these keys may be tried again (0: now)."""
        now = time.time() if now is None else now
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._failures.get(key)
                while times and now - times[0] > self.window:
                    times.popleft()
                if times and len(times) >= self.attempts:
                    wait = max(wait, self.window - (now - times[0]))
        return wait

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

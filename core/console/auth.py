"""Who may use the console: users from the config (argon2id hashes only), roles as a
written matrix, server-side sessions and a login rate limit.

Promises: a password is checked only against its argon2id hash (argon2-cffi); a
session lives in this process's memory only (a restart logs everyone out; logout ends
it at once), its id is new at every login, it ends 30 minutes after its last use or 12
hours after login (the config may shorten or lengthen both), and it ends at once when
its user is no longer in the users the console was given; a user name that fails to
log in too often (from one address, or from many) is refused for a while, whatever the
password, while failures for other names never refuse it (LoginLimiter).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
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


_checking = threading.BoundedSemaphore(2)
"""At most two password checks at once: each takes about 140 ms of a core and 64 MiB."""


def verify(users: dict[str, ConsoleUser], name: str, password: str) -> ConsoleUser | None:
    """The user when the password matches its hash; None otherwise (unknown or wrong).
    Slow on purpose, and blocking: call it from a worker thread, never on the event
    loop (the console's login runs it through `run_in_threadpool`)."""
    user = users.get(name)
    with _checking:
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
    """Server-side sessions, in memory. Anyone can make a logged-out one (the login
    form's CSRF token rides in it): those live `anonymous_seconds` unused, and past
    `max_anonymous` the oldest ends, so a flood of them costs bounded memory and never
    ends a logged-in session. Expired sessions are swept every `sweep_seconds`, not
    at every new one."""

    idle_seconds: float = 30 * 60
    absolute_seconds: float = 12 * 3600
    anonymous_seconds: float = 10 * 60
    max_anonymous: int = 10_000
    sweep_seconds: float = 60.0
    _by_id: dict[str, Session] = field(default_factory=dict)
    _anonymous: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _swept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self, user: str | None = None, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user)
        with self._lock:
            if now - self._swept >= self.sweep_seconds:
                self._expire(now)
                self._swept = now
            self._by_id[session.id] = session
            if user is None:
                self._anonymous[session.id] = None
                while len(self._anonymous) > self.max_anonymous:
                    oldest, _ = self._anonymous.popitem(last=False)
                    self._by_id.pop(oldest, None)
        return session

    def _expired(self, session: Session, now: float) -> bool:
        idle = self.idle_seconds if session.user is not None else min(self.idle_seconds, self.anonymous_seconds)
        return now - session.last_seen > idle or now - session.created > self.absolute_seconds

    def _drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)
        self._anonymous.pop(session_id, None)

    def get(self, session_id: str | None, now: float | None = None) -> Session | None:
        """The live session with this id, touched; None when unknown or expired."""
        if not session_id:
            return None
        now = time.time() if now is None else now
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                self._drop(session_id)
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
                self._drop(session.id)

    def end_users_not_in(self, users: set[str]) -> None:
        """Removing a user from the config ends its sessions."""
        with self._lock:
            for sid in [sid for sid, s in self._by_id.items() if s.user is not None and s.user not in users]:
                del self._by_id[sid]

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self._by_id.items() if self._expired(s, now)]:
            self._drop(sid)


@dataclass
class LoginLimiter:
    """Failed logins slow down guesses at the names they were for, and nothing else.

    Per user name and client address, `free` failures in `window` seconds cost nothing;
    past that, that name from that address is refused (429) until a delay has passed
    since its last failure, doubling from 1 s to `window`. Per user name from any
    address (a guesser with many addresses) the same past `free_per_name` failures,
    the delay doubling to `cap_per_name`. Failures for other names never refuse a
    name, so made-up names cannot lock a user out. Past `busy` failures in a minute
    overall, every login is held `slow` seconds before its password is checked: it
    slows, never refuses. A success clears its name's failures. At most `max_keys`
    names and pairs are remembered (the oldest forgotten first)."""

    free: int = 5
    window: float = 300.0
    free_per_name: int = 20
    cap_per_name: float = 60.0
    busy: int = 100
    slow: float = 1.0
    max_keys: int = 10_000
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds until `name` may be tried again from `address` (0: now)."""
        now = time.time() if now is None else now
        with self._lock:
            return max(self._wait(("pair", f"{name}\0{address}"), self.free, self.window, now),
                       self._wait(("name", name), self.free_per_name, self.cap_per_name, now))

    def slowdown(self, now: float | None = None) -> float:
        """Seconds to hold a login before checking its password (0 unless many fail)."""
        now = time.time() if now is None else now
        with self._lock:
            while self._recent and now - self._recent[0] > 60:
                self._recent.popleft()
            return self.slow if len(self._recent) >= self.busy else 0.0

    def failed(self, name: str, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for key in (("pair", f"{name}\0{address}"), ("name", name)):
                self._failures.setdefault(key, deque()).append(now)
            self._recent.append(now)
            if len(self._recent) > self.busy:
                self._recent.popleft()
            if len(self._failures) > self.max_keys:
                self._forget(now)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop(("pair", f"{name}\0{address}"), None)
            self._failures.pop(("name", name), None)

    def _wait(self, key: tuple[str, str], free: int, cap: float, now: float) -> float:
        times = self._failures.get(key)
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
            return 0.0
        if len(times) < free:
            return 0.0
        delay = min(cap, 2.0 ** (len(times) - free))
        return max(0.0, times[-1] + delay - now)

    def _forget(self, now: float) -> None:
        """Drop what has left the window; if still too many, the oldest keys."""
        for key in [k for k, t in self._failures.items() if not t or now - t[-1] > self.window]:
            del self._failures[key]
        for key in list(self._failures)[:max(0, len(self._failures) - self.max_keys)]:
            del self._failures[key]

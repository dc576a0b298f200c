"""Fault injection for the sandbox: the misbehaviour tests and demos need from a peer.

Every fault is off by default. Random rejections come from a seeded generator, so a
test or a demo that names a seed sees the same rejections each run (one client).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

INJECTED = "injected-rejection"


@dataclass(frozen=True)
class Faults:
    reject_fraction: float = 0.0
    """Share of otherwise acceptable records rejected with code `injected-rejection`."""
    seed: int | None = None
    ack_delay: float = 0.0
    """Seconds between a batch's RECEIPT and its ACK."""
    drop_after_frames: int | None = None
    """Cut a connection right after handling its N-th frame from the client (HELLO is
    frame 1), before answering it: a batch in that frame is stored but never acked."""
    drop_connections: int = 1
    """How many connections `drop_after_frames` applies to (0: every one)."""
    refuse_for: float = 0.0
    """Seconds after start during which connections are reset before TLS."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.reject_fraction <= 1.0:
            raise ValueError("reject_fraction must be between 0 and 1")
        if self.ack_delay < 0 or self.refuse_for < 0 or self.drop_connections < 0:
            raise ValueError("ack_delay, refuse_for and drop_connections cannot be negative")
        if self.drop_after_frames is not None and self.drop_after_frames < 1:
            raise ValueError("drop_after_frames must be at least 1")


class FaultState:
    """The faults of one running sandbox, shared by its connections."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._dropped = 0
        self._refuse_until = 0.0

    def started(self) -> None:
        """The server is listening: `refuse_for` counts from now."""
        self._refuse_until = time.monotonic() + self.faults.refuse_for

    def reject(self) -> bool:
        if self.faults.reject_fraction <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.faults.reject_fraction

    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def refuse(self, seconds: float) -> None:
        """Refuse new connections for `seconds` from now (a demo's "CBP is down")."""
        self._refuse_until = time.monotonic() + seconds

    def drop_after(self) -> int | None:
        """For a new connection: the frame count after which to cut it, if any."""
        n = self.faults.drop_after_frames
        if n is None:
            return None
        with self._lock:
            if self.faults.drop_connections and self._dropped >= self.faults.drop_connections:
                return None
            self._dropped += 1
            return n

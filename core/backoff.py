"""Exponential backoff with full jitter, for every transport that reconnects or retries.

`Backoff.delay(n)` is a random wait in [0, min(maximum, initial * multiplier**n)]: the
ceiling grows per failed attempt and never passes `maximum`, and the randomness keeps
many clients that lost the same peer from coming back at the same instant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from s321.errors import RetriableError

T = TypeVar("T")

# Past this exponent every ceiling is `maximum` anyway; stopping here keeps the power
# from overflowing a float after days of failures.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.multiplier < 1:
            raise ValueError("backoff needs initial >= 0, maximum >= 0 and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after `attempt` failures so far (0 for the first retry)."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier ** exponent)

    def delay(self, attempt: int) -> float:
        """A wait drawn uniformly from [0, ceiling(attempt)] ("full jitter")."""
        return self.rng.uniform(0.0, self.ceiling(attempt))


def retry(call: Callable[[], T], *, attempts: int, backoff: Backoff,
          sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `call` until it returns, raises anything but RetriableError, or has failed
    `attempts` times (then the last RetriableError is raised), waiting a backoff delay
    between tries."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return call()
        except RetriableError:
            if attempt == attempts - 1:
                raise
            sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")  # the loop returns or raises

"""Logging: structlog everywhere, JSON lines when stderr is not a terminal, readable
lines when it is, and personal data redacted before anything is written.

Redaction works on keys (any key naming a personal field, at any depth) and on the
values of Party and Address objects, so that a careless `log.info(..., party=p)` still
writes no name, address, e-mail or phone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import BaseModel

from s321.record import PERSONAL_FIELDS, Address, Party

REDACTED = "[redacted]"
_PERSONAL_KEYS = PERSONAL_FIELDS | {
    "address", "street", "customer", "seller", "consignment_originator",
    "ultimate_deliver_to", "exemption_claimant", "party", "record", "consignment",
}


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, (Party, Address)):
        return REDACTED
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in _PERSONAL_KEYS else _scrub(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact_personal_data(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace personal data with a marker."""
    return {k: (REDACTED if k.lower() in _PERSONAL_KEYS else _scrub(v)) for k, v in event.items()}


class _Stderr:
    """Whatever sys.stderr is at the time of writing (it may be redirected later)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(level: str = "info", json: bool | None = None, stream: Any = None) -> None:
    """Set up structlog once per process. `json=None` picks JSON unless stderr is a tty."""
    stream = stream or _Stderr()
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()

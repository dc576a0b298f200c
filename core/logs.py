"""Logging: structlog everywhere, JSON lines when stderr is not a terminal, readable
lines when it is, and personal data redacted before anything is written.

Redaction works on keys (any key naming a personal field, at any depth) and on the
values of Party and Address objects, so that a careless `log.info(..., party=p)` still
writes no name, address, e-mail or phone. A dataclass (a source's unit, a shop order)
is written as its type's name, an exception as its type (and its message when it is
the system's: a file, a disk, a socket, SQLite), and nothing nested deeper than six
levels is written at all. A traceback (`log.exception`) keeps its frames and each
exception's type, and drops the messages and notes of those that could quote the input
that failed (`int('Ada Lovelace')`), whatever error a bug raises.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
import traceback
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


SYSTEM_ERRORS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
"""Errors whose messages are the system's own words (strerror and a path, SQLite's text),
never a record's values: kept in logs. (PostgreSQL's are not: "Failing row contains"
quotes the row.)"""

WITHHELD = "[message withheld: it may quote the input]"


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return REDACTED
    if isinstance(value, (Party, Address)):
        return REDACTED
    if isinstance(value, BaseException):
        return _headline(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"<{type(value).__name__}>"
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


def error_text(exc: BaseException) -> str:
    """An unexpected error as s321 says it where anyone may read it (a log line,
    `/healthz`, a webhook, a run's summary): its type, and its message only when it is
    the system's (SYSTEM_ERRORS). A bug's message may quote the record it failed on;
    the log's traceback (`exc_info=True`) still shows where it was raised."""
    return _headline(exc)


def _headline(exc: BaseException) -> str:
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    if isinstance(exc, SYSTEM_ERRORS):
        text = str(exc)
        return f"{name}: {text}" if text else name
    return f"{name}: {WITHHELD}" if exc.args else name


def _chain(exc: BaseException) -> list[tuple[BaseException, str | None]]:
    """The exceptions of a traceback, the first cause first, each with the line Python
    puts before the next one."""
    seen: set[int] = set()
    chain: list[tuple[BaseException, str | None]] = []
    link: str | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another exception occurred:"
        else:
            current = None
    chain.reverse()
    # Each link is said before the exception it leads to.
    return [(e, chain[i - 1][1] if i else None) for i, (e, _) in enumerate(chain)]


def format_traceback(exc: BaseException) -> str:
    """A traceback as Python prints it, each exception's message left out unless it is
    a system error's (SYSTEM_ERRORS), and no notes."""
    parts: list[str] = []
    for e, link in _chain(exc):
        if link:
            parts.append(f"\n{link}\n\n")
        if e.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(e.__traceback__))
        parts.append(_headline(e) + "\n")
    return "".join(parts).rstrip("\n")


def traceback_without_data(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor, in place of `format_exc_info`: `exc_info` becomes
    `exception`, the traceback of `format_traceback`."""
    exc_info = event.pop("exc_info", None)
    exc: BaseException | None = None
    if isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple) and len(exc_info) == 3:
        exc = exc_info[1]
    elif exc_info:
        exc = sys.exc_info()[1]
    if exc is not None:
        event["exception"] = format_traceback(exc)
    return event


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
            traceback_without_data,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()

"""Capturing what s321 and the libraries under it log, as the text that would be
written: structlog through s321's own configuration (redaction included), and the
standard `logging` module (paramiko, pyzmq and friends log there)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
from s321 import logs


@dataclass
class CapturedLogs:
    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return self.text.splitlines()


@contextmanager
def captured_logs(level: str = "debug") -> Iterator[CapturedLogs]:
    """Every log line written inside the block, at `level` and above, as JSON lines
    (structlog) and plain lines (logging). The previous configuration is restored."""
    stream = io.StringIO()
    saved = structlog.get_config()
    logs.configure(level=level, json=True, stream=stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.DEBUG))
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
        structlog.configure(**saved)

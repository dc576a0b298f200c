"""Ports for servers the tests start. Never from the kernel's ephemeral range (32768 and
up here), where every outgoing connection of a parallel test takes its source port, and
each pytest-xdist worker draws from a range of its own: a port handed out here is not
taken by someone else between the pick and the server's bind."""

from __future__ import annotations

import os
import random
import socket

_SPAN = 1500
_BASE = 20000
_given: set[int] = set()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    low = _BASE + (index % 8) * _SPAN
    for _ in range(500):
        port = random.randrange(low, low + _SPAN)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {low}..{low + _SPAN}")

"""The states of a consignment in the ledger, in one place (DESIGN.md section 3).

    received -> invalid | skipped | queued -> sent -> accepted | rejected
    queued/sent -> dead   (past the retry budget, or a fatal transport error)
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    RECEIVED = "received"
    INVALID = "invalid"
    SKIPPED = "skipped"
    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DEAD = "dead"


IN_FLIGHT = frozenset({State.QUEUED, State.SENT})
"""States in which the runtime still owes the consignment a transmission or an ack."""

FINAL = frozenset({State.ACCEPTED, State.REJECTED, State.INVALID, State.SKIPPED, State.DEAD})

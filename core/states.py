"""The states of a consignment in the ledger, in one place (DESIGN.md section 3).

    received -> invalid | skipped | queued -> sent -> accepted | rejected
    queued -> sent -> delivered   (through a transport that gets no acknowledgements)
    queued/sent -> dead   (past the retry budget, or a fatal transport error)

`delivered` is final: the batch was handed over (a file written) and no answer will
come. It is never sent again by itself, whatever transport the pipeline uses later.
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
    DELIVERED = "delivered"
    DEAD = "dead"


IN_FLIGHT = frozenset({State.QUEUED, State.SENT})
"""States in which the runtime still owes the consignment a transmission or an ack."""

FINAL = frozenset({State.ACCEPTED, State.REJECTED, State.DELIVERED, State.INVALID, State.SKIPPED, State.DEAD})

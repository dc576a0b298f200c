"""The relay protocol `s321-relay/1`: ZeroMQ multipart messages between a client's
DEALER and the relay's ROUTER (docs/relay.md lists them). Both ends import it, so a
message type or error code means the same on both sides.

Every client message is `[TYPE, SESSION, ...]`; every relay message `[TYPE, ...]`.
Control bodies are UTF-8 JSON objects; batches and acks are s321/1 documents.
"""

from __future__ import annotations

import json
import re
from typing import Any

from s321.errors import FatalError, RetriableError, TransportError

PROTOCOL = "s321-relay/1"

# client -> relay
HELLO = b"HELLO"          # [HELLO, session, {"protocol", "format"}]
BATCH = b"BATCH"          # [BATCH, session, s321/1 batch]
DELIVERED = b"DELIVERED"  # [DELIVERED, session, {"batch_id", "upto"}]

# relay -> client
WELCOME = b"WELCOME"      # [WELCOME, {"protocol", "client", "originator_codes", "max_batch", "max_in_flight"}]
RECEIPT = b"RECEIPT"      # [RECEIPT, {"batch_id", "records", "detail"}]
ERROR = b"ERROR"          # [ERROR, {"batch_id" | null, "code", "message"}]
ACK = b"ACK"              # [ACK, {"upto"}, s321/1 ack]

# Error codes. The relay is there but cannot take the batch now: the same batch can
# succeed later. Every other code means that sending the same batch again fails again.
BUSY = "busy"
UNAVAILABLE = "unavailable"
ORIGINATOR_REFUSED = "originator-refused"
BATCH_TOO_LARGE = "batch-too-large"
MALFORMED_BATCH = "malformed-batch"
MALFORMED_MESSAGE = "malformed-message"
TRANSACTION_CONFLICT = "transaction-conflict"
FORMAT_REFUSED = "format-refused"
PROFILE_REFUSED = "profile-refused"

RETRIABLE_CODES = frozenset({BUSY, UNAVAILABLE})

SESSION = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
"""A session names one sending pipeline of a client (its pipeline name), so that
acks go back to the pipeline whose ledger waits for them."""


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(frame: bytes) -> dict[str, Any]:
    """A control body; ValueError when it is not a JSON object."""
    try:
        body = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("a control body must be a JSON object")
    return body


def refusal(code: str, message: str) -> TransportError:
    """The client-side error for an ERROR the relay sent."""
    kind = RetriableError if code in RETRIABLE_CODES else FatalError
    return kind(f"relay refused: {code}: {message}")

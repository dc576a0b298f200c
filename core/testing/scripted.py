"""The scripted-receiver contract: a receiver that speaks one transport's protocol and
answers each batch as the conformance suite tells it (reject these records, answer
malformed, partially, late, drop the connection, refuse the credential, time out,
be busy), so that the suite can check that the transport reports exactly what the
receiver said and classifies each failure.

The suite cannot speak a protocol it does not know, so the plugin author writes the
wire half: subclass `ScriptedReceiver`, and in the code that handles a request call
`script_for_credential()` where the credential is checked and `script_for_batch()`
when a batch arrives, then `answer(batch, script)` for the acknowledgement to send.
Everything about what the answer says lives here, the same for every protocol.
Promises: an answer holds exactly the records the script names, echoes each record's
version, and says `duplicate` for a version it accepted before. No pytest needed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from s321.contracts import Ack, AckError, AckStatus, Batch, RecordAck
from s321.record import Consignment


_ACKS_CARRY_VERSIONS = "version" in RecordAck.model_fields


class Play(StrEnum):
    """What the receiver does with the next batch (or credential check)."""

    ACCEPT = "accept"
    """Accept every record (a version accepted before is answered `duplicate`)."""
    REJECT = "reject"
    """Reject the records named in `Script.reject` with a coded error; accept the rest."""
    PARTIAL = "partial"
    """Answer about the first half of the records only; say nothing of the others."""
    LATE = "late"
    """As ACCEPT, but answer only after `Script.delay` seconds."""
    MALFORMED = "malformed"
    """Answer with bytes that are not an acknowledgement in the protocol's format."""
    DROP = "drop"
    """Close the connection without answering."""
    REFUSE_CREDENTIAL = "refuse-credential"
    """Refuse the transport's credential (token, key, certificate) as the protocol does."""
    TIMEOUT = "timeout"
    """Never answer: hold the request until `Script.delay` passes or the receiver stops."""
    BUSY = "busy"
    """Not now: the protocol's "try again later", with `Script.retry_after` seconds as a hint."""


ANSWERED = frozenset({Play.ACCEPT, Play.REJECT, Play.PARTIAL, Play.LATE})
"""The plays after which the receiver sends an acknowledgement."""

REJECTION = "scripted-rejection"
"""The error code of a record rejected by `Play.REJECT`."""


@dataclass(frozen=True)
class Script:
    play: Play
    reject: frozenset[str] = frozenset()
    """Transaction ids to reject (REJECT)."""
    delay: float = 0.0
    """Seconds to wait before answering (LATE), or to hold the request (TIMEOUT)."""
    retry_after: int = 1
    """The hint of a BUSY answer, in seconds (HTTP `Retry-After`)."""


class ScriptedReceiver:
    """The protocol-independent half of a scripted receiver. Thread-safe.

    A subclass sets `options` (the transport's config table pointing at it, secrets
    as references) and serves the protocol. Without a script it accepts, so it is also
    a plain receiver for the other checks (`accepted` counts what it accepted).
    """

    options: dict[str, Any]

    def __init__(self) -> None:
        self.received: list[Batch] = []
        """Every batch that arrived, as decoded at the receiver, in order."""
        self.answered: list[Ack] = []
        """Every acknowledgement the receiver sent, in order."""
        self.accepted: Counter[str] = Counter()
        """Transaction id -> how many times a version of it was accepted."""
        self._filed: set[tuple[str, str]] = set()
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self.released = threading.Event()
        """Set when the receiver stops: a held request (TIMEOUT, LATE) ends then."""

    # ------------------------------------------------------------------ the suite's side

    def play(self, *scripts: Script) -> None:
        """Queue scripts; each is used once, in order; then the receiver accepts."""
        with self._lock:
            self._scripts.extend(scripts)

    def release(self) -> None:
        """End every held request (call when the receiver stops)."""
        self.released.set()

    def connections(self) -> int | None:
        """Connections open at the receiver now, if the protocol has them and the
        subclass counts them (None: it does not)."""
        return None

    # ------------------------------------------------------------------ the protocol's side

    def script_for_credential(self) -> Script | None:
        """Where the credential is checked (each request, or each connect): the
        REFUSE_CREDENTIAL script at the head of the queue, taken; otherwise None."""
        with self._lock:
            if self._scripts and self._scripts[0].play is Play.REFUSE_CREDENTIAL:
                return self._scripts.popleft()
        return None

    def script_for_batch(self) -> Script:
        """When a batch arrives: the next script, taken (ACCEPT when none is queued)."""
        with self._lock:
            return self._scripts.popleft() if self._scripts else Script(Play.ACCEPT)

    def hold(self, script: Script) -> None:
        """Wait as the script asks (LATE, TIMEOUT), or until the receiver is released."""
        if script.delay > 0:
            self.released.wait(script.delay)

    def answer(self, batch: Batch, script: Script) -> Ack | None:
        """Record that `batch` arrived; the acknowledgement the script asks for, or None
        for a play that sends none (send what the protocol does instead)."""
        with self._lock:
            self.received.append(batch)
            if script.play not in ANSWERED:
                return None
            records = list(batch.records)
            if script.play is Play.PARTIAL:
                records = records[: len(records) // 2]
            results = [self._review(record, script) for record in records]
            ack = Ack(batch_id=batch.batch_id, received_at=datetime.now(UTC), results=results)
            self.answered.append(ack)
            return ack

    def _review(self, record: Consignment, script: Script) -> RecordAck:
        # getattr: versions came with the durability issue; a receiver built against an
        # s321 without them still works.
        txid, version = record.transaction_id, getattr(record, "version", None)
        echo = {"version": version} if _ACKS_CARRY_VERSIONS else {}
        if txid in script.reject:
            return RecordAck(transaction_id=txid, **echo, status=AckStatus.REJECTED, errors=[
                AckError(code=REJECTION, field="items.0.description",
                         message=f"rejected by the scripted receiver ({txid[:8]})")])
        # A version is recognised by its number, or, from a sender without versions,
        # by its content: the same record twice is the same version.
        mark = str(version) if version is not None else hashlib.sha256(
            record.model_dump_json().encode()).hexdigest()
        if (txid, mark) in self._filed:
            return RecordAck(transaction_id=txid, **echo, status=AckStatus.REJECTED, errors=[
                AckError(code="duplicate", field="transaction_id", message="this version was accepted before")])
        self._filed.add((txid, mark))
        self.accepted[txid] += 1
        return RecordAck(transaction_id=txid, **echo, status=AckStatus.ACCEPTED)


__all__ = ["ANSWERED", "REJECTION", "Play", "Script", "ScriptedReceiver"]

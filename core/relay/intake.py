"""Taking a client's batch in: check it against what the client may send, then store
its records in the relay ledger and their routes, all before the receipt is sent.

Taking the same records in again forwards nothing twice: the ledger is idempotent by
content hash and version, and a record the relay already has an answer for gets that
answer again. Versions pass through: a client's record keeps its version upstream; a
version lower than the relay's latest is answered `superseded` at once, the same
version again waits for (or gets) the answer to it, a higher one is a new version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from s321 import regimes
from s321.contracts import AckError, AckStatus, Batch, RecordAck
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.record import Action, Consignment
from s321.relay import protocol
from s321.relay.config import RelayClient
from s321.relay.routes import Lane, Routes
from s321.states import State

UNKNOWN_TRANSACTION = "unknown-transaction"
SUPERSEDED = "superseded"


class Refused(Exception):
    """A batch the relay does not take: `code` is a protocol error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Taken:
    """What became of a batch: records queued to forward, answered from the ledger,
    and dead letters given a fresh retry budget."""

    lane: Lane
    new_lane: bool
    records: int
    queued: int = 0
    answered: int = 0
    revived: list[str] = field(default_factory=list)


class Intake:
    def __init__(self, ledger: Ledger, routes: Routes, profiles: Iterable[str] = (regimes.DEFAULT,)):
        self.ledger = ledger
        self.routes = routes
        # Each (originator code, profile) of a client is a lane with a Transmitter of
        # its own: only known profiles, so a client cannot make lanes without end.
        self.profiles = frozenset(profiles)

    def check(self, client: RelayClient, batch: Batch, acknowledged: bool = True) -> None:
        """Raise Refused if this client may not send this batch now. With an upstream
        that never acknowledges (`acknowledged` False), a batch is in flight only until
        it is forwarded."""
        cfg = client.config
        if not batch.records:
            raise Refused(protocol.MALFORMED_BATCH, f"batch {batch.batch_id} holds no records")
        if batch.profile not in self.profiles:
            raise Refused(protocol.PROFILE_REFUSED,
                          f"profile {batch.profile!r} is not known here (known: "
                          f"{', '.join(sorted(self.profiles))})")
        if len(batch.records) > cfg.max_batch:
            raise Refused(protocol.BATCH_TOO_LARGE,
                          f"batch {batch.batch_id} holds {len(batch.records)} records; client "
                          f"{client.name} may send at most {cfg.max_batch} in one batch")
        allowed = set(cfg.originator_codes)
        codes = [batch.originator_code] + [r.originator_code or "" for r in batch.records]
        for code in codes:
            if code not in allowed:
                shown = repr(code) if code else "(none)"
                raise Refused(protocol.ORIGINATOR_REFUSED,
                              f"originator code {shown} is not one client {client.name} may "
                              f"file for (allowed: {', '.join(sorted(allowed))})")
        txids = [r.transaction_id for r in batch.records]
        if len(set(txids)) != len(txids):
            raise Refused(protocol.MALFORMED_BATCH,
                          f"batch {batch.batch_id} holds a transaction id more than once")
        for txid, owner in self.routes.owners(txids).items():
            if owner != client.name:
                raise Refused(protocol.TRANSACTION_CONFLICT,
                              f"transaction id {txid} was filed through this relay by another "
                              f"client")
        states = (State.QUEUED, State.SENT) if acknowledged else (State.QUEUED,)
        if self.routes.open_batches(client.name, states, excluding=txids) >= cfg.max_in_flight:
            raise Refused(protocol.BUSY,
                          f"client {client.name} has {cfg.max_in_flight} batches in flight "
                          f"(its limit); send again after an acknowledgement")

    def take(self, client: RelayClient, session: str, batch: Batch,
             acknowledged: bool = True) -> Taken:
        """Check, then store durably. Returns what was done; raises Refused."""
        self.check(client, batch, acknowledged)
        first = batch.records[0]
        lane, new_lane = self.routes.lane(
            client.name, batch.originator_code, batch.profile,
            first.filer_type.value if first.filer_type else None,
            first.mode_of_transport.value if first.mode_of_transport else None)
        txids = [r.transaction_id for r in batch.records]
        self.routes.route(client.name, session, batch.batch_id, txids)
        before = {txid: self.ledger.get(txid) for txid in txids}
        taken = Taken(lane, new_lane, len(batch.records))
        current = []
        for record in batch.records:
            known = before[record.transaction_id]
            if record.version is not None and known is not None and known["version"] is not None \
                    and record.version < known["version"]:
                self._superseded(record, known["version"], taken)
            else:
                current.append(record)
        source = f"relay:{client.name}"
        self.ledger.ingest(lane.lane, batch.originator_code, source, [
            Outcome(r.transaction_id, Status.VALID, source, r)
            for r in current if r.action is not Action.DELETE])
        for record in current:
            if record.action is Action.DELETE:
                self._delete(record, before[record.transaction_id], taken)
            else:
                self._settle(record, taken)
        return taken

    def _superseded(self, record: Consignment, latest: int, taken: Taken) -> None:
        """A version older than one the relay already has: answered now, not forwarded."""
        result = RecordAck(transaction_id=record.transaction_id, status=AckStatus.REJECTED,
                           version=record.version, errors=[AckError(
                               code=SUPERSEDED, field="version",
                               message=f"version {record.version} is older than version {latest},"
                                       " which this relay has")])
        self.routes.result(record.transaction_id, result.model_dump_json())
        taken.answered += 1

    def _settle(self, record: Consignment, taken: Taken) -> None:
        """After ingest: follow the client's action where it knows better, and answer at
        once what the relay already has an answer for."""
        txid = record.transaction_id
        row = self.ledger.get(txid)
        assert row is not None
        state = State(row["state"])
        if record.action is Action.REPLACE and not row["on_file"]:
            # The client had it accepted (here or over another link): a replace it is.
            self.ledger.assume_on_file(txid)
        if state is State.DEAD:
            # The client still wants it filed: a fresh retry budget here.
            self.ledger.retry_dead([txid])
            taken.revived.append(txid)
            state = State.QUEUED
        if state in (State.ACCEPTED, State.REJECTED):
            self._answer_from_ledger(row)
            taken.answered += 1
        else:
            taken.queued += 1

    def _delete(self, record: Consignment, before: dict[str, Any] | None, taken: Taken) -> None:
        """A delete is forwarded once, and only for a record this relay had filed."""
        txid = record.transaction_id
        if before is not None and before["action"] == Action.DELETE and (
                record.version is None or record.version == before["version"]):
            state = State(before["state"])
            if state in (State.ACCEPTED, State.REJECTED):
                self._answer_from_ledger(before)
                taken.answered += 1
                return
            if state in (State.QUEUED, State.SENT):
                taken.queued += 1  # on its way already
                return
        try:
            if before is None:
                raise ValueError("never filed here")
            self.ledger.resend(txid, Action.DELETE, version=record.version)
            taken.queued += 1
        except (KeyError, ValueError):
            result = RecordAck(transaction_id=txid, status=AckStatus.REJECTED, version=record.version, errors=[AckError(
                code=UNKNOWN_TRANSACTION, field="transaction_id",
                message="this relay has not filed this transaction id, so it cannot delete it; "
                        "a delete goes through the link that filed it")])
            self.routes.result(txid, result.model_dump_json())
            taken.answered += 1

    def _answer_from_ledger(self, row: dict[str, Any]) -> None:
        """Queue, for the record's current route, the answer the ledger holds for it."""
        stored = row.get("ack")
        if stored:
            result = RecordAck.model_validate_json(stored)
        else:  # accepted without an ack of its own: back to content CBP already had
            result = RecordAck(transaction_id=row["transaction_id"], status=AckStatus.ACCEPTED)
        self.routes.result(row["transaction_id"], result.model_dump_json())

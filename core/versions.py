"""The version state machine of a consignment, in one place: which action a version is
sent with, and what each answer about it means (`settle`). The ledger (s321.ledger)
stores the columns these read and write; its module docstring states the promises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from s321.contracts import AckStatus
from s321.record import Action
from s321.states import State


def next_version(previous: int | None, now: float) -> int:
    """A version above `previous`, and at least the microsecond `now`: rising per
    transaction id whatever the clock does, and past anything an earlier ledger gave
    while the clock moves forward."""
    return max((previous or 0) + 1, int(now * 1_000_000))


def claim_action(action: str, version: int | None, on_file: int, wire_version: int | None,
                 wire_action: str | None) -> str:
    """The action a version is sent with: a delete stays a delete; the unsettled version
    on the wire goes again exactly as it went (a repeated add is answered `duplicate`,
    never applied twice); otherwise `replace` when the receiver holds some version."""
    if action == Action.DELETE:
        return Action.DELETE.value
    if wire_action is not None and wire_version == version:
        return wire_action
    return Action.REPLACE.value if on_file else Action.ADD.value


@dataclass(frozen=True, slots=True)
class Settled:
    """What an answer about the version on the wire makes of a record."""

    state: State
    accepted_version: int | None
    accepted_hash: str | None
    on_file: int
    first_wire_version: int | None
    error: str | None


DUPLICATE, SUPERSEDED, UNKNOWN_TRANSACTION = "duplicate", "superseded", "unknown-transaction"
"""The answer codes that say what the receiver holds, not what is wrong with a record."""


class Columns(Protocol):
    """A ledger row read by column name (sqlite3.Row, a PostgreSQL row, a dict)."""

    def __getitem__(self, name: str) -> Any: ...


def settle(row: Columns, result: Any) -> Settled:
    """The state machine of an answer about version `row['wire_version']`:

    - accepted, or `duplicate` proven to be about this version (the receiver echoed the
      version, or no other version was ever on the wire): accepted at this version;
    - `duplicate` not proven: the receiver holds some version; the current one follows
      as a replace;
    - `unknown-transaction`: the receiver holds nothing; a replace is filed again as an
      add (a delete of nothing is rejected, for the operator to see);
    - `superseded`: the receiver holds a later version than this one;
    - any other rejection: this version is refused; after a refused add the receiver
      holds nothing.
    A newer version waiting behind the settled one is queued in every case.
    """
    v, wire_action = row["wire_version"], row["wire_action"]
    newer = (row["version"] or 0) > (v or 0)
    later = State.QUEUED if newer else None
    codes = {e.code for e in result.errors}
    accepted_version, accepted_hash = row["accepted_version"], row["accepted_hash"]
    on_file, first = row["on_file"], row["first_wire_version"]
    reason = "; ".join(e.code for e in result.errors) or None
    if result.status is AckStatus.ACCEPTED or (
            codes == {DUPLICATE} and (result.version is not None or first == v)):
        deleted = wire_action == Action.DELETE
        return Settled(later or State.ACCEPTED, v, None if deleted else row["wire_hash"], 0 if deleted else 1,
                       None if deleted else first, None)
    if codes == {DUPLICATE}:
        return Settled(State.QUEUED, accepted_version, None, 1, first,  # which one: not known
                       "the receiver holds another version; the current one follows as a replace")
    if codes == {UNKNOWN_TRANSACTION}:
        if wire_action == Action.DELETE and not newer:
            return Settled(State.REJECTED, None, None, 0, None, reason)
        return Settled(State.QUEUED, None, None, 0, None,
                       "the receiver holds no version; the current one is filed again as an add")
    if codes == {SUPERSEDED}:  # a later version than any known here: its content is not known
        return Settled(later or State.REJECTED, accepted_version, None, 1, first, reason)
    if wire_action == Action.ADD and accepted_hash is None:
        on_file, first = 0, (None if first == v else first)
    return Settled(later or State.REJECTED, accepted_version, accepted_hash, on_file, first, reason)

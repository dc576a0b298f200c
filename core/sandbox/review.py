"""How the sandbox answers a batch, record by record, like CBP would: accepted, or
rejected with coded errors (finding code, field, message).

Versions (a record's `version`, echoed in its answer): a version lower than the one
held is `superseded`, the one held again is a `duplicate` (already accepted), a higher
one is applied. An `add` of what is held already, content for content, is a repeat
whatever its version: a `duplicate` too, so a sender whose ledger was rebuilt from its
archived inputs files nothing twice. Without versions: a second `add` of a transaction
id it already accepted is a `duplicate`, answered without a version (it vouches for none). Either way a `replace` or `delete` of an id it does not hold is an
`unknown-transaction`, and an `add` or `replace` is validated against the batch's
regime profile with the sandbox's rates.

Value: a record that declares `total_value_usd` is checked at that value (the filer
converted it at its own rates); a currency the sandbox has no rate for is then no
error. Only a record that declares no total is valued at the sandbox's rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from s321 import ids, regimes, rules, validation
from s321.contracts import Ack, AckError, AckStatus, Batch
from s321.findings import Severity
from s321.record import Action, Consignment
from s321.sandbox.faults import INJECTED, FaultState
from s321.sandbox.store import ACTIVE, SandboxStore, Session

DUPLICATE = "duplicate"
SUPERSEDED = "superseded"
UNKNOWN_TRANSACTION = "unknown-transaction"
UNKNOWN_PROFILE = "unknown-profile"


class Reviewer:
    def __init__(self, store: SandboxStore, rates: dict[str, Decimal] | None = None,
                 profile_paths: Iterable[Path] = (), faults: FaultState | None = None):
        self.store = store
        self.rates = dict(rates or {"USD": Decimal(1)})
        self.rates.setdefault("USD", Decimal(1))
        # Only profile names: a peer must not make the sandbox read a file by path.
        self.known_profiles = regimes.available(list(profile_paths))
        self.faults = faults

    def review(self, batch: Batch) -> Ack:
        profile, profile_problem = self._profile(batch.profile)
        # The answers are validated into an Ack in one call at the end: a RecordAck
        # made one at a time cost more than the rest of the answer. `errors` is always
        # given, because a default list is deep-copied for every record.
        results: list[dict[str, Any]] = []
        batch_id = batch.batch_id
        with self.store.session() as session:
            session.prefetch([record.transaction_id for record in batch.records])
            for record in batch.records:
                errors = self._errors(session, record, profile, profile_problem)
                if errors:
                    session.reject(record.transaction_id, batch_id, [e.code for e in errors])
                    # A duplicate of an id held without a version vouches for no version.
                    unvouched = errors[0].code == DUPLICATE and session.version(record.transaction_id) is None
                    results.append({"transaction_id": record.transaction_id,
                                    "version": None if unvouched else record.version,
                                    "status": AckStatus.REJECTED, "errors": errors})
                else:
                    session.accept(record, batch_id)
                    results.append({"transaction_id": record.transaction_id, "version": record.version,
                                    "status": AckStatus.ACCEPTED, "errors": []})
        return Ack.model_validate({"batch_id": batch_id, "received_at": datetime.now(UTC),
                                   "results": results})

    def _profile(self, name: str) -> tuple[regimes.Profile | None, str | None]:
        if name not in self.known_profiles:
            return None, f"unknown profile {name!r}; known: {', '.join(sorted(self.known_profiles))}"
        try:
            return regimes.load(name, self.known_profiles), None
        except regimes.ProfileError as exc:
            return None, str(exc)

    def _rates_for(self, record: Consignment) -> dict[str, Decimal]:
        """The sandbox's rates, and a placeholder for each other currency of a record
        that declares its USD total: that total is what is checked, never a sum made
        at these rates (derive has run; validation only asks whether a rate is known)."""
        extra = {item.currency: Decimal(1) for item in record.items
                 if item.currency and item.currency not in self.rates}
        return {**self.rates, **extra} if extra else self.rates

    def _errors(self, session: Session, record: Consignment, profile: regimes.Profile | None,
                profile_problem: str | None) -> list[AckError]:
        rates = self.rates
        if record.action is not Action.DELETE:
            declared = record.total_value_usd
            rules.derive(record, self.rates)  # what is stored and compared is the derived record
            if declared is not None:
                record.total_value_usd = declared
                rates = self._rates_for(record)
        state = session.state(record.transaction_id)
        held, version = session.version(record.transaction_id), record.version
        versioned = state is not None and held is not None and version is not None
        if versioned and version < held:
            return [AckError(code=SUPERSEDED, field="version",
                             message=f"version {version} is older than version {held}, which is on file")]
        if versioned and version == held:
            return [AckError(code=DUPLICATE, field="version",
                             message=f"version {version} of this transaction id was already accepted")]
        if versioned and record.action is Action.ADD and state == ACTIVE \
                and session.content_hash(record.transaction_id) == ids.content_hash(record):
            return [AckError(code=DUPLICATE, field="transaction_id",
                             message="this content was already accepted under this transaction id")]
        if record.action is Action.ADD and state is not None and not versioned:
            return [AckError(code=DUPLICATE, field="transaction_id",
                             message="this transaction id was already filed; "
                                     "send a replace to change it")]
        if record.action is not Action.ADD and state != ACTIVE:
            return [AckError(code=UNKNOWN_TRANSACTION, field="transaction_id",
                             message=f"a {record.action.value} needs a transaction id that "
                                     f"was filed and not deleted")]
        if record.action is not Action.DELETE:
            if profile is None:
                return [AckError(code=UNKNOWN_PROFILE, field=None,
                                 message=profile_problem or "no profile")]
            findings = validation.validate(record, profile, rates)
            errors = [AckError(code=f.code, field=f.field, message=f.message)
                      for f in findings if f.severity is Severity.ERROR]
            if errors:
                return errors
        if self.faults is not None and self.faults.reject():
            return [AckError(code=INJECTED, field=None,
                             message="rejected by the sandbox's fault injection")]
        return []

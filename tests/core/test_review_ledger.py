"""Review of the ledger's version promises on a real SQLite file: bugs found by thinking
like the crash harness (a timeout while the answer is on its way, a version refiled)."""

from __future__ import annotations

from builders import consignment, marketplace_fields
from ledger_steps import answer, claim_one, valid
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.record import Action
from s321.states import State


def _refiled_as_add(ledger: Ledger):  # noqa: ANN202
    """A replace answered `unknown-transaction`, claimed again: it goes as an add."""
    ledger.ingest("shop", "C", "src", [valid()])
    v1 = claim_one(ledger, "B1")
    ledger.resolve(answer("B1", "T1", "accepted", version=v1.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])
    v2 = claim_one(ledger, "B2")
    assert v2.action is Action.REPLACE
    ledger.resolve(answer("B2", "T1", "rejected", "unknown-transaction", version=v2.version))
    add = claim_one(ledger, "B3")
    assert add.action is Action.ADD
    return add


def test_the_action_on_the_wire_is_the_one_claimed(ledger: Ledger) -> None:
    """`wire_action` recorded the row's previous action (SQLite evaluates every SET
    expression against the row before the update), not the action the claim decided."""
    add = _refiled_as_add(ledger)
    assert ledger.get("T1")["wire_action"] == Action.ADD.value
    # No answer in time: the same unsettled version goes again exactly as it went.
    ledger.requeue(["T1"], "no acknowledgement in time")
    again = claim_one(ledger, "B4")
    assert (again.action, again.version) == (Action.ADD, add.version)


def test_a_refiled_add_gone_dead_leaves_nothing_assumed_on_file(ledger: Ledger) -> None:
    _refiled_as_add(ledger)
    ledger.requeue(["T1"], "refused", dead=["T1"])
    assert ledger.get("T1")["on_file"] == 0  # the receiver said it holds nothing
    ledger.retry_dead(["T1"])
    assert claim_one(ledger, "B5").action is Action.ADD


def invalid(txid: str = "T1", **changes: object) -> Outcome:
    from s321.findings import error
    return Outcome("A-1", Status.INVALID, "f.jsonl:1", consignment(marketplace_fields(**changes), txid=txid),
                   [error("missing-one-of", "tracking_number", "x")])


def test_a_newer_read_drops_the_kept_raw_unit_of_an_older_one(ledger: Ledger) -> None:
    """The raw unit kept from an invalid read is stale once a newer read of the record is
    valid: `revalidate --include-filed` mapped the stale unit again and filed its older
    content as a replace over the newer one."""
    ledger.ingest("shop", "C", "src", [invalid(tracking_number=None)], raw={"A-1": b"export 1"})
    assert [u[0] for u in ledger.raw_units("shop")] == ["T1"]
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])  # export 2: fixed by the shop
    assert ledger.raw_units("shop", include_filed=True) == []


def test_a_revalidation_that_raced_a_newer_read_changes_nothing(ledger: Ledger) -> None:
    """`revalidate` maps a kept unit, meanwhile the daemon stores a newer read of the
    record: the revalidated (older) outcome must not overwrite it."""
    ledger.ingest("shop", "C", "src", [invalid(tracking_number=None)], raw={"A-1": b"export 1"})
    [(_txid, _state, blob)] = ledger.raw_units("shop")
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])  # the daemon, meanwhile
    newer = ledger.get("T1")
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZOLD")], event="revalidated",
                  mapped_from={"T1": blob})
    row = ledger.get("T1")
    assert (row["content_hash"], row["version"]) == (newer["content_hash"], newer["version"])
    # Mapped from the unit still kept, it is stored.
    ledger.ingest("shop", "C", "src", [invalid(tracking_number=None)], raw={"A-1": b"export 3"})
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZOLD")], event="revalidated",
                  mapped_from={"T1": b"export 3"})
    assert ledger.get("T1")["state"] == State.QUEUED


def _b_on_the_wire(ledger: Ledger):  # noqa: ANN202
    """A accepted at v1; B put on the wire as a replace."""
    ledger.ingest("shop", "C", "src", [valid()])
    a = claim_one(ledger, "B1")
    ledger.resolve(answer("B1", "T1", "accepted", version=a.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZB")])
    b = claim_one(ledger, "B2")
    assert b.action is Action.REPLACE
    return b


def test_back_to_the_accepted_content_after_a_dead_replace_is_filed(ledger: Ledger) -> None:
    """A replace that went dead unanswered may have been applied: content back to the
    accepted version is not "what the receiver holds" any more, it must be filed."""
    _b_on_the_wire(ledger)
    ledger.requeue(["T1"], "past the retry budget", dead=["T1"])  # its acks were lost
    ledger.ingest("shop", "C", "src", [valid()])  # the shop reverts to A
    again = claim_one(ledger, "B3")
    assert (again.action, again.record.tracking_number) == (Action.REPLACE, valid().record.tracking_number)


def test_back_to_the_accepted_content_after_a_change_then_a_dead_replace_is_filed(ledger: Ledger) -> None:
    _b_on_the_wire(ledger)
    ledger.requeue(["T1"], "past the retry budget", dead=["T1"])
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZC")])  # queued as C, not sent yet
    ledger.ingest("shop", "C", "src", [valid()])  # and back to A
    assert claim_one(ledger, "B3").action is Action.REPLACE


def test_back_to_the_accepted_content_after_a_superseded_replace_is_filed(ledger: Ledger) -> None:
    b = _b_on_the_wire(ledger)
    ledger.resolve(answer("B2", "T1", "rejected", "superseded", version=b.version))  # it holds a later one
    ledger.ingest("shop", "C", "src", [valid()])
    assert claim_one(ledger, "B3").action is Action.REPLACE


def test_back_to_the_accepted_content_after_a_delivered_replace_is_filed(ledger: Ledger) -> None:
    _b_on_the_wire(ledger)
    ledger.delivered(["T1"])  # switched to a transport without answers: B was handed over
    ledger.ingest("shop", "C", "src", [valid()])
    assert claim_one(ledger, "B3").action is Action.REPLACE


def test_versions_keep_rising_after_a_change_back_when_the_clock_goes_back(ledger: Ledger) -> None:
    """Back to the accepted content, the row's version went back to the accepted one; a
    change made after the clock stepped back then got a version below one already sent
    (a relay that had it answered the new version `superseded`: the change never went)."""
    ledger.ingest("shop", "C", "src", [valid()], now=1000.0)
    a = ledger.claim("shop", "B1", 10, now=1000.0)[0]
    ledger.resolve(answer("B1", "T1", "accepted", version=a.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZB")], now=2000.0)
    b = ledger.claim("shop", "B2", 10, now=2000.0)[0]
    ledger.resolve(answer("B2", "T1", "rejected", "missing-required", version=b.version))
    ledger.ingest("shop", "C", "src", [valid()], now=3000.0)  # back to A: nothing to file
    assert ledger.get("T1")["state"] == State.ACCEPTED
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZC")], now=1500.0)  # the clock stepped back
    c = ledger.claim("shop", "B3", 10, now=1500.0)[0]
    assert c.version > b.version > a.version

"""The ledger's version promises (its module docstring), on a real SQLite file: at most one
version outstanding, the action decided at claim from what the receiver may hold, acks
settling (transaction id, version), only the acknowledged version recorded as accepted."""

from __future__ import annotations

from ledger_steps import answer, claim_one, valid
from s321.ledger import Ledger
from s321.record import Action
from s321.states import State


def test_a_change_made_while_the_add_is_in_flight_follows_it_as_a_replace(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    add = claim_one(ledger, "B1")
    assert add.action is Action.ADD
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])  # while the add is on the wire
    assert ledger.claim("shop", "B2", 10) == []  # one version outstanding at a time
    assert ledger.get("T1")["state"] == State.SENT
    # The receiver answers the add `duplicate` (a receiver without versions, after a resend):
    moved = ledger.resolve(answer("B1", "T1", "rejected", "duplicate"))
    assert moved == {"T1": State.QUEUED}
    row = ledger.get("T1")
    assert row["accepted_hash"] is not None and row["accepted_hash"] != row["content_hash"]
    replace = claim_one(ledger, "B3")
    assert (replace.action, replace.record.tracking_number) == (Action.REPLACE, "1ZNEW")
    assert replace.version > add.version
    ledger.resolve(answer("B3", "T1", "accepted", version=replace.version))
    row = ledger.get("T1")
    assert row["state"] == State.ACCEPTED
    assert (row["accepted_version"], row["accepted_hash"]) == (replace.version, row["content_hash"])


def test_only_the_acknowledged_version_is_recorded_as_accepted(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    v1 = claim_one(ledger, "B1")
    v1_hash = ledger.get("T1")["content_hash"]
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])
    ledger.resolve(answer("B1", "T1", "accepted", version=v1.version))
    row = ledger.get("T1")
    assert (row["accepted_version"], row["accepted_hash"]) == (v1.version, v1_hash)
    assert row["state"] == State.QUEUED and row["content_hash"] != v1_hash


def test_a_duplicate_is_proven_only_for_the_one_version_ever_on_the_wire(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    first = claim_one(ledger, "B1")
    ledger.requeue(["T1"], "connection lost")  # the add may have arrived
    again = claim_one(ledger, "B2")
    assert (again.action, again.version) == (Action.ADD, first.version)  # sent again as it went
    assert ledger.resolve(answer("B2", "T1", "rejected", "duplicate")) == {"T1": State.ACCEPTED}


def test_a_versioned_duplicate_is_proof_and_a_late_answer_about_another_version_changes_nothing(
        ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    v1 = claim_one(ledger, "B1")
    ledger.requeue(["T1"], "no acknowledgement in time")
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])
    v2 = claim_one(ledger, "B2")
    assert v2.action is Action.REPLACE and v2.version > v1.version
    assert ledger.resolve(answer("B1", "T1", "accepted", version=v1.version)) == {}  # late: ignored
    assert ledger.resolve(answer("B2", "T1", "rejected", "duplicate", version=v2.version)) == {
        "T1": State.ACCEPTED}
    assert ledger.get("T1")["accepted_version"] == v2.version


def test_a_replace_answered_unknown_transaction_is_filed_again_as_an_add(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    v1 = claim_one(ledger, "B1")
    ledger.resolve(answer("B1", "T1", "accepted", version=v1.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])
    v2 = claim_one(ledger, "B2")
    assert v2.action is Action.REPLACE
    assert ledger.resolve(answer("B2", "T1", "rejected", "unknown-transaction", version=v2.version)) == {
        "T1": State.QUEUED}
    again = claim_one(ledger, "B3")
    assert (again.action, again.version) == (Action.ADD, v2.version)


def test_a_refused_add_leaves_nothing_on_file_and_a_dead_add_is_assumed_unanswered(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid(), valid("T2")])
    rows = {r.transaction_id: r for r in ledger.claim("shop", "B1", 10)}
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZNEW")])  # T1 changes in flight
    assert ledger.resolve(answer("B1", "T1", "rejected", "missing-required", version=rows["T1"].version)) == {
        "T1": State.QUEUED}  # the newer version follows the refused one
    assert claim_one(ledger, "B2").action is Action.ADD
    ledger.requeue(["T2"], "refused", dead=["T2"])
    assert ledger.get("T2")["state"] == State.DEAD
    ledger.retry_dead(["T2"])
    assert claim_one(ledger, "B3").action is Action.ADD


def test_a_change_back_to_earlier_content_is_a_new_version_not_the_old_one(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    a = claim_one(ledger, "B1")
    ledger.resolve(answer("B1", "T1", "accepted", version=a.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZB")])
    b = claim_one(ledger, "B2")
    ledger.ingest("shop", "C", "src", [valid()])  # back to A while B is on the wire
    ledger.resolve(answer("B2", "T1", "accepted", version=b.version))
    third = claim_one(ledger, "B3")
    assert third.action is Action.REPLACE and third.version > b.version > a.version
    assert third.record.tracking_number == a.record.tracking_number


def test_back_to_what_the_receiver_holds_with_nothing_on_the_wire_files_nothing(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    a = claim_one(ledger, "B1")
    ledger.resolve(answer("B1", "T1", "accepted", version=a.version))
    ledger.ingest("shop", "C", "src", [valid(tracking_number="1ZB")])
    ledger.ingest("shop", "C", "src", [valid()])
    assert ledger.claim("shop", "B2", 10) == []
    assert ledger.get("T1")["state"] == State.ACCEPTED


def test_resend_is_a_new_version_and_a_delete_goes_after_the_version_on_the_wire(ledger: Ledger) -> None:
    ledger.ingest("shop", "C", "src", [valid()])
    a = claim_one(ledger, "B1")
    ledger.resend("T1", Action.DELETE)  # while the add is on the wire
    assert ledger.claim("shop", "B2", 10) == []
    ledger.resolve(answer("B1", "T1", "accepted", version=a.version))
    delete = claim_one(ledger, "B3")
    assert delete.action is Action.DELETE and delete.version > a.version
    ledger.resolve(answer("B3", "T1", "accepted", version=delete.version))
    assert ledger.get("T1")["on_file"] == 0
    ledger.resend("T1")
    assert claim_one(ledger, "B4").action is Action.ADD  # deleted: nothing on file

"""ACE's answers (plugins/ace_truck/answers.py): the 997, 355 and 350 the sandbox writes,
read back into s321's Ack and applied to a real SQLite ledger through the ack contract."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ace_samples import heading, shipment, transmission
from builders import carrier_fields, consignment
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.pipeline import Outcome, Status
from s321.plugins.ace_truck import answers, guide
from s321.plugins.ace_truck.answers import Decision, Envelope
from s321.plugins.ace_truck.validate import validate
from s321.states import State

AT = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
ENV = Envelope("CBPACE", "SENDERID", 900, AT)
SCNS = {"ABCD000000001": "T-1", "ABCD000000002": "T-2"}


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two carrier records sent in batch B-1, each known by its shipment control number,
    on each ledger backend in turn (a real SQLite file, a real PostgreSQL database)."""
    if request.param == "sqlite":
        ledger = Ledger(tmp_path / "ledger.sqlite")
    else:
        ledger = open_ledger(request.getfixturevalue("pg_url"))
    outcomes = [Outcome(f"u{n}", Status.VALID, f"f.jsonl:{n}",
                        consignment(carrier_fields(house_bill_number=scn), txid=txid))
                for n, (scn, txid) in enumerate(SCNS.items(), 1)]
    ledger.ingest("truck", "CAR001", "src", outcomes)
    assert len(ledger.claim("truck", "B-1", 10)) == 2
    yield ledger
    ledger.close()


def resolver(ledger: Ledger, group: list[str] | None = None):  # type: ignore[no-untyped-def]
    def resolve(reference: str) -> list[dict[str, Any]]:
        if reference.startswith(answers.GROUP_PREFIX):
            names = group or []
        else:
            names = ledger.find(reference)
        return [row for row in (ledger.get(t) for t in names) if row is not None]
    return resolve


def states(ledger: Ledger) -> dict[str, str]:
    return {txid: ledger.get(txid)["state"] for txid in SCNS.values()}  # type: ignore[index]


def test_what_the_sandbox_writes_passes_the_guides_tables() -> None:
    checked = validate(transmission(), "trip.x12")
    for data, spec in ((answers.encode_997(checked, ENV), guide.TS997),
                       (answers.encode_355(checked, [], [Decision("ABCD000000001"), Decision(
                           "ABCD000000002", [("017", "MISSING OR INVALID BILL")])], ENV), guide.TS355),
                       (answers.encode_350(ENV, "ABCD", "ABCDT0001", "0901", [("ABCD000000001", "1C", AT)]),
                        guide.TS350)):
        result = validate(data, f"{spec.id}.x12", spec)
        assert result.problems == [], (spec.id, [p.reason for p in result.problems])


def test_a_997_that_accepts_decides_nothing(ledger: Ledger) -> None:
    data = answers.encode_997(validate(transmission(), "trip.x12"), ENV)
    ack = answers.decode_ack(data, resolver(ledger, ["T-1", "T-2"]))
    assert ack.results == []
    assert ledger.resolve(ack) == {}
    assert states(ledger) == {"T-1": State.SENT, "T-2": State.SENT}


def test_a_997_that_rejects_rejects_the_whole_transmission(ledger: Ledger) -> None:
    checked = validate(transmission(iea02="000000001", se01=5), "trip.x12")
    data = answers.encode_997(checked, ENV)
    text = data.decode()
    assert "AK5*R*4~" in text and "AK9*R*1*1*0~" in text
    read = answers.read(data)
    assert (read.kind, read.group, read.accepted) == ("997", "17", False)
    ack = answers.decode_ack(data, resolver(ledger, ["T-1", "T-2"]))
    assert ledger.resolve(ack) == {"T-1": State.REJECTED, "T-2": State.REJECTED}
    assert ack.results[0].errors[0].code == "ace-997-rejected"
    assert "number of included segments" in ack.results[0].errors[0].message


def test_a_355_accepts_and_rejects_per_shipment_with_cbps_codes(ledger: Ledger) -> None:
    checked = validate(transmission(), "trip.x12")
    data = answers.encode_355(checked, [], [Decision("ABCD000000001"),
                                            Decision("ABCD000000002", [("017", "MISSING OR INVALID BILL")])], ENV)
    ack = answers.decode_ack(data, resolver(ledger))
    assert ack.batch_id == "B-1"
    assert ledger.resolve(ack) == {"T-1": State.ACCEPTED, "T-2": State.REJECTED}
    rejected = ledger.get("T-2")
    assert "ace-017" in rejected["last_error"]  # type: ignore[index]
    history = ledger.history("T-2")[-1]
    assert "ace-017" in history["detail"]


def test_a_trip_rejection_rejects_every_shipment_on_it(ledger: Ledger) -> None:
    checked = validate(transmission(), "trip.x12")
    data = answers.encode_355(checked, [("033", "INVALID DDPP")],
                              [Decision("ABCD000000001"), Decision("ABCD000000002")], ENV)
    ack = answers.decode_ack(data, resolver(ledger))
    assert {r.status.value for r in ack.results} == {"rejected"}
    assert ledger.resolve(ack) == {"T-1": State.REJECTED, "T-2": State.REJECTED}


def test_already_on_file_is_a_duplicate_and_so_accepted(ledger: Ledger) -> None:
    checked = validate(transmission(), "trip.x12")
    data = answers.encode_355(checked, [], [
        Decision("ABCD000000001", [(answers.ALREADY_ON_FILE_CODE, guide.ALREADY_ON_FILE)]),
        Decision("ABCD000000002")], ENV)
    ack = answers.decode_ack(data, resolver(ledger))
    assert [e.code for e in ack.results[0].errors] == ["duplicate"]
    # ACE vouches for no version; no other version was ever on the wire: accepted.
    assert ledger.resolve(ack) == {"T-1": State.ACCEPTED, "T-2": State.ACCEPTED}


def test_a_350_goes_into_history_never_into_state(ledger: Ledger) -> None:
    data = answers.encode_350(ENV, "ABCD", "ABCDT0001", "0901",
                              [("ABCD000000001", "1C", AT), ("ABCD000000001", "6H", AT)])
    ack = answers.decode_ack(data, resolver(ledger))
    assert ack.results == [] and ack.events is not None and len(ack.events) == 2
    assert ledger.resolve(ack) == {}
    assert states(ledger) == {"T-1": State.SENT, "T-2": State.SENT}
    events = [h for h in ledger.history("T-1") if h["event"].startswith("ace-")]
    assert [h["event"] for h in events] == ["ace-1c", "ace-6h"]
    assert "entered and released" in events[0]["detail"]


def test_an_unknown_shipment_is_left_out(ledger: Ledger) -> None:
    checked = validate(transmission(heading() + shipment(1, "ABCD999999999")), "trip.x12")
    ack = answers.decode_ack(answers.encode_355(checked, [], [Decision("ABCD999999999")], ENV),
                             resolver(ledger))
    assert ack.results == []


def test_encode_ack_names_shipments_by_control_number() -> None:
    from s321.contracts import Ack, AckError, AckStatus, RecordAck
    ack = Ack(batch_id="000000042", received_at=AT, results=[
        RecordAck(transaction_id="ABCD000000001", status=AckStatus.ACCEPTED),
        RecordAck(transaction_id="ABCD000000002", status=AckStatus.REJECTED,
                  errors=[AckError(code="duplicate", message="already")])])
    read = answers.read(answers.encode_ack(ack))
    assert [(s.control_number, s.errors) for s in read.shipments] == [
        ("ABCD000000001", []), ("ABCD000000002", [("AOF", "already")])]


@pytest.mark.parametrize("data", [b"", b"not x12", b"ISA*00", b"ISA*00*          *00*          *ZZ*A              "
                                  b"*ZZ*B              *261207*0400*^*00502*000000001*0*T*:~ST*810*1~"])
def test_what_is_not_an_answer_raises_a_clear_error(data: bytes) -> None:
    with pytest.raises(answers.AnswerError, match="not"):
        answers.read(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_reading_arbitrary_bytes_raises_only_answer_error(data: bytes) -> None:
    try:
        answers.decode_ack(data, lambda _ref: [])
    except answers.AnswerError:
        pass


def test_an_answer_s_control_number_takes_ascii_digits_of_the_batch_only() -> None:
    """The control number of an answer comes from its batch id's digits: '²' passes
    str.isdigit() but is no digit int() reads; it is passed over, never a crash."""
    assert answers._control("B-²12") == 12
    assert answers._control("²³") == 1
    assert answers._control("B-0000000000007") == 7

"""`s321 sandbox --drop DIR` answering ACE truck 309s: a real sandbox process serving a
drop folder; the 309s are dropped as an SFTP upload leaves them (a dot-name renamed),
and its 997 and 355 are read back with plugins/ace_truck/answers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ace_samples import heading, seg, shipment, transmission
from builders import carrier_fields, consignment
from s321.contracts import Batch
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.plugins.ace_truck import answers
from s321.plugins.ace_truck.serializer import AceTruck309
from s321.plugins.wire_s321 import S321Json
from s321.sandbox import cli as sandbox_cli
from s321.sandbox.ace import AceDesk
from s321.sandbox.store import SandboxStore
from s321.states import State

A, B = "ABCD000000001", "ABCD000000002"


class Sandbox:
    def __init__(self, folder: Path, db: Path):
        self.folder, self.db = folder, db

    def drop(self, name: str, data: bytes) -> None:
        inbound = self.folder / "inbound"
        part = inbound / f".{name}.part"
        part.write_bytes(data)
        os.replace(part, inbound / name)

    def answer(self, name: str, timeout: float = 10.0) -> bytes:
        path = self.folder / "outbound" / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"no {name} in {sorted(os.listdir(path.parent))}"
            time.sleep(0.05)
        return path.read_bytes()

    def answers(self, stem: str) -> tuple[answers.Answer, answers.Answer]:
        return answers.read(self.answer(f"{stem}.997.x12")), answers.read(self.answer(f"{stem}.355.x12"))

    def processed(self, name: str) -> None:
        path = self.folder / "inbound" / "processed" / name
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)


def serve(tmp_path: Path, *extra: str) -> Iterator[Sandbox]:
    folder, db = tmp_path / "drop", tmp_path / "sandbox.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s321.sandbox.cli", "sandbox", "--port", "0", "--certs-dir",
         str(tmp_path / "certs"), "--db", str(db), "--drop", str(folder), "--drop-poll", "0.05", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("listening on "):
            line = proc.stdout.readline()
            assert line, "sandbox exited early"
        yield Sandbox(folder, db)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield from serve(tmp_path)


def report(db: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert sandbox_cli.main(["sandbox", "report", "--db", str(db)]) == 0
    return capsys.readouterr().out


def shipments(answer: answers.Answer) -> dict[str, list[tuple[str, str]]]:
    return {s.control_number: s.errors for s in answer.shipments}


def test_a_good_trip_gets_a_997_and_a_355_accepting_each_shipment(
        sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.drop("trip1.edi", transmission())
    syntax, decision = sandbox.answers("trip1")
    assert (syntax.kind, syntax.accepted, syntax.group) == ("997", True, "17")
    assert (decision.kind, decision.scac, decision.trip, decision.trip_errors) == ("355", "ABCD", "ABCDT0001", [])
    assert shipments(decision) == {A: [], B: []}
    sandbox.processed("trip1.edi")
    out = report(sandbox.db, capsys)
    assert f"{A}  accepted 1" in out and f"{B}  accepted 1" in out


def test_the_same_shipments_again_are_already_on_file(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.drop("first.edi", transmission())
    sandbox.answers("first")
    sandbox.drop("again.edi", transmission(isa13="000000043"))
    _, decision = sandbox.answers("again")
    assert shipments(decision) == {A: [("AOF", "SHIPMENT ALREADY ON FILE")], B: [("AOF", "SHIPMENT ALREADY ON FILE")]}
    assert [e.code for e in answers.errors_of(decision.shipments[0].errors)] == ["duplicate"]
    out = report(sandbox.db, capsys)
    assert f"{A}  accepted 1" in out and "rejected AOF: 2" in out


def test_a_broken_envelope_is_refused_by_the_997_alone(sandbox: Sandbox) -> None:
    sandbox.drop("cut.edi", transmission(iea02="000000099"))
    syntax = answers.read(sandbox.answer("cut.997.x12"))
    assert (syntax.accepted, syntax.group) == (False, "17")
    sandbox.processed("cut.edi")
    assert not (sandbox.folder / "outbound" / "cut.355.x12").exists()


def test_a_bad_shipment_is_rejected_with_cbps_code_and_the_others_accepted(sandbox: Sandbox) -> None:
    body = heading() + shipment(1, A) + shipment(2, "ABCD0000000001234") + shipment(3, "ABCD000000003",
                                                                                   consignee=False)
    sandbox.drop("mixed.edi", transmission(body))
    syntax, decision = sandbox.answers("mixed")
    assert syntax.accepted  # what a 355 rejects is not syntax
    got = shipments(decision)
    assert got[A] == []
    assert [code for code, _ in got["ABCD0000000001234"]] == ["017"]
    assert got["ABCD000000003"] == [("005", "N101 INVALID CONSIGNEE N1")]


def test_a_trip_problem_rejects_every_shipment_on_it(sandbox: Sandbox) -> None:
    body = heading()
    body[-1] = seg("P4", "901", "20261207", "", "", "1330")  # a Schedule D port has 4 digits
    sandbox.drop("port.edi", transmission(body + shipment(1, A) + shipment(2, B)))
    _, decision = sandbox.answers("port")
    assert decision.trip_errors == [("033", "P401 INVALID DDPP")]
    ack_errors = answers.errors_of(decision.trip_errors)
    assert [e.code for e in ack_errors] == ["ace-033"]
    assert shipments(decision) == {A: [], B: []}  # named, and rejected with the trip (the reader adds it)


def test_update_delete_and_delink_need_a_shipment_on_file(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.drop("change.edi", transmission(heading() + shipment(1, A, amend="C")))
    _, decision = sandbox.answers("change")
    assert shipments(decision) == {A: [("NOF", "SHIPMENT NOT ON FILE")]}
    assert [e.code for e in answers.errors_of(decision.shipments[0].errors)] == ["unknown-transaction"]
    sandbox.drop("add.edi", transmission(heading() + shipment(1, A), isa13="000000050"))
    assert shipments(sandbox.answers("add")[1]) == {A: []}
    sandbox.drop("upd.edi", transmission(heading() + shipment(1, A, amend="C"), isa13="000000051"))
    assert shipments(sandbox.answers("upd")[1]) == {A: []}
    sandbox.drop("del.edi", transmission(heading() + shipment(1, A, amend="D"), isa13="000000052"))
    assert shipments(sandbox.answers("del")[1]) == {A: []}
    sandbox.drop("del2.edi", transmission(heading() + shipment(1, A, amend="D"), isa13="000000053"))
    assert shipments(sandbox.answers("del2")[1]) == {A: [("NOF", "SHIPMENT NOT ON FILE")]}
    assert f"{A}  accepted 3" in report(sandbox.db, capsys)  # add, update, delete: each once


def test_fault_injection_rejects_ace_shipments_too(tmp_path: Path) -> None:
    for sandbox in serve(tmp_path, "--reject-fraction", "1", "--seed", "7"):
        sandbox.drop("trip.edi", transmission())
        syntax, decision = sandbox.answers("trip")
        assert syntax.accepted
        assert shipments(decision) == {A: [("INJ", "INJECTED REJECTION")], B: [("INJ", "INJECTED REJECTION")]}


def test_s321_batches_are_still_answered_beside_309s(sandbox: Sandbox) -> None:
    wire = S321Json()
    sandbox.drop("trip.edi", transmission())
    sandbox.drop("B1.json", wire.encode_batch(Batch(batch_id="B1", originator_code="CAR001", profile="pilot-2019",
                                                    sent_at=datetime.now(UTC), records=[])))
    assert wire.decode_ack(sandbox.answer("B1.ack.json")).batch_id == "B1"
    assert sandbox.answers("trip")[0].accepted


# --------------------------------------------------------------------------- with s321's side

def test_the_ace_truck_serializer_and_the_sandbox_settle_a_trip_in_the_ledger(
        sandbox: Sandbox, tmp_path: Path) -> None:
    """A 309 written by `ace-truck-309` from records claimed in a real SQLite ledger, answered
    by the sandbox process, read back by the same serializer: one shipment accepted, one
    already on file (a duplicate: accepted), one refused with CBP's code; the 997 moves nothing."""
    trips = tmp_path / "trips"
    trips.mkdir()
    (trips / "trip.json").write_text(json.dumps({
        "trip_number": "ABCD2612070001", "scac": "ABCD", "port_of_arrival": "0901",
        "estimated_arrival": "2026-12-07T18:00:00+00:00", "shipments": [A, B, "ABCD000000003"],
        "conveyance": {"number": "T1", "vin": "1FUJGLDR0CLBP8834",
                       "license_plate": {"number": "AB12345", "state_or_province": "ON", "country": "CA"}},
        "crew": [{"role": "driver", "first_name": "Test", "last_name": "Driver", "date_of_birth": "1980-01-01",
                  "citizenship": "CA", "documents": [{"type": "fast_card", "number": "42705555", "country": "CA"}]}],
    }))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        names = {A: "T-1", B: "T-2", "ABCD000000003": "T-3"}
        ledger.ingest("truck", "CAR001", "src", [
            Outcome(f"u{n}", Status.VALID, f"f.jsonl:{n}", consignment(carrier_fields(house_bill_number=scn), txid=t))
            for n, (scn, t) in enumerate(names.items(), 1)])
        rows = ledger.claim("truck", "B-1", 10)
        serializer = AceTruck309(trips=trips, clock=lambda: datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
        serializer.bind(ledger, None)
        sandbox.drop("earlier.edi", transmission(heading() + shipment(1, B)))  # B is on file already
        sandbox.answers("earlier")
        records = [r.record for r in rows]
        records[2] = records[2].model_copy(update={"house_bill_number": "ABCD000000003"})
        data = serializer.encode_batch(Batch(batch_id="B-1", originator_code="CAR001", profile="pilot-2019",
                                             sent_at=datetime.now(UTC), records=records))
        # The third shipment loses its consignee on the way (N1*CN becomes N1*ZZ).
        text = data.decode()
        cn = text.index("N1*CN*", text.index("M11*ABCD000000003"))
        sandbox.drop("trip.edi", (text[:cn] + "N1*ZZ*" + text[cn + 6:]).encode())
        syntax = serializer.decode_ack(sandbox.answer("trip.997.x12"))
        assert syntax.results == [] and ledger.resolve(syntax) == {}
        decision = serializer.decode_ack(sandbox.answer("trip.355.x12"))
        assert decision.batch_id == "B-1"
        assert ledger.resolve(decision) == {"T-1": State.ACCEPTED, "T-2": State.ACCEPTED, "T-3": State.REJECTED}
        assert "ace-005" in ledger.get("T-3")["last_error"]  # type: ignore[index]
    finally:
        ledger.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.data())
def test_the_desk_answers_any_bytes_that_start_like_x12(tmp_path: Path, data: st.DataObject) -> None:
    good = transmission()
    cut = data.draw(st.integers(0, len(good)))
    body = good[:cut] + data.draw(st.binary(max_size=40)) + good[cut:]
    store = SandboxStore(tmp_path / f"fuzz-{cut}.sqlite")
    try:
        answered = AceDesk(store).answer(body, "fuzz.edi")
    finally:
        store.close()
    kinds = [kind for kind, _ in answered.files]
    assert kinds in (["997"], ["997", "355"])
    for _, answer in answered.files:
        answers.read(answer)


def test_the_desk_answers_digits_that_are_not_ascii(tmp_path: Path) -> None:
    """str.isdigit() holds for '²' and '٣', which int() refuses or reads: an ISA13 or a
    date made of them is bad input the desk answers, never a crash (found by the fuzz
    test above: ISA13 '²000000042')."""
    good = transmission()
    assert b"*000000042*" in good and b"DMG*D8*19700101*" in good
    bodies = [good.replace(b"*000000042*", "*²00000042*".encode("latin-1")),  # ISA13
              good.replace(b"DMG*D8*19700101*", "DMG*D8*١٩٧٠0101*".encode())]  # a date
    for n, body in enumerate(bodies):
        store = SandboxStore(tmp_path / f"{n}.sqlite")
        try:
            answered = AceDesk(store).answer(body, "digits.edi")
        finally:
            store.close()
        assert [kind for kind, _ in answered.files][0] == "997"

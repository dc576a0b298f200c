"""Serializer `ace-truck-309`: what it writes passes the guide's validator, reads back
through s321's own `x12-309` reader as the same record fields, keeps control numbers
unique across restarts, and refuses what it cannot file with messages naming the record,
the field and the element (never a person's data)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s321 import registry
from s321.contracts import Batch, PipelineContext, PipelineDefaults
from s321.ledger import Ledger
from s321.plugins.ace_truck import validate
from s321.plugins.ace_truck.serializer import Ace309Error, AceTruck309
from s321.plugins.ace_truck.trip import TripBook, TripError, load_trip
from s321.plugins.ace_truck.write309 import EncodeError
from s321.plugins.x12_309 import X12309Mapper, X12309Options, X12309Source
from s321.record import Consignment, FilerType, ModeOfTransport

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ARRIVAL = "2026-12-07T10:30:00-08:00"  # 18:30 UTC: six and a half hours after NOW

TRIP: dict[str, Any] = {
    "trip_number": "NWTK2612070001",
    "scac": "NWTK",
    "port_of_arrival": "3004",
    "estimated_arrival": ARRIVAL,
    "shipments": ["NWTK1001", "NWTK1002", "NWTK1003"],
    "conveyance": {"number": "T102", "vin": "1FUJGLDR0CLBP8834",
                   "license_plate": {"number": "AB12345", "state_or_province": "BC", "country": "CA"}},
    "equipment": [{"number": "TR5531", "license_plate": {"number": "TRL998", "state_or_province": "BC",
                                                         "country": "CA"}}],
    "crew": [
        {"role": "driver", "first_name": "Alexandra", "last_name": "Tremblay-Secret", "date_of_birth": "1980-04-02",
         "gender": "F", "citizenship": "CA",
         "documents": [{"type": "fast_card", "number": "42705555", "country": "CA"},
                       {"type": "passport", "number": "HK123456", "country": "CA"}]},
        {"role": "passenger", "first_name": "Sam", "last_name": "Okafor", "date_of_birth": "1991-11-30",
         "citizenship": "US", "documents": [{"type": "passport_card", "number": "C03005988", "country": "US"}]},
    ],
}

SHIPPER = {"name": "Northwind Goods Ltd",
           "address": {"line1": "1200 Waterfront Road", "city": "Vancouver", "state_or_province": "BC",
                       "postal_code": "V6B 1A1", "country": "CA"}}


def record(scn: str = "NWTK1001", **fields: Any) -> Consignment:
    body: dict[str, Any] = {
        "transaction_id": f"shop-{scn}".ljust(25, "0"),
        "originator_code": "NWTK321", "filer_type": "carrier", "mode_of_transport": "truck",
        "house_bill_number": scn,
        "consignment_originator": SHIPPER,
        "ultimate_deliver_to": {"name": "Jose Muller",
                                "address": {"line1": "41 Brattle Street", "line2": "Apt 3", "city": "Cambridge",
                                            "state_or_province": "MA", "postal_code": "02138", "country": "US"}},
        "items": [
            {"description": "Stoneware coffee mug, celadon glaze, 350 ml, hand thrown in small batches",
             "quantity": 2, "listed_price": "24.00", "currency": "USD", "hts_code": "6912004400",
             "weight_kg": "0.76"},
            {"description": "Oolong tea, 100 g tin", "quantity": 1, "listed_price": "21.00", "currency": "USD",
             "hts_code": "0902300000", "weight_kg": "0.15"},
        ],
    }
    body.update(fields)
    return Consignment.model_validate(body)


def batch(*records: Consignment) -> Batch:
    return Batch(batch_id="B1", originator_code="NWTK321", profile="pilot-2019", sent_at=NOW,
                 records=list(records))


def trips_folder(tmp_path: Path, *trips: dict[str, Any]) -> Path:
    folder = tmp_path / "trips"
    folder.mkdir(exist_ok=True)
    for i, trip in enumerate(trips or (TRIP,)):
        (folder / f"trip{i}.json").write_text(json.dumps(trip))
    return folder


def serializer(tmp_path: Path, *trips: dict[str, Any], now: datetime = NOW) -> AceTruck309:
    return AceTruck309(trips=trips_folder(tmp_path, *trips), clock=lambda: now)


def test_registered_as_a_serializer() -> None:
    component = registry.load().get("serializer", "ace-truck-309")
    assert component.factory().name == "ace-truck-309"


# --------------------------------------------------------------------------- the guide


@pytest.mark.parametrize("records", [
    [record()],
    [record(), record("NWTK1002", action="replace", tracking_number="YT2503000000700000",
                      master_bill_number="MAWB-776")],
    [record("NWTK1003", action="delete")],
    [record(items=[{"description": "x" * 200, "quantity": 3, "listed_price": "1.10", "currency": "USD",
                    "weight_kg": "0.5"}])],
])
def test_every_generated_309_passes_the_validator(tmp_path: Path, records: list[Consignment]) -> None:
    data = serializer(tmp_path).encode_batch(batch(*records))
    checked = validate.validate(data, "sent.edi")
    assert checked.problems == []
    assert checked.trip == TRIP["trip_number"]
    assert [s.control_number for s in checked.shipments] == [r.house_bill_number for r in records]
    # one interchange, one group, one transaction set: the guide's messaging constraints
    text = data.decode("ascii")
    assert (text.count("ISA*"), text.count("\nGS*"), text.count("\nST*")) == (1, 1, 1)


def test_replace_and_delete_are_the_309s_update_and_delete(tmp_path: Path) -> None:
    data = serializer(tmp_path).encode_batch(batch(record(), record("NWTK1002", action="replace"),
                                                   record("NWTK1003", action="delete")))
    checked = validate.validate(data)
    assert [s.action for s in checked.shipments] == ["add", "change", "delete"]
    decoded = AceTruck309().decode_batch(data)
    assert [(r.transaction_id, r.action.value) for r in decoded.records] == [
        ("NWTK1001", "add"), ("NWTK1002", "replace"), ("NWTK1003", "delete")]


def test_the_trip_is_written_once_with_truck_trailer_and_crew(tmp_path: Path) -> None:
    text = serializer(tmp_path).encode_batch(batch(record(), record("NWTK1002"))).decode()
    lines = text.splitlines()
    assert lines[3] == "M10*NWTK*J****NWTK2612070001~"
    assert [line.split("*")[-1] for line in lines if line.startswith("VEH*")] == ["TR~", "TL~"]
    assert sum(line.startswith("NM1*DR*1*") for line in lines) == 1
    assert sum(line.startswith("NM1*PA*1*") for line in lines) == 1
    assert "P4*3004*20261207***1030~" in lines  # the port's local date and time, as given
    assert sum(line.startswith("LX*") for line in lines) == 2
    # pieces and weight of the shipment: 2 mugs of 0.76 kg and a tin of 0.15 kg
    assert "M11*NWTK1001**3**1.67*K~" in lines


# --------------------------------------------------------------------------- round trip


def _read_back(path: Path) -> list[Consignment]:
    ctx = PipelineContext("trucks", "NWTK321", FilerType.CARRIER, ModeOfTransport.TRUCK, "pilot-2019",
                          "x12-309", PipelineDefaults())
    options = X12309Options(path=path)
    source, mapper = X12309Source(options, ctx), X12309Mapper(options, ctx)
    out = []
    for unit in source.read():
        assert unit.findings == ()
        mapped = mapper.map(unit)
        assert [f for f in mapped.findings if f.severity == "error"] == []
        out.append(Consignment.model_validate({**mapped.record, "transaction_id": unit.key}))
    return out


def test_round_trip_through_s321s_own_x12_309_reader(tmp_path: Path) -> None:
    exact = "w" * 40 + " vvvv " + "x" * 44 + " " + "y" * 60  # a word ending at 45, one running past it
    items = [{"description": exact, "quantity": 1, "listed_price": "3", "currency": "USD", "weight_kg": "1"}]
    sent = [record(tracking_number="YT2503000000700000", master_bill_number="MAWB-776"),
            record("NWTK1003", items=items),
            record("NWTK1002", customer={"name": "Zoe Lindqvist", "address": {
                "line1": "1820 NW Everett St", "city": "Portland", "state_or_province": "OR",
                "postal_code": "97209", "country": "US"}})]
    path = tmp_path / "trip.edi"
    path.write_bytes(serializer(tmp_path).encode_batch(batch(*sent)))
    back = _read_back(path)
    assert len(back) == len(sent)
    for before, after in zip(sent, back, strict=True):
        for name in ("house_bill_number", "master_bill_number", "tracking_number", "consignment_originator",
                     "ultimate_deliver_to", "customer"):
            assert getattr(after, name) == getattr(before, name), name
        assert after.port_of_entry == "3004" and after.conveyance == TRIP["trip_number"]
        for a, b in zip(after.items, before.items, strict=True):
            assert (a.description, a.quantity, a.hts_code, a.currency) == (
                b.description, b.quantity, b.hts_code, b.currency)
            # N1008 weighs the line, weight_kg is per unit: the reader divides by the quantity
            assert a.weight_kg == b.weight_kg
            # N1006 is the line's value in whole dollars
            assert a.line_value == (b.listed_price * b.quantity).quantize(Decimal(1))


REALWORLD_309 = Path(__file__).parents[2] / ".." / "shared" / "realworld" / "x12" / "x12-types_v004010_test_309.x12"


def test_n10_weighs_the_line_in_the_real_world_309_and_the_reader_gives_weight_per_unit(tmp_path: Path) -> None:
    # The public 309: N10*390*...*K*14404 under M11*...*390*PKG*14404*K: 390 tyres weigh 14404 kg
    # together, so N10-08 is the line's weight, and weight_kg (per unit, docs/record.md) is its 390th.
    ctx = PipelineContext("trucks", "NWTK321", FilerType.CARRIER, ModeOfTransport.TRUCK, "pilot-2019",
                          "x12-309", PipelineDefaults())
    copy = tmp_path / "309.x12"  # with its one envelope fault (SE01) corrected, as tests/realworld does
    copy.write_text(REALWORLD_309.read_text(encoding="utf-8").replace("SE*622*3899", "SE*295*3899"))
    options = X12309Options(path=copy)
    source, mapper = X12309Source(options, ctx), X12309Mapper(options, ctx)
    lines = [seg.split("*") for seg in REALWORLD_309.read_text().replace("\n", "").split("~")
             if seg.startswith("N10*") and seg.split("*")[1]]
    declared = [(int(el[1]), Decimal(el[8])) for el in lines if len(el) > 8 and el[7] == "K"]
    read = [(item["quantity"], item["weight_kg"]) for unit in source.read()
            for item in mapper.map(unit).record.get("items", []) if "weight_kg" in item]
    assert declared and len(read) == len(declared)
    for (quantity, line_kg), (qty, per_unit) in zip(declared, read, strict=True):
        assert qty == quantity
        assert (per_unit * qty).quantize(Decimal("0.001")) == line_kg
    assert read[0] == (390, Decimal("36.933333"))


def test_weights_round_trip_exactly_per_unit_to_the_line_and_back(tmp_path: Path) -> None:
    items = [{"description": "Truck tyres", "quantity": 390, "listed_price": "738.68", "currency": "USD",
              "weight_kg": "36.933333"},
             {"description": "Cotton shirts", "quantity": 3, "listed_price": "9", "currency": "USD",
              "weight_kg": "0.3023"},
             {"description": "Mugs", "quantity": 2, "listed_price": "24", "currency": "USD", "weight_kg": "0.38"}]
    sent = record("NWTK1003", items=items)
    path = tmp_path / "trip.edi"
    path.write_bytes(serializer(tmp_path).encode_batch(batch(sent)))
    text = path.read_text()
    assert "*K*14404~" in text and "*K*0.907~" in text and "*K*0.76~" in text  # N1007/N1008: each line
    assert "M11*NWTK1003**395**14405.667*K~" in text  # M1105: the shipment's weight, the lines' sum
    (back,) = _read_back(path)
    assert [(i.quantity, i.weight_kg) for i in back.items] == [(i.quantity, i.weight_kg) for i in sent.items]


# --------------------------------------------------------------------------- refusals


def test_a_record_on_no_trip_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=r"record shop-NWTK9999.*no shipment control number"):
        serializer(tmp_path).encode_batch(batch(record("NWTK9999")))


def test_two_trips_never_share_a_309(tmp_path: Path) -> None:
    other = {**TRIP, "trip_number": "NWTK2612070002", "shipments": ["NWTK2001"]}
    ser = serializer(tmp_path, TRIP, other)
    with pytest.raises(EncodeError, match="a 309 is one trip"):
        ser.encode_batch(batch(record(), record("NWTK2001")))
    assert ser.batch_key(record().model_dump_json()) == "NWTK2612070001"
    assert ser.batch_key(record("NWTK2001").model_dump_json()) == "NWTK2612070002"
    assert ser.batch_key(record("NWTK9999").model_dump_json()) is None


def test_a_shipment_is_found_through_the_trip_files_references(tmp_path: Path) -> None:
    trip = {**TRIP, "references": {"YT2503000000700000": "NWTK1002"}}
    ser = serializer(tmp_path, trip)
    data = ser.encode_batch(batch(record(None, house_bill_number=None, tracking_number="YT2503000000700000")))
    assert "M11*NWTK1002*" in data.decode()


@pytest.mark.parametrize(("fast", "arrival_in", "ok"), [
    (False, timedelta(minutes=61), True), (False, timedelta(minutes=59), False),
    (True, timedelta(minutes=31), True), (True, timedelta(minutes=29), False),
    (False, -timedelta(minutes=5), False),
])
def test_ace_wants_the_trip_an_hour_ahead_or_30_minutes_for_fast(
        tmp_path: Path, fast: bool, arrival_in: timedelta, ok: bool) -> None:
    trip = {**TRIP, "fast": fast, "estimated_arrival": (NOW + arrival_in).isoformat()}
    ser = serializer(tmp_path, trip)
    if ok:
        ser.encode_batch(batch(record()))
    else:
        with pytest.raises(EncodeError, match="estimated_arrival .* ACE wants a"):
            ser.encode_batch(batch(record()))


def test_what_the_guide_cannot_carry_names_record_field_and_element_never_the_value(tmp_path: Path) -> None:
    items = [{"description": "Mug", "quantity": 1, "listed_price": "5", "currency": "USD"}]
    with pytest.raises(EncodeError) as caught:
        serializer(tmp_path).encode_batch(batch(record(items=items)))
    assert "items.*.weight_kg" in str(caught.value) and "M1105" in str(caught.value)
    long_name = {**SHIPPER, "name": "Secretive Shipper " * 5}
    with pytest.raises(EncodeError) as caught:
        serializer(tmp_path).encode_batch(batch(record(consignment_originator=long_name)))
    message = str(caught.value)
    assert "N102 (consignment_originator.name)" in message and "the guide allows 60" in message
    assert "Secretive" not in message


# --------------------------------------------------------------------------- trip files


def test_a_bad_trip_file_names_the_file_and_every_field(tmp_path: Path) -> None:
    bad = copy.deepcopy(TRIP)
    bad.update(scac="nw1", port_of_arrival="30", estimated_arrival="2026-12-07T10:30:00")
    bad["crew"][0]["date_of_birth"] = "1980-13-40"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(TripError) as caught:
        load_trip(path)
    lines = caught.value.problems
    assert all(line.startswith(f"{path}: ") for line in lines)
    fields = {line.split(": ")[1] for line in lines}
    assert {"scac", "port_of_arrival", "estimated_arrival", "crew.0.date_of_birth"} <= fields
    assert "Tremblay" not in str(caught.value)


def test_a_trip_file_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('trip_number = "ABCD1"\nscac = "ABCD"\nport_of_arrival = "0901"\n'
                    "estimated_arrival = 2026-12-07T18:00:00-05:00\nshipments = [\"ABCD77\"]\n"
                    '[conveyance]\nnumber = "7"\n[[crew]]\nfirst_name = "A"\nlast_name = "B"\n'
                    'date_of_birth = 1970-01-01\ncitizenship = "US"\n'
                    'documents = [{ type = "passport", number = "P1", country = "US" }]\n')
    trip = load_trip(path)
    assert trip.shipments == ["ABCD77"] and trip.crew[0].role == "driver"
    assert "A" not in repr(trip.crew[0]).replace("CrewMember", "")  # no name in a repr


def test_a_shipment_on_two_trips_is_refused(tmp_path: Path) -> None:
    other = {**TRIP, "trip_number": "NWTK2612070002"}
    with pytest.raises(TripError, match="NWTK1001 is on trip NWTK2612070001 too"):
        TripBook.load([trips_folder(tmp_path, TRIP, other)])


def test_shipment_control_numbers_are_the_carriers_scac_and_up_to_12_characters(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**TRIP, "shipments": ["XXXX1", "NWTK1234567890123"]}))
    with pytest.raises(TripError) as caught:
        load_trip(path)
    assert "must start with the carrier's SCAC 'NWTK'" in str(caught.value)
    assert "1 to 12 letters or digits" in str(caught.value)


# --------------------------------------------------------------------------- control numbers


def _isa13(data: bytes) -> int:
    return int(data.decode().split("*")[13])


def test_control_numbers_come_from_the_ledger_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ser = serializer(tmp_path)
    ser.bind(ledger, None)
    first = [_isa13(ser.encode_batch(batch(record()))) for _ in range(3)]
    ledger.close()
    ledger = Ledger(path)
    again = AceTruck309(trips=tmp_path / "trips", clock=lambda: NOW)
    again.bind(ledger, None)
    after = _isa13(again.encode_batch(batch(record())))
    ledger.close()
    assert ser.persistent_numbers and again.persistent_numbers
    assert len(set(first)) == 3 and after > max(first)


def test_a_rejecting_997_read_after_a_restart_still_rejects_the_transmission(tmp_path: Path) -> None:
    from s321.pipeline import Outcome, Status
    from s321.plugins.ace_truck import answers
    from s321.states import State

    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    sent = [record(), record("NWTK1002")]
    ledger.ingest("trucks", "NWTK321", "src", [Outcome(f"u{n}", Status.VALID, f"f:{n}", r)
                                                for n, r in enumerate(sent)])
    assert len(ledger.claim("trucks", "B-1", 10)) == 2
    ctx = PipelineContext("trucks", "NWTK321", FilerType.CARRIER, ModeOfTransport.TRUCK, "pilot-2019",
                          "x12-309", PipelineDefaults())
    ser = serializer(tmp_path)
    ser.bind(ledger, ctx)
    data = ser.encode_batch(Batch(batch_id="B-1", originator_code="NWTK321", profile="pilot-2019",
                                  sent_at=NOW, records=sent)).decode()
    ledger.close()  # the daemon stops before ACE answers

    ledger = Ledger(path)
    again = AceTruck309(trips=tmp_path / "trips", clock=lambda: NOW)
    again.bind(ledger, ctx)
    count = re.search(r"^SE\*(\d+)\*", data, re.M)  # ACE counts another number of segments: syntax
    assert count is not None
    broken = data.replace(count.group(0), f"SE*{int(count.group(1)) + 1}*")
    reply = answers.encode_997(validate.validate(broken.encode(), "trip.x12"),
                               answers.Envelope("CBP", "NWTK321", 5, NOW))
    assert f"AK1*AQ*{_isa13(data.encode())}~" in reply.decode() and "AK5*R" in reply.decode()
    ack = again.decode_ack(reply)
    assert ledger.resolve(ack) == {r.transaction_id: State.REJECTED for r in sent}
    assert "ace-997-rejected" in ledger.get(sent[0].transaction_id)["last_error"]  # type: ignore[index]
    ledger.close()


def test_without_a_ledger_the_numbers_say_they_are_not_persistent(tmp_path: Path) -> None:
    ser = serializer(tmp_path)
    assert not ser.persistent_numbers
    assert _isa13(ser.encode_batch(batch(record()))) == 1


def test_a_trip_with_unanswered_shipments_near_its_deadline_is_at_risk(tmp_path: Path) -> None:
    from s321.plugins.ace_truck.trip import at_risk

    path = tmp_path / "t.json"
    path.write_text(json.dumps(TRIP))
    trip = load_trip(path)  # deadline 17:30 UTC
    states = {"NWTK1001": "accepted", "NWTK1002": "queued", "NWTK1003": "sent"}
    near = datetime(2026, 12, 7, 17, 10, tzinfo=UTC)
    message = at_risk(trip, states, near, warn_minutes=30)
    assert message is not None and "NWTK1002, NWTK1003" in message and "20 minutes left" in message
    assert at_risk(trip, states, NOW, warn_minutes=30) is None  # hours ahead
    assert at_risk(trip, {"NWTK1001": "accepted", "NWTK1002": None}, near, warn_minutes=30) is None


def test_a_309_written_by_other_hands_reads_back() -> None:
    """The sandbox tests' hand-built 309 (tests/ace_samples.py: the guide's layout, with
    another writer's choices: country in M1003, a packaging code, upper case) is read by
    decode_batch through s321's X12 reader, shipment by shipment."""
    import ace_samples

    decoded = AceTruck309().decode_batch(ace_samples.transmission())
    assert decoded.batch_id == "000000042" and decoded.originator_code == "SENDERID"
    assert [r.transaction_id for r in decoded.records] == ["ABCD000000001", "ABCD000000002"]
    first = decoded.records[0]
    assert first.conveyance == "ABCDT0001" and first.port_of_entry == "0901"
    assert first.consignment_originator is not None and first.consignment_originator.name == "MAPLE GOODS LTD"
    assert first.ultimate_deliver_to is not None and first.ultimate_deliver_to.address is not None
    assert first.ultimate_deliver_to.address.city == "BUFFALO"
    assert [(i.quantity, i.description, i.hts_code) for i in first.items] == [(2, "COTTON T-SHIRTS", "610910")]


_HEAD = (b"ISA*00*          *00*          *ZZ*S              *ZZ*R              *261207*0400*^*00502*000000001*0*T*>~"
         b"GS*AQ*S*R*20261207*0400*1*X*005020~ST*309*0001~")
_SEGMENTS = st.lists(st.tuples(
    st.sampled_from(["M10", "P4", "LX", "M13", "M11", "N9", "N1", "N3", "N4", "VID", "N10", "VEH", "NM1", "DMG"]),
    st.lists(st.text(st.characters(codec="ascii", exclude_characters="*~>^"), max_size=12), max_size=9)),
    max_size=25)


def _set(segments: list[tuple[str, list[str]]]) -> bytes:
    body = "".join("*".join([tag, *elements]) + "~" for tag, elements in segments)
    n = len(segments) + 2
    return _HEAD + f"{body}SE*{n}*0001~GE*1*1~IEA*1*000000001~".encode()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | _SEGMENTS.map(_set))
def test_decoding_arbitrary_bytes_never_crashes(data: bytes) -> None:
    try:
        AceTruck309().decode_batch(data)
    except Ace309Error as exc:
        assert str(exc)

"""The ACE truck guide tables (plugins/ace_truck/guide.py) and the structural validator
built from them (plugins/ace_truck/validate.py)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ace_samples import heading, seg, shipment, transmission
from s321.plugins.ace_truck import guide
from s321.plugins.ace_truck.validate import INTERCHANGE, SHIPMENT, TRIP, validate


def test_every_element_ref_names_its_segment_and_position() -> None:
    for spec in (*guide.SPECS.values(),):
        for _path, row in spec.segments():
            for n, element in enumerate(row.elements, 1):
                assert element.ref == f"{row.id}{n:02d}", (spec.id, row.id, element.ref)
                assert 0 < element.min <= element.max, element.ref
                assert element.req in "MOCX" and element.type in {"AN", "ID", "N0", "N2", "R", "DT", "TM"}
    for row in guide.ENVELOPE.values():
        for n, element in enumerate(row.elements, 1):
            assert element.ref == f"{row.id}{n:02d}"


def test_the_309_is_one_trip_in_group_aq_with_shipments_in_lx_loops() -> None:
    spec = guide.TS309
    assert (spec.functional_id, spec.version) == ("AQ", "005020")
    assert spec.segment("M11").element("M1101").max == guide.SHIPMENT_CONTROL_MAX == 16
    assert [path for path, row in spec.segments() if row.id == "M11"] == ["P4/LX"]
    assert spec.segment("M10").element("M1002").codes == {"J"}
    assert all(row.source for _, row in spec.segments())


# --------------------------------------------------------------------------- validator


def only(data: bytes):  # type: ignore[no-untyped-def]
    result = validate(data, "trip.x12")
    assert len(result.problems) == 1, [(p.segment, p.element, p.reason) for p in result.problems]
    return result.problems[0]


def test_a_transmission_built_as_the_guide_says_passes() -> None:
    result = validate(transmission(), "trip.x12")
    assert result.problems == []
    assert (result.scac, result.trip, result.port) == ("ABCD", "ABCDT0001", "0901")
    assert [s.control_number for s in result.shipments] == ["ABCD000000001", "ABCD000000002"]
    assert (result.interchange_control, result.group_control, result.set_control) == ("000000042", "17", "0001")


def test_iea02_must_repeat_isa13() -> None:
    p = only(transmission(iea02="000000043"))
    assert (p.scope, p.element, p.syntax) == (INTERCHANGE, "IEA02", "4")
    assert "ISA13" in p.reason


def test_se01_counts_the_segments_of_the_set() -> None:
    p = only(transmission(se01=3))
    assert (p.element, p.syntax, p.scope) == ("SE01", "4", INTERCHANGE)


def test_ge01_counts_the_sets_of_the_group() -> None:
    p = only(transmission(ge01="2"))
    assert (p.element, p.syntax) == ("GE01", "5")


def test_a_309_travels_in_group_aq() -> None:
    p = only(transmission(gs01="SO"))
    assert (p.element, p.scope) == ("GS01", INTERCHANGE)
    assert "AQ" in p.reason and "Dec 2016" in p.reason


def test_one_transaction_set_per_transmission() -> None:
    body = heading() + shipment(1, "ABCD000000001")
    data = transmission(body).replace(b"\nGE*", b"\nST*309*0002~\n" + b"\n".join(
        s.encode() for s in body) + f"\nSE*{len(body) + 2}*0002~\nGE*".encode())
    problems = validate(data, "trip.x12").problems
    assert any("one 309 per transmission" in p.reason and p.scope == INTERCHANGE for p in problems)


def test_segments_out_of_order_are_refused_and_the_missing_one_named() -> None:
    broken = shipment(1, "ABCD000000001")
    m11 = broken.pop(1)
    broken.insert(4, m11)  # after the shipper's N1 loop has begun
    problems = validate(transmission(heading() + broken), "trip.x12").problems
    # The N1 that comes first leaves M11 behind (missing: CBP's 003), and the M11 that
    # follows is out of sequence.
    assert [(p.segment, p.syntax, p.cbp, p.scope) for p in problems] == [
        ("M11", "3", "003", SHIPMENT), ("M11", "7", "006", SHIPMENT)]
    assert "mandatory segment M11 is missing" in problems[0].reason
    assert "not in proper sequence" in problems[1].reason


def test_a_segment_over_its_max_use() -> None:
    broken = shipment(1, "ABCD000000001")
    broken.insert(3, seg("N3", "SUITE 2"))
    broken.insert(3, seg("N3", "FLOOR 3"))  # three N3 for the shipper: the guide allows 2
    p = only(transmission(heading() + broken))
    assert (p.segment, p.syntax, p.scope, p.shipment) == ("N3", "5", SHIPMENT, 0)
    assert "allows 2" in p.reason


def test_a_mandatory_element_missing() -> None:
    p = only(transmission(heading() + shipment(1, "")))
    assert (p.element, p.syntax, p.cbp, p.scope) == ("M1101", "1", "017", SHIPMENT)
    assert "mandatory" in p.reason and "M AN 5/16" in p.reason


def test_an_element_too_long() -> None:
    p = only(transmission(heading() + shipment(1, "ABCD0000000001234")))
    assert (p.element, p.syntax, p.cbp) == ("M1101", "5", "017")
    assert "longer than 16" in p.reason


def test_a_bad_date() -> None:
    body = heading()
    body[-1] = seg("P4", "0901", "20261340", "", "", "1330")
    p = only(transmission(body + shipment(1, "ABCD000000001")))
    assert (p.element, p.syntax, p.scope) == ("P402", "8", TRIP)


def test_a_code_not_in_the_guides_list() -> None:
    body = heading()
    body[0] = seg("M10", "ABCD", "O", "CA", "", "", "ABCDT0001")
    p = only(transmission(body + shipment(1, "ABCD000000001")))
    assert (p.element, p.syntax, p.cbp, p.scope) == ("M1002", "7", "010", TRIP)
    assert "J" in p.reason


def test_a_shipment_without_consignee() -> None:
    p = only(transmission(heading() + shipment(1, "ABCD000000001", consignee=False)))
    assert (p.segment, p.cbp, p.scope) == ("N1", "005", SHIPMENT)


def test_only_one_of_n402_or_n407() -> None:
    broken = shipment(1, "ABCD000000001")
    broken[4] = seg("N4", "TORONTO", "ON", "M5H1A1", "CA", "", "", "ON")
    p = only(transmission(heading() + broken))
    assert (p.element, p.syntax) == ("N407", "10")
    assert "N402" in p.reason


def test_a_missing_port_of_arrival() -> None:
    body = heading()[:-1]
    problems = validate(transmission(body + shipment(1, "ABCD000000001")), "trip.x12").problems
    assert ("P4", "3", "002") in [(p.segment, p.syntax, p.cbp) for p in problems]


def test_arbitrary_bytes_never_raise() -> None:
    for data in (b"", b"garbage", b"ISA*00", transmission()[:100], transmission()[:-30], b"\x00\xff" * 50):
        result = validate(data, "x")
        assert not result.syntax_ok


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_the_validator_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    validate(data, "fuzz")


@FUZZ
@given(st.data())
def test_the_validator_never_raises_on_a_mangled_309(data: st.DataObject) -> None:
    good = transmission()
    cut = data.draw(st.integers(0, len(good)))
    noise = data.draw(st.binary(max_size=40))
    result = validate(good[:cut] + noise + good[cut:], "fuzz")
    assert all(p.reason for p in result.problems)


def test_a_problem_never_quotes_what_may_be_personal_data() -> None:
    body = heading()
    body[2] = seg("NM1", "DR", "1", "SECRETNAME" * 7, "JOHN")  # the driver's last name, too long
    body[3] = seg("DMG", "D8", "19700101", "Q")  # a code is quoted: it is the guide's, not a person's
    problems = validate(transmission(body + shipment(1, "ABCD000000001")), "trip.x12").problems
    assert [(p.element, p.syntax) for p in problems] == [("NM103", "5"), ("DMG03", "7")]
    assert "SECRETNAME" not in problems[0].reason and "70 characters" in problems[0].reason
    assert "'Q'" in problems[1].reason

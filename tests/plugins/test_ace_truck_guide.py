"""The ACE truck guide tables (plugins/ace_truck/guide.py) and the structural validator
built from them (plugins/ace_truck/validate.py)."""

from __future__ import annotations

from s321.plugins.ace_truck import guide


def test_every_element_ref_names_its_segment_and_position() -> None:
    for spec in (*guide.SPECS.values(),):
        for _path, seg in spec.segments():
            for n, element in enumerate(seg.elements, 1):
                assert element.ref == f"{seg.id}{n:02d}", (spec.id, seg.id, element.ref)
                assert 0 < element.min <= element.max, element.ref
                assert element.req in "MOCX" and element.type in {"AN", "ID", "N0", "N2", "R", "DT", "TM"}
    for seg in guide.ENVELOPE.values():
        for n, element in enumerate(seg.elements, 1):
            assert element.ref == f"{seg.id}{n:02d}"


def test_the_309_is_one_trip_in_group_aq_with_shipments_in_lx_loops() -> None:
    spec = guide.TS309
    assert (spec.functional_id, spec.version) == ("AQ", "005020")
    assert spec.segment("M11").element("M1101").max == guide.SHIPMENT_CONTROL_MAX == 16
    assert [path for path, seg in spec.segments() if seg.id == "M11"] == ["P4/LX"]
    assert spec.segment("M10").element("M1002").codes == {"J"}
    assert all(seg.source for _, seg in spec.segments())

"""The `cargo-imp-fhl` source and mapper: each FHL line type, the check digit, the
mapping onto records, broken input reported with its line, and streaming."""

from __future__ import annotations

import dataclasses
import io
import os
import logging
import tracemalloc
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from s321 import config, hookspecs, registry
from s321.contracts import Mapped, PipelineContext, PipelineDefaults, RawUnit
from s321.findings import Severity
from s321.pipeline import Processor
from s321.plugins import cargo_imp_fhl as plugin
from s321.plugins.cargo_imp import fhl, lines, segments
from s321.plugins.cargo_imp.model import House
from s321.record import Consignment, FilerType, ModeOfTransport

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples" / "cargo-imp-fhl"

# A real-world shaped FHL/4 (as CargoWise writes it): positional SHP/CNE, OCI lines,
# special handling codes after the HBS and a TXT wrapped in the middle of a word.
WILD_CHERRY = """\
FHL/4
MBI/006-96667465DFWFRA/T4K245
HBS/CVGA00176739/DFWFRA/4/K245/4/WILD CHERRY BAR
/NSC/EAW/PEF/SCO
TXT/WILD CHERRY BAR DIMS 13X12X15 IN X 2 DIMS 48X40X40 IN X 1 DIMS 12
/X11X16 IN X 1 4 SLAC
OCI/US/SHP/T/USC7788
/DE/CNE/T/XYZ8899
SHP/HARRIS FORD LLC
/9307 EAST 56TH STREET
/INDIANAPOLIS/IN
/US/46216/TE/13175910000
CNE/WELLA MANUFACTURING GMBH
/WELLASTRASE 2-4
/HUENFELD
/DE/36088/TE/49665279340
CVD/USD/CC/NVD/4289.68/XXX
"""

TWO_MESSAGES = """\
FHL/4
MBI/160-58231401HKGLAX/T5K12
HBS/H1/HKGLAX/2/K4/2/SHOES
TXT/RUNNING SHOES
SHP/SHIPPER ONE
/1 HARBOUR ROAD
/HONG KONG
/HK
CNE/BUYER ONE
/1 MAIN STREET
/AUSTIN/TX
/US/78701
CVD/USD//PP/NVD/80.00/XXX
HBS/H2/HKGLAX/3/K8/3/BAGS
CVD/USD//PP/NVD/90.00/XXX
CNE/BUYER TWO
/2 ELM STREET
/DENVER/CO
/US/80202

FHL/4
MBI/125-77302190LHRJFK/T1K1
HBS/H3/LHRJFK/1/K1/1/SCARF
CNE/BUYER THREE
/3 OAK AVENUE
/BOSTON/MA
/US/02108
CVD/GBP//PP/NVD/25.00/XXX
"""


def context(**defaults: Any) -> PipelineContext:
    return PipelineContext(
        pipeline="consol", originator_code="FWD001", filer_type=FilerType.FREIGHT_FORWARDER,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source=plugin.NAME,
        defaults=PipelineDefaults(**defaults))


def units(text: str | bytes, name: str = "in.txt", encoding: str = "utf-8") -> list[RawUnit]:
    data = text.encode(encoding) if isinstance(text, str) else text
    return list(fhl.parse(io.BytesIO(data), name, encoding))


def houses(text: str | bytes, **kw: Any) -> list[House]:
    return [u.payload for u in units(text, **kw) if u.payload is not None]


def one_house(text: str) -> House:
    (house,) = houses(text)
    return house


def mapped(text: str, **defaults: Any) -> list[Mapped]:
    mapper = plugin.FhlMapper(options(), context(**defaults))
    return [mapper.map(u) for u in units(text) if u.payload is not None]


def record(text: str, **defaults: Any) -> dict[str, Any]:
    (m,) = mapped(text, **defaults)
    assert m.record is not None
    return m.record


def options(**kw: Any) -> plugin.FhlOptions:
    return plugin.FhlOptions(path=kw.pop("path", Path(".")), **kw)


def codes(unit: RawUnit) -> set[str]:
    return {f.code for f in unit.findings}


def house_text(number: str, *body: str, mbi: str = "MBI/160-58231401HKGLAX/T1K1") -> str:
    return "\n".join(["FHL/4", mbi, f"HBS/{number}/HKGLAX/1/K1/1/GOODS", *body]) + "\n"


# --------------------------------------------------------------------------- line types


def test_mbi_gives_the_master_number_as_prefix_dash_serial() -> None:
    house = one_house(WILD_CHERRY)
    assert house.master == "006-96667465"
    assert units(WILD_CHERRY)[0].key == "fhl:006-96667465/CVGA00176739"


@pytest.mark.parametrize("serial,digit", [("96667465", 5), ("12345675", 5), ("58231401", 1)])
def test_awb_check_digit_is_the_first_seven_digits_mod_7(serial: str, digit: int) -> None:
    assert segments.awb_check_digit(serial) == digit


def test_a_right_check_digit_gives_no_finding_and_a_wrong_one_an_error_on_every_house() -> None:
    assert not any(f.field == "master_bill_number" for f in units(TWO_MESSAGES)[0].findings)
    text = TWO_MESSAGES.replace("160-58231401", "160-58231404")
    first, second, third = units(text)
    for unit in (first, second):
        (finding,) = [f for f in unit.findings if f.code == "awb-check-digit"]
        assert finding.severity is Severity.ERROR
        assert finding.field == "master_bill_number"
        assert finding.location == "in.txt:2"
        assert "should be 1" in finding.message
        assert unit.payload is not None  # still maps: the record shows what was sent
    assert "awb-check-digit" not in codes(third)


def test_an_unreadable_master_number_is_an_error_naming_the_expected_form() -> None:
    (unit,) = units(house_text("H1", mbi="MBI/6-9666/T1K1"))
    (finding,) = [f for f in unit.findings if f.code == "fhl-bad-master-number"]
    assert finding.field == "master_bill_number" and "PPP-SSSSSSSS" in finding.message


def test_hbs_fields_and_special_handling_codes() -> None:
    house = one_house(WILD_CHERRY)
    assert (house.number, house.origin, house.destination) == ("CVGA00176739", "DFW", "FRA")
    assert (house.pieces, house.weight_kg, house.slac) == (4, Decimal("245.000"), 4)
    assert house.nature_of_goods == "WILD CHERRY BAR"
    assert house.special_handling == ["NSC", "EAW", "PEF", "SCO"]
    assert house.version == "4"


@pytest.mark.parametrize("line,expected", [
    ("HBS/H1/HKGLAX/2/K1.5//SHOES", (2, Decimal("1.500"), None, "SHOES")),        # no SLAC
    ("HBS/H1/HKGLAX/2/K1.5/SHOES", (2, Decimal("1.500"), None, "SHOES")),         # older layout
    ("HBS/H1/HKGLAX/T2K1.5/2/SHOES", (2, Decimal("1.500"), 2, "SHOES")),          # MBI-like
    ("hbs/h1/hkglax/2/l10/2/shoes/bags", (2, Decimal("4.536"), 2, "shoes/bags")),  # lower case
    ("HBS/H1/HKGLAX/2/K1.5", (2, Decimal("1.500"), None, None)),
])
def test_hbs_layouts_seen_in_the_wild(line: str, expected: tuple[Any, ...]) -> None:
    house = one_house(f"FHL/4\nMBI/160-58231401HKGLAX/T1K1\n{line}\n")
    assert house.number == "H1"
    assert (house.pieces, house.weight_kg, house.slac, house.nature_of_goods) == expected


def test_txt_continuation_joins_a_wrapped_full_line_without_a_space() -> None:
    house = one_house(WILD_CHERRY)
    assert house.free_text == [
        "WILD CHERRY BAR DIMS 13X12X15 IN X 2 DIMS 48X40X40 IN X 1 DIMS 12X11X16 IN X 1 4 SLAC"]


def test_txt_short_lines_and_several_txt_lines_join_with_spaces() -> None:
    house = one_house(house_text("H1", "TXT/LEATHER HANDBAG", "/WITH STRAP", "TXT/", "TXT/WALLET"))
    assert house.free_text == ["LEATHER HANDBAG WITH STRAP", "WALLET"]


def test_hts_codes_on_one_line_and_on_continuation_lines() -> None:
    house = one_house(house_text("H1", "HTS/6109.10/611020", "/4202 21", "/"))
    assert house.hts_codes == ["610910", "611020", "420221"]


def test_oci_lines_are_kept() -> None:
    info = one_house(WILD_CHERRY).customs_info
    assert [(i.country, i.information, i.customs_information, i.value) for i in info] == [
        ("US", "SHP", "T", "USC7788"), ("DE", "CNE", "T", "XYZ8899")]


def test_party_block_by_position() -> None:
    shipper = one_house(WILD_CHERRY).shipper
    assert shipper is not None
    assert (shipper.name, shipper.street, shipper.city, shipper.state) == (
        "HARRIS FORD LLC", ["9307 EAST 56TH STREET"], "INDIANAPOLIS", "IN")
    assert (shipper.country, shipper.postal_code, shipper.phone) == ("US", "46216", "13175910000")


def test_party_block_with_nam_adr_loc_lines_reads_the_same() -> None:
    tagged = one_house(house_text(
        "H1", "SHP/ACC123", "NAM/HARRIS FORD LLC", "ADR/9307 EAST 56TH STREET",
        "LOC/INDIANAPOLIS/IN", "/US/46216/TE/13175910000"))
    positional = one_house(WILD_CHERRY)
    assert tagged.shipper is not None
    assert tagged.shipper.account == "ACC123"
    tagged.shipper.account = None
    assert tagged.shipper == positional.shipper


def test_tagged_block_without_nam_takes_the_name_from_the_first_line() -> None:
    cne = one_house(house_text("H1", "CNE/ANA LIMA", "ADR/12 ELM ST", "LOC/MIAMI/FL",
                               "/US/33101")).consignee
    assert cne is not None
    assert (cne.name, cne.account, cne.street, cne.city, cne.country) == (
        "ANA LIMA", None, ["12 ELM ST"], "MIAMI", "US")


def test_a_second_street_line_and_email_contact() -> None:
    cne = one_house(house_text("H1", "CNE/ANA LIMA", "/12 ELM ST", "/APT 3", "/MIAMI/FL",
                               "/US/33101/EM/ANA@EXAMPLE.COM/TE/13055550100")).consignee
    assert cne is not None
    assert (cne.street, cne.email, cne.phone) == (["12 ELM ST", "APT 3"], "ANA@EXAMPLE.COM",
                                                  "13055550100")


def test_a_consignee_without_country_line_is_an_error_on_its_country() -> None:
    (unit,) = units(house_text("H1", "CNE/ANA LIMA", "/12 ELM ST", "/MIAMI/FL"))
    (finding,) = [f for f in unit.findings if f.code == "fhl-missing-country"]
    assert finding.severity is Severity.ERROR
    assert finding.field == "ultimate_deliver_to.address.country"
    assert finding.location == "in.txt:4"


@pytest.mark.parametrize("line,currency,value,ncv", [
    ("CVD/USD/CC/NVD/4289.68/XXX", "USD", Decimal("4289.68"), False),
    ("CVD/USD//PP/NVD/125/XXX", "USD", Decimal("125"), False),
    ("CVD/EUR/PX/PP/NVD/NCV/XXX", "EUR", None, True),
    ("cvd/gbp/nvd/12.5/xxx", "GBP", Decimal("12.5"), False),
])
def test_cvd_declared_value_for_customs(line: str, currency: str, value: Decimal | None,
                                        ncv: bool) -> None:
    charges = one_house(house_text("H1", line)).charges
    assert charges is not None
    assert (charges.currency, charges.customs_value, charges.no_customs_value) == (
        currency, value, ncv)


def test_a_cvd_value_that_is_not_an_amount_is_an_error_on_the_price() -> None:
    (unit,) = units(house_text("H1", "CVD/USD//PP/NVD/12,50/XXX"))
    (finding,) = [f for f in unit.findings if f.code == "fhl-bad-customs-value"]
    assert (finding.field, finding.location) == ("items.0.listed_price", "in.txt:4")


# --------------------------------------------------------------------------- structure


def test_several_messages_and_several_houses_per_master() -> None:
    found = units(TWO_MESSAGES)
    assert [u.key for u in found] == [
        "fhl:160-58231401/H1", "fhl:160-58231401/H2", "fhl:125-77302190/H3"]
    assert [u.location for u in found] == ["in.txt:3", "in.txt:14", "in.txt:23"]
    h1, h2, h3 = (u.payload for u in found)
    # the blocks after an HBS belong to that house, in whatever order they come
    assert h1.consignee.name == "BUYER ONE" and h1.charges.customs_value == Decimal("80.00")
    assert h2.consignee.name == "BUYER TWO" and h2.charges.customs_value == Decimal("90.00")
    assert h2.shipper is None and h2.free_text == []
    assert h3.master == "125-77302190" and h3.charges.currency == "GBP"
    assert not any(u.findings for u in found)


def test_keys_do_not_depend_on_how_the_path_is_written(tmp_path: Path) -> None:
    assert [u.key for u in units(TWO_MESSAGES, name="in.txt")] == [
        u.key for u in units(TWO_MESSAGES, name=str(tmp_path / "in.txt"))]


@pytest.mark.parametrize("eol", ["\r\n", "\n", "\r"])
def test_line_ends_trailing_spaces_blank_lines_and_envelopes_change_nothing(eol: str) -> None:
    noisy = ["QK LAXFFAA HKGFFCX", ".HKGFFCX 281530", "", "ZCZC"]
    for line in TWO_MESSAGES.splitlines():
        noisy += [line + "   ", ""]
    noisy += ["NNNN", "="]
    unplaced = [dataclasses.replace(h, location="") for h in houses(eol.join(noisy))]
    assert unplaced == [dataclasses.replace(h, location="") for h in houses(TWO_MESSAGES)]


def test_a_separator_closes_the_house_and_later_lines_are_reported() -> None:
    text = house_text("H1", "CVD/USD//PP/NVD/1/XXX", "NNNN", "TXT/ORPHAN TEXT", "/MORE")
    house_unit, stray = units(text)
    assert house_unit.payload is not None and not house_unit.findings
    assert stray.payload is None and stray.key == "fhl-unparsed:in.txt:6"
    (finding,) = stray.findings
    assert finding.code == "fhl-outside-house" and finding.severity is Severity.ERROR
    assert finding.location == "in.txt:6" and "2 line(s)" in finding.message


def test_another_message_type_is_skipped_with_an_error() -> None:
    text = "FWB/16\nAWB/020-12345675JFKLHR/T1K1\nSHP\n/X\n" + TWO_MESSAGES
    skipped, *rest = units(text)
    assert skipped.payload is None and codes(skipped) == {"fhl-not-fhl"}
    assert skipped.location == "in.txt:1"
    assert len(rest) == 3 and all(u.payload is not None for u in rest)


def test_a_master_without_houses_is_reported() -> None:
    empty, *rest = units("FHL/4\nMBI/160-58231401HKGLAX/T1K1\n" + TWO_MESSAGES)
    assert empty.payload is None and codes(empty) == {"fhl-master-without-houses"}
    assert empty.location == "in.txt:2" and len(rest) == 3


def test_unknown_and_ignored_lines_in_a_house() -> None:
    (unit,) = units(house_text("H1", "SSR/KEEP UPRIGHT", "/CONTINUED", "XYZ/SOMETHING",
                               "just words", "TXT/SOAP"))
    assert unit.payload.free_text == ["SOAP"]
    assert [(f.code, f.location, f.severity) for f in unit.findings] == [
        ("fhl-unknown-line", "in.txt:6", Severity.WARNING),
        # not a line at all: it may have been another house's HBS, so the house waits for it
        ("fhl-unreadable-line", "in.txt:7", Severity.ERROR)]


def test_an_unknown_version_is_read_with_a_warning() -> None:
    (unit,) = units(house_text("H1").replace("FHL/4", "FHL/9"))
    assert unit.payload is not None and codes(unit) == {"fhl-version"}


def test_a_broken_unit_is_reported_with_its_line_and_the_others_go_through() -> None:
    text = TWO_MESSAGES.replace("HBS/H2/HKGLAX/3/K8/3/BAGS", "HBS//HKGLAX/3/K8/3/BAGS")
    h1, broken, h3 = units(text)
    assert broken.payload is None
    assert broken.key == "fhl:160-58231401/?in.txt:14"
    (finding,) = broken.findings
    assert (finding.code, finding.field, finding.location) == (
        "fhl-missing-house-number", "house_bill_number", "in.txt:14")
    assert h1.payload.consignee.name == "BUYER ONE" and h3.payload.number == "H3"
    assert not h1.findings and not h3.findings


def test_malformed_pieces_are_an_error_on_the_quantity_but_the_house_still_maps() -> None:
    (unit,) = units(house_text("H1").replace("/1/K1/1/", "/TWO/K1/1/"))
    (finding,) = unit.findings
    assert (finding.code, finding.field, finding.location) == (
        "fhl-bad-pieces", "items.0.quantity", "in.txt:3")
    assert plugin.FhlMapper(options(), context()).map(unit).record is not None


def test_lines_repeated_past_the_bound_are_ignored_once_with_a_warning() -> None:
    body = [f"HTS/{610000 + i}" for i in range(fhl.MAX_REPEATS + 20)]
    (unit,) = units(house_text("H1", *body))
    assert len(unit.payload.hts_codes) == fhl.MAX_REPEATS
    assert [f.code for f in unit.findings] == ["fhl-too-many-lines"]


# --------------------------------------------------------------------------- line reader


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_line_ends_split_across_read_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    data = b"ab\r\ncd\r\ref\n\ngh\rij\r\n\r\nkl"
    got = [line.text for line in lines.read_lines(io.BytesIO(data))]
    assert got == data.decode().splitlines() == ["ab", "cd", "", "ef", "", "gh", "ij", "", "kl"]


def test_the_line_reader_repairs_and_says_so() -> None:
    data = b"\xef\xbb\xbfFHL/4\nNAM/M\xfcller\nA\x00B\n" + b"X" * (lines.MAX_LINE_BYTES + 10)
    first, latin, control, long = lines.read_lines(io.BytesIO(data))
    assert (first.text, first.repaired) == ("FHL/4", None)
    assert latin.text == "NAM/M\ufffdller" and "not valid utf-8" in (latin.repaired or "")
    assert control.text == "AB" and "control characters" in (control.repaired or "")
    assert len(long.text) == lines.MAX_LINE_BYTES and "cut short" in (long.repaired or "")


# --------------------------------------------------------------------------- mapping


def test_mapping_of_bills_parties_and_the_pipeline_settings() -> None:
    rec = record(WILD_CHERRY, known_carrier_customer=True)
    assert rec["master_bill_number"] == "006-96667465"
    assert rec["house_bill_number"] == "CVGA00176739"
    assert (rec["originator_code"], rec["filer_type"], rec["mode_of_transport"]) == (
        "FWD001", FilerType.FREIGHT_FORWARDER, ModeOfTransport.AIR)
    assert rec["known_carrier_customer"] is True
    assert rec["consignment_originator"] == {
        "name": "HARRIS FORD LLC",
        "address": {"line1": "9307 EAST 56TH STREET", "city": "INDIANAPOLIS",
                    "state_or_province": "IN", "postal_code": "46216", "country": "US"},
        "phone": "13175910000"}
    assert rec["ultimate_deliver_to"]["address"]["country"] == "DE"


def test_one_item_with_the_pieces_the_per_unit_value_and_the_txt_description() -> None:
    (item,) = record(WILD_CHERRY)["items"]
    assert item == {
        "description": "WILD CHERRY BAR DIMS 13X12X15 IN X 2 DIMS 48X40X40 IN X 1 DIMS "
                       "12X11X16 IN X 1 4 SLAC",
        "quantity": 4, "listed_price": Decimal("1072.42"), "line_value": Decimal("4289.68"),
        "currency": "USD", "weight_kg": Decimal("245.000")}


def test_nature_of_goods_is_the_description_when_there_is_no_txt() -> None:
    (item,) = record(house_text("H1", "HTS/640411"))["items"]
    assert (item["description"], item["hts_code"]) == ("GOODS", "640411")


def test_a_value_that_does_not_divide_keeps_its_total() -> None:
    text = house_text("H1", "CVD/USD//PP/NVD/100.00/XXX").replace("/1/K1/1/", "/3/K1/3/")
    (item,) = record(text)["items"]
    assert item["listed_price"] == Decimal("33.3333")
    assert (item["listed_price"] * 3).quantize(Decimal("0.01")) == Decimal("100.00")


def test_several_hts_codes_give_one_item_each_and_the_value_splits_exactly() -> None:
    text = house_text("H1", "HTS/610910", "/611020", "/420221", "CVD/USD//PP/NVD/100.00/XXX")
    (m,) = mapped(text.replace("/1/K1/1/", "/5/K1/5/"))
    found = m.record["items"]
    assert [i["hts_code"] for i in found] == ["610910", "611020", "420221"]
    assert [i["quantity"] for i in found] == [1, 1, 1]
    assert sum(i["listed_price"] for i in found) == Decimal("100.00")
    assert sum(i["weight_kg"] for i in found) == Decimal("1.000")
    assert [(f.code, f.field) for f in m.findings] == [("fhl-value-split", "items")]


def test_ncv_leaves_the_price_empty_for_the_rules() -> None:
    (item,) = record(house_text("H1", "CVD/USD//PP/NVD/NCV/XXX"))["items"]
    assert "listed_price" not in item and item["currency"] == "USD"


def test_pounds_become_kilograms() -> None:
    (item,) = record(house_text("H1").replace("/K1/", "/L22/"))["items"]
    assert item["weight_kg"] == Decimal("9.979")


def test_non_ascii_names_survive_in_utf8_and_in_latin1() -> None:
    body = ("SHP/Zhōu Mǐn Trading", "/8 Nathan Road", "/HONG KONG", "/HK",
            "CNE/Zoë Müller-Brandt", "/7801 Shoal Creek Blvd", "/AUSTIN/TX", "/US/78757")
    rec = record(house_text("H1", *body))
    assert rec["consignment_originator"]["name"] == "Zhōu Mǐn Trading"
    assert rec["ultimate_deliver_to"]["name"] == "Zoë Müller-Brandt"
    latin = house_text("H1", "CNE/Zoë Müller-Brandt", "/7801 Shoal Creek Blvd", "/AUSTIN/TX",
                       "/US")
    (unit,) = units(latin, encoding="latin-1")
    assert unit.payload.consignee.name == "Zoë Müller-Brandt" and not unit.findings


def test_pipeline_defaults_fill_what_an_fhl_does_not_carry() -> None:
    originator = {"name": "Kowloon Consolidators Ltd", "address": {"city": "Hong Kong",
                                                                   "country": "HK"}}
    rec = record(house_text("H1"), consignment_originator=originator, currency="HKD",
                 country_of_origin="CN")
    assert rec["consignment_originator"] == originator
    assert (rec["items"][0]["currency"], rec["items"][0]["country_of_origin"]) == ("HKD", "CN")


def test_the_mapper_says_why_a_unit_without_a_house_is_not_a_record() -> None:
    m = plugin.FhlMapper(options(), context()).map(RawUnit("k", "in.txt:1", None))
    assert m.record is None and [f.code for f in m.findings] == ["fhl-no-house"]


# --------------------------------------------------------------------------- security


CSD = ("OCI/GB/ISS/RA/00012-01", "///SM/XRY", "///SD/12OCT251200", "///SN/JOHN SMITH",
       "///ED/1025")


@pytest.mark.parametrize("body,expected", [
    (CSD, {"performed": True, "method": "x-ray", "reference": "RA 00012-01",
           "scanned_at": datetime(2025, 10, 12, 12, 0)}),
    # the country repeated on the continuation lines, as FSU/FWB senders write them
    (("OCI/HK/ISS/RA/28490", "/HK//SS/SPX", "/HK//SM/XRY"),
     {"performed": True, "method": "x-ray", "reference": "RA 28490"}),
    # continuations with the empty country and information fields left out
    (("OCI/GB/ISS/RA/00012-01", "/SM/EDD", "/SD/12OCT25"),
     {"performed": True, "method": "explosive detection dogs", "reference": "RA 00012-01",
      "scanned_at": datetime(2025, 10, 12)}),
    # no country on the first line, lower case
    (("oci//iss/kc/00981-02", "///sm/etd"),
     {"performed": True, "method": "explosive trace detection", "reference": "KC 00981-02"}),
    # a status and no method: secured by a known consignor's supply chain
    (("OCI/NL/ISS/RA/00100-01", "///ED/0527", "///SS/SPX", "/NL//KC/00200-01", "///ED/0326"),
     {"performed": True, "reference": "RA 00100-01"}),
    (("OCI///SS/SHR",), {"performed": True}),
    (("OCI///SSD/SPX",), {"performed": True}),
    (("OCI/GB/ISS/RA/00012-01", "/SPX"), {"performed": True, "reference": "RA 00012-01"}),
    (("OCI/GB/ISS/RA/00012-01", "///SS/SCO"), {"performed": True, "reference": "RA 00012-01"}),
    # several methods, old and new codes, an AOM with its text and an unknown code
    (("OCI/GB/ISS/RA/1", "///SM/XRY", "///SM/RES", "///SM/XRY", "///SM/AOM-SNIFFER UNIT",
      "///SM/QQQ"),
     {"performed": True, "reference": "RA 1", "method": "x-ray, remote explosive scent "
      "tracing, other means (SNIFFER UNIT), QQQ"}),
    # the status issued by one RA, the screening done by another (OSS): both are read,
    # the issuer is the reference
    (("OCI/FI/ISS/RA/00207-01", "///ED/0128", "/FI/OSS/RA/00118-01", "///SM/XRY",
      "///SN/KAUNISVESI KIIA", "///SD/22MAY251342", "/FI/EXP/M/25FIV00000477982B2"),
     {"performed": True, "method": "x-ray", "reference": "RA 00207-01",
      "scanned_at": datetime(2025, 5, 22, 13, 42)}),
    # security entries after customs entries of the same OCI block
    (("OCI/US/CNE/T/USC7788", "/GB/ISS/RA/00012-01", "///SM/PHS"),
     {"performed": True, "method": "physical inspection or hand search",
      "reference": "RA 00012-01"}),
])
def test_security_oci_layouts_seen_in_the_wild(body: tuple[str, ...],
                                               expected: dict[str, Any]) -> None:
    (m,) = mapped(house_text("H1", *body))
    assert m.record["security_scan"] == expected
    assert Consignment.model_validate({"transaction_id": "t", **m.record}).security_scan
    assert not m.findings


@pytest.mark.parametrize("text,expected", [
    ("12OCT251200", datetime(2025, 10, 12, 12, 0)),
    ("12OCT25", datetime(2025, 10, 12)),
    ("05MAR122359", datetime(2012, 3, 5, 23, 59)),
    ("12OCT2025", datetime(2025, 10, 12)),
    ("03-JUN-2026 1958", datetime(2026, 6, 3, 19, 58)),
    ("12 oct 25 12:00", datetime(2025, 10, 12, 12, 0)),
    ("29FEB24", datetime(2024, 2, 29)),
    ("12OCT201200", datetime(2020, 10, 12, 12, 0)),  # YY 20 and a time, not year 2012
    ("12OCT20201200", datetime(2020, 10, 12, 12, 0)),
    ("28OCT2514", None),  # a time cut short, not the year 2514
    ("29FEB25", None), ("12OCT252460", None), ("12XYZ25", None), ("2025-10-12", None),
    ("12OCT25120", None), ("1OCT25", None), ("", None), ("١٢OCT25", None),
])
def test_screening_date_forms(text: str, expected: datetime | None) -> None:
    assert segments.parse_screening_date(text) == expected


def test_a_screening_date_that_does_not_parse_is_a_warning_and_the_scan_still_maps() -> None:
    (unit,) = units(house_text("H1", "OCI/GB/ISS/RA/00012-01", "///SM/XRY", "///SD/12/10/2025"))
    (finding,) = unit.findings
    assert (finding.code, finding.field, finding.severity, finding.location) == (
        "fhl-bad-screening-date", "security_scan.scanned_at", Severity.WARNING, "in.txt:6")
    scan = plugin.FhlMapper(options(), context()).map(unit).record["security_scan"]
    assert scan == {"performed": True, "method": "x-ray", "reference": "RA 00012-01"}


@pytest.mark.parametrize("body,expected", [
    (("OCI/GB/ISS/RA/00012-01", "///ED/1025", "///SS/NSC"),
     {"performed": False, "reference": "RA 00012-01"}),
    (("OCI///SS/NSC",), {"performed": False}),
    # exempt from screening (diplomatic mail): not screened either
    (("OCI/GB/ISS/RA/001-011", "///ED/0213", "///L/DIPL"),
     {"performed": False, "reference": "RA 001-011"}),
])
def test_not_secured_and_exempt_are_not_performed(body: tuple[str, ...],
                                                  expected: dict[str, Any]) -> None:
    rec = record(house_text("H1", *body))
    assert rec["security_scan"] == expected
    consignment = Consignment.model_validate({"transaction_id": "t", **rec})
    assert consignment.security_scan is not None and not consignment.security_scan.performed


def test_contradicting_security_lines_keep_the_issuers_status_with_a_warning() -> None:
    (unit,) = units(house_text("H1", "OCI/GB/ISS/RA/1", "///SS/NSC", "/GB/OSS/RA/2",
                               "///SS/SPX"))
    assert [(f.code, f.field, f.location) for f in unit.findings] == [
        ("fhl-security-conflict", "security_scan.performed", "in.txt:4")]
    assert unit.payload.security.status == "NSC"
    (unit,) = units(house_text("H1", "OCI/GB/ISS/RA/1", "///SM/XRY", "///SS/NSC"))
    assert codes(unit) == {"fhl-security-conflict"}
    scan = plugin.FhlMapper(options(), context()).map(unit).record["security_scan"]
    assert scan == {"performed": False, "reference": "RA 1"}


def test_an_unknown_status_is_ignored_with_a_warning() -> None:
    (unit,) = units(house_text("H1", "OCI/GB/ISS/RA/1", "///SS/XYZ", "///SM/VCK"))
    assert codes(unit) == {"fhl-unknown-security-status"}
    assert unit.payload.security.status is None
    assert record(house_text("H1", "OCI/GB/ISS/RA/1", "///SS/XYZ", "///SM/VCK"))[
        "security_scan"]["method"] == "visual check"


def test_without_security_oci_there_is_no_security_scan() -> None:
    assert "security_scan" not in record(WILD_CHERRY)  # only customs OCI entries
    assert "security_scan" not in record(house_text("H1", "TXT/SOAP"))
    assert one_house(WILD_CHERRY).security is None


def test_an_entity_without_status_or_method_is_reported_and_files_nothing() -> None:
    (unit,) = units(house_text("H1", "OCI/DE/ISS/RA/01674-01", "///ED/1299",
                               "///SN/MINH HO", "///SD/29OCT25"))
    (finding,) = unit.findings
    assert (finding.code, finding.field, finding.severity, finding.location) == (
        "fhl-security-incomplete", "security_scan", Severity.WARNING, "in.txt:4")
    assert "RA 01674-01" in finding.message
    assert "security_scan" not in plugin.FhlMapper(options(), context()).map(unit).record


MASTER_OCI = """FHL/4
MBI/160-58231401HKGLAX/T3K3
OCI/HK/ISS/RA/00231-01
///SM/XRY
///SN/CHAN TAI MAN
///SD/28OCT251410
///SS/SPX
HBS/H1/HKGLAX/1/K1/1/EARBUDS
OCI/US/CNE/T/USC7788
HBS/H2/HKGLAX/1/K1/1/CASES
OCI/HK/ISS/RA/00999-01
///SM/EDD
HBS/H3/HKGLAX/1/K1/1/BAGS
OCI/HK/ISS/RA/00999-01
///ED/1026
"""


def test_message_level_oci_applies_to_every_house_and_house_level_wins() -> None:
    found = units(MASTER_OCI)
    assert [u.key for u in found] == [f"fhl:160-58231401/H{i}" for i in (1, 2, 3)]
    assert not any(u.findings for u in found)  # OCI before the HBS is not outside a house
    h1, h2, h3 = (u.payload for u in found)
    assert h1.security.scope == "master" and h1.customs_info[0].information == "CNE"
    assert h2.security.scope == "house" and h2.security.issuer == "RA 00999-01"
    # H3's own lines decide nothing (only an expiry): the master's declaration is filed
    assert h3.security == h1.security
    assert len(h1.master_customs_info) == 5
    scans = [m.record["security_scan"] for m in mapped(MASTER_OCI)]
    master = {"performed": True, "method": "x-ray", "reference": "RA 00231-01",
              "scanned_at": datetime(2025, 10, 28, 14, 10)}
    assert scans == [master, {"performed": True, "method": "explosive detection dogs",
                              "reference": "RA 00999-01"}, master]


def test_message_level_oci_before_the_mbi_line_counts_too() -> None:
    block = "\n".join(MASTER_OCI.splitlines()[2:7]) + "\n"
    before = MASTER_OCI.replace(block, "").replace("FHL/4\n", "FHL/4\n" + block)
    assert [u.payload.security.issuer for u in units(before)] == [
        "RA 00231-01", "RA 00999-01", "RA 00231-01"]
    # an MBI line between an OCI line and its continuations ends the OCI block
    split = MASTER_OCI.replace("MBI/160-58231401HKGLAX/T3K3\nOCI/HK/ISS/RA/00231-01\n",
                               "OCI/HK/ISS/RA/00231-01\nMBI/160-58231401HKGLAX/T3K3\n")
    stray, *found = units(split)
    assert codes(stray) == {"fhl-outside-house"} and "4 line(s)" in stray.findings[0].message
    # left alone, the RA line before the MBI says nothing about screening
    assert [u.payload.security and u.payload.security.issuer for u in found] == [
        None, "RA 00999-01", None]
    assert [codes(u) for u in found] == [{"fhl-security-incomplete"}, set(),
                                         {"fhl-security-incomplete"}]


def test_message_level_oci_does_not_reach_the_next_master_or_message() -> None:
    next_master = "MBI/125-77302190LHRJFK/T1K1\nHBS/H9/LHRJFK/1/K1/1/SCARF\n"
    for text in (MASTER_OCI + next_master, MASTER_OCI + "FHL/4\n" + next_master):
        last = units(text)[-1]
        assert last.key == "fhl:125-77302190/H9" and last.payload.security is None
        assert last.payload.master_customs_info == ()


def test_oci_after_the_first_house_of_a_master_is_outside_any_house() -> None:
    text = house_text("H1", "CVD/USD//PP/NVD/1/XXX", "NNNN", "OCI/GB/ISS/RA/1", "///SS/SPX",
                      "HBS/H2/HKGLAX/1/K1/1/GOODS")
    h1, stray, h2 = units(text)
    assert codes(stray) == {"fhl-outside-house"} and "2 line(s)" in stray.findings[0].message
    assert h1.payload.security is None and h2.payload.security is None


def test_findings_on_message_level_security_lines_go_to_every_house() -> None:
    text = MASTER_OCI.replace("///SD/28OCT251410", "///SD/28OCT2514")
    found = units(text)
    assert [[(f.code, f.location) for f in u.findings] for u in found] == [
        [("fhl-bad-screening-date", "in.txt:6")]] * 3


def test_the_screeners_name_is_kept_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = MASTER_OCI + "\n".join(CSD) + "\n/GB//SN/JANE ROE\n/SN/RICHARD MILES\n"
    found = units(text)
    mapper = plugin.FhlMapper(options(), context())
    results = [mapper.map(u) for u in found]
    everything = repr(found) + repr(results) + caplog.text
    for name in ("CHAN TAI MAN", "JOHN SMITH", "JANE ROE", "RICHARD MILES"):
        assert name in text and name not in everything
    entries = found[-1].payload.customs_info
    assert [(e.customs_information, e.value) for e in entries if e.customs_information == "SN"] \
        == [("SN", "")] * 3


# --------------------------------------------------------------------------- source


def test_the_sample_file(tmp_path: Path) -> None:
    source = plugin.FhlSource(options(path=SAMPLES), context())
    found = list(source.read())
    assert len(found) == 7 and all(u.payload is not None for u in found)
    mapper = plugin.FhlMapper(options(), context(known_carrier_customer=True))
    consignments = []
    for unit in found:
        m = mapper.map(unit)
        consignments.append(Consignment.model_validate({"transaction_id": unit.key, **m.record}))
    broken = [u for u in found if any(f.severity is Severity.ERROR for f in u.findings)]
    assert [u.key for u in broken] == ["fhl:297-66045180/TW5500610"]
    assert all(c.ultimate_deliver_to.address.country == "US" for c in consignments)
    assert {c.consignment_originator.address.country for c in consignments} >= {"CN", "HK", "GB"}
    names = " ".join(c.ultimate_deliver_to.name for c in consignments)
    assert "José Álvarez" in names and "Siobhán O'Connor" in names
    usd_totals = [sum(i.listed_price * i.quantity for i in c.items).quantize(Decimal("0.01"))
                  for c in consignments if c.items[0].currency == "USD"]
    assert [t for t in usd_totals if t > 800] == [Decimal("1280.00")]
    assert any(len(c.items[0].description or "") > 65 for c in consignments)
    scans = {c.house_bill_number: c.security_scan for c in consignments}
    assert scans["LHR0098872"] is None  # the one house sent without security OCI
    assert all(s is not None and s.performed for h, s in scans.items() if h != "LHR0098872")
    # HK7731001 and HK7731003 take the master's declaration; HK7731002 has its own
    assert scans["HK7731001"] == scans["HK7731003"]
    assert (scans["HK7731001"].method, scans["HK7731001"].scanned_at) == (
        "x-ray", datetime(2025, 10, 28, 14, 10))
    assert scans["HK7731002"].method == "x-ray, explosive trace detection"
    assert scans["HK7731002"].scanned_at == datetime(2025, 10, 28)
    assert scans["LHR0098871"].reference == "RA 00012-01"


def test_the_sample_through_a_configured_pipeline(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config_file = tmp_path / "s321.toml"
    config_file.write_text(f"""
[currency_rates]
USD = 1
GBP = 1.27
HKD = 0.128

[pipelines.consol]
originator_code = "FWD001"
filer_type = "freight_forwarder"
mode_of_transport = "air"

[pipelines.consol.source]
plugin = "cargo-imp-fhl"
path = "{SAMPLES}"

[pipelines.consol.transport]
plugin = "file"
directory = "out"
""", encoding="utf-8")
    plugins = registry.load()
    if not plugins.has("source", plugin.NAME):  # until pyproject lists the entry point
        plugins.add_plugin(plugin, plugin.NAME)
    loaded = config.load(config_file, plugins)
    outcomes = list(Processor(loaded.pipelines["consol"], loaded.config.currency_rates).process())
    by_house = {o.ref.rsplit("/", 1)[-1]: o for o in outcomes}
    assert len(by_house) == 7
    assert "awb-check-digit" in {f.code for f in by_house["TW5500610"].findings}
    drone = by_house["HK7731004"]
    assert drone.record.total_value_usd == Decimal("1280.00")
    assert "not-section-321" in {f.code for f in drone.findings}
    teapot = by_house["HK7731003"].record
    assert teapot.total_value_usd == Decimal("185.60")  # HKD 1450.00 at 0.128
    assert teapot.items[0].weight_kg == Decimal("1.588")  # 3.5 lb
    # the pilot-2019 profile requires security_scan of a forwarder (filing as carrier)
    # in air mode: only the house sent without security OCI lines misses it
    missing = {house for house, o in by_house.items()
               if ("missing-required", "security_scan") in {(f.code, f.field) for f in o.findings}}
    assert missing == {"LHR0098872"}
    assert by_house["HK7731001"].record.security_scan.reference == "RA 00231-01"
    # the screeners' names in the sample reach neither the records nor the logs
    everything = caplog.text + " ".join(repr(o) for o in outcomes)
    for name in ("CHAN TAI MAN", "LEUNG KA YAN", "JOHN SMITH", "LIN MEI HUA"):
        assert name in _SAMPLE.decode("utf-8") and name not in everything


def test_a_folder_is_read_by_pattern_and_paths_override_it(tmp_path: Path) -> None:
    (tmp_path / "b.fhl").write_text(TWO_MESSAGES, encoding="utf-8")
    (tmp_path / "a.txt").write_text(WILD_CHERRY, encoding="utf-8")
    (tmp_path / "ignored.csv").write_text("not,fhl\n", encoding="utf-8")
    os.utime(tmp_path / "b.fhl", (1_000, 1_000))  # older: read first (modification time, then name)
    os.utime(tmp_path / "a.txt", (2_000, 2_000))
    source = plugin.FhlSource(options(path=tmp_path), context())
    assert [u.location for u in source.read()] == [
        f"{tmp_path / 'b.fhl'}:3", f"{tmp_path / 'b.fhl'}:14", f"{tmp_path / 'b.fhl'}:23",
        f"{tmp_path / 'a.txt'}:3"]
    assert [u.key for u in source.read([tmp_path / "a.txt"])] == ["fhl:006-96667465/CVGA00176739"]
    assert [u.key for u in source.read()] == [u.key for u in source.read()]  # stable
    source.ack(("x", 1))
    assert source.acked == ("x", 1)


def test_a_missing_file_is_a_unit_that_names_it(tmp_path: Path) -> None:
    (unit,) = plugin.FhlSource(options(path=tmp_path / "nope.txt"), context()).read()
    assert unit.payload is None and codes(unit) == {"fhl-unreadable-file"}
    assert "nope.txt" in unit.findings[0].message


def test_options() -> None:
    opts = plugin.FhlOptions.model_validate({"path": "inbox", "pattern": "*.msg"},
                                            context={"base_dir": "/etc/s321"})
    assert opts.path == Path("/etc/s321/inbox") and opts.pattern == ["*.msg"]
    assert options().pattern == ["*.txt", "*.fhl"]
    for bad in ({"path": "x", "paht": "y"}, {"path": "x", "encoding": "utf-16"},
                {"path": "x", "encoding": "klingon"}, {"path": "x", "catalog": "c.csv"}):
        with pytest.raises(ValidationError):
            plugin.FhlOptions.model_validate(bad)


def test_the_plugin_registers_source_and_mapper_through_pluggy() -> None:
    pm = pluggy.PluginManager("s321")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    got: dict[str, dict[str, Any]] = {"source": {}, "mapper": {}}

    def recorder(kind: str) -> Any:
        return lambda name, factory, **kw: got[kind].update({name: factory})

    pm.hook.register_sources(register=recorder("source"))
    pm.hook.register_mappers(register=recorder("mapper"))
    assert got == {"source": {"cargo-imp-fhl": plugin.FhlSource},
                   "mapper": {"cargo-imp-fhl": plugin.FhlMapper}}


# --------------------------------------------------------------------------- properties

_MAPPER = plugin.FhlMapper(options(), context())
_SAMPLE = (SAMPLES / "houses.txt").read_bytes()


def _consume(data: bytes, encoding: str = "utf-8") -> list[RawUnit]:
    found = list(fhl.parse(io.BytesIO(data), "prop.txt", encoding))
    for unit in found:
        assert unit.payload is not None or any(f.severity is Severity.ERROR for f in unit.findings)
        _MAPPER.map(unit)
    return found


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["utf-8", "latin-1", "cp1252"]))
def test_arbitrary_bytes_never_raise(data: bytes, encoding: str) -> None:
    _consume(data, encoding)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=len(_SAMPLE)))
def test_truncated_and_spliced_samples_never_raise(noise: bytes, cut: int) -> None:
    _consume(_SAMPLE[:cut])
    _consume(_SAMPLE[:cut] + noise + _SAMPLE[cut:])


_PREFIXES = ["FHL/", "MBI/", "HBS/", "TXT/", "HTS/", "OCI/", "SHP/", "CNE/", "NAM/", "ADR/",
             "LOC/", "CVD/", "FWB/", "SSR/", "/", "", "NNNN", "hbs/", "OCI/GB/ISS/RA/",
             "///SM/", "///SD/", "///SS/", "/HK//SS/", "///L/"]
_FHL_LINE = st.builds(lambda prefix, body: prefix + body, st.sampled_from(_PREFIXES),
                      st.text(alphabet="0123456789ABCKLTUSDHNCV/-. Zoëü", max_size=40))


@settings(max_examples=150, deadline=None)
@given(st.lists(_FHL_LINE, max_size=40), st.sampled_from(["\n", "\r\n", "\r"]))
def test_fhl_shaped_lines_in_any_order_never_raise(body: list[str], eol: str) -> None:
    _consume(eol.join(body).encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=200, max_size=200))
def test_mixed_line_ends_read_like_lf(ends: list[bytes]) -> None:
    text_lines = [line for line in _SAMPLE.split(b"\n") if line]  # no blank lines: \r+\n merge
    mixed = b"".join(line + ends[i % len(ends)] for i, line in enumerate(text_lines))
    lf = b"\n".join(text_lines)
    assert [u.payload for u in _consume(mixed)] == [u.payload for u in _consume(lf)]


# --------------------------------------------------------------------------- streaming


def _write_houses(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            if i % 50 == 0:
                out.write("FHL/4\nMBI/160-58231401HKGLAX/T50K100\n")
            out.write(f"HBS/HK{i:08d}/HKGLAX/2/K1.5/2/EARBUDS\n"
                      "TXT/WIRELESS BLUETOOTH EARBUDS WITH CHARGING CASE\n/RETAIL PACKED\n"
                      "HTS/851830\nSHP/Shenzhen Lǜxīng Electronics\n/SHENZHEN/GD\n/CN/518129\n"
                      f"CNE/Buyer {i}\n/{i} Main Street\n/AUSTIN/TX\n/US/78701\n"
                      "CVD/USD//PP/NVD/45.90/XXX\n")


def _peak(path: Path) -> tuple[int, int]:
    """Units read from `path` and the peak of traced memory while reading them. The
    mapper is stateless per unit, so the source is what must stream."""
    source = plugin.FhlSource(options(path=path), context())
    tracemalloc.start()
    try:
        count = sum(1 for _ in source.read())
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_file_grows(tmp_path: Path) -> None:
    warm, small, large = tmp_path / "warm.txt", tmp_path / "small.txt", tmp_path / "large.txt"
    _write_houses(warm, 100)
    _write_houses(small, 2_000)
    _write_houses(large, 20_000)
    _peak(warm)  # first-use caches (regexes, pydantic validators) are not the input's
    count_small, peak_small = _peak(small)
    count_large, peak_large = _peak(large)
    assert (count_small, count_large) == (2_000, 20_000)
    assert peak_large < peak_small * 1.25 + 64 * 1024


@pytest.mark.parametrize(("value", "refused"), [("800.00", False), ("800.01", True)])
def test_the_declared_customs_value_is_the_total_whatever_the_pieces(value: str, refused: bool) -> None:
    from s321 import rules
    text = house_text("H1", f"CVD/USD//PP/NVD/{value}/XXX").replace("/1/K1/1/", "/456/K1/456/")
    c = Consignment.model_validate({"transaction_id": "T", **record(text)})
    assert c.items[0].line_value == Decimal(value)
    rules.derive(c, {"USD": Decimal(1)})
    assert c.total_value_usd == Decimal(value)
    assert ("not-section-321" in {f.code for f in rules.check(c, {"USD": Decimal(1)}, Decimal(800))}) is refused


def test_a_file_not_in_its_encoding_is_refused_whole_and_reads_with_the_option(tmp_path: Path) -> None:
    text = TWO_MESSAGES.replace("BUYER TWO", "BÜYER TWO")  # the second house only
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("cp1252"))
    [unit] = plugin.FhlSource(options(path=path), context()).read()  # not H1 either
    assert unit.payload is None
    [f] = unit.findings
    assert (f.code, f.location) == ("invalid-encoding", f"{path}:{text.splitlines().index('CNE/BÜYER TWO') + 1}")
    assert "0xDC" in f.message and "encoding" in f.message
    found = list(plugin.FhlSource(options(path=path, encoding="cp1252"), context()).read())
    assert [u.key.rsplit("/", 1)[-1] for u in found] == ["H1", "H2", "H3"]
    assert all(u.payload is not None for u in found)


def test_a_value_without_currency_says_to_give_the_currency_not_a_rate() -> None:
    """CVD without its currency: the finding said `add it under [currency_rates]`,
    which no rate can fix."""
    from s321 import rules
    from s321.record import Consignment

    fields = record(house_text("H1", "CVD///PP/NVD/45.90/XXX"))
    c = rules.derive(Consignment.model_validate({"transaction_id": "T1", **fields}),
                     {"USD": Decimal(1)})
    [finding] = [f for f in rules.check(c, {"USD": Decimal(1)}, Decimal(800))
                 if f.field == "items.0.currency"]
    assert finding.code == "unknown-currency-rate"
    assert "currency_rates" not in finding.message
    assert "`defaults.currency`" in finding.message, finding.message


@pytest.mark.parametrize("data", [b"", b"\x00" * 5000, b"\n\n  \r\n", b"ZCZC 123\r\nNNNN\r\n",
                                  b"FHL/4\n", b"\x01\x02\x03\n"])
def test_a_file_with_no_master_or_house_is_said_never_read_as_no_houses(data: bytes) -> None:
    """An empty upload, the zeros of a file that lost its blocks, or an envelope with no
    message: one unit that says so, from the keys pass as from the reading."""
    (unit,) = units(data)
    assert unit.payload is None and [f.code for f in unit.findings] == ["fhl-empty"]
    assert unit.key == "fhl-empty:in.txt" and unit.location == "in.txt:1"
    keys = [(u.key, u.location) for u in fhl.parse(io.BytesIO(data), "in.txt", payload=False)]
    assert keys == [(unit.key, unit.location)]


def test_a_file_with_a_house_or_a_finding_is_not_empty() -> None:
    sample = (Path(__file__).resolve().parents[2] / "contrib" / "samples" / "cargo-imp-fhl"
              / "houses.txt").read_bytes()
    assert not any(f.code == "fhl-empty" for u in units(sample) for f in u.findings)
    (only,) = units(b"FWB/16\n")  # another message: its own finding, no second one
    assert [f.code for f in only.findings] == ["fhl-not-fhl"]

"""The ACE truck eManifest implementation guides as data: the segment tables of the 309
(and its envelope), the 355, the 350 and the 997, each segment and element with its source.

The 309 writer and the structural validator (`validate.py`) both read these tables, so they
cannot disagree. Every `source` says where a fact was read; `NOT_READ` marks what the guide
holds but could not be read here (it follows the X12 base standard, and docs/ace-truck.md
lists it): correct those rows from the guide, never the code that reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- sources

G309 = "ACE Truck 309 guide, Dec 2016 (X12 5020 base), pp. 1-2"
"""Read: functional group AQ, X12 5020 base, one ISA/IEA, one GS/GE and one 309 ST/SE per
transmission, GS02 Application Sender's Code M AN 2/15."""
G350 = "ACE Truck 350 guide, Apr 2018 (X12 4060 base), p. 1 table"
"""Read: group AU; ST M1, M10 O1, P4 loop (20): P4, V9 (20), VEH (10), NM1 (9999), VID
(9999), M7 (5), K1 (4); P4/X4 loop (9999): X4, K1 (4), N9."""
CH2 = "ACE 'Creating ANSI Transactions' chapter 2, Nov 2006"
"""Read: contents (2.5 sample submission, 2.6 355, 2.7 modifying, 2.8 delete vs delink) and
the relational rule 'only one of N402 or N407 may be present' (E0207)."""
APPX_L = "CBP CAMIR Appendix L, Truck Manifest Error Codes, Nov 2011"
APPX_H = "CBP CAMIR Appendix H, Common Errors, Dec 2008"
CSMS_321 = "CSMS #64824427 (Apr 2025): Section 321 bill types 13 and 35 in M1109"
CSMS_DISP = "CSMS #64824685 (Apr 2025): 350 disposition codes 4H-9I"
APPX_D = "CBP CAMIR Appendix D, Disposition Codes"
X12 = "X12 base standard segment/element dictionary (5010-5040 tables)"
X12_997 = "X12 997 Functional Acknowledgment (standard code lists 716/718/720/723)"
X12_355 = "X12 355 standard table (3050): ST, M10, K1, P4 loop (P4, K1, LX loop: M13/K1, M11/K1)"
BORDERCONNECT = "BorderConnect ACE_TRIP API example (a service provider's JSON): truck type TR, trailer type TL"
"""Read (code corpus, 2026-12-07): a provider's own API, not CBP's guide; it agrees with the
VEH20 codes s321 writes, so they are no longer only s321's guess, but still unconfirmed."""
BORDERCONNECT_WIKI = "BorderConnect wiki, 'Correcting Rejected ACE Manifests': CBP's response text"
"""Read: CBP answers a shipment it holds already with the text 'Shipment Already on File'
naming the shipment control number (no code number given there)."""
EMANIFEST_ERRORS_2007 = "e-Manifest error message code details (CBP dictionary as republished, Jan 2007)"
"""Read: error 021 names N1007 and the weight units LB, KG, L and K; error 017 names M1101."""
NOT_READ = "not read in the CBP guide: X12 base standard layout"
S321 = "s321 choice where the guides say nothing readable (docs/ace-truck.md)"

M, O, C, X = "M", "O", "C", "X"
"""Requirement designators: mandatory, optional, conditional, not used."""


# --------------------------------------------------------------------------- table types


@dataclass(frozen=True, slots=True)
class Element:
    """One data element of a segment, as the guide's element table gives it."""

    ref: str  # "M1001": segment id and two-digit position
    name: str
    req: str  # M, O, C or X
    type: str  # AN, ID, N0, N2, R, DT, TM
    min: int
    max: int
    codes: frozenset[str] = frozenset()  # empty: no code list (or none read)
    source: str = X12

    @property
    def position(self) -> int:
        return int(self.ref[-2:])


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """One segment of a transaction set (or the envelope) at its position."""

    id: str
    position: str  # "0200"
    name: str
    req: str
    max_use: int
    elements: tuple[Element, ...]
    source: str = X12
    exclusive: tuple[tuple[str, str], ...] = ()  # pairs of refs of which only one may be present
    required_unless_removed: tuple[str, ...] = ()  # conditional refs: required unless M1303 deletes/delinks

    def element(self, ref: str) -> Element:
        for e in self.elements:
            if e.ref == ref:
                return e
        raise KeyError(ref)


@dataclass(frozen=True, slots=True)
class Loop:
    """A loop: its first segment starts each repeat; `body[0]` is that segment."""

    id: str
    req: str
    repeat: int
    body: tuple[SegmentSpec | Loop, ...]
    source: str = X12

    @property
    def header(self) -> SegmentSpec:
        first = self.body[0]
        assert isinstance(first, SegmentSpec)
        return first


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    """A transaction set: its ST..SE table, functional group and version."""

    id: str  # ST01
    name: str
    functional_id: str  # GS01
    version: str  # GS08
    body: tuple[SegmentSpec | Loop, ...]  # from ST to SE
    source: str
    notes: tuple[str, ...] = field(default=())

    def segments(self) -> Iterator[tuple[str, SegmentSpec]]:
        """Every segment with its loop path ("P4/LX/N1"), in table order."""
        yield from _walk(self.body, "")

    def segment(self, seg_id: str, loop: str | None = None) -> SegmentSpec:
        for path, spec in self.segments():
            if spec.id == seg_id and (loop is None or path == loop):
                return spec
        raise KeyError(seg_id if loop is None else f"{loop}/{seg_id}")


def _walk(body: tuple[SegmentSpec | Loop, ...], path: str) -> Iterator[tuple[str, SegmentSpec]]:
    for node in body:
        if isinstance(node, Loop):
            inner = f"{path}/{node.id}" if path else node.id
            yield from _walk(node.body, inner)
        else:
            yield path, node


def E(ref: str, name: str, req: str, type_: str, lo: int, hi: int, codes: str = "",
      source: str = X12) -> Element:
    """An element row; `codes` space separated."""
    return Element(ref, name, req, type_, lo, hi, frozenset(codes.split()), source)


# --------------------------------------------------------------------------- envelope

ISA = SegmentSpec("ISA", "", "Interchange Control Header", M, 1, (
    E("ISA01", "Authorization Information Qualifier", M, "ID", 2, 2, "00 03"),
    E("ISA02", "Authorization Information", M, "AN", 10, 10),
    E("ISA03", "Security Information Qualifier", M, "ID", 2, 2, "00 01"),
    E("ISA04", "Security Information", M, "AN", 10, 10),
    E("ISA05", "Interchange ID Qualifier", M, "ID", 2, 2, "01 02 08 12 14 16 20 27 28 29 30 ZZ"),
    E("ISA06", "Interchange Sender ID", M, "AN", 15, 15),
    E("ISA07", "Interchange ID Qualifier", M, "ID", 2, 2, "01 02 08 12 14 16 20 27 28 29 30 ZZ"),
    E("ISA08", "Interchange Receiver ID", M, "AN", 15, 15),
    E("ISA09", "Interchange Date", M, "DT", 6, 6),
    E("ISA10", "Interchange Time", M, "TM", 4, 4),
    E("ISA11", "Repetition Separator", M, "AN", 1, 1),
    E("ISA12", "Interchange Control Version Number", M, "ID", 5, 5),
    E("ISA13", "Interchange Control Number", M, "N0", 9, 9),
    E("ISA14", "Acknowledgment Requested", M, "ID", 1, 1, "0 1"),
    E("ISA15", "Usage Indicator", M, "ID", 1, 1, "P T"),
    E("ISA16", "Component Element Separator", M, "AN", 1, 1),
), X12)

GS = SegmentSpec("GS", "", "Functional Group Header", M, 1, (
    E("GS01", "Functional Identifier Code", M, "ID", 2, 2),
    E("GS02", "Application Sender's Code", M, "AN", 2, 15, source=G309),
    E("GS03", "Application Receiver's Code", M, "AN", 2, 15),
    E("GS04", "Date", M, "DT", 8, 8),
    E("GS05", "Time", M, "TM", 4, 8),
    E("GS06", "Group Control Number", M, "N0", 1, 9),
    E("GS07", "Responsible Agency Code", M, "ID", 1, 2, "X"),
    E("GS08", "Version / Release / Industry Identifier Code", M, "AN", 1, 12),
), G309)

GE = SegmentSpec("GE", "", "Functional Group Trailer", M, 1, (
    E("GE01", "Number of Transaction Sets Included", M, "N0", 1, 6),
    E("GE02", "Group Control Number", M, "N0", 1, 9),
))

IEA = SegmentSpec("IEA", "", "Interchange Control Trailer", M, 1, (
    E("IEA01", "Number of Included Functional Groups", M, "N0", 1, 5),
    E("IEA02", "Interchange Control Number", M, "N0", 9, 9),
))


def _st(set_id: str, source: str) -> SegmentSpec:
    return SegmentSpec("ST", "0100", "Transaction Set Header", M, 1, (
        E("ST01", "Transaction Set Identifier Code", M, "ID", 3, 3, set_id, source),
        E("ST02", "Transaction Set Control Number", M, "AN", 4, 9),
    ), source)


def _se(position: str) -> SegmentSpec:
    return SegmentSpec("SE", position, "Transaction Set Trailer", M, 1, (
        E("SE01", "Number of Included Segments", M, "N0", 1, 10),
        E("SE02", "Transaction Set Control Number", M, "AN", 4, 9),
    ))


# --------------------------------------------------------------------------- shared segments

def _n3(position: str) -> SegmentSpec:
    return SegmentSpec("N3", position, "Party Location", O, 2, (
        E("N301", "Address Information", M, "AN", 1, 55),
        E("N302", "Address Information", O, "AN", 1, 55),
    ))


def _n4(position: str) -> SegmentSpec:
    return SegmentSpec("N4", position, "Geographic Location", O, 1, (
        E("N401", "City Name", O, "AN", 2, 30),
        E("N402", "State or Province Code", O, "ID", 2, 2),
        E("N403", "Postal Code", O, "ID", 3, 15),
        E("N404", "Country Code", O, "ID", 2, 3),
        E("N405", "Location Qualifier", X, "ID", 1, 2),
        E("N406", "Location Identifier", X, "AN", 1, 30),
        E("N407", "Country Subdivision Code", O, "ID", 1, 3),
    ), X12, exclusive=(("N402", "N407"),))


def _k1(position: str, max_use: int) -> SegmentSpec:
    return SegmentSpec("K1", position, "Remarks", O, max_use, (
        E("K101", "Free-Form Message", M, "AN", 1, 30),
        E("K102", "Free-Form Message", O, "AN", 1, 30),
    ))


# --------------------------------------------------------------------------- 309

TRANSPORT_MOTOR = "J"
"""M1002 for a truck: the transportation method code 'J' (motor)."""
SECTION_321_BILL_TYPES = frozenset({"13", "35"})
"""M1109 bill types CBP names as Section 321 (CSMS #64824427); ACE refuses them since
29 Aug 2025, so the regime profile decides whether they may be sent."""
SHIPMENT_CONTROL_MAX = 16
"""SCAC (4) plus up to 12 characters (issue 20; CAMIR Appendix L error 017 on M1101)."""
AMENDMENT_ACTIONS = {"A": "add", "C": "change", "D": "delete", "X": "delink"}
"""M1303 as s321 uses it for replace/delete/delink (chapter 2.7/2.8 describe the three
actions; the guide's code values were not read: S321)."""
EQUIPMENT_CONVEYANCE = "TR"
EQUIPMENT_TRAILER = "TL"
"""VEH20 equipment description codes for the truck (conveyance) and a trailer (S321, the
same codes a provider's API uses: BORDERCONNECT; the guide's own list not read)."""

M10_309 = SegmentSpec("M10", "0200", "Manifest Identifying Information", M, 1, (
    E("M1001", "Standard Carrier Alpha Code", M, "ID", 2, 4, source=APPX_L),
    E("M1002", "Transportation Method/Type Code", M, "ID", 1, 2, TRANSPORT_MOTOR, APPX_H),
    E("M1003", "Country Code", O, "ID", 2, 3, source=APPX_H),
    E("M1004", "Vessel Code", X, "ID", 1, 8),
    E("M1005", "Vessel Name", X, "AN", 2, 28),
    E("M1006", "Flight/Voyage Number (trip number)", M, "AN", 2, 25, source=APPX_H),
    E("M1007", "Reference Identification", O, "AN", 1, 50),
    E("M1008", "Quantity", O, "R", 1, 15),
    E("M1009", "Manifest Type Code", O, "ID", 1, 1, source=NOT_READ),
    E("M1010", "Vessel Code Qualifier", X, "ID", 1, 1),
    E("M1011", "Yes/No Condition or Response Code", O, "ID", 1, 1, "N Y"),
), G309)

VEH_309 = SegmentSpec("VEH", "0250", "Vehicle Information (truck and trailers)", O, 10, (
    E("VEH01", "Assigned Number", O, "N0", 1, 6),
    E("VEH02", "Vehicle Identification Number", O, "AN", 1, 30),
    E("VEH03", "Year", O, "N0", 4, 4),
    E("VEH04", "Agency Qualifier Code", X, "ID", 2, 2),
    E("VEH05", "Reference Identification (make)", X, "AN", 1, 50),
    E("VEH06", "Reference Identification (model)", X, "AN", 1, 50),
    E("VEH07", "Reference Identification (style)", X, "AN", 1, 50),
    E("VEH08", "Length", X, "R", 1, 8),
    E("VEH09", "Reference Identification (unit number)", M, "AN", 1, 50, source=NOT_READ),
    E("VEH10", "State or Province Code (plate)", O, "ID", 2, 2),
    E("VEH11", "Location Identifier (license plate)", O, "AN", 1, 30, source=NOT_READ),
    E("VEH12", "Yes/No Condition or Response Code", X, "ID", 1, 1),
    E("VEH13", "Amount", X, "N0", 1, 15),
    E("VEH14", "Yes/No Condition or Response Code", X, "ID", 1, 1),
    E("VEH15", "Amount", X, "N0", 1, 15),
    E("VEH16", "Action Code", X, "ID", 1, 2),
    E("VEH17", "Country Code (plate)", O, "ID", 2, 3),
    E("VEH18", "Name", X, "AN", 1, 60),
    E("VEH19", "Country Code", X, "ID", 2, 3),
    E("VEH20", "Equipment Description Code", M, "ID", 2, 2, f"{EQUIPMENT_CONVEYANCE} {EQUIPMENT_TRAILER}",
      BORDERCONNECT),
    E("VEH21", "Reference Identification (ACE ID)", O, "AN", 1, 50, source=APPX_L),
    E("VEH22", "Reference Identification Qualifier", O, "ID", 2, 3, source=APPX_L),
), NOT_READ)

CREW_ROLES = frozenset({"DR", "PA"})
"""NM101 for crew: driver and passenger (S321: the guide's codes were not read)."""

NM1_LOOP = Loop("NM1", O, 999, (
    SegmentSpec("NM1", "0270", "Individual Name (crew)", M, 1, (
        E("NM101", "Entity Identifier Code", M, "ID", 2, 3, " ".join(sorted(CREW_ROLES)), S321),
        E("NM102", "Entity Type Qualifier", M, "ID", 1, 1, "1"),
        E("NM103", "Name Last", M, "AN", 1, 60),
        E("NM104", "Name First", M, "AN", 1, 35),
        E("NM105", "Name Middle", O, "AN", 1, 25),
        E("NM106", "Name Prefix", X, "AN", 1, 10),
        E("NM107", "Name Suffix", O, "AN", 1, 10),
        E("NM108", "Identification Code Qualifier", O, "ID", 1, 2),
        E("NM109", "Identification Code", O, "AN", 2, 80),
    ), NOT_READ),
    SegmentSpec("DMG", "0290", "Demographic Information", O, 1, (
        E("DMG01", "Date Time Period Format Qualifier", M, "ID", 2, 3, "D8"),
        E("DMG02", "Date Time Period (date of birth)", M, "AN", 1, 35),
        E("DMG03", "Gender Code", O, "ID", 1, 1, "F M U"),
    ), NOT_READ),
    SegmentSpec("DMA", "0300", "Additional Demographic Information", O, 1, (
        E("DMA01", "Citizenship Status Code", O, "ID", 1, 2),
        E("DMA02", "Country Code (citizenship)", O, "ID", 2, 3),
    ), NOT_READ),
    SegmentSpec("REF", "0310", "Reference Information (travel documents)", O, 10, (
        E("REF01", "Reference Identification Qualifier", M, "ID", 2, 3),
        E("REF02", "Reference Identification", M, "AN", 1, 50),
        E("REF03", "Description (issuing country or state)", O, "AN", 1, 80),
    ), NOT_READ),
    _n3("0320"),
    _n4("0330"),
), NOT_READ)

N1_LOOP_309 = Loop("N1", O, 20, (
    SegmentSpec("N1", "1000", "Party Identification", M, 1, (
        E("N101", "Entity Identifier Code", M, "ID", 2, 3),
        E("N102", "Name", M, "AN", 1, 60),
        E("N103", "Identification Code Qualifier", O, "ID", 1, 2),
        E("N104", "Identification Code", O, "AN", 2, 80),
    ), APPX_L),
    _n3("1100"),
    _n4("1200"),
    SegmentSpec("PER", "1250", "Administrative Communications Contact", O, 1, (
        E("PER01", "Contact Function Code", M, "ID", 2, 2),
        E("PER02", "Name", O, "AN", 1, 60),
        E("PER03", "Communication Number Qualifier", O, "ID", 2, 2),
        E("PER04", "Communication Number", O, "AN", 1, 256),
    )),
))

PARTY_SHIPPER = "SH"
PARTY_CONSIGNEE = "CN"
"""N101 codes every shipment needs (Appendix L errors 004 and 005 name the shipper and the
consignee N1 as required)."""

N10_LOOP = Loop("N10", O, 999, (
    SegmentSpec("N10", "1800", "Quantity and Description", M, 1, (
        E("N1001", "Quantity", O, "R", 1, 15),
        E("N1002", "Free-form Description", M, "AN", 1, 45),
        E("N1003", "Marks and Numbers", O, "AN", 1, 48),
        E("N1004", "Commodity Code Qualifier", O, "ID", 1, 1),
        E("N1005", "Commodity Code", O, "AN", 1, 30),
        E("N1006", "Customs Shipment Value", O, "N2", 1, 12),
        E("N1007", "Weight Unit Code", O, "ID", 1, 1, "K L", EMANIFEST_ERRORS_2007),
        E("N1008", "Weight", O, "R", 1, 10),
        E("N1009", "Reference Identification", O, "AN", 1, 50),
        E("N1010", "Manifest Unit Code", O, "ID", 2, 5),
    )),
    SegmentSpec("H1", "1900", "Hazardous Material", O, 1, (
        E("H101", "Hazardous Material Code", M, "AN", 4, 10),
        E("H102", "Hazardous Material Class Code", O, "ID", 1, 4),
    )),
))

VID_LOOP = Loop("VID", O, 999, (
    SegmentSpec("VID", "1500", "Conveyance Identification (equipment)", M, 1, (
        E("VID01", "Equipment Description Code", M, "ID", 2, 2),
        E("VID02", "Equipment Initial", O, "AN", 1, 4),
        E("VID03", "Equipment Number", M, "AN", 1, 15),
    )),
    SegmentSpec("M7", "1600", "Seal Numbers", O, 2, (
        E("M701", "Seal Number", M, "AN", 2, 15),
        E("M702", "Seal Number", O, "AN", 2, 15),
        E("M703", "Seal Number", O, "AN", 2, 15),
        E("M704", "Seal Number", O, "AN", 2, 15),
    )),
    N10_LOOP,
))

LX_LOOP_309 = Loop("LX", M, 9999, (
    SegmentSpec("LX", "0600", "Transaction Set Line Number (one shipment)", M, 1, (
        E("LX01", "Assigned Number", M, "N0", 1, 6),
    )),
    SegmentSpec("M13", "0700", "Manifest Amendment Details (update, delete, delink)", O, 1, (
        E("M1301", "Standard Carrier Alpha Code", M, "ID", 2, 4),
        E("M1302", "Location Identifier (port)", M, "AN", 1, 30),
        E("M1303", "Amendment Type Code", M, "ID", 1, 1, " ".join(AMENDMENT_ACTIONS), S321),
        E("M1304", "Bill of Lading Number", O, "AN", 1, 50),
    ), CH2),
    SegmentSpec("M11", "0800", "Manifest Bill of Lading Details (shipment)", M, 1, (
        E("M1101", "Bill of Lading Number (shipment control number)", M, "AN", 5, SHIPMENT_CONTROL_MAX, source=APPX_L),
        E("M1102", "Location Identifier (port of lading)", O, "AN", 1, 30),
        E("M1103", "Lading Quantity", C, "R", 1, 15),
        E("M1104", "Packaging Form Code", O, "ID", 3, 3),
        E("M1105", "Weight", C, "R", 1, 10),
        E("M1106", "Weight Unit Code", C, "ID", 1, 1, "K L", APPX_H),
        E("M1107", "Transaction Set Identifier Code", X, "ID", 3, 3),
        E("M1108", "Location Identifier", X, "AN", 1, 30),
        E("M1109", "Bill of Lading Type Code", O, "ID", 2, 2, source=CSMS_321),
        E("M1110", "Location Identifier (place of receipt)", O, "AN", 1, 30),
        E("M1111", "Country Code", O, "ID", 2, 3),
        E("M1112", "Standard Carrier Alpha Code (issuer)", O, "ID", 2, 4, source=APPX_L),
    ), APPX_L, required_unless_removed=("M1103", "M1105", "M1106")),
    SegmentSpec("N9", "0850", "Extended Reference Information", O, 999, (
        E("N901", "Reference Identification Qualifier", M, "ID", 2, 3),
        E("N902", "Reference Identification", M, "AN", 1, 50),
        E("N903", "Free-form Description", O, "AN", 1, 45),
        E("N904", "Date", O, "DT", 8, 8),
        E("N905", "Time", O, "TM", 4, 8),
    )),
    N1_LOOP_309,
    VID_LOOP,
))

P4_LOOP_309 = Loop("P4", M, 1, (
    SegmentSpec("P4", "0400", "Port Information (US port of arrival, estimated arrival)", M, 1, (
        E("P401", "Location Identifier (Schedule D port)", M, "AN", 4, 4, source=APPX_H),
        E("P402", "Date (estimated arrival)", M, "DT", 8, 8),
        E("P403", "Quantity", X, "R", 1, 15),
        E("P404", "Location Identifier", X, "AN", 1, 30),
        E("P405", "Time (estimated arrival)", M, "TM", 4, 4, source=NOT_READ),
    ), APPX_H),
    LX_LOOP_309,
), G309)

TS309 = TransactionSpec(
    "309", "Customs Manifest (ACE truck)", "AQ", "005020",
    (_st("309", G309), M10_309, VEH_309, NM1_LOOP, P4_LOOP_309, _se("2000")),
    G309,
    notes=(
        "one interchange, one group and one 309 transaction set per transmission (G309)",
        "a 309 is one trip: the P4 loop names the port of arrival, each LX one shipment",
    ),
)

# --------------------------------------------------------------------------- 355

TS355 = TransactionSpec(
    "355", "Acceptance/Rejection Advice (ACE truck)", "AQ", "005020",
    (
        _st("355", X12_355),
        SegmentSpec("M10", "0200", "Manifest Identifying Information (the trip)", M, 1, (
            M10_309.element("M1001"), M10_309.element("M1002"), M10_309.element("M1003"),
            M10_309.element("M1004"), M10_309.element("M1005"), M10_309.element("M1006"),
        ), X12_355),
        _k1("0300", 10),
        Loop("P4", O, 20, (
            SegmentSpec("P4", "0400", "Port Information", M, 1, (
                E("P401", "Location Identifier (Schedule D port)", M, "AN", 4, 4),
                E("P402", "Date", O, "DT", 8, 8),
            ), X12_355),
            _k1("0500", 10),
            Loop("LX", O, 9999, (
                SegmentSpec("LX", "0600", "Transaction Set Line Number", M, 1, (
                    E("LX01", "Assigned Number", M, "N0", 1, 6),
                )),
                Loop("M13", O, 1, (
                    SegmentSpec("M13", "0700", "Manifest Amendment Details", M, 1,
                                LX_LOOP_309.body[1].elements),  # type: ignore[union-attr]
                    _k1("0750", 10),
                )),
                Loop("M11", O, 1, (
                    SegmentSpec("M11", "0800", "Manifest Bill of Lading Details (shipment)", M, 1, (
                        E("M1101", "Bill of Lading Number (shipment control number)", M, "AN", 1, 50),
                    )),
                    _k1("0850", 10),
                )),
            )),
        )),
        _se("2000"),
    ),
    X12_355,
    notes=(
        "CBP's own 355 table was not read: the X12 355 standard's layout, with K101 the CBP "
        "error code and K102 its text (S321)",
        "a trip or shipment with no K1 under it is accepted; one with K1 segments is rejected",
    ),
)

ERROR_CODES: dict[str, tuple[str, str]] = {
    "001": ("NO M10 FOUND", APPX_L),
    "002": ("NO P4 RECORD FOUND", APPX_L),
    "003": ("NO M11 RECORD FOUND", APPX_L),
    "004": ("INVALID SHIPPER N1", APPX_L),
    "005": ("INVALID CONSIGNEE N1", APPX_L),
    "006": ("INVALID RECORD TYPE", APPX_H),
    "007": ("INVALID N10 RECORD", APPX_H),
    "009": ("INVALID CARRIER CODE", APPX_L),
    "010": ("INVALID TRANS MODE", APPX_H),
    "011": ("INVALID COUNTRY CODE", APPX_H),
    "012": ("INVALID VOYAGE/TRIP #", APPX_H),
    "017": ("MISSING OR INVALID BILL", APPX_L),
    "021": ("INVALID WEIGHT UNIT", APPX_H),
    "033": ("INVALID DDPP", APPX_H),
    "401": ("INV CONV ACE ID", APPX_L),
    "402": ("INV LIC PLATE", APPX_L),
}
"""CBP's truck manifest error codes this project could read, with their short texts (K101,
K102). The full dictionary is longer: a code not here is passed through as CBP's own."""

ALREADY_ON_FILE = "SHIPMENT ALREADY ON FILE"
"""ACE's rejection of a shipment control number it holds already (BORDERCONNECT_WIKI: the
text carriers see; the code number was not read): s321 reads it as `duplicate`."""

# --------------------------------------------------------------------------- 350

DISPOSITIONS: dict[str, str] = {
    "1A": "entered, intensive examination required",
    "1B": "released, intensive examination completed",
    "1C": "entered and released, general examination",
    "1F": "CBP hold removed at port of in-bond destination",
    "1G": "CBP hold placed at port of in-bond destination",
    "02": "entry advisory",
    "03": "port of entry change",
    "11": "arrival of in-bond, complete movement",
    "19": "actual conveyance arrival",
    "4H": "invalid shipper hold placed",
    "4I": "invalid shipper hold removed",
    "6H": "do not load: invalid cargo description, shipper or consignee hold placed",
    "6I": "okay to load: that hold removed",
    "8H": "invalid cargo description hold placed",
    "8I": "invalid cargo description hold removed",
    "9H": "invalid consignee hold placed",
    "9I": "invalid consignee hold removed",
}
"""X403 disposition codes (names only; APPX_D and CSMS_DISP): events for a record's
history, never its state."""

TS350 = TransactionSpec(
    "350", "Customs Status Information (ACE truck)", "AU", "004060",
    (
        _st("350", G350),
        SegmentSpec("M10", "0200", "Manifest Identifying Information", O, 1,
                    TS355.segment("M10").elements, G350),
        Loop("P4", O, 20, (
            SegmentSpec("P4", "0400", "Port Information", O, 1, (
                E("P401", "Location Identifier", M, "AN", 4, 4),
                E("P402", "Date", O, "DT", 8, 8),
            ), G350),
            SegmentSpec("V9", "0450", "Event Detail", O, 20, (
                E("V901", "Event Code", M, "ID", 3, 3),
            ), G350),
            _k1("0500", 4),
            Loop("X4", O, 9999, (
                SegmentSpec("X4", "0600", "Customs Release Information", M, 1, (
                    E("X401", "Bill of Lading Number (shipment control number)", M, "AN", 1, 50, source=NOT_READ),
                    E("X402", "Quantity", O, "R", 1, 15, source=NOT_READ),
                    E("X403", "Customs Disposition Code", M, "ID", 2, 2, source=NOT_READ),
                    E("X404", "Location Identifier", O, "AN", 1, 30, source=NOT_READ),
                    E("X405", "Entry Type Code", O, "ID", 2, 2, source=NOT_READ),
                    E("X406", "Date", O, "DT", 8, 8, source=NOT_READ),
                    E("X407", "Time", O, "TM", 4, 4, source=NOT_READ),
                    E("X408", "Reference Identification (entry number)", O, "AN", 1, 50, source=NOT_READ),
                ), G350),
                _k1("0700", 4),
                SegmentSpec("N9", "0710", "Extended Reference Information", O, 10, (
                    E("N901", "Reference Identification Qualifier", M, "ID", 2, 3),
                    E("N902", "Reference Identification", M, "AN", 1, 50),
                ), G350),
            ), G350),
        ), G350),
        _se("0800"),
    ),
    G350,
)

# --------------------------------------------------------------------------- 997

AK5_CODES = {"A": "accepted", "E": "accepted, errors noted", "R": "rejected",
             "M": "rejected, MAC failed", "W": "rejected, assurance failed", "X": "rejected, cannot analyze"}
AK9_CODES = dict(AK5_CODES, P="partially accepted")
SEGMENT_ERRORS = {  # AK304 (720)
    "1": "unrecognized segment ID", "2": "unexpected segment", "3": "mandatory segment missing",
    "4": "loop occurs over maximum times", "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set", "7": "segment not in proper sequence",
    "8": "segment has data element errors",
}
ELEMENT_ERRORS = {  # AK403 (723)
    "1": "mandatory data element missing", "2": "conditional required data element missing",
    "3": "too many data elements", "4": "data element too short", "5": "data element too long",
    "6": "invalid character in data element", "7": "invalid code value", "8": "invalid date",
    "9": "invalid time", "10": "exclusion condition violated",
}
SET_ERRORS = {  # AK502 (718)
    "1": "transaction set not supported", "2": "transaction set trailer missing",
    "3": "transaction set control number in header and trailer do not match",
    "4": "number of included segments does not match actual count", "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier", "7": "missing or invalid transaction set control number",
}
GROUP_ERRORS = {  # AK905 (716)
    "1": "functional group not supported", "2": "functional group version not supported",
    "3": "functional group trailer missing", "4": "group control number in header and trailer do not agree",
    "5": "number of included transaction sets does not match actual count",
    "6": "group control number violates syntax",
}

TS997 = TransactionSpec(
    "997", "Functional Acknowledgment", "FA", "005020",
    (
        _st("997", X12_997),
        SegmentSpec("AK1", "0200", "Functional Group Response Header", M, 1, (
            E("AK101", "Functional Identifier Code", M, "ID", 2, 2),
            E("AK102", "Group Control Number", M, "N0", 1, 9),
        ), X12_997),
        Loop("AK2", O, 999999, (
            SegmentSpec("AK2", "0300", "Transaction Set Response Header", M, 1, (
                E("AK201", "Transaction Set Identifier Code", M, "ID", 3, 3),
                E("AK202", "Transaction Set Control Number", M, "AN", 4, 9),
            ), X12_997),
            Loop("AK3", O, 999999, (
                SegmentSpec("AK3", "0400", "Data Segment Note", M, 1, (
                    E("AK301", "Segment ID Code", M, "ID", 2, 3),
                    E("AK302", "Segment Position in Transaction Set", M, "N0", 1, 10),
                    E("AK303", "Loop Identifier Code", O, "AN", 1, 4),
                    E("AK304", "Segment Syntax Error Code", O, "ID", 1, 3, " ".join(SEGMENT_ERRORS)),
                ), X12_997),
                SegmentSpec("AK4", "0500", "Data Element Note", O, 99, (
                    E("AK401", "Position in Segment", M, "AN", 1, 6),
                    E("AK402", "Data Element Reference Number", O, "N0", 1, 4),
                    E("AK403", "Data Element Syntax Error Code", M, "ID", 1, 3, " ".join(ELEMENT_ERRORS)),
                    E("AK404", "Copy of Bad Data Element", O, "AN", 1, 99),
                ), X12_997),
            ), X12_997),
            SegmentSpec("AK5", "0600", "Transaction Set Response Trailer", M, 1, (
                E("AK501", "Transaction Set Acknowledgment Code", M, "ID", 1, 1, " ".join(AK5_CODES)),
                E("AK502", "Transaction Set Syntax Error Code", O, "ID", 1, 3, " ".join(SET_ERRORS)),
                E("AK503", "Transaction Set Syntax Error Code", O, "ID", 1, 3, " ".join(SET_ERRORS)),
            ), X12_997),
        ), X12_997),
        SegmentSpec("AK9", "0700", "Functional Group Response Trailer", M, 1, (
            E("AK901", "Functional Group Acknowledge Code", M, "ID", 1, 1, " ".join(AK9_CODES)),
            E("AK902", "Number of Transaction Sets Included", M, "N0", 1, 6),
            E("AK903", "Number of Received Transaction Sets", M, "N0", 1, 6),
            E("AK904", "Number of Accepted Transaction Sets", M, "N0", 1, 6),
            E("AK905", "Functional Group Syntax Error Code", O, "ID", 1, 3, " ".join(GROUP_ERRORS)),
        ), X12_997),
        _se("0800"),
    ),
    X12_997,
)

SPECS = {spec.id: spec for spec in (TS309, TS355, TS350, TS997)}
ENVELOPE = {spec.id: spec for spec in (ISA, GS, GE, IEA)}

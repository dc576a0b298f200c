"""ACE truck 309 transmissions for tests, built as plugins/ace_truck/guide.py lays the 309
out (made up, with fictional names): a heading (trip, truck, driver, port of arrival) and
shipments, each a list of segments that a test may break on purpose."""

from __future__ import annotations


def seg(tag: str, *elements: str) -> str:
    return "*".join((tag, *elements)).rstrip("*") + "~"


def shipment(number: int, control: str, *, consignee: bool = True, extra: tuple[str, ...] = (),
             amend: str | None = None) -> list[str]:
    """One LX loop; `amend` (an M1303 code: C change, D delete, X delink) adds its M13."""
    parties = [seg("N1", "SH", "MAPLE GOODS LTD"), seg("N3", "1 KING ST W"), seg("N4", "TORONTO", "ON", "M5H1A1", "CA")]
    if consignee:
        parties += [seg("N1", "CN", "ROE HOUSEHOLD"), seg("N3", "2 ELM ST"), seg("N4", "BUFFALO", "NY", "14201", "US")]
    m13 = [seg("M13", "ABCD", "0901", amend)] if amend else []
    return [seg("LX", str(number)), *m13, seg("M11", control, "", "2", "PCS", "3.5", "K"), *parties, *extra,
            seg("VID", "TL", "", "TRL0001"), seg("N10", "2", "COTTON T-SHIRTS", "", "", "610910", "4500", "K", "3.5")]


def heading() -> list[str]:
    return [seg("M10", "ABCD", "J", "CA", "", "", "ABCDT0001"),
            seg("VEH", "1", "1XKWD49X8JJ123456", "2018", "", "", "", "", "", "TRK01", "ON", "AB12345",
                "", "", "", "", "", "CA", "", "", "TR"),
            seg("NM1", "DR", "1", "DOE", "JOHN"), seg("DMG", "D8", "19700101", "M"),
            seg("P4", "0901", "20261207", "", "", "1330")]


def transmission(body: list[str] | None = None, *, isa13: str = "000000042", iea02: str | None = None,
                 gs01: str = "AQ", se01: int | None = None, ge01: str = "1", st02: str = "0001") -> bytes:
    body = body if body is not None else heading() + shipment(1, "ABCD000000001") + shipment(2, "ABCD000000002")
    isa = ("ISA*00*          *00*          *ZZ*SENDERID       *ZZ*CBPACE         *261207*0400*^*00502*"
           f"{isa13}*0*T*:~")
    count = se01 if se01 is not None else len(body) + 2
    lines = [isa, seg("GS", gs01, "SENDERID", "CBPACE", "20261207", "0400", "17", "X", "005020"),
             seg("ST", "309", st02), *body, seg("SE", str(count), st02), seg("GE", ge01, "17"),
             seg("IEA", "1", iea02 or isa13)]
    return "\n".join(lines).encode()

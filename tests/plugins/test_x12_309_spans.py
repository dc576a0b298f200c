"""`x12-309`'s spans (s321.parallel's workers read their own bills): a file cut before
any bill and read span by span, each from its position, gives exactly the units of
`read()`: keys, locations, checkpoints, findings and payloads. Held on the samples, the
real-world X12 files, a folder with broken and missing files, and hypothesis-made files
full of what a reader must carry across a span: several interchanges with their own
separators, groups without a GS08, sets that are not 309s or are broken, an M10 or P4
between bills, wrapped lines, blank lines and CRs between segments."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spans_check import by_spans
from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.x12.manifest309 import Bill
from s321.plugins.x12_309 import X12309Options, X12309Source
from s321.record import FilerType, ModeOfTransport

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "contrib" / "samples" / "x12-309").iterdir())
REALWORLD = sorted((ROOT / ".." / "shared" / "realworld" / "x12").glob("*"))


def source(path: Path) -> X12309Source:
    context = PipelineContext("trucks", "CAR001", FilerType.CARRIER, ModeOfTransport.TRUCK,
                              "pilot-2019", "x12-309", PipelineDefaults())
    return X12309Source(X12309Options(path=path), context)


def test_the_samples_and_real_world_files_cut_at_every_bill_and_once_anywhere():
    assert SAMPLES and REALWORLD
    for path in [*SAMPLES, *REALWORLD]:
        src = source(path)
        full, got = by_spans(src, None)
        assert got == full, path
        for at in range(len(full)):
            full, got = by_spans(src, {at})
            assert got == full, (path, at)


def test_a_folder_with_broken_and_missing_files_between_the_spans(tmp_path: Path):
    for n, path in enumerate(SAMPLES):
        (tmp_path / f"{n}a.edi").write_bytes(path.read_bytes())
    (tmp_path / "1b.edi").write_bytes(b"ISA*00*~GS*SO~ST*309*1~LX*1~M11*X~SE*9*1~")
    (tmp_path / "1c.edi").write_bytes(b"\xff\xfe not utf-8")
    src = source(tmp_path)
    full, got = by_spans(src, set())
    assert got == full
    assert sum(u.payload is not None for u in full) == 10  # each sample has a broken set
    src = source(tmp_path / "absent.edi")
    assert [u for u, _ in src.read_key_positions()] == list(src.read())


def test_a_file_named_twice_is_two_readings(tmp_path: Path):
    src = source(tmp_path)
    paths = [SAMPLES[0], SAMPLES[0]]
    readings = {at[0] for _u, at in src.read_key_positions(paths) if at is not None}
    assert readings == {0, 1}


def test_a_file_changed_or_gone_since_its_positions_names_itself(tmp_path: Path):
    path = tmp_path / "m.edi"
    original = SAMPLES[0].read_bytes()
    path.write_bytes(original)
    src = source(path)
    starts = [at for _u, at in src.read_key_positions() if at is not None]
    path.write_bytes(original.replace(b"LX*2~", b"LX*22~"))
    [unit] = src.read_span(starts[2], 3)
    assert unit.payload is None and "changed while it was read" in unit.findings[0].message

    # The same size and time of change, the end blanked out: fewer bills than asked.
    cut = original.index(b"ST*309*0002")
    path.write_bytes(original[:cut] + b" " * (len(original) - cut))
    mtime = starts[0][1].mtime_ns
    os.utime(path, ns=(mtime, mtime))
    *bills, last = src.read_span(starts[0], len(starts))
    assert len(bills) == 3 and all(isinstance(b.payload, Bill) for b in bills)
    assert last.payload is None and "changed while it was read" in last.findings[0].message

    path.unlink()
    [unit] = src.read_span(starts[0], 1)
    assert unit.findings[0].code == "input-unreadable"


# --------------------------------------------------------------------------- made files

SEPARATORS = [("*", ">", "~"), ("|", "^", "\n"), ("\x1d", "\x1f", "\x1c"), ("*", ":", "'"),
              ("~", ">", "*")]  # one interchange's terminator, the next one's element separator
GAPS = ["", "\n", "\r\n", "  \n"]


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """A file of 1-3 interchanges, each with its own separators, groups and sets: bills
    with parties and wrapped lines, an M10 or P4 between bills, sets that are not 309s,
    sets made broken (SE01 wrong), a GS without GS08."""
    out: list[str] = []
    bill_no = 0
    for control in range(1, draw(st.integers(1, 3)) + 1):
        es, cs, term = draw(st.sampled_from(SEPARATORS))
        gap = draw(st.sampled_from(GAPS)) if term not in "\n" else ""
        version = ["00401", "00501"][control % 2]  # a group without GS08 takes it
        isa = es.join(["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ",
                       "RECEIVER".ljust(15), "250115", "1200", "U", version, f"{control:09d}",
                       "0", "P", cs])
        segs = [isa]
        groups = draw(st.integers(1, 2))
        for g in range(1, groups + 1):
            segs.append(es.join(["GS", "SO", "S", "R", "20250115", "1200", str(g), "X",
                                 draw(st.sampled_from(["004010", "005010", ""]))]))
            sets = draw(st.integers(1, 3))
            for n in range(1, sets + 1):
                kind = draw(st.sampled_from(["309", "309", "309", "214"]))
                body = [["M10", "SCAC", draw(st.sampled_from(["J", "A", ""])), "MX", "TRK1"],
                        ["P4", draw(st.sampled_from(["2304", "2506"])), "20250115", "3"]]
                for _ in range(draw(st.integers(0, 4))):
                    bill_no += 1
                    body += [["LX", str(bill_no)],
                             ["M11", f"B{bill_no:05d}", "20195", "2", "PCS", "1.4", "K"]]
                    if draw(st.booleans()):
                        body += [["N9", "2I", f"T{bill_no}"], ["N1", "CN", "Zoë Brandt"],
                                 ["N3", "1180 Howard St"], ["N4", "Laredo", "TX", "78041", "US"]]
                    body += [["N10", "2", "COTTON BLOUSE", "", "A", "6206.30.3011", "58", "K", "0.6"],
                             ["N10", "", "SIZE M"]]
                    if draw(st.integers(0, 5)) == 0:  # a new port or trip mid-set
                        body.append(draw(st.sampled_from(
                            [["P4", "2506", "20250116", "1"], ["M10", "SCAC", "J", "CA", "TRK2"]])))
                count = len(body) + 2
                if draw(st.integers(0, 6)) == 0:
                    count += 1  # SE01 wrong: the set is broken
                ctrl = f"{g}{n:03d}"
                segs += [es.join(["ST", kind, ctrl]), *(es.join(s) for s in body),
                         es.join(["SE", str(count), ctrl])]
            segs.append(es.join(["GE", str(sets), str(g)]))
        segs.append(es.join(["IEA", str(groups), f"{control:09d}"]))
        out.append("".join(s + term + gap for s in segs))
    return "".join(out).encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=manifests(), cuts=st.sets(st.integers(0, 40), max_size=8), every=st.booleans())
def test_made_files_cut_anywhere_read_the_same(data: bytes, cuts: set[int], every: bool):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "made.edi"
        path.write_bytes(data)
        full, got = by_spans(source(path), None if every else cuts)
        assert got == full


SEGMENTS = [segment + b"~" for path in SAMPLES
            for segment in path.read_bytes().replace(b"\n", b"").split(b"~") if segment]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SEGMENTS) | st.binary(max_size=30), max_size=60))
def test_segments_in_any_order_read_the_same(segments: list[bytes]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.edi"
        path.write_bytes(b"".join(segments))
        full, got = by_spans(source(path), None)
        assert got == full


def test_a_sample_delivered_wrapped_at_80_columns_gives_the_same_units(tmp_path: Path):
    """A 309 cut into lines of 80 characters (CRLF), as a mailbox or a mainframe
    delivers it: the same bills, keys, locations, findings and payloads as the file in
    one line, from read(), the keys pass and every span."""
    for path in SAMPLES:
        target = tmp_path / path.name
        flat = path.read_bytes().replace(b"\r", b"").replace(b"\n", b"")
        target.write_bytes(flat)
        one = list(source(target).read())
        text = flat.decode("utf-8")  # cut between characters: a byte cut inside an é is not UTF-8
        target.write_bytes("\r\n".join(text[i:i + 80] for i in range(0, len(text), 80)).encode("utf-8")
                           + b"\r\n")
        full, got = by_spans(source(target), None)
        assert sum(u.payload is not None for u in one) >= 4, path
        assert full == one, path
        assert got == full, path

"""`cargo-imp-fhl`'s spans (s321.parallel's workers read their own houses): a file cut
before any house and read span by span, each from its position, gives exactly the units
of `read()`: keys, locations, checkpoints, findings and payloads. Held on the sample, the
real-world files, a folder with broken and missing files, and hypothesis-made files full
of what a reader must carry into a span: a master's OCI security lines (shared by its
houses, with their findings), houses without a master, teletype envelopes and other
messages between houses, unknown FHL versions; read in chunks of any size, so that a
span starts in a chunk a line began before."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spans_check import by_spans
from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.cargo_imp import lines
from s321.plugins.cargo_imp.model import House
from s321.plugins.cargo_imp_fhl import FhlOptions, FhlSource
from s321.record import FilerType, ModeOfTransport

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "contrib" / "samples" / "cargo-imp-fhl" / "houses.txt"
REALWORLD = sorted((ROOT / ".." / "shared" / "realworld" / "fhl").glob("*"))
LINES = [line for path in [SAMPLE, *REALWORLD]
         for line in path.read_bytes().splitlines(keepends=True)]


def source(path: Path) -> FhlSource:
    context = PipelineContext(
        pipeline="air", originator_code="CAR001", filer_type=FilerType.CARRIER,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source="cargo-imp-fhl",
        defaults=PipelineDefaults())
    return FhlSource(FhlOptions(path=path, pattern=["*"]), context)


@pytest.mark.parametrize("chunk", [lines.CHUNK_BYTES, 7, 100])
def test_the_sample_and_real_world_files_cut_at_every_house_and_once_anywhere(monkeypatch, chunk):
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    for path in [SAMPLE, *REALWORLD]:
        src = source(path)
        full, got = by_spans(src, None)
        assert got == full, path
        for at in range(len(full)):
            full, got = by_spans(src, {at})
            assert got == full, (path, at)


def test_a_folder_with_broken_and_missing_files_between_the_spans(tmp_path: Path):
    (tmp_path / "a.txt").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "b.txt").write_bytes(b"FWB/16\nAWB stuff\n")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "d.txt").write_bytes(SAMPLE.read_bytes())
    src = source(tmp_path)
    full, got = by_spans(src, set())
    assert got == full
    assert sum(isinstance(u.payload, House) for u in full) == 14
    readings = {at[0] for _u, at in src.read_key_positions() if at is not None}
    assert readings == {0, 3}
    src = source(tmp_path / "absent.txt")
    assert [u for u, _ in src.read_key_positions()] == list(src.read())


def test_a_file_changed_or_gone_since_its_positions_names_itself(tmp_path: Path):
    path = tmp_path / "h.txt"
    original = SAMPLE.read_bytes()
    path.write_bytes(original)
    src = source(path)
    starts = [at for _u, at in src.read_key_positions() if at is not None]
    path.write_bytes(original.replace(b"HBS/HK7731002", b"XXX/HK7731002"))
    [unit] = src.read_span(starts[1], 3)
    assert unit.payload is None and "changed while it was read" in unit.findings[0].message

    # The same size and time of change, the end blanked out: fewer houses than asked.
    cut = original.index(b"HBS/HK7731002")
    path.write_bytes(original[:cut] + b" " * (len(original) - cut))
    mtime = starts[0][3]
    os.utime(path, ns=(mtime, mtime))
    *houses, last = src.read_span(starts[0], 3)
    assert len(houses) == 1 and isinstance(houses[0].payload, House)
    assert last.payload is None and "changed while it was read" in last.findings[0].message

    path.unlink()
    [unit] = src.read_span(starts[0], 1)
    assert unit.findings[0].code == "fhl-unreadable-file" and "stopped" in unit.findings[0].message


# --------------------------------------------------------------------------- made files

HOUSE_LINES = [b"TXT/WIRELESS EARBUDS", b"/RETAIL PACKED", b"HTS/851830", b"SHP/Shenzhen Co",
               b"/SHENZHEN/GD", b"/CN/518129", b"CNE/Zo\xc3\xab M\xc3\xbcller", b"/12 Main St",
               b"/LOS ANGELES/CA", b"/US/90026", b"CVD/USD//PP/NVD/45.90/XXX",
               b"OCI/US/ISS/RA/00231-01", b"///SS/SPX", b"FOO/what is this", b"/orphan"]
MASTER_OCI = [b"OCI/HK/ISS/RA/00231-01", b"///ED/0626", b"///SM/XRY", b"///SS/SPX",
              b"OCI/HK/ISS/RA/00999-01", b"///SN/NOBODY",
              b"///SS/XXX", b"///SD/notadate", b"///SS/NSC"]  # findings every house carries
BETWEEN = [b"NNNN", b"ZCZC", b"QK LAXFFAA", b"FWB/16", b"FHL/9", b"stray words", b"", b"  "]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    out: list[bytes] = []
    house = 0
    for _ in range(draw(st.integers(1, 3))):
        out.append(draw(st.sampled_from([b"FHL/4", b"FHL/2", b"FHL/7"])))
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.integers(0, 4)):
                out.append(b"MBI/160-5823140%dHKGLAX/T9K38.6" % draw(st.integers(0, 3)))
            out += draw(st.lists(st.sampled_from(MASTER_OCI), max_size=4))
            for _ in range(draw(st.integers(0, 5))):
                house += 1
                out.append(b"HBS/HK%05d/HKGLAX/2/K1.4/2/EARBUDS" % house)
                out += draw(st.lists(st.sampled_from(HOUSE_LINES), max_size=8))
                if draw(st.integers(0, 5)) == 0:
                    out.append(draw(st.sampled_from(BETWEEN)))
        if draw(st.booleans()):
            out.append(draw(st.sampled_from(BETWEEN)))
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    return end.join(out) + draw(st.sampled_from([end, b""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(data=messages(), cuts=st.sets(st.integers(0, 40), max_size=8), every=st.booleans(),
       chunk=st.sampled_from([5, 64, 1 << 16]))
def test_made_files_cut_anywhere_read_the_same(monkeypatch, data: bytes, cuts: set[int],
                                               every: bool, chunk: int):
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "made.txt"
        path.write_bytes(data)
        full, got = by_spans(source(path), None if every else cuts)
        assert got == full


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(LINES) | st.binary(max_size=30), max_size=60),
       chunk=st.sampled_from([3, 50, 1 << 16]))
def test_lines_in_any_order_read_the_same(monkeypatch, parts: list[bytes], chunk: int):
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.txt"
        path.write_bytes(b"".join(parts))
        full, got = by_spans(source(path), None)
        assert got == full


def test_a_disk_error_while_a_span_is_read_is_a_unit_that_names_it(tmp_path: Path, monkeypatch):
    """An I/O error anywhere in a span's reading (while its HBS line is looked for, or
    later) is a unit naming the file, never an exception out of the worker."""
    path = tmp_path / "h.txt"
    path.write_bytes(SAMPLE.read_bytes())
    src = source(path)
    starts = [at for _u, at in src.read_key_positions() if at is not None]

    def broken_disk(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(lines, "read_lines", broken_disk)
    monkeypatch.setattr("s321.plugins.cargo_imp.fhl.read_lines", broken_disk)
    [unit] = src.read_span(starts[1], 3)
    assert unit.payload is None and unit.findings[0].code == "fhl-unreadable-file"
    assert "Input/output error" in unit.findings[0].message

"""The quick way of reading UTF-8 Cargo-IMP lines gives exactly the lines of the line-
by-line way (`_split` + `_decode`): numbers, text and repair notes, whatever the bytes
and wherever the chunks end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s321.plugins.cargo_imp import lines

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "contrib" / "samples" / "cargo-imp-fhl" / "houses.txt").read_bytes()
PIECES = [b"\r\n", b"\r", b"\n", b"\xef\xbb\xbf", b"\xc3", b"\xa9", "é".encode(), b"\x00",
          b"\x0b", b"\x1c", "\u2028".encode(), "\x85".encode(), "\ufeff".encode(), b" ",
          b"HBS/HK1/HKGLAX/1/K1/1/X", b"/CN//SM/XRY", b"x" * 5000, *SAMPLE.splitlines(keepends=True)]


def line_by_line(data: bytes) -> list[lines.Line]:
    stream = io.BytesIO(data)
    return [lines._decode(n, raw, cut, "utf-8") for n, (raw, cut) in enumerate(lines._split(stream), 1)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 16])
def test_the_sample_reads_the_same_at_any_chunk_size(monkeypatch, chunk):
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    data = SAMPLE * 30
    assert list(lines.read_lines(io.BytesIO(data))) == line_by_line(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), max_size=80),
       chunk=st.sampled_from([1, 2, 5, 16, 100, 4097, 1 << 16]))
def test_any_bytes_read_the_same(monkeypatch, parts, chunk):
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    data = b"".join(parts)
    assert list(lines.read_lines(io.BytesIO(data))) == line_by_line(data)
    assert list(lines.read_lines(io.BytesIO(data), "UTF8")) == line_by_line(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), max_size=80),
       chunk=st.sampled_from([1, 2, 5, 16, 100, 4097]),
       encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_a_reading_started_again_at_any_line_s_chunk_goes_on_as_it_went(monkeypatch, parts,
                                                                         chunk, encoding):
    """A reader that noted the chunk a line ended in (`Chunks.at`) and reads again from
    there gets the lines from that one on, numbered and repaired the same."""
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk)
    data = b"".join(parts)
    chunks = lines.Chunks()
    seen = [(line, chunks.at) for line in lines.read_lines(io.BytesIO(data), encoding, chunks)]
    for i, (line, at) in enumerate(seen):
        again = [x for x in lines.read_lines(io.BytesIO(data), encoding, lines.Chunks(at))
                 if x.number >= line.number]
        assert again == [x for x, _ in seen[i:]]

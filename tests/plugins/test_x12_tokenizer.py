"""The generic X12 reader: separators from the ISA, segment numbering, tolerance of
line breaks, envelope checks, and that no input makes it raise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s321.findings import Finding, Severity
from s321.plugins.x12 import envelope, tokenizer
from s321.plugins.x12.envelope import Problem, read_sets, scan
from s321.plugins.x12.tokenizer import Segment, segments

Seg = Sequence[str]


def isa(
    es: str = "*", rep: str = "U", cs: str = ">", version: str = "00401", control: str = "000000001"
) -> str:
    fields = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ",
              "RECEIVER".ljust(15), "250115", "1200", rep, version, control, "0", "P", cs]
    header = es.join(fields)
    assert len(header) == 105
    return header


def interchange(
    groups: Sequence[Sequence[Sequence[Seg]]],
    es: str = "*",
    cs: str = ">",
    rep: str = "U",
    term: str = "~\n",
    version: str = "00401",
    control: str = "000000001",
    gs_version: str = "004010",
) -> str:
    """An interchange with correct trailers: groups of sets of body segments."""
    out = [isa(es, rep, cs, version, control)]
    st_number = 0
    for g, sets in enumerate(groups, start=1):
        out.append(es.join(["GS", "SO", "S", "R", "20250115", "1200", str(g), "X", gs_version]))
        for body in sets:
            st_number += 1
            ctrl = f"{st_number:04d}"
            out.append(es.join(["ST", "309", ctrl]))
            out += [es.join(s) for s in body]
            out.append(es.join(["SE", str(len(body) + 2), ctrl]))
        out.append(es.join(["GE", str(len(sets)), str(g)]))
    out.append(es.join(["IEA", str(len(groups)), control]))
    return "".join(s + term for s in out)


BODY: list[Seg] = [["M10", "ABCD", "J", "MX", "TRK1"], ["LX", "1"], ["M11", "ABCD0001"]]


def tokens(data: bytes | str, chunk_size: int = tokenizer.CHUNK_SIZE) -> list[Segment | Finding]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return list(segments(io.BytesIO(raw), "f.edi", chunk_size))


def segs(data: bytes | str, chunk_size: int = tokenizer.CHUNK_SIZE) -> list[Segment]:
    out = tokens(data, chunk_size)
    assert all(isinstance(t, Segment) for t in out), [t for t in out if isinstance(t, Finding)]
    return [t for t in out if isinstance(t, Segment)]


def problems(data: bytes | str) -> list[Problem]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return scan(io.BytesIO(raw), "f.edi").problems


def codes(found: list[Problem]) -> list[str]:
    return [f.code for p in found for f in p.findings]


# --------------------------------------------------------------------------- separators


@pytest.mark.parametrize(
    ("es", "cs", "rep", "term", "version", "expected_rep"),
    [
        ("*", ">", "U", "~", "00401", None),  # 004010: ISA11 is the standards id
        ("*", ">", "^", "~\n", "00501", "^"),  # 005010: ISA11 is the repetition separator
        ("|", "^", "{", "~\r\n", "00501", "{"),
        ("*", ":", "^", "\n", "00501", "^"),  # newline as the segment terminator
        ("\x1d", "\x1f", "\x1e", "\x1c", "00501", "\x1e"),  # non-printing separators
        ("+", ":", "U", "'", "00401", None),
    ],
)
def test_separators_come_from_the_isa(
    es: str, cs: str, rep: str, term: str, version: str, expected_rep: str | None
) -> None:
    body = [["N1", "CN", "Ada"], ["N10", "2", "LAMP", f"A{cs}B", "A", f"X{rep}Y"]]
    out = segs(interchange([[body]], es=es, cs=cs, rep=rep, term=term, version=version))
    assert [s.tag for s in out] == ["ISA", "GS", "ST", "N1", "N10", "SE", "GE", "IEA"]
    assert out[0].delimiters.element == es
    assert out[0].delimiters.component == cs
    assert out[0].delimiters.segment == term[0]
    assert out[0].delimiters.repetition == expected_rep
    n10 = out[4]
    assert n10.get(2) == "LAMP"
    assert n10.components(3) == ["A", "B"]
    assert n10.repeats(5) == (["X", "Y"] if expected_rep else [f"X{rep}Y"])
    assert out[0].get(13) == "000000001"  # ISA padding is stripped


def test_elements_are_numbered_as_x12_numbers_them() -> None:
    out = segs(interchange([[[["M11", "BOL1", "", "3"]]]]))
    m11 = out[3]
    assert (m11.get(1), m11.get(2), m11.get(3), m11.get(4), m11.get(0)) == ("BOL1", "", "3", "", "")


def test_segments_are_numbered_from_the_start_of_the_file_across_interchanges() -> None:
    text = interchange([[BODY]]) + interchange(
        [[BODY], [BODY]], es="|", cs=":", rep="^", version="00501", control="000000002"
    )
    out = segs(text)
    assert [s.number for s in out] == list(range(1, len(out) + 1))
    second_isa = [s for s in out if s.tag == "ISA"][1]
    assert second_isa.number == 10 and second_isa.delimiters.element == "|"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 105, 106, 107, 4096])
def test_chunk_boundaries_do_not_change_the_result(chunk_size: int) -> None:
    text = "\ufeff" + interchange([[BODY, BODY]], term="~\r\n") + interchange([[BODY]], es="|")
    whole = [(s.tag, s.elements, s.number) for s in segs(text)]
    assert [(s.tag, s.elements, s.number) for s in segs(text, chunk_size)] == whole


def test_line_breaks_and_blank_lines_between_segments_are_tolerated() -> None:
    compact = segs(interchange([[BODY]], term="~"))
    for messy in (
        interchange([[BODY]], term="~\r\n"),
        interchange([[BODY]], term="~\n\n  "),
        "\r\n\n" + interchange([[BODY]], term="\r\n") + "\n\n",
        "\ufeff" + interchange([[BODY]], term="~\n"),
    ):
        assert [(s.tag, s.elements) for s in segs(messy)] == [(s.tag, s.elements) for s in compact]


def test_a_missing_terminator_after_the_last_segment_is_tolerated() -> None:
    text = interchange([[BODY]], term="~").removesuffix("~")
    assert segs(text)[-1].elements == ("1", "000000001")
    assert problems(text) == []


def test_utf8_and_latin1_bytes_are_both_decoded() -> None:
    text = interchange([[[["N1", "CN", "José Müller"]]]])
    assert segs(text.encode("utf-8"))[3].get(2) == "José Müller"
    assert segs(text.encode("latin-1"))[3].get(2) == "José Müller"


def test_an_isa_that_is_not_fixed_width_is_still_read() -> None:
    text = interchange([[BODY]]).replace("SENDER         ", "SENDER", 1)
    out = segs(text)
    assert out[0].get(6) == "SENDER" and out[0].delimiters.component == ">"
    assert problems(text) == []


# --------------------------------------------------------------------------- bad bytes


def test_bytes_before_the_isa_are_reported_and_skipped() -> None:
    out = tokens("garbage\n" + interchange([[BODY]]))
    assert isinstance(out[0], Finding) and out[0].code == "x12-not-x12"
    assert out[0].location == "f.edi:segment 1"
    assert [t.tag for t in out[1:] if isinstance(t, Segment)][:2] == ["ISA", "GS"]


def test_a_file_without_an_interchange_is_one_finding() -> None:
    assert codes(problems(b"")) == ["x12-empty"]
    assert codes(problems(b"name,qty\nlamp,2\n")) == ["x12-not-x12"]


@pytest.mark.parametrize(
    "header",
    [
        "ISA*00*" + "A" * 40,  # cut short
        isa(cs="A"),  # alphanumeric separator
        isa(es="*", cs="~"),  # component = terminator
    ],
)
def test_an_unusable_isa_is_reported(header: str) -> None:
    out = tokens(header + "~GS*SO~")
    assert (
        isinstance(out[0], Finding) and out[0].code == "x12-isa-invalid" and out[0].field == "ISA"
    )


def test_an_overlong_segment_is_reported_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizer, "MAX_SEGMENT", 50)
    text = interchange([[[["N10", "1", "X" * 200]], BODY]])
    found = problems(text)
    assert codes(found) == ["x12-segment-too-long"]
    assert found[0].set_control == "0001"  # the set holding it is broken, the next is not


def test_a_segment_without_a_segment_id_is_reported() -> None:
    found = problems(interchange([[[["N3", "x"], ["\x00\x01", "y"]], BODY]]))
    assert codes(found) == ["x12-bad-segment"] and found[0].set_control == "0001"


# --------------------------------------------------------------------------- envelopes


def test_a_sound_file_has_no_problems() -> None:
    assert problems(interchange([[BODY, BODY], [BODY]])) == []


def test_se01_mismatch_breaks_only_that_set() -> None:
    text = interchange([[BODY, BODY, BODY]]).replace("SE*5*0002", "SE*6*0002")
    found = problems(text)
    assert len(found) == 1
    problem = found[0]
    assert problem.set_control == "0002" and problem.position == 8
    finding = problem.findings[0]
    assert (finding.code, finding.field, finding.location) == (
        "x12-se-count",
        "SE01",
        "f.edi:segment 12",
    )
    assert "ST02='0002'" in finding.message and "counted 5" in finding.message
    delivered = {h.control for h, _ in _sets(text)}
    assert delivered == {"0001", "0003"}


def test_se02_mismatch_breaks_the_set() -> None:
    found = problems(interchange([[BODY, BODY]]).replace("SE*5*0001", "SE*5*0099"))
    assert codes(found) == ["x12-se-control"] and found[0].set_control == "0001"
    assert found[0].findings[0].field == "SE02"


def test_a_set_without_se_is_broken_and_the_next_one_still_read(tmp_path: Path) -> None:
    text = interchange([[BODY, BODY]]).replace("SE*5*0001~\n", "")
    found = problems(text)
    assert codes(found) == ["x12-se-missing"] and found[0].set_control == "0001"
    assert "another ST starts" in found[0].findings[0].message
    assert {h.control for h, _ in _sets(text)} == {"0002"}


def test_group_and_interchange_trailer_mismatches_are_findings_that_keep_the_sets() -> None:
    text = (
        interchange([[BODY, BODY]])
        .replace("GE*2*1", "GE*3*7")
        .replace("IEA*1*000000001", "IEA*2*000000009")
    )
    found = problems(text)
    assert sorted(codes(found)) == [
        "x12-ge-control",
        "x12-ge-count",
        "x12-iea-control",
        "x12-iea-count",
    ]
    assert {f.field for p in found for f in p.findings} == {"GE01", "GE02", "IEA01", "IEA02"}
    assert all(p.set_control is None for p in found)
    assert {h.control for h, _ in _sets(text)} == {"0001", "0002"}


def test_a_truncated_file_reports_every_open_envelope() -> None:
    text = interchange([[BODY, BODY]])
    cut = text[: text.index("ST*309*0002") + 30]
    found = problems(cut)
    assert codes(found) == ["x12-se-missing", "x12-ge-missing", "x12-iea-missing"]
    assert found[0].set_control == "0002"
    assert {h.control for h, _ in _sets(cut)} == {"0001"}


def test_a_set_outside_a_group_is_broken() -> None:
    text = interchange([[BODY]]).replace("GS*SO*S*R*20250115*1200*1*X*004010~\n", "")
    found = problems(text)
    assert "x12-outside-group" in codes(found)
    assert [p.set_control for p in found if p.set_control] == ["0001"]


def test_segments_outside_a_set_are_one_finding() -> None:
    text = interchange([[BODY]]).replace("GE*1*1~", "N1*CN*X~N3*Y~N4*Z~GE*1*1~")
    found = problems(text)
    assert codes(found) == ["x12-outside-set"]
    assert "3 segments (from N1)" in found[0].findings[0].message


def test_stray_trailers_are_reported() -> None:
    text = interchange([[BODY]]).replace("GE*1*1~", "SE*2*0009~GE*1*1~")
    assert codes(problems(text)) == ["x12-stray-trailer"]


def test_several_interchanges_groups_and_sets() -> None:
    text = interchange([[BODY, BODY], [BODY]]) + interchange(
        [[BODY]], es="|", cs=":", rep="^", version="00501", control="000000002", gs_version="005010"
    )
    assert problems(text) == []
    headers = {(h.control, h.version, h.position) for h, _ in _sets(text)}
    assert headers == {
        ("0001", "004010", 3),
        ("0002", "004010", 8),
        ("0003", "004010", 15),
        ("0001", "005010", 24),
    }


def test_read_sets_hands_out_set_segments_and_problems_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "m.edi"
    path.write_text(interchange([[BODY, BODY, BODY]]).replace("SE*5*0002", "SE*9*0002"))
    out = list(read_sets(path))
    kinds = [("P", o.position) if isinstance(o, Problem) else (o[1].tag, o[1].number) for o in out]
    assert kinds[:6] == [("ST", 3), ("M10", 4), ("LX", 5), ("M11", 6), ("SE", 7), ("P", 8)]
    assert kinds[6] == ("ST", 13)
    problem = next(o for o in out if isinstance(o, Problem))
    assert problem.findings[0].location == f"{path}:segment 12"


def test_read_sets_of_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    out = list(read_sets(tmp_path / "nope.edi"))
    assert len(out) == 1 and isinstance(out[0], Problem)
    assert out[0].findings[0].code == "x12-read-error"


def _sets(text: str) -> list[tuple[envelope.SetHeader, Segment]]:
    raw = text.encode("utf-8")
    checker = scan(io.BytesIO(raw), "f.edi")
    out = envelope._deliver(
        io.BytesIO(raw),
        "f.edi",
        4096,
        checker.broken_sets,
        sorted(checker.problems, key=lambda p: p.position),
    )
    return [o for o in out if not isinstance(o, Problem) and o[1].tag == "ST"]


# --------------------------------------------------------------------------- never raises

SOUND = interchange([[BODY, BODY], [BODY]]).encode("utf-8")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes) -> None:
    """Whatever the bytes: no exception, every problem has an error finding with a
    FILE:segment location, and every set handed out is whole (ST to SE)."""
    checker = scan(io.BytesIO(raw), "f.edi", chunk_size=7)
    for problem in checker.problems:
        assert any(f.severity is Severity.ERROR for f in problem.findings)
        assert all((f.location or "").startswith("f.edi:segment ") for f in problem.findings)
    delivered = list(
        envelope._deliver(io.BytesIO(raw), "f.edi", 7, checker.broken_sets, checker.problems)
    )
    tags = [o[1].tag for o in delivered if not isinstance(o, Problem)]
    assert tags.count("ST") == tags.count("SE")


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_an_isa_never_raise(tail: bytes) -> None:
    _check(isa().encode() + b"~" + tail)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "N1*CN*X",
                "ST*309*1",
                "SE*2*1",
                "GS*SO",
                "GE*1",
                "IEA*1",
                "A",
                "AB C*1",
                " N3 *x",
                "ABCD*1",
                "\x00",
                "ISA",
                "Ü1*x",
                "~",
                "\r\n",
            ]
        ),
        max_size=30,
    )
)
def test_the_first_pass_sees_the_same_segments_as_the_second(parts: list[str]) -> None:
    raw = (isa() + "~" + "~".join(parts)).encode("utf-8")

    def outline(envelope_only: bool) -> list[tuple[str, int | str | None]]:
        return [
            (t.tag, t.number) if isinstance(t, Segment) else (t.code, t.location)
            for t in segments(io.BytesIO(raw), "f.edi", 5, envelope_only)
        ]

    assert outline(True) == outline(False)


@FUZZ
@given(st.integers(min_value=0, max_value=len(SOUND)))
def test_truncation_anywhere_never_raises_and_keeps_the_whole_sets(cut: int) -> None:
    raw = SOUND[:cut]
    _check(raw)
    whole_sets = raw.count(b"SE*")
    assert len(_sets(raw.decode())) >= whole_sets - 1  # only a cut SE can lose its set


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(SOUND) - 1), st.sampled_from(list(b"*>~\n|^:U "))
        ),
        max_size=6,
    )
)
def test_separator_mix_ups_never_raise(changes: list[tuple[int, int]]) -> None:
    raw = bytearray(SOUND)
    for at, byte in changes:
        raw[at] = byte
    _check(bytes(raw))


PIECES = st.sampled_from(["N1*CN*X", "ST*309*1", "SE*2*1", "GS*SO", "GE*1", "IEA*1", "A",
                          "AB C*1", " N3 *x", "\x00", "ISA", "Ü1*x", "~", "\r\n", "LX*1",
                          isa(es="|", cs="^") + "\n", isa(control="000000002") + "~\r\n"])


@FUZZ
@given(st.lists(PIECES, max_size=30), st.integers(1, 64))
def test_a_tokenization_resumed_at_any_segment_goes_on_as_it_went(parts: list[str],
                                                                  chunk: int) -> None:
    """A reader that noted where a segment started (`Cursor.mark`) and reads again from
    there gets every item the first reading gave from that segment on: numbers, elements,
    separators (a later ISA's too) and findings, whatever the chunks the stream came in."""
    raw = (isa() + "~" + "~".join(parts)).encode("utf-8")
    cursor = tokenizer.Cursor()
    items, marks = [], []
    for item in segments(io.BytesIO(raw), "f.edi", chunk, cursor=cursor):
        items.append(item)
        marks.append(cursor.mark(item) if isinstance(item, Segment) else None)
    for i, mark in enumerate(marks):
        if mark is None:
            continue
        again = list(tokenizer.resume(io.BytesIO(raw), "f.edi", mark, chunk))
        assert again == items[i:]


@FUZZ
@given(st.lists(PIECES, max_size=30))
def test_a_reading_for_some_tags_sees_the_same_segments_with_their_elements(parts: list[str]
                                                                          ) -> None:
    raw = (isa() + "~" + "~".join(parts)).encode("utf-8")
    full = list(segments(io.BytesIO(raw), "f.edi", 7))
    some = list(segments(io.BytesIO(raw), "f.edi", 7, elements_of=frozenset({"N1"})))
    assert len(some) == len(full)
    for a, b in zip(full, some):
        if isinstance(a, Segment) and isinstance(b, Segment):
            assert (b.tag, b.number) == (a.tag, a.number)
            if a.tag in ("N1", *tokenizer.ENVELOPE_TAGS):
                assert b == a
        else:
            assert b == a


def test_an_interchange_whose_element_separator_ended_the_last_one_s_segments() -> None:
    """Two interchanges joined in one file, the second separating elements with what
    ended the first one's segments (`~`): the second ISA is a header, not a bare segment."""
    first = interchange([[BODY]], es="*", cs=">", term="~")
    second = interchange([[BODY]], es="~", cs=">", term="*\n", control="000000002")
    got = tokens(first + second)
    assert not [t for t in got if isinstance(t, Finding)], got
    isas = [s for s in got if isinstance(s, Segment) and s.tag == "ISA"]
    assert [s.delimiters.element for s in isas] == ["*", "~"]
    assert [s.get(13) for s in isas] == ["000000001", "000000002"]


# --------------------------------------------------------------------------- wrapped files

ROOT = Path(__file__).resolve().parents[2]


def _breaks_are_not_separators(path: Path) -> bool:
    """Whether none of the file's separators is a line break (some end segments with
    one: a copy of those without line breaks is another file)."""
    first = next(iter(segments(io.BytesIO(path.read_bytes()), path.name)))
    assert isinstance(first, Segment), path
    seps = first.delimiters
    return not any(c in "\r\n" for c in (seps.element, seps.component, seps.segment))


X12_FILES = [p for p in sorted([*(ROOT / "contrib" / "samples" / "x12-309").glob("*.edi"),
                                *(ROOT / ".." / "shared" / "realworld" / "x12").glob("*")])
             if _breaks_are_not_separators(p)]


def one_line(raw: bytes) -> bytes:
    """The file without its line breaks: what a wrapped copy of it must read as."""
    return raw.replace(b"\r", b"").replace(b"\n", b"")


def wrap(raw: bytes, width: int, newline: bytes) -> bytes:
    return newline.join(raw[i:i + width] for i in range(0, len(raw), width)) + newline


@pytest.mark.parametrize("path", X12_FILES, ids=lambda p: p.name)
@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 200), newline=st.sampled_from([b"\r\n", b"\n", b"\r"]),
       chunk=st.sampled_from([7, 64, tokenizer.CHUNK_SIZE]))
def test_a_wrapped_file_reads_as_the_same_file_in_one_line(path: Path, width: int, newline: bytes,
                                                           chunk: int) -> None:
    """Mailboxes and mainframes deliver X12 cut into lines of a fixed width (80,
    mostly), anywhere, the ISA included: the same segments, numbers and findings as
    the file in one line, and a reading resumed at any segment goes on as it went."""
    flat = one_line(path.read_bytes())
    wrapped = wrap(flat, width, newline)
    assert tokens(wrapped, chunk) == tokens(flat)
    cursor = tokenizer.Cursor()
    items, marks = [], []
    for item in segments(io.BytesIO(wrapped), "f.edi", chunk, cursor=cursor):
        items.append(item)
        marks.append(cursor.mark(item) if isinstance(item, Segment) else None)
    for i in range(0, len(marks), 5):
        if marks[i] is not None:
            assert list(tokenizer.resume(io.BytesIO(wrapped), "f.edi", marks[i], chunk)) == items[i:]


@pytest.mark.parametrize("cut", ["*>\r\n~GS", "*>~\r\nGS", "*\r\n>~GS", "\r\n*>~GS", "*>\n\n~GS"])
def test_an_isa_wrapped_at_its_end_keeps_its_terminator(cut: str) -> None:
    """A break right before ISA16, before the terminator or after it: the terminator is
    the separator after the break, not the break."""
    flat = interchange([[BODY]], term="~")
    assert flat[103:108] == "*>~GS"
    wrapped = flat[:103] + cut + flat[108:]
    assert segs(wrapped) == segs(flat)
    assert segs(wrapped)[0].delimiters.segment == "~"


@pytest.mark.parametrize("tail", [b"\x1a", b"\r\n\x1a", b"\x00" * 300, b"\n" + b"\x00" * 5 + b" \x1a"])
def test_padding_after_an_interchange_means_nothing(tail: bytes) -> None:
    """A DOS end-of-file mark (Ctrl-Z) or the NULs of a block-padded transfer after the
    IEA: the same segments, and no finding."""
    sound = interchange([[BODY]]).encode("utf-8")
    assert tokens(sound + tail) == tokens(sound) == segs(sound)
    two = sound + tail + interchange([[BODY]], control="000000002").encode("utf-8")
    assert len(segs(two)) == 2 * len(segs(sound))


@pytest.mark.parametrize("data", [b"\x00" * 300, b"\x1a", b"\x00" * 10 + interchange([[BODY]]).encode()])
def test_nuls_before_any_interchange_are_reported(data: bytes) -> None:
    """A file of NULs (a disk that lost its blocks) is no file: reported, never read as
    an empty one."""
    found = [t for t in tokens(data) if isinstance(t, Finding)]
    assert [f.code for f in found] == ["x12-not-x12"]

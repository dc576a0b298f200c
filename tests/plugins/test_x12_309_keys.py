"""`x12-309`'s `read_keys`, the pipeline's duplicate-key pass: the units of `read()` with
the same keys, locations and checkpoints, in the same order, without building the bills'
parties and lines; on the samples, every real-world X12 file and shuffled segments."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from read_keys_check import assert_same_keys
from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.x12_309 import X12309Options, X12309Source
from s321.record import FilerType, ModeOfTransport

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "contrib" / "samples" / "x12-309").iterdir())
REALWORLD = sorted((ROOT / ".." / "shared" / "realworld" / "x12").glob("*"))
SEGMENTS = [segment + b"~" for path in SAMPLES
            for segment in path.read_bytes().replace(b"\n", b"").split(b"~") if segment]


def source(path: Path) -> X12309Source:
    context = PipelineContext("trucks", "CAR001", FilerType.CARRIER, ModeOfTransport.TRUCK,
                              "pilot-2019", "x12-309", PipelineDefaults())
    return X12309Source(X12309Options(path=path), context)


def same_keys(path: Path) -> None:
    assert_same_keys(source(path))


def test_the_samples_and_real_world_files_give_the_same_keys():
    assert SAMPLES
    for path in [*SAMPLES, *REALWORLD]:
        same_keys(path)


def test_a_folder_with_a_missing_file_gives_the_same_keys(tmp_path):
    for n, path in enumerate(SAMPLES):
        (tmp_path / f"{n}.edi").write_bytes(path.read_bytes())
    (tmp_path / "broken.edi").write_bytes(b"ISA*00*~GS*SO~ST*309*1~LX*1~M11*X~SE*9*1~")
    same_keys(tmp_path)
    src = source(tmp_path / "absent.edi")
    assert [(u.key, u.location) for u in src.read_keys()] == [(u.key, u.location) for u in src.read()]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SEGMENTS) | st.binary(max_size=30), max_size=60))
def test_segments_in_any_order_give_the_same_keys(segments: list[bytes]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.edi"
        path.write_bytes(b"".join(segments))
        same_keys(path)

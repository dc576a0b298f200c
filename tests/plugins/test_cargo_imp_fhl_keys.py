"""`cargo-imp-fhl`'s `read_keys`, the pipeline's duplicate-key pass: the units of
`read()` with the same keys, locations and checkpoints, in the same order, without
reading the houses' own lines; on the sample, every real-world file and shuffled lines."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from read_keys_check import assert_same_keys
from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.cargo_imp_fhl import FhlOptions, FhlSource
from s321.record import FilerType, ModeOfTransport

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "contrib" / "samples" / "cargo-imp-fhl" / "houses.txt"
REALWORLD = ROOT / ".." / "shared" / "realworld" / "fhl"
LINES = [line for path in [SAMPLE, *sorted(REALWORLD.glob("*"))]
         for line in path.read_bytes().splitlines(keepends=True)]


def source(path: Path) -> FhlSource:
    context = PipelineContext(
        pipeline="air", originator_code="CAR001", filer_type=FilerType.CARRIER,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source="cargo-imp-fhl",
        defaults=PipelineDefaults())
    return FhlSource(FhlOptions(path=path), context)


def same_keys(path: Path) -> None:
    assert_same_keys(source(path))


def test_the_sample_and_real_world_files_give_the_same_keys():
    for path in [SAMPLE, *sorted(REALWORLD.glob("*"))]:
        same_keys(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES) | st.binary(max_size=30), max_size=60))
def test_lines_in_any_order_give_the_same_keys(lines: list[bytes]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.txt"
        path.write_bytes(b"".join(lines))
        same_keys(path)

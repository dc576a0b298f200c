"""Speed work must not change what s321 files: `preview --json` lines, the s321/1 batch
of the valid records and the ledger's stored JSON and content hash stay byte for byte
what commit 30d5847 wrote, on every bundled sample, every real-world file and seeded
generated inputs (tests/realworld/golden_run.py says how the golden copy is made)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realworld.golden_run import CORPUS, GOLDEN, digest, file_name, outputs

pytestmark = [pytest.mark.realworld,
              pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/realworld absent")]


@pytest.fixture(scope="module")
def today(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, dict[str, bytes]]]:
    work = tmp_path_factory.mktemp("byte-identical")
    return {name: (full, texts) for name, full, texts in outputs(work)}


GOLDEN_HASHES: dict[str, dict[str, str]] = json.loads((GOLDEN / "hashes.json").read_text())


def _first_difference(want: bytes, got: bytes) -> str:
    for n, (a, b) in enumerate(zip(want.splitlines(), got.splitlines(), strict=False), 1):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            return (f"line {n}, byte {at}:\n  golden: ...{a[max(0, at - 80):at + 80]!r}\n"
                    f"  today:  ...{b[max(0, at - 80):at + 80]!r}")
    return f"golden has {len(want.splitlines())} lines, today {len(got.splitlines())}"


def test_every_input_has_a_golden_copy(today):
    assert sorted(today) == sorted(GOLDEN_HASHES)
    assert len([n for n in today if n.startswith("realworld/")]) == len(
        [p for p in CORPUS.rglob("*")
         if p.is_file() and p.name != "SOURCES.md"])


@pytest.mark.parametrize("case", sorted(GOLDEN_HASHES))
def test_output_is_byte_identical_to_30d5847(today, case):
    full, texts = today[case]
    for part, value in texts.items():
        if full:
            want = (GOLDEN / file_name(case, part)).read_bytes()
            assert value == want, f"{case} {part}: {_first_difference(want, value)}"
        assert digest(value) == GOLDEN_HASHES[case][part], f"{case} {part} differs from 30d5847's"


def test_the_generated_inputs_are_not_trivial(today):
    """The generated cases hold hundreds of records each, and the Shopify export invalid
    ones too (the generated 309 manifests and FHL houses are all valid)."""
    for name in ("generated/shop-600", "generated/x12-309-600", "generated/cargo-imp-fhl-600"):
        lines = today[name][1]["preview.jsonl"].decode().splitlines()
        statuses = {json.loads(line)["status"] for line in lines}
        assert len(lines) >= 500 and "valid" in statuses, name
        assert "invalid" in statuses or not name.startswith("generated/shop"), name

"""`shopify-csv`'s `read_keys`, the pipeline's duplicate-key pass: the units of `read()`
with the same keys, locations and checkpoints, in the same order, without payloads; and
the pipeline finds the same duplicates through it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from read_keys_check import assert_same_keys
from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.shopify_csv import ShopifyCsvOptions, ShopifyCsvSource
from s321.record import FilerType, ModeOfTransport

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "contrib" / "samples" / "shop" / "orders_export.csv"
HEADER = EXPORT.read_text(encoding="utf-8-sig").splitlines()[0]
REALWORLD = ROOT / ".." / "shared" / "realworld" / "shopify-csv"


def source(path: Path) -> ShopifyCsvSource:
    context = PipelineContext(
        pipeline="shop", originator_code="MKT001", filer_type=FilerType.ONLINE_MARKETPLACE,
        mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019", source="shopify-csv",
        defaults=PipelineDefaults())
    return ShopifyCsvSource(ShopifyCsvOptions(path=path), context)


def same_keys(path: Path) -> None:
    assert_same_keys(source(path))


def test_the_sample_and_real_world_exports_give_the_same_keys():
    for path in [EXPORT, *sorted(REALWORLD.glob("*"))]:
        same_keys(path)


def test_a_folder_and_missing_files_give_the_same_keys(tmp_path: Path):
    (tmp_path / "a.csv").write_bytes(EXPORT.read_bytes())
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe not utf-8\n")
    (tmp_path / "c.csv").write_text("Name,Currency\n#1,USD\n", encoding="utf-8")
    same_keys(tmp_path)
    src = source(tmp_path)
    assert [u.key for u in src.read_keys([tmp_path / "gone.csv"])] == [
        u.key for u in src.read([tmp_path / "gone.csv"])]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2000) | st.lists(
    st.sampled_from(EXPORT.read_bytes().splitlines(keepends=True)[1:] + [b"\r\n", b'"\n', b"#9,\r"]),
    max_size=40).map(b"".join))
def test_arbitrary_rows_give_the_same_keys(body: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(("\ufeff" + HEADER + "\r\n").encode() + body)
        same_keys(path)

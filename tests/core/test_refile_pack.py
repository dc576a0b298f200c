"""Raw units kept in the ledger (s321.refile.pack/unpack): every first-party source's
units come back equal, and a kept blob that names anything but a data class (a tampered
ledger) is refused instead of run."""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import pytest

from s321 import app
from s321.refile import pack, unpack

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples"

CONFIG = """
[pipelines.p]
originator_code = "X1"
filer_type = "{filer}"
mode_of_transport = "air"
[pipelines.p.source]
plugin = "{plugin}"
path = "{path}"
[pipelines.p.transport]
plugin = "file"
directory = "{out}"
"""


@pytest.mark.parametrize(("plugin", "sample", "filer"), [
    ("shopify-csv", "shop/orders_export.csv", "online_marketplace"),
    ("shopify-json", "shop/order-webhook.json", "online_marketplace"),
    ("records-jsonl", "shop/orders.jsonl", "online_marketplace"),
    ("x12-309", "x12-309/manifest-005010.edi", "carrier"),
    ("cargo-imp-fhl", "cargo-imp-fhl/houses.txt", "carrier"),
])
def test_every_sources_units_come_back_equal(tmp_path: Path, plugin: str, sample: str, filer: str) -> None:
    config = tmp_path / "s321.toml"
    config.write_text(CONFIG.format(plugin=plugin, path=SAMPLES / sample, out=tmp_path / "out", filer=filer))
    _registry, loaded = app.load(config)
    pipeline = loaded.pipelines["p"]
    source = pipeline.source.factory(pipeline.source_options, pipeline.context)
    units = list(source.read())
    assert units
    for unit in units:
        blob = pack(unit)
        assert blob is not None and unpack(blob) == unit


class _Shell:
    def __reduce__(self):  # noqa: ANN204
        import os
        return (os.system, ("echo pwned",))


def test_a_blob_naming_a_callable_is_refused_not_run() -> None:
    for evil in (_Shell(), {"payload": _Shell()}):
        blob = zlib.compress(pickle.dumps(evil))
        with pytest.raises(ValueError, match="not a kept unit's data class"):
            unpack(blob)

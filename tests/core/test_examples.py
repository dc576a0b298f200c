"""The example configs in config/ load as they are: what a new user copies first works."""

from pathlib import Path

import pytest

from s321 import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "config").glob("*.toml") if not p.name.startswith("relay"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_config_loads(path):
    _registry, loaded = app.load(path)
    assert loaded.pipelines


def test_the_shop_example_previews_the_bundled_export():
    _registry, loaded = app.load(ROOT / "config" / "shop.toml")
    statuses = [o.status.value for o in app.preview(loaded, "shop")]
    assert statuses.count("valid") >= 25 and "invalid" in statuses and "skipped" in statuses

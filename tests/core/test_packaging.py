"""A wheel holds every package folder: each folder with an __init__.py under core/,
plugins/ and adapters/ is listed in pyproject's packages, under its import name."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOTS = {"core": "s321", "plugins": "s321.plugins", "adapters": "s321.adapters"}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found <= listed, f"not packaged: {sorted(found - listed)}"

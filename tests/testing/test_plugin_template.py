"""The plugin template (contrib/plugin-template) is a real distribution: installed
by `make test`, listed and loaded by `s321 plugins`, its tests part of every run,
and s321's pytest plugin registered for it and for every other plugin author."""

from __future__ import annotations

import json
import subprocess
import sys
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "contrib" / "plugin-template"


def test_s321_plugins_lists_the_template_as_loaded() -> None:
    try:
        dist = metadata.distribution("s321-bazaarly")
    except metadata.PackageNotFoundError:
        pytest.skip("the plugin template is not installed here; `make test` installs it "
                    "(pip install -e contrib/plugin-template), and so does CI")
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "plugins", "--json"],
                          capture_output=True, text=True, check=True)
    rows = {row["name"]: row for row in map(json.loads, proc.stdout.splitlines())}
    bazaarly = rows["bazaarly"]
    assert (bazaarly["status"], bazaarly["distribution"], bazaarly["error"]) == ("loaded", "s321-bazaarly", None)
    assert {(c["kind"], c["name"]) for c in bazaarly["components"]} == {
        ("source", "bazaarly-csv"), ("mapper", "bazaarly-csv"), ("validator", "bazaarly-listing-links"),
        ("transport", "bazaarly-http")}
    # The installed template is this checkout's, not a stale copy.
    assert Path(str(dist.locate_file(""))).exists()
    import s321_bazaarly
    assert Path(s321_bazaarly.__file__).is_relative_to(TEMPLATE)


def test_the_template_tests_and_the_pytest_plugin_are_part_of_the_build() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "contrib/plugin-template/tests" in project["tool"]["pytest"]["ini_options"]["testpaths"]
    assert project["project"]["entry-points"]["pytest11"] == {"s321": "s321.testing.plugin"}
    assert "s321.testing" in project["tool"]["setuptools"]["packages"]
    assert re.search(r"pip install( -\w+)* -e contrib/plugin-template", (ROOT / "Makefile").read_text(encoding="utf-8"))


def test_the_template_test_modules_do_not_clash_with_the_main_suite() -> None:
    main = {p.name for p in (ROOT / "tests").rglob("test_*.py")}
    template = {p.name for p in (TEMPLATE / "tests").rglob("test_*.py")}
    assert template and not (main & template)

"""The plugin reference page is generated from the options models and kept current:
this test fails when an option was added, removed or changed without regenerating it
(`python -m s321.cli.docgen`)."""

import subprocess
import sys
from pathlib import Path

from s321.cli import docgen
from s321.registry import load

PAGE = Path(__file__).parents[2] / "docs" / "plugins-reference.md"


def test_the_plugin_reference_is_up_to_date():
    assert PAGE.read_text(encoding="utf-8") == docgen.render(load()), (
        "docs/plugins-reference.md is out of date: run `python -m s321.cli.docgen`")


def test_every_option_of_every_first_party_source_and_transport_is_on_the_page():
    registry = load()
    page = PAGE.read_text(encoding="utf-8")
    first_party = {i.name for i in registry.plugins if i.distribution == "s321"}
    for kind in ("source", "transport"):
        for name in registry.names(kind):
            comp = registry.get(kind, name)
            if comp.plugin not in first_party:
                assert f"### `{name}`" not in page  # third parties document their own
                continue
            section = page[page.index(f"### `{name}`"):]
            section = section[:section.find("\n### ", 1) if "\n### " in section[1:] else None]
            for option in comp.options.model_fields:
                assert f"| `{option}` |" in section, (name, option)


def test_the_check_mode_exits_1_for_a_stale_page(tmp_path):
    stale = tmp_path / "page.md"
    stale.write_text("# an old page\n")
    cmd = [sys.executable, "-m", "s321.cli.docgen", "-o", str(stale)]
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0
    assert "| `directory` | path (relative to the config file) | required |" in stale.read_text()

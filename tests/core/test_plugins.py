"""Plugin loading through entry points: first-party plugins, broken ones, strict mode,
the block list, and `s321 plugins`."""

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from s321 import registry as registry_mod
from s321.errors import PluginError
from s321.hookspecs import hookimpl

FIRST_PARTY = {("source", "records-jsonl"), ("transport", "file"), ("serializer", "s321/1")}


def fake_distribution(site: Path, name: str, module_source: str) -> None:
    """An installed distribution on disk, found by importlib.metadata like any other."""
    dist = site / f"{name}-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(f"[s321]\n{name} = {name}_mod\n")
    (site / f"{name}_mod.py").write_text(textwrap.dedent(module_source))


def plugins_json(site: Path | None = None, **env: str) -> tuple[int, list[dict], str]:
    environ = dict(os.environ, **env)
    if site is not None:
        environ["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "plugins", "--json"],
                          capture_output=True, text=True, env=environ)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_first_party_plugins_load_through_entry_points():
    reg = registry_mod.load()
    loaded = {(kind, name) for p in reg.plugins if p.status == "loaded" for kind, name in p.components}
    assert FIRST_PARTY <= loaded
    wire = next(p for p in reg.plugins if p.name == "wire-s321")
    assert (wire.distribution, wire.status) == ("s321", "loaded")


def test_plugins_json_lists_distribution_version_status_and_components():
    code, rows, _ = plugins_json()
    assert code == 0
    files = next(r for r in rows if r["name"] == "file-transport")
    assert files["distribution"] == "s321" and files["version"] and files["status"] == "loaded"
    assert files["components"] == [{"kind": "transport", "name": "file"}]


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path):
    fake_distribution(tmp_path, "brokenplug", "import module_that_is_not_installed\n")
    code, rows, _ = plugins_json(tmp_path)
    assert code == 0
    broken = next(r for r in rows if r["name"] == "brokenplug")
    assert broken["status"] == "failed" and broken["distribution"] == "brokenplug"
    assert "module_that_is_not_installed" in broken["error"]
    assert any(r["name"] == "file-transport" and r["status"] == "loaded" for r in rows)


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path):
    fake_distribution(tmp_path, "brokenplug", "raise RuntimeError('boom at import')\n")
    code, _rows, err = plugins_json(tmp_path, S321_STRICT_PLUGINS="1")
    assert code != 0 and "brokenplug" in err and "boom at import" in err


def test_a_third_party_plugin_registers_like_a_first_party_one(tmp_path):
    fake_distribution(tmp_path, "acmeplug", """
        from s321.hookspecs import hookimpl
        @hookimpl
        def register_validators(register):
            register("acme-rules", lambda options, context: None)
    """)
    _code, rows, _ = plugins_json(tmp_path)
    acme = next(r for r in rows if r["name"] == "acmeplug")
    assert acme["status"] == "loaded" and acme["components"] == [{"kind": "validator", "name": "acme-rules"}]


def test_the_block_list_disables_named_plugins(tmp_path):
    fake_distribution(tmp_path, "brokenplug", "raise RuntimeError('must not be imported')\n")
    _code, rows, _ = plugins_json(tmp_path, S321_BLOCK_PLUGINS="brokenplug,file-transport")
    status = {r["name"]: r["status"] for r in rows}
    assert status["brokenplug"] == "blocked" and status["file-transport"] == "blocked"
    reg = registry_mod.load(block=["file-transport"])
    assert not reg.has("transport", "file")


def test_a_plugin_whose_registration_raises_is_skipped_and_leaves_nothing_behind():
    reg = registry_mod.Registry()
    mod = types.ModuleType("halfway")

    @hookimpl
    def register_sources(register):
        register("half-source", lambda o, c: None)
        raise ValueError("second component broken")

    mod.register_sources = register_sources
    info = reg.add_plugin(mod, "halfway")
    assert info.status == "failed" and "second component broken" in info.error
    assert not reg.has("source", "half-source")


def test_two_plugins_cannot_register_the_same_name():
    reg = registry_mod.Registry()
    for plugin in ("one", "two"):
        mod = types.ModuleType(plugin)

        @hookimpl
        def register_transports(register):
            register("same", lambda o, c, s: None)

        mod.register_transports = register_transports
        reg.add_plugin(mod, plugin)
    assert [p.status for p in reg.plugins] == ["loaded", "failed"]
    assert "already registered by plugin 'one'" in reg.plugins[1].error


def test_an_unknown_component_name_gets_did_you_mean():
    reg = registry_mod.load()
    with pytest.raises(PluginError, match="unknown source 'records-jsnol'; did you mean 'records-jsonl'"):
        reg.get("source", "records-jsnol")

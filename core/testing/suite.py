"""What every conformance suite shares: which plugin it is about, and the failure
message that tells an author how to fix a suite that is set up wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError
from s321.registry import Registry
from s321.testing.harness import Plugin, build_registry


class PluginSuite:
    plugin_module: ClassVar[Any] = None
    """The module (or object) with the hookimpls. Leave None when the plugin is
    installed (its entry point makes it known); set it to test a working copy."""
    plugin_name: ClassVar[str | None] = None
    """The name to register `plugin_module` under (default: its module name)."""

    def plugins(self) -> list[Plugin]:
        if self.plugin_module is None:
            return []
        if self.plugin_name:
            return [(self.plugin_name, self.plugin_module)]
        return [self.plugin_module]

    def registry(self) -> Registry:
        return build_registry(self.plugins())

    def component_or_fail(self, registry: Registry, kind: str, name: str) -> Any:
        if not name:
            pytest.fail(f"{type(self).__name__}: set `{kind}_name` to the name your plugin "
                        f"registers the {kind} under")
        if not registry.has(kind, name):
            known = ", ".join(registry.names(kind)) or "none"
            pytest.fail(f"no {kind} named {name!r} is registered (known: {known}). Set "
                        f"`plugin_module` to your plugin's module, or install its distribution "
                        f"so that its `s321` entry point is found; `s321 plugins` shows what loaded.")
        return registry.get(kind, name)


def assert_rejects_unknown_keys(model: type[BaseModel], table: dict[str, Any], base_dir: Path) -> None:
    """`table` holds one key the model does not know: validating it must fail on that key."""
    try:
        model.model_validate(table, context={"base_dir": base_dir})
    except ValidationError as exc:
        if any(e["type"] == "extra_forbidden" for e in exc.errors()):
            return
        raise AssertionError(f"the options did not validate, for another reason than the unknown "
                             f"key: {exc}") from exc
    raise AssertionError("the options model must reject unknown keys, so that a typo in a config "
                         "is an error: `model_config = ConfigDict(extra=\"forbid\")`")

"""Plugin loading and the component registry.

Plugins are found through the `s321` entry-point group and loaded one by one: a plugin
that fails to import or to register is reported and skipped, unless strict mode
(`S321_STRICT_PLUGINS=1`) makes that fatal for plugin developers. Blocked plugins
(config `[plugins] block = [...]` or `S321_BLOCK_PLUGINS=a,b`) are not imported at all.
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict

from s321 import hookspecs
from s321.errors import PluginError

ENTRY_POINT_GROUP = "s321"
KINDS = ("source", "mapper", "validator", "transport", "serializer")
STRICT_ENV = "S321_STRICT_PLUGINS"
BLOCK_ENV = "S321_BLOCK_PLUGINS"


class NoOptions(BaseModel):
    """Options model of a component that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    options: type[BaseModel]
    plugin: str
    description: str = ""
    id_namespace: str | None = None


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    status: str  # loaded | failed | blocked
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "components": [{"kind": k, "name": n} for k, n in self.components],
        }


class Registry:
    """Every component the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.plugins: list[PluginInfo] = []
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.pm = pluggy.PluginManager("s321")
        self.pm.add_hookspecs(hookspecs)

    # ------------------------------------------------------------------ lookup

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._components[kind][name]
        except KeyError:
            raise PluginError(unknown_name(kind, name, self.names(kind))) from None

    def has(self, kind: str, name: str) -> bool:
        return name in self._components[kind]

    # ------------------------------------------------------------------ loading

    def add_plugin(self, module: object, name: str, distribution: str | None = None,
                   version: str | None = None) -> PluginInfo:
        """Register one plugin object (a module with hookimpls) and collect its
        components. Errors are recorded on the returned PluginInfo, not raised."""
        info = PluginInfo(name, distribution, version, "loaded")
        try:
            self.pm.register(module, name=name)
        except Exception as exc:  # a broken plugin must not stop the others
            return self._failed(info, exc)
        try:
            for kind in KINDS:
                hook = getattr(self.pm.hook, f"register_{kind}s")
                callback = self._register_callback(kind, name, info)
                # Called per plugin (not through the hook caller) so that each
                # component is attributed to the plugin that registered it.
                for impl in hook.get_hookimpls():
                    if impl.plugin is module:
                        impl.function(**({"register": callback} if impl.argnames else {}))
        except Exception as exc:
            self.pm.unregister(module)
            self._drop_components(name)
            return self._failed(info, exc)
        self.plugins.append(info)
        return info

    def _failed(self, info: PluginInfo, exc: BaseException) -> PluginInfo:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        info.components = []
        self.plugins.append(info)
        if strict():
            raise PluginError(f"plugin {info.name!r} failed to load: {info.error}") from exc
        return info

    def _drop_components(self, plugin: str) -> None:
        for by_name in self._components.values():
            for cname in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[cname]

    def _register_callback(self, kind: str, plugin: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], options: type[BaseModel] = NoOptions,
                     description: str = "", id_namespace: str | None = None) -> None:
            existing = self._components[kind].get(name)
            if existing is not None:
                raise PluginError(
                    f"{kind} {name!r} is already registered by plugin {existing.plugin!r}"
                )
            if not (isinstance(options, type) and issubclass(options, BaseModel)):
                raise PluginError(f"{kind} {name!r}: options must be a pydantic model class")
            self._components[kind][name] = Component(kind, name, factory, options, plugin, description,
                                                     id_namespace)
            info.components.append((kind, name))

        return register


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    valid = ", ".join(repr(k) for k in known) or "none registered"
    return f"unknown {kind} {name!r}{hint} (known: {valid})"


def load(block: Iterable[str] = ()) -> Registry:
    """Load every plugin of the `s321` entry-point group, one by one."""
    blocked = set(block) | {b.strip() for b in os.environ.get(BLOCK_ENV, "").split(",") if b.strip()}
    registry = Registry()
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if ep.name in blocked:
            registry.plugins.append(PluginInfo(ep.name, dist, version, "blocked"))
            continue
        try:
            module = ep.load()
        except Exception as exc:
            info = PluginInfo(ep.name, dist, version, "failed",
                              error=f"{type(exc).__name__}: {exc}")
            registry.plugins.append(info)
            if strict():
                raise PluginError(
                    f"plugin {ep.name!r} failed to import: {info.error}\n{traceback.format_exc()}"
                ) from exc
            continue
        registry.add_plugin(module, ep.name, dist, version)
    return registry

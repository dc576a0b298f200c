"""An in-memory pipeline harness: a real config file, the real plugin registry (every
installed plugin, plus the ones a test adds), the real runtime and ledger, and a
`memory` transport whose receiver acknowledges like CBP.

What a test sees is what `s321 preview` and `s321 run --once` would do with the same
config; `harness.config_path` is that config, for running the CLI on it by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from s321 import config as config_mod
from s321 import registry as registry_mod
from s321.app import preview as app_preview
from s321.config import LoadedConfig
from s321.contracts import Transport
from s321.errors import PluginError
from s321.hookspecs import hookimpl
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.pipeline import Outcome, Processor
from s321.registry import Registry
from s321.runner import RunSummary
from s321.runner import run_once as runner_run_once
from s321.testing import toml
from s321.testing.doubles import FaultyTransport, MemoryReceiver, MemoryTransport
from s321.testing.samples import ORIGINATOR

HARNESS_PLUGIN = "s321-testing"
MEMORY = "memory"
"""Transport name of the harness's in-memory receiver."""

Plugin = object | tuple[str, object]
"""A plugin to add: a module (or object) with hookimpls, or (name, module)."""


class _HarnessPlugin:
    """Registers the `memory` transport, bound to one harness's receiver."""

    def __init__(self, receiver: MemoryReceiver):
        self.receiver = receiver

    @hookimpl
    def register_transports(self, register: Any) -> None:
        register(MEMORY, self._transport,
                 description="in-memory receiver of s321.testing (acknowledges like CBP)")

    def _transport(self, options: Any, context: Any, serializer: Any) -> MemoryTransport:
        return MemoryTransport(self.receiver, serializer)


def build_registry(plugins: Iterable[Plugin] = ()) -> Registry:
    """Every installed plugin (as `s321 plugins` lists them), the harness's `memory`
    transport, then `plugins`. A plugin that is already installed is not added twice;
    one that fails to load raises, so a test never runs without the plugin it is about."""
    registry = registry_mod.load()
    registry.add_plugin(_HarnessPlugin(MemoryReceiver()), HARNESS_PLUGIN)
    for plugin in plugins:
        name, module = plugin if isinstance(plugin, tuple) else (_name_of(plugin), plugin)
        if registry.pm.is_registered(module):
            continue
        info = registry.add_plugin(module, name)
        if info.status != "loaded":
            raise PluginError(f"plugin {name!r} did not load: {info.error}")
    return registry


def _transmit_here(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with `[daemon] transmit = "thread"` unless it says otherwise: the
    harness's runs transmit in the test's own process, where its doubles are (the
    `memory` receiver, a `wrap_transport` fault, the plugins under test, the ledger it
    keeps open for asserts); a transmit process would see none of them. A test about
    the transmit process sets "process" itself."""
    daemon = dict(config.get("daemon") or {})
    daemon.setdefault("transmit", "thread")
    return {**config, "daemon": daemon}


def _name_of(plugin: object) -> str:
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


def pipeline_config(source: Mapping[str, Any], transport: Mapping[str, Any] | None = None, *,
                    name: str = "test", currency_rates: Mapping[str, Any] | None = None,
                    **pipeline: Any) -> dict[str, Any]:
    """A config dict with one pipeline: an online marketplace filing by air under
    `pilot-2019` unless `pipeline` says otherwise, sending to the `memory` transport
    unless `transport` names another. `source` is the source table (`plugin` and
    its options)."""
    table: dict[str, Any] = {
        "originator_code": ORIGINATOR,
        "filer_type": "online_marketplace",
        "mode_of_transport": "air",
        "profile": "pilot-2019",
        **pipeline,
        "source": dict(source),
        "transport": dict(transport or {"plugin": MEMORY}),
    }
    rates = {"USD": "1", "EUR": "1.08", "GBP": "1.27", "CAD": "0.73", "CNY": "0.14",
             **{k: str(v) for k, v in (currency_rates or {}).items()}}
    return {"currency_rates": rates, "pipelines": {name: table}}


class PipelineHarness:
    """Pipelines built from a config dict, run as the CLI runs them, in `folder`.

    Relative paths in the config are relative to `folder`; the ledger is
    `folder/s321-ledger.sqlite` unless the config names another.
    """

    def __init__(self, folder: str | Path, config: Mapping[str, Any], plugins: Iterable[Plugin] = (),
                 registry: Registry | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.registry = registry or build_registry(plugins)
        own = self.registry.pm.get_plugin(HARNESS_PLUGIN)
        if not isinstance(own, _HarnessPlugin):
            own = _HarnessPlugin(MemoryReceiver())
            self.registry.add_plugin(own, HARNESS_PLUGIN)
        self.receiver: MemoryReceiver = own.receiver
        """Where the `memory` transport delivers: what arrived, what it accepted."""
        self.config_path = self.folder / "s321.toml"
        self.config_path.write_text(toml.dumps(_transmit_here(config)), encoding="utf-8")
        self.loaded: LoadedConfig = config_mod.load(self.config_path, self.registry)
        self._ledger: Ledger | None = None

    # ------------------------------------------------------------------ pipelines

    def name(self, pipeline: str | None = None) -> str:
        """`pipeline`, or the config's only pipeline."""
        if pipeline is not None:
            return pipeline
        names = list(self.loaded.pipelines)
        if len(names) != 1:
            raise ValueError(f"the config has {len(names)} pipelines ({', '.join(names)}): name one")
        return names[0]

    def processor(self, pipeline: str | None = None) -> Processor:
        """A fresh source, mapper and validators of a pipeline, as the runtime builds them."""
        return Processor(self.loaded.pipelines[self.name(pipeline)], self.loaded.rates)

    def transport(self, pipeline: str | None = None) -> Transport:
        """A new transport of a pipeline, built by its plugin's factory from the config."""
        p = self.loaded.pipelines[self.name(pipeline)]
        return p.transport.factory(p.transport_options, p.context, p.serializer.factory())

    def wrap_transport(self, pipeline: str | None = None,
                       faulty: FaultyTransport | None = None) -> FaultyTransport:
        """From now on the pipeline's transport is wrapped in `faulty` (a new
        FaultyTransport by default), which is returned for the test to command."""
        name = self.name(pipeline)
        p = self.loaded.pipelines[name]
        original = p.transport
        wrapper = faulty or FaultyTransport(
            original.factory(p.transport_options, p.context, p.serializer.factory()))

        def factory(options: Any, context: Any, serializer: Any) -> FaultyTransport:
            # A fresh inner transport each time, as the runtime makes one after a close.
            return wrapper.attach(original.factory(options, context, serializer))

        p.transport = dataclasses.replace(original, factory=factory)
        return wrapper

    # ------------------------------------------------------------------ running

    def preview(self, files: Iterable[str | Path] = (), pipeline: str | None = None) -> list[Outcome]:
        """What `s321 preview` shows: one outcome per unit, nothing transmitted."""
        return list(app_preview(self.loaded, self.name(pipeline), [Path(f) for f in files]))

    def run_once(self, *pipelines: str) -> list[RunSummary]:
        """What `s321 run --once` does, with this harness's ledger kept open for asserts."""
        return runner_run_once(self.registry, self.loaded, list(pipelines) or None, ledger=self.ledger)

    def settle(self, *pipelines: str, runs: int = 4) -> list[RunSummary]:
        """`run_once` again until nothing is queued or awaiting an ack (at most `runs`
        times), as an operator re-running `s321 run --once` would. The last summaries."""
        summaries: list[RunSummary] = []
        for _ in range(runs):
            summaries = self.run_once(*pipelines)
            if all(s.queued == 0 and s.awaiting_ack == 0 for s in summaries):
                break
        return summaries

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            section = self.loaded.config.ledger
            self._ledger = open_ledger(section)
        return self._ledger

    @property
    def rates(self) -> dict[str, Decimal]:
        return self.loaded.rates

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

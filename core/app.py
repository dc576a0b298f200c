"""What the CLI and other front ends call: load plugins and config, preview, run once,
schemas. Each function returns data; presenting it is the caller's business."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from s321 import config as config_mod
from s321.registry import Registry
from s321.registry import load as load_plugins
from s321.config import LoadedConfig
from s321.errors import ConfigError
from s321.pipeline import Outcome, Processor
from s321.record import Consignment
from s321.runner import RunSummary
from s321.runner import run_once as _run_once


def load_registry(config_path: str | Path | None = None) -> Registry:
    """Load plugins, honouring the block list of the config when one is given."""
    block: list[str] = []
    if config_path is not None:
        raw = config_mod.read_toml(Path(config_path))
        section = raw.get("plugins", {})
        if isinstance(section, dict) and isinstance(section.get("block", []), list):
            block = [str(b) for b in section.get("block", [])]
    return load_plugins(block)


def load(config_path: str | Path) -> tuple[Registry, LoadedConfig]:
    registry = load_registry(config_path)
    return registry, config_mod.load(config_path, registry)


def preview(loaded: LoadedConfig, pipeline: str, files: Iterable[Path] = ()) -> Iterator[Outcome]:
    """Map and validate, transmit nothing. Raises ConfigError for an unknown pipeline,
    FileNotFoundError for a named file that is not there."""
    if pipeline not in loaded.pipelines:
        raise ConfigError([f"{loaded.path}: pipelines.{pipeline}: no such pipeline "
                           f"(known: {', '.join(sorted(loaded.pipelines))})"])
    paths = [Path(f) for f in files] or None
    for path in paths or []:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
    processor = Processor(loaded.pipelines[pipeline], loaded.rates)
    yield from processor.process(paths)


def run_once(registry: Registry, loaded: LoadedConfig, only: Iterable[str] = (),
             watch: Any = None) -> list[RunSummary]:
    return _run_once(registry, loaded, list(only) or None, watch=watch)


def schema(kind: str) -> dict[str, Any]:
    if kind == "record":
        return Consignment.model_json_schema()
    if kind == "config":
        return config_mod.Config.model_json_schema()
    raise ValueError(f"unknown schema {kind!r}; choose 'config' or 'record'")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def probe_transports(loaded: LoadedConfig) -> list[tuple[str, tuple[bool, str]]]:
    """Connect each pipeline's transport (its `probe()` where it has one), send no
    data, and report (ok, message) per pipeline."""
    results = []
    for name, p in loaded.pipelines.items():
        try:
            transport = p.transport.factory(p.transport_options, p.context, p.serializer.factory())
            probe = getattr(transport, "probe", None)
            if callable(probe):
                message = str(probe() or "connected")
            else:
                transport.connect()
                transport.close()
                message = "connected"
            results.append((name, (True, f"{p.transport.name}: {message}")))
        except Exception as exc:
            results.append((name, (False, f"{p.transport.name}: {type(exc).__name__}: {exc}")))
    return results

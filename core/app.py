"""What the CLI and other front ends call: load plugins and config, preview, run once,
schemas. Each function returns data; presenting it is the caller's business."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from s321 import config as config_mod
from s321 import parallel
from s321.registry import Registry
from s321.registry import load as load_plugins
from s321.config import LoadedConfig, Pipeline
from s321.errors import ConfigError, S321Error
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


def preview(loaded: LoadedConfig, pipeline: str, files: Iterable[Path] = (),
            jobs: int | str = 1) -> Iterator[Outcome]:
    """Map and validate, transmit nothing. Raises ConfigError for an unknown pipeline,
    FileNotFoundError for a named file that is not there. With `jobs` above 1 or "auto"
    a large input is worked on by that many processes (s321.parallel): the outcomes are
    the same, but carry their `--json` line (`to_json()`) instead of their record."""
    if pipeline not in loaded.pipelines:
        raise ConfigError([f"{loaded.path}: pipelines.{pipeline}: no such pipeline "
                           f"(known: {', '.join(sorted(loaded.pipelines))})"])
    paths = [Path(f) for f in files] or None
    for path in paths or []:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
    workers = parallel.workers_for(jobs)
    if workers > 1:
        yield from parallel.preview(loaded.pipelines[pipeline], loaded.rates, paths, workers,
                                    lambda: open_pipeline(loaded, pipeline))
        return
    processor = open_pipeline(loaded, pipeline)
    yield from processor.process(paths)


def open_pipeline(loaded: LoadedConfig, name: str) -> Processor:
    """Build a pipeline's source, mapper and validators, which opens every file they
    name (enrichment tables). Raises ConfigError, one line naming the config, the
    pipeline and what is wrong with which file, for one that cannot be used."""
    try:
        return Processor(loaded.pipelines[name], loaded.rates)
    except S321Error as exc:
        raise ConfigError([f"{loaded.path}: pipelines.{name}.source: {exc}"]) from None
    except Exception as exc:  # a plugin bug: still one line, never a traceback
        raise ConfigError([f"{loaded.path}: pipelines.{name}: the source cannot be started: "
                           f"{type(exc).__name__}: {exc}"]) from None


@dataclass
class CheckReport:
    """What `check` found: errors (the config cannot run as it is), warnings (it runs,
    but probably not as meant) and the pipelines that resolved."""

    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)
    loaded: LoadedConfig | None = None


def check(config_path: str | Path) -> CheckReport:
    """Every problem of a config in one pass: its structure, plugin names and options,
    profiles, the enrichment tables each pipeline names (opened and read), and inputs
    that do not exist (warnings). Raises ConfigError only for a file that cannot be
    read or parsed at all."""
    path = Path(config_path)
    registry = load_registry(path)
    loaded, errors = config_mod.load_all(path, registry)
    report = CheckReport(path, list(errors), loaded=loaded)
    if loaded is None:
        return report
    for name, pipeline in loaded.pipelines.items():
        try:
            open_pipeline(loaded, name)
        except ConfigError as exc:
            report.errors.extend(exc.lines)
            continue
        report.pipelines.append(name)
        report.warnings.extend(input_warnings(loaded.path, pipeline))
    return report


def input_warnings(config_path: Path, pipeline: Pipeline) -> list[str]:
    """A source `path` (inbox, file) that does not exist: the pipeline would read nothing."""
    where = pipeline.source_options
    folder = getattr(where, "path", None)
    if isinstance(folder, Path) and not folder.exists():
        return [f"{config_path}: pipelines.{pipeline.name}.source.path: {folder} does not exist "
                f"(the pipeline would find nothing to read)"]
    return []


def run_once(registry: Registry, loaded: LoadedConfig, only: Iterable[str] = (),
             watch: Any = None) -> list[RunSummary]:
    return _run_once(registry, loaded, list(only) or None, watch=watch)


def schema(kind: str, registry: Registry | None = None) -> dict[str, Any]:
    if kind == "record":
        return Consignment.model_json_schema()
    if kind == "config":
        return config_schema(registry or load_registry())
    raise ValueError(f"unknown schema {kind!r}; choose 'config' or 'record'")


def config_schema(registry: Registry) -> dict[str, Any]:
    """The config's JSON Schema with each plugin's own options: a pipeline's `source`
    and `transport` tables are one of the registered plugins' tables (`plugin` set to
    its name), so that an editor completes and checks the options of the plugin named."""
    tables: dict[str, list[tuple[str, type[BaseModel]]]] = {
        kind: [(n, registry.get(kind, n).options) for n in registry.names(kind)]
        for kind in ("source", "transport")}
    models = [config_mod.Config, *(m for entries in tables.values() for _, m in entries)]
    keys, combined = models_json_schema([(m, "validation") for m in dict.fromkeys(models)],
                                        ref_template="#/$defs/{model}")
    defs: dict[str, Any] = combined.get("$defs", {})

    def ref_name(model: type[BaseModel]) -> str:
        return str(keys[(model, "validation")]["$ref"]).rsplit("/", 1)[-1]

    top = defs.pop(ref_name(config_mod.Config))
    pipeline_def = defs.get("PipelineConfig", {})
    for kind, entries in tables.items():
        choices = []
        for name, model in entries:
            body = dict(defs[ref_name(model)])
            body["properties"] = {"plugin": {"const": name, "description": f"the {kind} plugin"},
                                  **body.get("properties", {})}
            body["required"] = ["plugin", *body.get("required", [])]
            body["title"] = f"{kind} {name}"
            defs[f"{kind}:{name}"] = body
            choices.append({"$ref": f"#/$defs/{kind}:{name}"})
        if choices and "properties" in pipeline_def:
            pipeline_def["properties"][kind] = {
                "description": f"the {kind} plugin (`plugin`) and its own options", "anyOf": choices}
    if "properties" in pipeline_def:
        pipeline_def["properties"]["validators"] = {
            "type": "array", "items": {"enum": registry.names("validator")}, "default": []}
    return {**top, "$defs": defs}


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

"""`s321.testing`: the plugin author's kit. Conformance suites to subclass, the
scripted-receiver contract a transport's suite drives (`ScriptedReceiver`), a pipeline
harness, transports that fail on command, and pytest fixtures (`s321.testing.plugin`).

Names are imported on first use, so that loading the pytest plugin does not import
hypothesis, which only the conformance suites need.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "SourceConformance": "s321.testing.sources",
    "TransportConformance": "s321.testing.transports",
    "Endpoint": "s321.testing.transports",
    "ErrorCase": "s321.testing.transports",
    "ValidatorConformance": "s321.testing.validators",
    "ScriptedReceiver": "s321.testing.scripted",
    "Script": "s321.testing.scripted",
    "Play": "s321.testing.scripted",
    "PipelineHarness": "s321.testing.harness",
    "build_registry": "s321.testing.harness",
    "pipeline_config": "s321.testing.harness",
    "FaultyTransport": "s321.testing.doubles",
    "MemoryReceiver": "s321.testing.doubles",
    "MemoryTransport": "s321.testing.doubles",
    "captured_logs": "s321.testing.capture",
    "marketplace_record": "s321.testing.samples",
    "carrier_record": "s321.testing.samples",
    "sample_batch": "s321.testing.samples",
    "records_jsonl": "s321.testing.samples",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 's321.testing' has no attribute {name!r}")
    return getattr(import_module(module), name)

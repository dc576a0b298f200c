"""The hooks of s321: the reference for plugin authors (docs/hooks.md mirrors it).

Composition hooks run once at start-up. Each receives a `register` callback and calls
it once per component it offers:

    register(name, factory, options=OptionsModel, description="...")

`factory(options, context)` builds the component for one pipeline, where `options` is
an instance of `OptionsModel` (a pydantic model validating the plugin's own table of
the config, unknown keys rejected) and `context` the `PipelineContext`. The data-plane
objects the factories return follow the protocols in `s321.contracts`.

Observer hooks are told what happened; their return values are ignored, and an
observer that raises is logged and does not stop the pipeline.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("s321")
hookimpl = pluggy.HookimplMarker("s321")


# --------------------------------------------------------------------------- composition


@hookspec
def register_sources(register: Any) -> None:
    """Register source connectors: `register(name, factory, options=Model)`.

    The factory returns an object with `read(paths=None)` yielding `RawUnit`s and
    `ack(upto)`. A source that has a natural mapper registers it under the same name
    with `register_mappers`; a pipeline uses that mapper unless it names another.
    Sources that read one system in several shapes (an export and a webhook) pass the
    same `id_namespace="..."`, so that one order gets one transaction id either way.
    """


@hookspec
def register_mappers(register: Any) -> None:
    """Register mappers: `register(name, factory, options=Model)`.

    The factory returns an object with `map(unit) -> Mapped`: the record's fields
    (transaction id and derived values are set by the framework), a skip reason, or
    findings. The mapper gets the source's options as its `options`.
    """


@hookspec
def register_validators(register: Any) -> None:
    """Register validators: `register(name, factory, options=Model)`.

    The factory returns an object with `validate(consignment) -> Iterable[Finding]`.
    A pipeline runs the regime profile and the built-in rules always, and the
    validators named in its `validators` list after them.
    """


@hookspec
def register_transports(register: Any) -> None:
    """Register transport adapters: `register(name, factory, options=Model)`.

    The factory gets `(options, context, serializer)` and returns an object with
    `connect()`, `send(batch) -> Receipt`, `acks(timeout) -> list[Ack]`, `close()`
    and `capabilities`. It raises only `RetriableError` or `FatalError`.
    """


@hookspec
def register_serializers(register: Any) -> None:
    """Register wire formats: `register(name, factory)`.

    The factory takes no arguments and returns an object with `encode_batch`,
    `decode_batch`, `encode_ack` and `decode_ack`. `s321/1` is the default.
    """


# --------------------------------------------------------------------------- observers


@hookspec
def pipeline_started(pipeline: str, context: Any) -> None:
    """Called when pipeline `pipeline` starts a run, with its `PipelineContext`."""


@hookspec
def pipeline_finished(pipeline: str, summary: Any) -> None:
    """Called when pipeline `pipeline` finished a run, with its `RunSummary`
    (counts per status). Also called after a run that failed, with `summary.error` set."""


@hookspec
def consignment_rejected(pipeline: str, transaction_id: str, stage: str, findings: list[Any]) -> None:
    """Called for each consignment that will not be filed as it is: `stage` is
    `"validation"` (invalid here, with the findings) or `"cbp"` (rejected in an
    acknowledgement, with its errors as findings). Gets no record: observers must not
    see personal data they do not need."""


@hookspec
def consignments_dead_lettered(pipeline: str, transaction_ids: list[str], error: str) -> None:
    """Called when records of `pipeline` went to the dead-letter queue (their retry
    budget spent, or a fatal transport error), once the ledger committed it, with the
    error that put them there. They are not retried by themselves: an operator acts
    (`s321 dlq retry`). Called while the daemon runs, not only at the end of a run."""


@hookspec
def pipeline_failing(pipeline: str, error: str) -> None:
    """Called when a running pipeline starts failing (its ledger cannot be written, its
    input cannot be read, its link is refused for good), once per failure until it
    recovers; the daemon keeps retrying it with backoff meanwhile. Also called once for
    each transmission at risk of missing the receiver's deadline (ace-truck-309: a trip
    due at ACE with shipments unanswered), with no `pipeline_recovered` after it."""


@hookspec
def pipeline_recovered(pipeline: str, after: str) -> None:
    """Called when a pipeline that was failing works again by itself; `after` is the
    error it recovered from."""

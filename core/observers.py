"""Calling the observer hooks safely: an observer that raises is logged, never fatal."""

from __future__ import annotations

from typing import Any

import pluggy

from s321.logs import get_logger

log = get_logger(__name__)


class Observers:
    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    def _call(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:
            log.warning("observer raised", hook=hook, error_type=type(exc).__name__, error=str(exc)[:200])

    def pipeline_started(self, pipeline: str, context: Any) -> None:
        self._call("pipeline_started", pipeline=pipeline, context=context)

    def pipeline_finished(self, pipeline: str, summary: Any) -> None:
        self._call("pipeline_finished", pipeline=pipeline, summary=summary)

    def consignment_rejected(self, pipeline: str, transaction_id: str, stage: str,
                             findings: list[Any]) -> None:
        self._call("consignment_rejected", pipeline=pipeline, transaction_id=transaction_id,
                   stage=stage, findings=findings)

    def consignments_dead_lettered(self, pipeline: str, transaction_ids: list[str], error: str) -> None:
        if transaction_ids:
            self._call("consignments_dead_lettered", pipeline=pipeline, transaction_ids=list(transaction_ids),
                       error=error)

    def pipeline_failing(self, pipeline: str, error: str) -> None:
        self._call("pipeline_failing", pipeline=pipeline, error=error)

    def pipeline_recovered(self, pipeline: str, after: str) -> None:
        self._call("pipeline_recovered", pipeline=pipeline, after=after)

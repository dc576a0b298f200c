"""Source `records-jsonl`: consignments already in the s321 record shape, one JSON
object a line, for systems that can emit the record themselves.

Each line carries `ref` (the unit's natural key, stable across runs) and record fields
(without transaction_id). A line that is not a JSON object becomes a finding naming
FILE:LINE; the other lines still go through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import error
from s321.hookspecs import hookimpl
from s321.inputs import input_files
from s321.paths import ConfigPath


class RecordsJsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ConfigPath
    pattern: str = "*.jsonl"


class RecordsJsonlSource:
    def __init__(self, options: RecordsJsonlOptions, context: PipelineContext):
        self.options = options

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for path in input_files(paths or [self.options.path], self.options.pattern):
            yield from self._read_file(path)

    def _read_file(self, path: Path) -> Iterator[RawUnit]:
        try:
            fh = path.open("r", encoding="utf-8-sig", errors="replace", newline="")
        except OSError as exc:
            yield RawUnit(f"file:{path}", f"{path}:0", None,
                          (error("unreadable", "", f"cannot open: {exc.strerror}"),))
            return
        with fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    body = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield RawUnit(f"line:{path.name}:{lineno}", where, None,
                                  (error("malformed-json", "", f"not JSON: {exc.msg} at column {exc.colno}"),))
                    continue
                if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
                    yield RawUnit(f"line:{path.name}:{lineno}", where, None,
                                  (error("missing-ref", "ref", "each line must be an object with a non-empty string `ref`"),))
                    continue
                yield RawUnit(body["ref"], where, body, checkpoint=(str(path), lineno))

    def ack(self, upto: Any) -> None:
        """Nothing to move: the file is archived by the runtime."""


class RecordsJsonlMapper:
    def __init__(self, options: RecordsJsonlOptions, context: PipelineContext):
        self.context = context

    def map(self, unit: RawUnit) -> Mapped:
        record = {k: v for k, v in unit.payload.items() if k not in ("ref", "transaction_id")}
        record.setdefault("originator_code", self.context.originator_code)
        record.setdefault("filer_type", self.context.filer_type.value)
        record.setdefault("mode_of_transport", self.context.mode_of_transport.value)
        return Mapped(record=record)


@hookimpl
def register_sources(register: Any) -> None:
    register("records-jsonl", RecordsJsonlSource, options=RecordsJsonlOptions,
             description="s321 records as JSON lines, each with a `ref`")


@hookimpl
def register_mappers(register: Any) -> None:
    register("records-jsonl", RecordsJsonlMapper, options=RecordsJsonlOptions)

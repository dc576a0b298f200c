"""Transport `file`: writes each batch in the wire format into a directory, atomically.

A batch appears under its final name (`BATCH_ID.json`) only when complete: it is
written under a temporary name, flushed to disk, then renamed. A file transport gets
no acknowledgements; records written end `delivered` (final: never `accepted`, never
sent again by itself, even when the pipeline later switches to another transport). Batch files and a
directory this creates are owner-only (s321.private): they hold full records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from s321 import private
from s321.contracts import Ack, Batch, Capabilities, PipelineContext, Receipt, Serializer
from s321.errors import classify
from s321.hookspecs import hookimpl
from s321.paths import ConfigPath


class FileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: ConfigPath
    max_batch: int = 500

    @field_validator("directory")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        # Made when missing; a file in its place would fail every send, retried until
        # the run gives up, with the records owed.
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a folder: name the folder batches are written to")
        return value


class FileTransport:
    def __init__(self, options: FileOptions, context: PipelineContext, serializer: Serializer):
        self.options = options
        self.serializer = serializer
        self.capabilities = Capabilities(max_batch=options.max_batch, window=1, acknowledges=False)

    def connect(self) -> None:
        try:
            # A directory that exists is left as it is: a consumer may read it.
            private.ensure_dir(self.options.directory)
        except OSError as exc:
            raise classify(exc) from exc

    def send(self, batch: Batch) -> Receipt:
        final = self.options.directory / f"{batch.batch_id}.json"
        tmp = final.with_name(f".{final.name}.tmp")
        try:
            with os.fdopen(private.create(tmp), "wb") as fh:
                fh.write(self.serializer.encode_batch(batch))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            raise classify(exc) from exc
        return Receipt(batch_id=batch.batch_id, detail=str(final))

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        return []

    def close(self) -> None:
        pass


@hookimpl
def register_transports(register: Any) -> None:
    register("file", FileTransport, options=FileOptions,
             description="write each batch as a file in a directory (no acknowledgements)")

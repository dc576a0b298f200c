"""Wire format `s321/1`: the batch envelope and the acknowledgement, as UTF-8 JSON.

Documented in docs/wire-format.md. Decoding never trusts the peer: a body that is not
a valid envelope raises `WireFormatError` naming the field that is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from s321.contracts import Ack, Batch
from s321.errors import S321Error
from s321.hookspecs import hookimpl

FORMAT = "s321/1"


class WireFormatError(S321Error):
    """Bytes that are not a valid s321/1 document."""


class S321Json:
    name = FORMAT
    content_type = "application/vnd.s321.v1+json"

    # The documents are written and read by pydantic-core in one pass each: a dict of
    # the whole batch and json.dumps/json.loads around it took three to four times as
    # long. The bytes are the same; anything the fast way refuses goes the old way,
    # which names what is wrong (or raises as it always did).

    def encode_batch(self, batch: Batch) -> bytes:
        records = batch.records_json()
        if records is not None:
            return _splice(batch, records)
        try:
            return _BATCH_HEAD + batch.model_dump_json(exclude_none=True).encode("utf-8")[1:]
        except PydanticSerializationError:
            body = {"format": FORMAT, "type": "batch", **batch.model_dump(mode="json", exclude_none=True)}
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode_batch(self, data: bytes) -> Batch:
        return _decode_fast(data, "batch", Batch)

    def encode_ack(self, ack: Ack) -> bytes:
        try:
            return _ACK_HEAD + ack.model_dump_json(exclude_none=True).encode("utf-8")[1:]
        except PydanticSerializationError:
            body = {"format": FORMAT, "type": "ack", **ack.model_dump(mode="json", exclude_none=True)}
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode_ack(self, data: bytes) -> Ack:
        return _decode_fast(data, "ack", Ack)


_BATCH_HEAD = f'{{"format":"{FORMAT}","type":"batch",'.encode()
_ACK_HEAD = f'{{"format":"{FORMAT}","type":"ack",'.encode()
_NO_RECORDS = '"records":[]}'


def _splice(batch: Batch, records: list[str]) -> bytes:
    """A batch whose records are already JSON text (`Batch.records_json`): the envelope
    is encoded without them and the text goes in between, byte for byte what encoding
    the models writes (`records` is the envelope's last field)."""
    envelope = Batch.model_construct(batch_id=batch.batch_id, originator_code=batch.originator_code,
                                     profile=batch.profile, sent_at=batch.sent_at, records=[])
    head = envelope.model_dump_json(exclude_none=True)
    assert head.endswith(_NO_RECORDS), head
    return _BATCH_HEAD + f"{head[1:-2]}{','.join(records)}]}}".encode("utf-8")


class _Envelope(BaseModel):
    """Just the envelope of a document (pydantic skips the rest while parsing)."""

    format: Any = None
    type: Any = None


_HEADS = {"batch": _BATCH_HEAD, "ack": _ACK_HEAD}


def _decode_fast(data: bytes, kind: str, model: type[Batch | Ack]):  # type: ignore[no-untyped-def]
    try:
        if data.startswith(_HEADS[kind]):
            # Written as encode_* writes it: the envelope is known without parsing the
            # document twice (the models ignore `format` and `type`).
            return model.model_validate_json(data)
        envelope = _Envelope.model_validate_json(data)
        if envelope.format == FORMAT and envelope.type == kind:
            return model.model_validate_json(data)
    except ValueError:  # not JSON, not an object, not a valid document: see _decode
        pass
    return _decode(data, kind, model)


def _decode(data: bytes, kind: str, model: type[Batch] | type[Ack]):  # type: ignore[no-untyped-def]
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireFormatError(f"not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WireFormatError("a document must be a JSON object")
    if body.pop("format", None) != FORMAT:
        raise WireFormatError(f"format: expected {FORMAT!r}")
    if body.pop("type", None) != kind:
        raise WireFormatError(f"type: expected {kind!r}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise WireFormatError(f"{loc}: {err['msg']}") from None


@hookimpl
def register_serializers(register):  # type: ignore[no-untyped-def]
    register(FORMAT, S321Json, description="s321/1 JSON batch envelope and acknowledgement")

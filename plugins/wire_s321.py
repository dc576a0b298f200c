"""Wire format `s321/1`: the batch envelope and the acknowledgement, as UTF-8 JSON.

Documented in docs/wire-format.md. Decoding never trusts the peer: a body that is not
a valid envelope raises `WireFormatError` naming the field that is wrong.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from s321.contracts import Ack, Batch
from s321.errors import S321Error
from s321.hookspecs import hookimpl

FORMAT = "s321/1"


class WireFormatError(S321Error):
    """Bytes that are not a valid s321/1 document."""


class S321Json:
    name = FORMAT
    content_type = "application/vnd.s321.v1+json"

    def encode_batch(self, batch: Batch) -> bytes:
        body = {"format": FORMAT, "type": "batch", **batch.model_dump(mode="json", exclude_none=True)}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode_batch(self, data: bytes) -> Batch:
        return _decode(data, "batch", Batch)

    def encode_ack(self, ack: Ack) -> bytes:
        body = {"format": FORMAT, "type": "ack", **ack.model_dump(mode="json", exclude_none=True)}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode_ack(self, data: bytes) -> Ack:
        return _decode(data, "ack", Ack)


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

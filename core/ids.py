"""Stable identifiers: transaction ids, content hashes and batch ids.

`transaction_id` depends only on the originator code, the source and the unit's
natural key, so the same consignment from the same source gets the same id on every
run; `content_hash` changes when anything filed about it changes.
"""

from __future__ import annotations

import hashlib
import uuid

from pydantic_core import to_json

from s321.record import Consignment

_SEP = "\x1f"


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [_B32[i >> 5] + _B32[i & 31] for i in range(1024)]


def transaction_id(originator_code: str, source: str, key: str) -> str:
    """`source` is the source's id namespace (PipelineContext.ids)."""
    digest = hashlib.sha256(_SEP.join((originator_code, source, key)).encode("utf-8")).digest()
    # "T" + base64.b32encode(digest[:15]): 120 bits, 24 letters, no padding. Spelled out,
    # 10 bits at a time, because b32encode is pure Python and took twice as long.
    n = int.from_bytes(digest[:15], "big")
    t = _B32_PAIRS
    return ("T" + t[n >> 110] + t[(n >> 100) & 1023] + t[(n >> 90) & 1023]
            + t[(n >> 80) & 1023] + t[(n >> 70) & 1023] + t[(n >> 60) & 1023]
            + t[(n >> 50) & 1023] + t[(n >> 40) & 1023] + t[(n >> 30) & 1023]
            + t[(n >> 20) & 1023] + t[(n >> 10) & 1023] + t[n & 1023])


def content_hash(consignment: Consignment) -> str:
    """Hash of what would be filed, without the transaction id, action and version:
    SHA-256 of the record's JSON (`model_dump_json(exclude_none=True)`) without them.
    Equal filed content gives an equal hash, any change another."""
    return _sha256(consignment.model_dump_json(exclude_none=True, exclude=_NOT_CONTENT))


def filed_json(consignment: Consignment) -> tuple[str, str]:
    """The record's JSON as stored (`model_dump_json(exclude_none=True)` without its
    version, which the ledger keeps apart and `stamped` puts back) and its
    `content_hash`, from one dump."""
    # The serializer's bytes, hashed where they lie (no str to encode again, no copy of
    # the tail), decoded once for the text: what model_dump_json returns, 2-3 µs sooner.
    # A record without a version (all but the relay's) needs no `exclude`, which costs
    # the serializer a filter on every field.
    data = consignment.__pydantic_serializer__.to_json(
        consignment, exclude_none=True, exclude=_NO_VERSION if consignment.version is not None else None)
    text = data.decode("utf-8")
    digest = _content_hash_of_bytes(data, consignment.transaction_id)
    return text, digest if digest is not None else content_hash(consignment)


def content_hash_of_json(text: str, transaction_id: str) -> str | None:
    """`content_hash` of the record whose `filed_json` text this is, without decoding
    it; None when the text does not start as that JSON does."""
    split = _split(text, transaction_id)
    if split is None:
        return None
    rest = split[1]  # ',"originator_code":...}' or '}'
    return _sha256("{" + rest[1:] if rest[0] == "," else "{}")


def _content_hash_of_bytes(data: bytes, transaction_id: str) -> str | None:
    """`content_hash_of_json` of the text whose UTF-8 bytes these are."""
    head = _head(transaction_id).encode("utf-8")
    if not data.startswith(head):
        return None
    end = data.find(b'"', len(head))
    if end < 0 or end + 1 >= len(data) or data[end + 1] not in b",}":
        return None
    if data[end + 1] != 44:  # "}": nothing but the three fields left out
        return _sha256("{}")
    hasher = hashlib.sha256(b"{")
    hasher.update(memoryview(data)[end + 2:])
    return hasher.hexdigest()


def stamped(text: str, transaction_id: str, action: str, version: int | None) -> str | None:
    """A stored record's JSON text (`filed_json`, no version) with its action set to
    `action` and its version to `version`: what `model_dump_json(exclude_none=True)`
    writes for the record so stamped. None when the text does not start as that JSON does."""
    head = _head(transaction_id)
    split = _split(text, transaction_id, head)
    if split is None:
        return None
    if version is None:
        return text if split[0] == action else f"{head}{action}\"{split[1]}"
    return f'{head}{action}","version":{int(version)}{split[1]}'


_NOT_CONTENT = {"transaction_id", "action", "version"}
_NO_VERSION = {"version"}


def _head(transaction_id: str) -> str:
    # The two fields a record's JSON starts with (the model's first two, never None),
    # up to the action's value, written by the same encoder as model_dump_json: a
    # transaction id of ASCII letters and digits (every one `transaction_id` makes) is
    # written as it is, between quotes, without asking the encoder.
    if transaction_id.isascii() and transaction_id.isalnum():
        return '{"transaction_id":"' + transaction_id + '","action":"'
    return '{"transaction_id":' + to_json(transaction_id).decode("utf-8") + ',"action":"'


def _split(text: str, transaction_id: str, head: str | None = None) -> tuple[str, str] | None:
    """(action, everything after the action's closing quote), or None."""
    head = head or _head(transaction_id)
    if not text.startswith(head):
        return None
    end = text.find('"', len(head))
    if end < 0 or end + 1 >= len(text) or text[end + 1] not in ",}":
        return None
    return text[len(head):end], text[end + 1:]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def batch_id() -> str:
    return "B" + uuid.uuid4().hex

"""Stable identifiers: transaction ids, content hashes and batch ids.

`transaction_id` depends only on the originator code, the source and the unit's
natural key, so the same consignment from the same source gets the same id on every
run; `content_hash` changes when anything filed about it changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

from s321.record import Consignment

_SEP = "\x1f"


def transaction_id(originator_code: str, source: str, key: str) -> str:
    """`source` is the source's id namespace (PipelineContext.ids)."""
    digest = hashlib.sha256(_SEP.join((originator_code, source, key)).encode("utf-8")).digest()
    return "T" + base64.b32encode(digest[:15]).decode("ascii")


def content_hash(consignment: Consignment) -> str:
    """Hash of what would be filed, without the transaction id and action."""
    body: dict[str, Any] = consignment.model_dump(mode="json", exclude={"transaction_id", "action"})
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def batch_id() -> str:
    return "B" + uuid.uuid4().hex

"""Writing a config dict as a TOML file, so that a test harness loads its config
through `s321.config.load` exactly as `s321 run -c FILE` does.

Only what configs hold: tables, arrays, strings, numbers, booleans, paths and
decimals (written as strings, as configs write money and rates). `None` is left out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps(config: Mapping[str, Any]) -> str:
    """One `key = value` line per top-level key, tables written inline."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in config.items() if v is not None)


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else _string(text)


def _string(text: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written in a config")
        return repr(value)
    if isinstance(value, (str, PurePath, Decimal)):
        return _string(str(value))
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        body = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{" + body + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} cannot be written in a config: {value!r}")

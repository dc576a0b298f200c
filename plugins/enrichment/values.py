"""Small converters shared by the enrichment tables and the source mappings.

Each returns None for what it cannot read, never raises: the caller reports it with
the field it knows.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import pycountry

from s321 import rules

_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def clean(value: Any) -> str | None:
    """A text value, stripped; None for blanks and for anything that is not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def parse_decimal(value: Any) -> Decimal | None:
    """A plain decimal number ("12.50"); exponents are refused on purpose, since
    "1e999999" would make every later computation explode."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, Decimal):
        value = str(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value.strip()):
        return None
    try:
        return Decimal(value.strip())
    except InvalidOperation:  # pragma: no cover - the pattern already guards it
        return None


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = clean(value)
    if text is None:
        return None
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else None


@lru_cache(maxsize=512)
def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-2 for a code or a country name ("DE", "DEU", "Germany")."""
    text = value.strip()
    if not text:
        return None
    if rules.is_country(text):
        return text.upper()
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None

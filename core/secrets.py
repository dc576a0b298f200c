"""Secret references: `{env = "VAR"}` or `{file = "path"}`, never literals.

A reference is resolved when the config is loaded and held as a pydantic SecretStr,
which prints as `**********`; only the component that needs the value calls
`get_secret_value()`. An unset variable or unreadable file is a config error that
names the reference, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo


def _resolve(value: Any, info: ValidationInfo) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & value.keys()):
        raise ValueError(
            'a secret must be a reference, {env = "VARIABLE"} or {file = "path"}, '
            "never a literal value"
        )
    if "env" in value:
        var = str(value["env"])
        if var not in os.environ:
            raise ValueError(f"environment variable {var!r} is not set")
        return SecretStr(os.environ[var])
    base = Path((info.context or {}).get("base_dir", "."))
    path = base / str(value["file"])
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"secret file {str(path)!r} cannot be read: {exc.strerror}") from None


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
"""A config value that must be a secret reference."""

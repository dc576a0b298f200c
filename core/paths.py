"""Config paths: relative paths in a config file are relative to that file's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo


def _relative_to_config(value: Any, info: ValidationInfo) -> Path:
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    return Path((info.context or {}).get("base_dir", ".")) / path


ConfigPath = Annotated[Path, BeforeValidator(_relative_to_config)]
"""A path option: absolute, or relative to the folder of the config file."""

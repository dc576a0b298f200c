"""Secret references: `{env = "VAR"}` or `{file = "path"}`, never literals.

A reference is resolved when the config is loaded and held as a pydantic SecretStr,
which prints as `**********`; only the component that needs the value calls
`get_secret_value()`. An unset variable or unreadable file is a config error that
names the reference, never the value; nor does a value where a variable name belongs.
A secret file must be a regular file (after following symlinks) of at most 1 MiB.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo

from s321.inputs import NotRegularFile, open_regular


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MAX_SECRET_FILE = 1024 * 1024
"""A secret file is a key, a certificate or a password: a megabyte is plenty, and a
file such as /dev/zero must not be read to the end of memory."""


def _resolve(value: Any, info: ValidationInfo) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, dict):
        raise ValueError(
            'a secret must be a reference, {env = "VARIABLE"} or {file = "path"}, '
            "never a literal value"
        )
    if len(value) != 1 or not ({"env", "file"} & value.keys()):
        # A table, but not one reference: say which keys it has (never their values).
        given = ", ".join(sorted(map(str, value))) or "no key"
        raise ValueError(f'a secret reference has one key, env or file ({{env = "VARIABLE"}} or '
                         f'{{file = "path"}}), not {given}')
    if "env" in value:
        var = str(value["env"])
        if not _VARIABLE.match(var):
            # Not shown: what stands where a name belongs may be the secret itself.
            raise ValueError("env must name an environment variable (letters, digits and '_', "
                             "not starting with a digit); the value given is not one and is "
                             "not shown, in case it is the secret itself")
        if var not in os.environ:
            raise ValueError(f"environment variable {var!r} is not set")
        return SecretStr(os.environ[var])
    base = Path((info.context or {}).get("base_dir", "."))
    path = base / str(value["file"])
    return SecretStr(read_secret_file(path))


def read_secret_file(path: Path) -> str:
    """The text of a secret file, without its final newline. A symlink is followed
    (container platforms mount secrets so); its target must be a regular file of at
    most MAX_SECRET_FILE bytes. ValueError names the path, never the contents."""
    try:
        with open_regular(path, "rb") as fh:
            data = fh.read(MAX_SECRET_FILE + 1)
    except NotRegularFile as exc:
        raise ValueError(f"secret file {str(path)!r} is {exc.strerror}: give a file") from None
    except OSError as exc:
        raise ValueError(f"secret file {str(path)!r} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE:
        raise ValueError(f"secret file {str(path)!r} is over {MAX_SECRET_FILE} bytes: "
                         "not a key, certificate or password")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"secret file {str(path)!r} is not UTF-8 text") from None


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]
"""A config value that must be a secret reference."""

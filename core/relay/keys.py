"""CURVE key pairs for the broker relay: `generate` writes NAME.key (public) and
NAME.key_secret (owner-only from the moment it exists), in the ZeroMQ certificate
format that `zmq.auth.load_certificate` also reads. Keys in config are a Z85 string or
such a file; a secret key is only ever a secret reference and is never logged.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import zmq
from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo
from s321 import private
from s321.secrets import Secret
from zmq.utils import z85

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_Z85 = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_LINE = re.compile(r"^\s*(public-key|secret-key)\s*=\s*['\"]?([^'\"\s]+)['\"]?\s*$")


class BadKey(ValueError):
    """Text that holds no usable CURVE key. The message never quotes the text."""


def is_z85_key(text: str) -> bool:
    if not _Z85.match(text):
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, TypeError):
        return False


def parse(text: str, which: str) -> str:
    """The Z85 `which` ("public-key" or "secret-key") key in `text`: a bare Z85 key,
    or the contents of a key file. Raises BadKey without echoing the text."""
    bare = text.strip()
    if is_z85_key(bare):
        return bare
    for line in text.splitlines():
        found = _LINE.match(line)
        if found and found.group(1) == which and is_z85_key(found.group(2)):
            return found.group(2)
    raise BadKey(f"no {which} in it: give a Z85 key (40 characters) or a key file "
                    f"made by `s321 keys generate`")


def public_of(secret_z85: str) -> str:
    """The public key that belongs to a secret key."""
    return zmq.curve_public(secret_z85.encode("ascii")).decode("ascii")


def generate(name: str, folder: str | Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write NAME.key and NAME.key_secret in `folder`; returns both paths and the Z85
    public key. Refuses to overwrite existing files unless `force`."""
    if not NAME.match(name):
        raise ValueError(f"key name {name!r}: use letters, digits, '.', '_' or '-'")
    folder = private.ensure_dir(folder)  # beside secret keys: nobody else may rename or plant one
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    for path in (public_path, secret_path):
        if os.path.lexists(path):  # lexists: a symlink there counts, even a dangling one
            if not force:
                raise FileExistsError(f"{path} exists; pass --force to replace the key pair")
            os.unlink(path)  # the link itself, never what it points to
    public, secret = (k.decode("ascii") for k in zmq.curve_keypair())
    _write(secret_path, _certificate(name, public, secret), 0o600)
    _write(public_path, _certificate(name, public, None), 0o644)
    return public_path, secret_path, public


def _certificate(name: str, public: str, secret: str | None) -> str:
    kind = "Secret" if secret else "Public"
    lines = [
        f"#   ZeroMQ CURVE {kind} Certificate, made by `s321 keys generate` "
        f"on {datetime.now(UTC):%Y-%m-%d}",
        "#   Keep this file private: it holds a secret key." if secret else
        "#   Public: give it to the peer that must recognise this key.",
        "metadata",
        f'    name = "{name}"',
        "curve",
        f'    public-key = "{public}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int) -> None:
    # Created with its final mode: a secret key is never readable by others, not even
    # between writing and a chmod (the umask could only remove bits; fchmod sets them).
    # O_EXCL|O_NOFOLLOW: a file or symlink put there since the check above makes this
    # fail, instead of the secret key being written wherever the link points.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(text)


# --------------------------------------------------------------------------- config types


def _public_key(value: Any, info: ValidationInfo) -> str:
    if isinstance(value, dict) and set(value) == {"file"}:
        value = value["file"]
    if not isinstance(value, str) or not value.strip():
        raise ValueError('a public key is a Z85 string or the path of a ".key" file')
    if is_z85_key(value.strip()):
        return value.strip()
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path((info.context or {}).get("base_dir", ".")) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"neither a Z85 key nor a readable key file: {path}: "
                         f"{exc.strerror}") from None
    try:
        return parse(text, "public-key")
    except BadKey as exc:
        raise ValueError(f"{path}: {exc}") from None


def _secret_key(value: SecretStr) -> SecretStr:
    try:
        return SecretStr(parse(value.get_secret_value(), "secret-key"))
    except BadKey as exc:
        raise ValueError(f"not a CURVE secret key: {exc}") from None


PublicKey = Annotated[str, BeforeValidator(_public_key)]
"""A CURVE public key in config: Z85 (40 characters), or a `.key` file (relative to
the config file's folder), given as a plain path or `{file = "..."}`."""

SecretKey = Annotated[Secret, AfterValidator(_secret_key)]
"""A CURVE secret key in config: a secret reference, `{file = "NAME.key_secret"}` or
`{env = "VAR"}`, whose value is a key file's text or a bare Z85 key. Held as Z85."""

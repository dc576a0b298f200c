"""Options of transport `p2p-socket`: the `[pipelines.NAME.transport]` table.

The client certificate, its key and the key's passphrase are secret references.
For `cert` and `key`, `{file = "path"}` names the file that holds the certificate or
key (relative to the config file's folder) and `{env = "VAR"}` a variable that holds
its path; `key_passphrase` is a reference to the passphrase itself. The CA certificate
is public: `ca` may be a plain path or a reference of the same kind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator
from s321.framing import DEFAULT_MAX_FRAME
from s321.secrets import Secret

from .tls_files import tls_file_problem

_EXAMPLE_FILES = {"ca": "ca.pem", "cert": "client.pem", "key": "client.key"}
"""What each option's error shows as the file of its reference."""

REFERENCE_SCHEMA = {
    "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
    "properties": {"file": {"type": "string", "description": "the file, relative to the config file"},
                   "env": {"type": "string", "description": "a variable holding its path"}},
}
"""JSON Schema of `{file = "path"}` or `{env = "VAR"}`: what editors (`s321 schema config`)
and the plugin reference (s321.cli.docgen) show for a path given as a reference."""


def _reference_help(option: str | None) -> str:
    example = _EXAMPLE_FILES.get(option or "", "client.pem")
    return (f'must be a reference: {{file = "{example}"}} (the file holding it) or '
            '{env = "VARIABLE"} (a variable holding its path)')


def _existing(path: Path, info: ValidationInfo) -> Path:
    if not path.is_absolute():
        path = Path((info.context or {}).get("base_dir", ".")) / path
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def _path_reference(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, Path):  # built in code (tests, the sandbox's helpers)
        return _existing(value, info)
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & value.keys()):
        raise ValueError(_reference_help(info.field_name))
    if "file" in value:
        return _existing(Path(str(value["file"])).expanduser(), info)
    var = str(value["env"])
    if not os.environ.get(var):
        raise ValueError(f"environment variable {var!r} is not set")
    return _existing(Path(os.environ[var]).expanduser(), info)


def _public_path(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, str):
        return _existing(Path(value).expanduser(), info)
    return _path_reference(value, info)


SecretPath = Annotated[Path, BeforeValidator(_path_reference), WithJsonSchema(REFERENCE_SCHEMA)]
"""A path to secret material, given as a `{file = ...}` or `{env = ...}` reference."""

PublicPath = Annotated[Path, BeforeValidator(_public_path)]
"""A path to a public file (a CA certificate): plain, or a reference."""


class P2POptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, description="Host name or IP address of the receiver.")
    port: int = Field(ge=1, le=65535)
    server_name: str | None = Field(
        default=None, description="Name the server certificate must carry (default: host).")
    ca: PublicPath = Field(description="PEM file of the CA(s) that signed the server certificate.")
    cert: SecretPath = Field(description="PEM file of the client certificate (chain).",
                             examples=[{"file": "certs/client.pem"}])
    key: SecretPath = Field(description="PEM file of the client certificate's private key.",
                            examples=[{"file": "certs/client.key"}])
    key_passphrase: Secret | None = None
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds for TCP + TLS.")
    read_timeout: float = Field(
        default=30.0, gt=0, description="Seconds for any answer: WELCOME, RECEIPT, PONG.")
    ack_timeout: float = Field(
        default=300.0, gt=0, description="Seconds from RECEIPT to ACK before the batch is resent.")
    heartbeat_interval: float = Field(
        default=15.0, gt=0, description="Send a PING after this many seconds without a frame.")
    window: int = Field(default=4, ge=1, le=256, description="Batches in flight (sent, not acked).")
    max_frame: int = Field(default=DEFAULT_MAX_FRAME, ge=1024, le=1 << 30,
                           description="Largest frame body sent or accepted, in bytes.")
    max_batch: int = Field(default=2000, ge=1, le=100_000,
                           description="Records per batch at most (about 1.3 kB each on the wire).")
    reconnect_attempts: int = Field(
        default=5, ge=1, description="Link failures one send() rides out before giving up.")
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _tls_files_work(self) -> P2POptions:
        """The CA, certificate and key make a TLS context, at load (`s321 check`), not
        at the first connection: a swapped pair or a wrong passphrase named here."""
        passphrase = self.key_passphrase.get_secret_value() if self.key_passphrase else None
        problem = tls_file_problem(self.ca, self.cert, self.key, passphrase)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def tls_server_name(self) -> str:
        return self.server_name or self.host

"""Options of the `sftp-drop` transport: one `[pipelines.NAME.transport]` table.

The model refuses a table that could only fail later: no pinned host key, no way to
authenticate, a fingerprint that is not `SHA256:...`, or a remote folder that climbs
out of the drop (`..`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from s321.paths import ConfigPath
from s321.secrets import Secret

# What `ssh-keygen -lf` prints: SHA256 digest in unpadded base64 (43 characters).
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?")


class SftpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    key: ConfigPath | None = Field(default=None, description="Private key file (ed25519, RSA, ECDSA).")
    key_passphrase: Secret | None = None
    password: Secret | None = Field(default=None, description="Only where the server insists.")
    known_hosts: ConfigPath | None = Field(
        default=None, description="OpenSSH known_hosts file holding the server's key.")
    host_key_fingerprint: str | None = Field(
        default=None, description="The server key's fingerprint as `ssh-keygen -lf` prints it.")
    inbound_dir: str = Field(default="inbound", description="Where batches are dropped.")
    outbound_dir: str = Field(default="outbound", description="Where acknowledgements appear.")
    after_read: Literal["archive", "delete"] = "archive"
    connect_timeout: float = Field(default=15.0, gt=0)
    op_timeout: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=2.0, gt=0)
    settle_time: float = Field(
        default=5.0, ge=0,
        description="How long a response that does not parse is read again (the server "
        "may still be writing it) before it is moved to rejected/.")
    max_batch: int = Field(default=500, ge=1, le=10_000)
    window: int = Field(default=16, ge=1, description="Batches awaiting acknowledgement at once.")
    reconnect_attempts: int = Field(default=3, ge=1)
    pipelined: bool = Field(
        default=True, description="Send upload writes without waiting for each reply.")

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not FINGERPRINT.fullmatch(value.strip()):
            raise ValueError("expected 'SHA256:' and 43 base64 characters, "
                             "as `ssh-keygen -lf KEY.pub` prints it")
        return value.strip() if value else value

    @field_validator("inbound_dir", "outbound_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip().rstrip("/") or "/"
        if ".." in value.split("/"):
            raise ValueError("a remote folder must not contain '..'")
        return value

    @model_validator(mode="after")
    def _complete(self) -> SftpOptions:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError("set exactly one of known_hosts or host_key_fingerprint: "
                             "the server's host key must be pinned")
        if self.key is None and self.password is None:
            raise ValueError("set key (a private key file) or password to authenticate")
        if self.key_passphrase is not None and self.key is None:
            raise ValueError("key_passphrase is set but key is not")
        if self.inbound_dir == self.outbound_dir:
            raise ValueError("inbound_dir and outbound_dir must be different folders")
        return self

    @property
    def where(self) -> str:
        """`user@host:port` for messages (no secrets)."""
        return f"{self.username}@{self.host}:{self.port}"

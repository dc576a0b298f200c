"""relay.toml: the broker's relay, its clients (CURVE public key, originator codes,
limits) and the upstream each one is forwarded through.

`load(path, registry)` validates the file (unknown keys rejected), resolves each
upstream's plugin through the registry and validates its options with that plugin's
own model, and reports every problem at once as `FILE: dotted.path: message`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from s321.config import (
    DEFAULT_SERIALIZER,
    LedgerSection,
    PluginsSection,
    PluginTable,
    RetrySection,
    format_errors,
    parse_file,
)
from s321.errors import ConfigError, PluginError
from s321.paths import ConfigPath
from s321.registry import Component, Registry, unknown_name
from s321.relay.keys import NAME, PublicKey, SecretKey


class RelaySection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bind: str = Field(pattern=r"^(tcp://\S+:(\d+|\*)|ipc://\S+)$",
                      description="ZeroMQ endpoint to listen on, e.g. tcp://0.0.0.0:5321 "
                                  "(port * picks a free one)")
    secret_key: SecretKey = Field(description="The relay's own CURVE secret key (a reference).")
    heartbeat_interval: float = Field(default=5.0, gt=0, description="seconds between ZMTP pings")
    heartbeat_timeout: float = Field(default=15.0, gt=0, description="a silent client is dropped after")
    redeliver_seconds: float = Field(default=10.0, gt=0,
                                     description="an ack not confirmed by its client is sent again after")
    poll_interval: float = Field(default=0.2, gt=0, description="idle wait of the upstream workers")
    max_message: int = Field(default=64 << 20, ge=1 << 16,
                             description="largest message taken from a client, bytes (ZMQ_MAXMSGSIZE)")


class RelayLedgerSection(LedgerSection):
    path: ConfigPath = Field(default=Path("s321-relay.sqlite"), validate_default=True,
                             description="the relay's ledger and routing table; relative to relay.toml")


class ClientSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_key: PublicKey = Field(description="the client's CURVE public key: Z85, or its .key file")
    originator_codes: list[str] = Field(min_length=1, description="codes this client may file for")
    max_in_flight: int = Field(default=4, ge=1, le=1024,
                               description="its batches stored here and not yet acknowledged")
    max_batch: int = Field(default=500, ge=1, le=100_000, description="records in one of its batches")
    batch_size: int = Field(default=100, ge=1, le=10_000, description="records per upstream batch")
    # A plain dict here (checked as a PluginTable in load()), so that a table without
    # `plugin` gets one clear error instead of one per union member.
    upstream: str | dict[str, Any] = Field(
        description='an [upstreams.NAME] name, or a table: plugin = "p2p-socket" and its options')
    retry: RetrySection = RetrySection()

    @field_validator("originator_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not 1 <= len(code) <= 35 or code != code.strip():
                raise ValueError(f"{code!r} is not an originator code (1 to 35 characters)")
        return codes


class RelayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relay: RelaySection
    # A dict default, validated, so the default path is resolved against relay.toml's folder.
    ledger: RelayLedgerSection = Field(default={}, validate_default=True)
    plugins: PluginsSection = PluginsSection()
    serializer: str = DEFAULT_SERIALIZER
    profile_paths: list[ConfigPath] = Field(
        default=[], description="folders with more regime profiles a client's batches may name")
    upstreams: dict[str, PluginTable] = {}
    clients: dict[str, ClientSection] = Field(min_length=1)


@dataclass(frozen=True)
class Upstream:
    name: str
    component: Component
    options: BaseModel


@dataclass(frozen=True)
class RelayClient:
    name: str
    config: ClientSection
    upstream: Upstream


@dataclass
class LoadedRelay:
    path: Path
    config: RelayConfig
    serializer: Component
    clients: dict[str, RelayClient] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


def load(path: str | Path, registry: Registry) -> LoadedRelay:
    path = Path(path)
    config, ctx = parse_file(path, RelayConfig)
    problems: list[str] = []

    def upstream(name: str, table: PluginTable, where: str) -> Upstream | None:
        try:
            component = registry.get("transport", table.plugin)
        except PluginError as exc:
            problems.append(f"{path}: {where}.plugin: {exc}")
            return None
        try:
            options = component.options.model_validate(table.options(), context=ctx)
        except ValidationError as exc:
            problems.extend(format_errors(path, exc, component.options, prefix=where))
            return None
        return Upstream(name, component, options)

    named = {n: upstream(n, t, f"upstreams.{n}") for n, t in config.upstreams.items()}
    serializer = None
    try:
        serializer = registry.get("serializer", config.serializer)
    except PluginError as exc:
        problems.append(f"{path}: serializer: {exc}")
    loaded_clients: dict[str, RelayClient] = {}
    key_owner: dict[str, str] = {}
    code_owner: dict[str, str] = {}
    for name, client in config.clients.items():
        where = f"clients.{name}"
        if not NAME.match(name):
            problems.append(f"{path}: {where}: a client name uses letters, digits, '.', '_' or '-'")
        if client.public_key in key_owner:
            problems.append(f"{path}: {where}.public_key: the same key as client "
                            f"{key_owner[client.public_key]!r}; each client needs its own key pair")
        key_owner.setdefault(client.public_key, name)
        for i, code in enumerate(client.originator_codes):
            if code in code_owner and code_owner[code] != name:
                problems.append(f"{path}: {where}.originator_codes.{i}: {code!r} is already "
                                f"filed for by client {code_owner[code]!r}")
            code_owner.setdefault(code, name)
        if isinstance(client.upstream, str):
            if client.upstream not in config.upstreams:
                problems.append(f"{path}: {where}.upstream: "
                                f"{unknown_name('upstream', client.upstream, config.upstreams)}")
                continue
            up = named[client.upstream]
        else:
            try:
                table = PluginTable.model_validate(client.upstream)
            except ValidationError as exc:
                problems.extend(format_errors(path, exc, PluginTable, prefix=f"{where}.upstream"))
                continue
            up = upstream(f"{name} (own)", table, f"{where}.upstream")
        if up is not None:
            loaded_clients[name] = RelayClient(name, client, up)
    if problems:
        raise ConfigError(problems)
    assert serializer is not None
    return LoadedRelay(path, config, serializer, loaded_clients)


"""The configuration: TOML parsed into pydantic models, unknown keys rejected.

`load(path, registry)` returns a `LoadedConfig` whose pipelines have their source,
mapper, validators and transport resolved and each plugin table validated by that
plugin's own options model. Every problem is reported at once as
`FILE: dotted.path: what is wrong, and what would be valid` (a `ConfigError`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import partial
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from s321 import private, regimes, rules
from s321.contracts import PipelineContext, PipelineDefaults
from s321.errors import ConfigError, PluginError
from s321.paths import ConfigPath
from s321.registry import Component, NoOptions, Registry
from s321.secrets import Secret
from s321.record import FilerType, ModeOfTransport

DEFAULT_SERIALIZER = "s321/1"
M = TypeVar("M", bound=BaseModel)

_HOST_PORT = re.compile(r"[\w.\-\[\]:]*:[0-9]{1,5}")


def host_port(value: str) -> str:
    """A listening address, `HOST:PORT`: HOST a name, an IPv4 or a [bracketed IPv6]
    address, PORT 0-65535 (0: any free one). Raises ValueError, saying what is valid,
    rather than leaving a port bind() refuses to the moment of listening."""
    if not _HOST_PORT.fullmatch(value) or int(value.rpartition(":")[2]) > 65535:
        raise PydanticCustomError("host_port", "HOST:PORT, the port 0-65535")
    return value


HostPort = Annotated[str, AfterValidator(host_port),
                     Field(json_schema_extra={"pattern": f"^{_HOST_PORT.pattern}$"})]  # for editors


class PluginTable(BaseModel):
    """A `[...source]` or `[...transport]` table: `plugin` plus that plugin's options."""

    model_config = ConfigDict(extra="allow")
    plugin: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RetrySection(BaseModel):
    """Retry policy of a pipeline's transport: exponential backoff with full jitter."""

    model_config = ConfigDict(extra="forbid")
    initial: float = Field(default=1.0, gt=0, description="first backoff ceiling, seconds")
    maximum: float = Field(default=300.0, gt=0, description="largest wait between attempts, seconds")
    max_elapsed: float = Field(default=86_400.0, gt=0,
                               description="after this long since first queued, a record is dead")
    ack_timeout: float = Field(default=120.0, gt=0,
                               description="a batch not acknowledged within this is sent again")


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    originator_code: str = Field(min_length=1, max_length=35)
    filer_type: FilerType
    files_as: FilerType | None = Field(
        default=None,
        description="For brokers and forwarders: the role whose element set they file "
        "(carrier or online_marketplace). Defaults to the profile's choice.",
    )
    mode_of_transport: ModeOfTransport
    profile: str = regimes.DEFAULT
    mapper: str | None = None
    validators: list[str] = []
    serializer: str = DEFAULT_SERIALIZER
    serializer_options: dict[str, Any] = Field(
        default={}, description="The serializer's own options, validated by its options model "
        "(e.g. ace-truck-309's trip_files).")
    batch_size: int = Field(
        default=2000, ge=1, le=10_000,
        description="Records per batch at most (the transport may cap it). Batches are claimed from what is "
        "due, never waited for: a large value costs no latency.")
    enabled: bool = True
    archive_dir: ConfigPath | None = Field(
        default=None, description="processed input files are moved here after the ledger commit")
    settle_seconds: float = Field(default=1.0, ge=0,
                                  description="an input file must be this old (unchanged) to be read")
    retry: RetrySection = RetrySection()
    defaults: PipelineDefaults = PipelineDefaults()
    source: PluginTable
    transport: PluginTable

    @field_validator("archive_dir")
    @classmethod
    def _archive_is_a_folder(cls, value: Path | None) -> Path | None:
        # Made when missing; a file in its place would fail every archive (the inputs
        # stay in the inbox), after s321 was about to tighten a mode that is not its own.
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a folder: name the folder read inputs are moved to")
        return value


class DaemonSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    http: HostPort | None = Field(default=None,
                                 description="HOST:PORT for /healthz and /metrics, e.g. 127.0.0.1:9321")
    rescan_seconds: float = Field(default=5.0, gt=0, description="inboxes are rescanned this often")
    poll_interval: float = Field(default=0.5, gt=0, description="idle wait between transmit passes")
    shutdown_timeout: float = Field(default=20.0, ge=0, description="wait for in-flight acks on stop")
    transmit: Literal["auto", "thread", "process"] = Field(
        default="auto", description="where pipelines transmit: \"thread\" (beside their ingest, in one "
        "process), \"process\" (one child process of the daemon or run sends for every pipeline, so "
        "ingest and transmission use two cores; s321.transmit_process) or \"auto\": \"process\" unless "
        "the machine gives this process one core or a pipeline uses a component registered by code "
        "rather than installed as a plugin (s321.transmit_process.choose)")


class PluginsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block: list[str] = []


class PreviewSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jobs: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        default="auto", description="processes `s321 preview` works in: auto (one per core, "
        "for an input of 1 MB or more) or a number; 1 is one process (--jobs overrides it)")


class LedgerSection(BaseModel):
    """`[ledger]`: where the ledger lives. `path` (the default) is a SQLite file for one
    daemon; `url` is `sqlite:///ABSOLUTE/PATH` or `postgresql://USER@HOST:PORT/DB`, a
    PostgreSQL database any number of daemons share. The PostgreSQL password is a secret
    reference (`password`), never logged; `describe()` names the ledger without it."""

    model_config = ConfigDict(extra="forbid")
    path: ConfigPath = Field(default=Path("s321-ledger.sqlite"), validate_default=True,
                             description="SQLite file, relative to the config file's folder")
    url: str | None = Field(
        default=None,
        description="sqlite:///ABSOLUTE/PATH or postgresql://USER@HOST:PORT/DATABASE (instead of path)")
    password: Secret | None = Field(
        default=None, description='PostgreSQL password as a secret reference ({env = "VAR"} or {file = "path"})')
    synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", description="SQLite: NORMAL survives a killed process; FULL also a power cut")
    lease_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="PostgreSQL: a batch a daemon sent is taken over by another this long after "
        "the sender stopped renewing it (crashed); also the latest a slow daemon's renewal may come")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = url.partition(":")[0].lower()
        if scheme in ("postgresql", "postgres"):
            parts = urlsplit(url)
            if not parts.hostname and "host=" not in (parts.query or ""):
                raise ValueError("a postgresql URL names its server: postgresql://USER@HOST:PORT/DATABASE")
            if not parts.path.strip("/"):
                raise ValueError("a postgresql URL names its database: postgresql://USER@HOST:PORT/DATABASE")
            return url
        if scheme == "sqlite":
            if not url.startswith("sqlite:///") or not Path(url[len("sqlite://"):]).is_absolute():
                raise ValueError("a sqlite URL is sqlite:///ABSOLUTE/PATH (for a path relative to the "
                                 "config file, give path instead of url)")
            return url
        # Not echoed: a URL may carry a password.
        raise ValueError("the url must start with postgresql:// or sqlite:/// (the value given is not shown, "
                         "in case it holds a password)")

    @field_validator("password")
    @classmethod
    def _password(cls, password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if password is None or "url" not in info.data:  # a bad url is reported on its own
            return password
        url = info.data["url"]
        if url is None or url.lower().startswith("sqlite:"):
            raise ValueError('password is for a PostgreSQL ledger: give url = "postgresql://USER@HOST:PORT/DB" '
                             "(a SQLite ledger has none)")
        if urlsplit(url).password is not None:
            raise ValueError("the password is given twice, in url and here: keep it only here "
                             "(a secret reference) and remove it from the url")
        return password

    @model_validator(mode="after")
    def _one_place(self) -> LedgerSection:
        if self.url is None:
            return self
        if "path" in self.model_fields_set:
            raise ValueError("give either path (a SQLite file) or url, not both")
        if self.backend == "sqlite":
            # sqlite:///abs/path, and SQLAlchemy's sqlite:////abs/path, name /abs/path.
            self.path = Path("/" + self.url[len("sqlite://"):].lstrip("/"))
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "postgresql" if self.url is not None and not self.url.lower().startswith("sqlite:") else "sqlite"

    def describe(self) -> str:
        """Where the ledger is, fit for logs and output: the SQLite path, or the URL
        without its password."""
        if self.backend == "sqlite":
            return str(self.path)
        return url_without_password(self.url or "")


def url_without_password(url: str) -> str:
    """`url` with any password replaced by `***` (user, host, port and database kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class ConsoleUser(BaseModel):
    """`[console.users.NAME]`: a console login. The password only as an argon2id hash
    (`s321 console hash-password`), never the password itself."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["viewer", "operator", "admin"] = Field(
        description="viewer reads; operator may also retry and resend; admin may also delete")
    password_hash: str = Field(pattern=r"^\$argon2id\$",
                               description="made by `s321 console hash-password` ($argon2id$...)")
    originator_codes: list[str] | None = Field(
        default=None, description="only these clients' records (originator codes); absent: every client")


class ConsoleSection(BaseModel):
    """`[console]`: `s321 console`, the web console over the ledger (docs/console.md)."""

    model_config = ConfigDict(extra="forbid")
    listen: HostPort = Field(default="127.0.0.1:9322",
                             description="HOST:PORT; plain HTTP only on a loopback address")
    certificate: ConfigPath | None = Field(default=None, description="PEM certificate (chain): serve HTTPS")
    private_key: ConfigPath | None = Field(default=None, description="PEM private key of the certificate")
    audit_log: ConfigPath = Field(default=Path("s321-console-audit.log"), validate_default=True,
                                  description="who did what when (retry, resend, delete), one JSON line each")
    idle_minutes: float = Field(default=30, gt=0, description="a session ends after this long unused")
    absolute_hours: float = Field(default=12, gt=0, description="a session ends this long after login")
    users: dict[str, ConsoleUser] = {}
    hosts: list[Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9.\-\[\]:]+$")]] = Field(
        default=[], description="other names the console is reached by (a DNS name, host:port behind a "
                                "port mapping); any other Host header is refused (DNS rebinding)")

    @model_validator(mode="after")
    def _https_or_loopback(self) -> ConsoleSection:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together (both for HTTPS, neither for HTTP)")
        host = self.listen.rsplit(":", 1)[0].strip("[]")
        if self.certificate is None and host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"listen {self.listen!r}: plain HTTP is served on loopback only"
                             " (127.0.0.1, ::1, localhost); give certificate and private_key for HTTPS")
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {"USD": Decimal(1)},
        description="USD for one unit of each currency, e.g. CAD = 0.73.",
    )
    profile_paths: list[ConfigPath] = []
    plugins: PluginsSection = PluginsSection()
    daemon: DaemonSection = DaemonSection()
    preview: PreviewSection = PreviewSection()
    # A dict default, validated, so that the default path is resolved against the
    # config file's folder like any path written in it.
    ledger: LedgerSection = Field(default={}, validate_default=True)
    files: private.FilesSection = private.FilesSection()
    console: ConsoleSection = Field(default={}, validate_default=True)
    pipelines: dict[str, PipelineConfig]

    @field_validator("pipelines")
    @classmethod
    def _pipelines(cls, pipelines: dict[str, PipelineConfig]) -> dict[str, PipelineConfig]:
        if not pipelines:
            raise ValueError("no pipeline: add a [pipelines.NAME] table (config/shop.toml is an example)")
        for name in pipelines:
            if not name.strip() or name != name.strip() or not name.isprintable():
                # The name is the pipeline's key in the ledger, the metrics and every command's -p.
                raise ValueError(f"pipeline name {name!r}: give a name without blanks around it")
        return pipelines

    @field_validator("currency_rates")
    @classmethod
    def _rates(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, rate in rates.items():
            if not rules.is_currency(code):
                raise ValueError(f"{code!r} is not an ISO 4217 currency code")
            if rate <= 0:
                raise ValueError(f"rate for {code} must be > 0")
        rates.setdefault("USD", Decimal(1))
        return rates


@dataclass
class Pipeline:
    """One pipeline with every component resolved and its options validated."""

    name: str
    config: PipelineConfig
    context: PipelineContext
    source: Component
    source_options: BaseModel
    mapper: Component
    validators: list[tuple[Component, BaseModel]]
    transport: Component
    transport_options: BaseModel
    serializer: Component
    profile: regimes.Profile


@dataclass
class LoadedConfig:
    path: Path
    config: Config
    pipelines: dict[str, Pipeline] = field(default_factory=dict)

    @property
    def rates(self) -> dict[str, Decimal]:
        return self.config.currency_rates


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    try:
        text = regimes.toml_text(data)
    except ValueError as exc:  # not UTF-8
        raise ConfigError([f"{path}: {exc}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def parse_file(path: Path, model: type[M]) -> tuple[M, dict[str, Any]]:
    """Read a TOML file into `model`, relative paths resolved against its folder.
    Returns the model and the validation context (for the plugin tables that follow).
    Raises ConfigError with one `FILE: path: message` line per problem."""
    raw = read_toml(path)
    ctx = {"base_dir": path.resolve().parent}
    try:
        return model.model_validate(raw, context=ctx), ctx
    except ValidationError as exc:
        raise ConfigError(format_errors(path, exc, model)) from None


def load(path: str | Path, registry: Registry) -> LoadedConfig:
    loaded, problems = load_all(path, registry)
    if problems or loaded is None:
        raise ConfigError(problems)
    return loaded


def load_all(path: str | Path, registry: Registry) -> tuple[LoadedConfig | None, list[str]]:
    """Every problem of the config in one pass, and what could be resolved despite them:
    the config (None when its structure is wrong) with the pipelines that resolved.
    A file that cannot be read or parsed raises ConfigError."""
    path = Path(path)
    raw = read_toml(path)
    ctx: dict[str, Any] = {"base_dir": path.resolve().parent}
    try:
        config = Config.model_validate(raw, context=ctx)
    except ValidationError as exc:
        # The structure is wrong somewhere; still name every plugin and profile that is
        # wrong too, so that one run of `s321 check` shows all there is to fix.
        problems = format_errors(path, exc, Config)
        return None, problems + _raw_component_problems(path, raw, registry, ctx)
    private.configure(config.files.group)  # modes of every file s321 creates from here on
    loaded = LoadedConfig(path, config)
    problems = []
    installed = {p.name for p in registry.plugins}
    for name in config.plugins.block:
        if name not in installed:  # a typo here leaves the plugin meant loaded
            problems.append(f"{path}: plugins.block: no installed plugin {name!r} "
                            f"(installed: {', '.join(sorted(installed)) or 'none'})")
    known_profiles = regimes.available(config.profile_paths)
    for name, pc in config.pipelines.items():
        pipeline = _resolve_pipeline(path, name, pc, registry, known_profiles, ctx, problems)
        if pipeline is not None:
            loaded.pipelines[name] = pipeline
    return loaded, problems


def _raw_component_problems(path: Path, raw: dict[str, Any], registry: Registry,
                            ctx: dict[str, Any]) -> list[str]:
    """Plugin names, plugin options and profiles of pipeline tables read as they are
    (used when the config as a whole did not validate)."""
    problems: list[str] = []
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, dict):
        return problems
    profile_paths = raw.get("profile_paths", [])
    try:
        base = Path(ctx["base_dir"])
        known_profiles = regimes.available([base / str(p) for p in profile_paths]
                                           if isinstance(profile_paths, list) else [])
    except Exception:  # the paths' own errors are reported by the model already
        known_profiles = regimes.available([])
    for name, table in pipelines.items():
        if not isinstance(table, dict):
            continue
        where = f"pipelines.{name}"

        def named(kind: str, value: Any, loc: str, options: dict[str, Any] | None = None) -> None:
            if not isinstance(value, str):
                return
            try:
                comp = registry.get(kind, value)
            except PluginError as exc:
                problems.append(f"{path}: {loc}: {exc}")
                return
            if options is not None:
                try:
                    comp.options.model_validate(options, context=ctx)
                except ValidationError as exc:
                    problems.extend(format_errors(path, exc, comp.options, prefix=loc.rpartition(".")[0]))

        for part in ("source", "transport"):
            sub = table.get(part)
            if isinstance(sub, dict):
                opts = {k: v for k, v in sub.items() if k != "plugin"}
                named(part, sub.get("plugin"), f"{where}.{part}.plugin", opts)
        source = table.get("source")
        source_name = source.get("plugin") if isinstance(source, dict) else None
        if table.get("mapper") is not None:
            named("mapper", table.get("mapper"), f"{where}.mapper")
        elif isinstance(source_name, str) and source_name in registry.names("source"):
            named("mapper", source_name, f"{where}.mapper")
        named("serializer", table.get("serializer", DEFAULT_SERIALIZER), f"{where}.serializer")
        validators = table.get("validators", [])
        for i, vname in enumerate(validators if isinstance(validators, list) else []):
            named("validator", vname, f"{where}.validators.{i}")
        profile = table.get("profile", regimes.DEFAULT)
        if isinstance(profile, str):
            try:
                regimes.load(profile, known_profiles)
            except regimes.ProfileError as exc:
                problems.append(f"{path}: {where}.profile: {exc}")
    return problems


def _resolve_pipeline(path: Path, name: str, pc: PipelineConfig, registry: Registry,
                      known_profiles: dict[str, Path], ctx: dict[str, Any],
                      problems: list[str]) -> Pipeline | None:
    where = f"pipelines.{name}"
    before = len(problems)

    def component(kind: str, cname: str, loc: str) -> Component | None:
        try:
            return registry.get(kind, cname)
        except PluginError as exc:
            blocked = sorted(p.name for p in registry.plugins if p.status == "blocked")
            said = f"; blocked, and not loaded: {', '.join(blocked)}" if blocked else ""
            problems.append(f"{path}: {loc}: {exc}{said}")
            return None

    def options(comp: Component | None, table: dict[str, Any], loc: str) -> BaseModel | None:
        if comp is None:
            return None
        try:
            return comp.options.model_validate(table, context=ctx)
        except ValidationError as exc:
            problems.extend(format_errors(path, exc, comp.options, prefix=loc))
            return None

    source = component("source", pc.source.plugin, f"{where}.source.plugin")
    source_options = options(source, pc.source.options(), f"{where}.source")
    # The mapper is the source's own unless named: an unknown source is said once.
    mapper = component("mapper", pc.mapper or pc.source.plugin, f"{where}.mapper") \
        if pc.mapper or source is not None else None
    transport = component("transport", pc.transport.plugin, f"{where}.transport.plugin")
    transport_options = options(transport, pc.transport.options(), f"{where}.transport")
    serializer = component("serializer", pc.serializer, f"{where}.serializer")
    serializer_options = options(serializer, pc.serializer_options, f"{where}.serializer_options")
    if serializer is not None and serializer_options is not None and serializer.options is not NoOptions:
        # A serializer with options is made with them wherever the pipeline makes one.
        serializer = replace(serializer, factory=partial(serializer.factory, serializer_options))
    validators = []
    for i, vname in enumerate(pc.validators):
        comp = component("validator", vname, f"{where}.validators.{i}")
        opts = options(comp, {}, f"{where}.validators.{i}")
        if comp is not None and opts is not None:
            validators.append((comp, opts))
    profile = None
    try:
        profile = regimes.load(pc.profile, known_profiles)
    except regimes.ProfileError as exc:
        problems.append(f"{path}: {where}.profile: {exc}")
    if len(problems) > before:
        return None
    context = PipelineContext(
        pipeline=name,
        originator_code=pc.originator_code,
        filer_type=pc.filer_type,
        mode_of_transport=pc.mode_of_transport,
        profile=pc.profile,
        source=pc.source.plugin,
        defaults=pc.defaults,
        base_dir=Path(ctx["base_dir"]),
        id_namespace=source.id_namespace or "",
    )
    return Pipeline(name, pc, context, source, source_options, mapper, validators,
                    transport, transport_options, serializer, profile)


def format_errors(path: Path, exc: ValidationError, model: type[BaseModel],
                  prefix: str = "") -> list[str]:
    """One line per error: `FILE: dotted.path: message`, saying what would be valid.
    Input values are never echoed (they may be secrets)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        full = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            valid = ", ".join(sorted(parent.model_fields)) if parent else ""
            msg = f"unknown key{'; valid keys: ' + valid if valid else ''}"
        elif err["type"] == "missing":
            msg = "required, but missing"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")  # pydantic's wording of a check of ours
        lines.append(f"{path}: {full}: {msg}")
    return lines


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found by walking `loc` from `model` (for listing valid keys)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            continue  # a dict key such as a pipeline name
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation

"""`python -m s321.cli.docgen`: writes docs/plugins-reference.md, the reference page of
every first-party plugin, from the plugins' own options models (what `s321 check`
validates against). A test fails when the page is out of date: regenerate it with
`python -m s321.cli.docgen`, never edit it by hand."""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, WithJsonSchema
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from s321.cli.gendoc import write_or_check
from s321.registry import Registry
from s321.registry import load as load_plugins

FIRST_PARTY = "s321"
"""Only plugins of this distribution are documented here (third parties document theirs)."""

DEFAULT_OUTPUT = Path("docs/plugins-reference.md")

# Example values for required options, by name; other options show their default.
_EXAMPLES: dict[str, str] = {
    "path": '"exports/"', "directory": '"outbox/"', "host": '"cbp-link.example.net"', "port": "4321",
    "ca": '"certs/ca.pem"', "cert": '"certs/client.pem"', "key": '"certs/client.key"',
    "username": '"s321"', "endpoint": '"tcp://relay.broker.example:5556"',
    "server_key": '"relay.key"', "secret_key": '{ file = "client-a.key_secret" }',
    "pattern": '"*.txt"', "catalog": '"catalog.csv"', "vendors": '"vendors.csv"',
    "tracking": '"tracking.csv"', "known_hosts": '"known_hosts"',
}


def type_name(annotation: Any) -> str:
    """A reader's name for an option's type: path, string, integer, secret, ..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return " | ".join(_toml(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(args[0]) if args else 'values'}"
    if origin is dict:
        return f"table of {type_name(args[1])}" if len(args) == 2 else "table"
    if isinstance(annotation, type):
        if issubclass(annotation, SecretStr):
            return "secret: { env = \"VAR\" } or { file = \"path\" }"
        if issubclass(annotation, Path):
            return "path (relative to the config file)"
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "number"
        if issubclass(annotation, str) and not issubclass(annotation, enum.Enum):
            return "string"
        if issubclass(annotation, enum.Enum):
            return " | ".join(_toml(m.value) for m in annotation)
        if issubclass(annotation, BaseModel):
            return "table"
        return annotation.__name__
    return str(annotation)


def option_type(info: FieldInfo) -> str:
    """type_name of an option, unless its JSON Schema says it is written as a reference,
    a table of `file` or `env` (a path to a key: p2p-socket's `cert`, `key`)."""
    for meta in info.metadata:
        if isinstance(meta, WithJsonSchema) and set((meta.json_schema or {}).get("properties", {})) == {"file", "env"}:
            return 'reference: { file = "path" } (relative to the config file) or { env = "VAR" } (holding the path)'
    return type_name(info.annotation)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: a reference, { file = "..." }
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Path):
        return f'"{value}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f'"{value}"'


def _default(info: FieldInfo) -> str | None:
    """The default as TOML, or None when the option is required or has no value."""
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    return None if value is None or value is PydanticUndefined else _toml(value)


def _example(name: str, info: FieldInfo) -> str:
    if info.examples:
        return _toml(info.examples[0])
    default = _default(info)
    if default is not None:
        return default
    if name in _EXAMPLES:
        return _EXAMPLES[name]
    kind = type_name(info.annotation)
    if kind.startswith("secret"):
        return '{ env = "S321_' + name.upper() + '" }'
    if kind.startswith("path"):
        return f'"{name}.pem"' if "key" in name or "cert" in name else f'"{name}/"'
    if kind.startswith("boolean"):
        return "true"
    if kind.startswith("string"):
        return '"..."'
    return "..."


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(registry: Registry) -> str:
    """The page, as text: one section per source and transport plugin, with a table of
    its options and an example table for the config."""
    first_party = {info.name for info in registry.plugins if info.distribution == FIRST_PARTY}
    out = [
        "# Plugin reference",
        "",
        "<!-- Generated by `python -m s321.cli.docgen` from the plugins' options models: "
        "do not edit by hand. -->",
        "",
        "Every option of every first-party source and transport, as `s321 check` validates",
        "it: its type, its default (required options have none) and an example. Unknown",
        "keys are errors. `s321 schema config` holds the same, for editors. Each source's",
        "mapper has the source's name and takes the same options.",
        "",
    ]
    for kind, table in (("source", "source"), ("transport", "transport")):
        out += [f"## {kind.capitalize()}s", ""]
        for name in registry.names(kind):
            comp = registry.get(kind, name)
            if comp.plugin not in first_party:
                continue
            out += [f"### `{name}`", ""]
            if comp.description:
                out += [comp.description.rstrip(".") + ".", ""]
            out += ["| option | type | default | example | what |", "|---|---|---|---|---|"]
            example = [f"[pipelines.NAME.{table}]", f'plugin = "{name}"']
            for option, info in comp.options.model_fields.items():
                default = _default(info)
                out.append(f"| `{option}` | {_cell(option_type(info))} | "
                           f"{'required' if info.is_required() else (f'`{default}`' if default else '—')} | "
                           f"`{_cell(_example(option, info))}` | {_cell(info.description or '')} |")
                if info.is_required():
                    example.append(f"{option} = {_example(option, info)}")
            out += ["", "```toml", *example, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s321.cli.docgen", description=__doc__)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the page (default {DEFAULT_OUTPUT})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the page differs from what it would be")
    args = parser.parse_args(argv)
    return write_or_check(args.output, render(load_plugins()), args.check, "python -m s321.cli.docgen")


if __name__ == "__main__":
    sys.exit(main())

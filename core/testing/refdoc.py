"""`python -m s321.testing.refdoc`: writes docs/reference.md, the reference of the
public contract a plugin is written against (what it imports from `s321.contracts`,
`s321.findings`, `s321.errors`, `s321.secrets`, `s321.paths`, `s321.plugins.wire_s321`
and `s321.plugins.enrichment`), from the code: docstrings, field descriptions and the
attribute docstrings under each field. `--check` fails when the page is out of date.

Promises: every public name of those modules (no leading underscore) is on the page
with its import path and whether it is stable, or `missing()` names it, and the
test of this page fails.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from s321.cli.gendoc import write_or_check

OUTPUT = Path("docs/reference.md")

STABLE = "stable"
INTERNAL = "internal"

# Every public name, by module, in page order: (name, stable or internal). A public name
# missing here fails the test; "internal" names may change in any release.
SECTIONS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Sources and mappers", "s321.contracts", [
        ("RawUnit", STABLE), ("Source", STABLE), ("Mapped", STABLE), ("Mapper", STABLE),
        ("PipelineContext", STABLE), ("PipelineDefaults", STABLE)]),
    ("Findings and validators", "s321.findings", [
        ("Finding", STABLE), ("Severity", STABLE), ("error", STABLE), ("warning", STABLE),
        ("has_errors", STABLE), ("dotted", INTERNAL), ("from_validation_error", INTERNAL)]),
    ("", "s321.contracts", [("Validator", STABLE)]),
    ("Batches and acknowledgements", "s321.contracts", [
        ("Batch", STABLE), ("Receipt", STABLE), ("Ack", STABLE), ("RecordAck", STABLE), ("RecordEvent", STABLE), ("AckStatus", STABLE),
        ("AckError", STABLE), ("Serializer", STABLE), ("StoredBatch", INTERNAL)]),
    ("Transports", "s321.contracts", [("Capabilities", STABLE), ("Transport", STABLE), ("usd", INTERNAL)]),
    ("The s321/1 serializer", "s321.plugins.wire_s321", [
        ("S321Json", STABLE), ("WireFormatError", STABLE), ("FORMAT", STABLE), ("register_serializers", INTERNAL)]),
    ("Errors", "s321.errors", [
        ("S321Error", STABLE), ("TransportError", STABLE), ("RetriableError", STABLE), ("FatalError", STABLE),
        ("classify", STABLE), ("ConfigError", STABLE), ("PluginError", STABLE), ("ProtocolError", INTERNAL),
        ("RETRIABLE_PROTOCOL_CODES", INTERNAL)]),
    ("Secrets and paths in options", "s321.secrets", [
        ("Secret", STABLE), ("read_secret_file", INTERNAL), ("MAX_SECRET_FILE", INTERNAL)]),
    ("", "s321.paths", [("ConfigPath", STABLE)]),
    ("Enrichment helpers", "s321.plugins.enrichment", [
        ("EnrichmentOptions", STABLE), ("load", STABLE), ("Enrichment", STABLE), ("TablePath", STABLE),
        ("CatalogEntry", STABLE), ("VendorEntry", STABLE), ("TrackingEntry", STABLE),
        ("EnrichmentError", STABLE), ("order_ref", STABLE), ("clean", STABLE), ("country_code", STABLE),
        ("parse_bool", STABLE), ("parse_decimal", STABLE), ("Table", INTERNAL), ("TableSpec", INTERNAL),
        ("CATALOG", INTERNAL), ("CATALOG_BY_NAME", INTERNAL), ("TRACKING", INTERNAL), ("VENDORS", INTERNAL)]),
]

# Said here because the code does not say it (yet): used only where a field has no
# description or attribute docstring of its own.
FIELD_NOTES: dict[str, str] = {
    "Severity.ERROR": "The consignment is invalid and is not transmitted.",
    "Severity.WARNING": "Shown (and filed with the consignment); nothing stops.",
    "Enrichment.refresh": "Read again each table whose file changed. Called by the plugin that loaded the tables (once per input file), never by the framework.",
    "Finding.code": "Kebab-case code (`missing-required`), documented with how to fix it.",
    "Finding.field": "Dotted path into the record; `\"\"` for the record as a whole.",
    "Finding.severity": "`error` makes the consignment invalid; `warning` is shown and filed.",
    "Finding.message": "What is wrong and what to supply, where.",
    "Finding.location": "`FILE:LINE` or `FILE:segment N`; filled from the unit when absent.",
}


# What a name is for, where its code has no docstring to say it.
NAME_NOTES: dict[str, str] = {
    "s321.plugins.wire_s321.S321Json": (
        "`encode_batch(batch) -> bytes`, `decode_batch(bytes) -> Batch`, `encode_ack(ack) -> bytes`, "
        "`decode_ack(bytes) -> Ack`; `name` is `s321/1`, `content_type` `application/vnd.s321.v1+json`. "
        "Decoding never trusts its input: bytes that are not a valid document raise `WireFormatError`, "
        "naming the field."),
    "s321.findings.error": "An error finding: the consignment is invalid and is not transmitted.",
    "s321.findings.warning": "A warning finding: shown and filed, nothing stops.",
    "s321.findings.has_errors": "Whether any of the findings is an error.",
    "s321.secrets.Secret": (
        "The type of a secret option (password, passphrase, token, key material). A config gives it as a "
        "reference, `{env = \"VAR\"}` or `{file = \"path\"}`, never as a literal; the option holds a pydantic "
        "`SecretStr`, which prints as `**********`. Call `get_secret_value()` only where the value is handed "
        "to the library that needs it; never log it."),
    "s321.paths.ConfigPath": (
        "The type of a path option: a relative path is relative to the config file's folder, so a config "
        "works from any working directory."),
    "s321.plugins.enrichment.TablePath": "A `ConfigPath` to an enrichment CSV that must exist when the config loads.",
    "s321.plugins.enrichment.parse_bool": "`true`/`false`, `yes`/`no`, `1`/`0` (any case) as a bool; None otherwise.",
}

SECTION_NOTES: dict[str, str] = {
    "Enrichment helpers": (
        "Tables a source can use to fill what its input lacks: a product catalog by SKU, a vendor table, a "
        "tracking table by order. The source's options model subclasses `EnrichmentOptions` (so a config "
        "names the CSV files, checked when it loads); the component that uses them, usually the mapper, "
        "calls `load(options)` once, when it is built, and `refresh()` on the result when it wants changed "
        "files seen: the framework never calls it. Once per input file is the rule (`shopify-csv` also "
        "refreshes at most every half second within a long file; `x12-309` before each bill): each call "
        "costs a `stat()` per table, and a file that vanished keeps its last good contents. The mapper asks "
        "`apply_catalog`, `seller_fields` and `tracking_number`, and adds the findings they return."),
    "The s321/1 serializer": (
        "The wire format of [wire-format.md](wire-format.md), usable outside a pipeline: a receiver written "
        "in Python decodes batches and encodes its answers with it (`S321Json()`, or by name, "
        "`s321.registry.load().get(\"serializer\", \"s321/1\").factory()`). See "
        "[plugins.md](plugins.md#the-s3211-serializer-outside-a-pipeline)."),
    "Transports": (
        "How to write one, in both styles (a long-lived link with later acks, and request/response): "
        "[plugins.md, Transports](plugins.md#transports)."),
}


def public_names(module_name: str) -> list[str]:
    """The names a module offers: `__all__`, or what it defines at top level without a
    leading underscore (classes, functions, assignments; not imports)."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    tree = ast.parse(inspect.getsource(module))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if not n.startswith("_")]


def missing() -> list[str]:
    """Public names of the documented modules that the page does not list."""
    listed = {(module, name) for _, module, entries in SECTIONS for name, _ in entries}
    modules = dict.fromkeys(module for _, module, _ in SECTIONS)
    return [f"{m}.{n}" for m in modules for n in public_names(m) if (m, n) not in listed]


def render() -> str:
    out = [
        "# Reference: the public contract",
        "",
        "<!-- Generated by `python -m s321.testing.refdoc` from the code: do not edit by hand. -->",
        "",
        "What a plugin imports from s321, with the import path, what each field means, and",
        "whether it is **stable** (kept within a minor version, see",
        "[the version policy](plugins.md#versions-what-s3210102-promises)) or **internal**",
        "(public by name, but it may change in any release: do not build on it). The record",
        "itself is [record.md](record.md); the hooks are [hooks.md](hooks.md); the test kit",
        "is in [plugins.md](plugins.md#testing-with-s321testing).",
        "",
    ]
    for title, module, entries in SECTIONS:
        if title:
            out += [f"## {title}", ""]
            if title in SECTION_NOTES:
                out += [SECTION_NOTES[title], ""]
        for name, status in entries:
            out += _entry(module, name, status)
    return "\n".join(out).rstrip() + "\n"


def _entry(module_name: str, name: str, status: str) -> list[str]:
    obj = getattr(importlib.import_module(module_name), name)
    kind = _kind(obj)
    out = [f"### `{name}`", "", f"`from {module_name} import {name}` · {kind} · **{status}**", ""]
    doc = _own_doc(obj) or NAME_NOTES.get(f"{module_name}.{name}", "")
    if doc:
        out += [doc, ""]
    if kind == "function":
        out += ["```python", f"{name}{_signature(obj)}", "```", ""]
    elif inspect.isclass(obj):
        out += _class_body(obj)
    elif isinstance(obj, frozenset):
        out += [f"Value: `{sorted(obj)!r}`", ""]
    elif isinstance(obj, (int, str)):
        out += [f"Value: `{obj!r}`", ""]
    elif kind == "constant":
        out += [f"Value: a `{type(obj).__name__}`", ""]
    return out


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, enum.Enum):
            return "enum"
        if issubclass(obj, BaseException):
            return "exception"
        if getattr(obj, "_is_protocol", False):
            return "protocol"
        if issubclass(obj, BaseModel):
            return "pydantic model"
        if dataclasses.is_dataclass(obj):
            return "dataclass"
        return "class"
    if callable(obj) and not isinstance(obj, type) and hasattr(obj, "__wrapped__") or inspect.isfunction(obj):
        return "function"
    if typing.get_origin(obj) is typing.Annotated:
        return "annotated type, for options models"
    return "constant"


def _own_doc(obj: Any) -> str:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    elif callable(obj) and (inspect.isfunction(obj) or hasattr(obj, "__wrapped__")):
        doc = getattr(obj, "__doc__", None)
    else:
        doc = None
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
        doc = None  # the generated "Name(field, ...)" says nothing
    if typing.get_origin(obj) is typing.Annotated or isinstance(obj, (frozenset, int, str, dict)):
        doc = None
    return inspect.cleandoc(doc) if doc else ""


def _signature(func: Any) -> str:
    """`(name: type = default, ...) -> type`, with the annotations as written."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return "(...)"
    parts = []
    for p in sig.parameters.values():
        text = ("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
        if p.annotation is not p.empty:
            text += f": {_type(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}" if p.annotation is not p.empty else f"={p.default!r}"
        parts.append(text)
    out = f"({', '.join(parts)})"
    if sig.return_annotation is not sig.empty:
        out += f" -> {_type(sig.return_annotation)}"
    return out


def _class_body(cls: type) -> list[str]:
    out: list[str] = []
    if issubclass(cls, enum.Enum):
        out += ["| value | |", "|---|---|"]
        notes = _attribute_docs(cls)
        out += [f"| `{m.value}` | {_cell(notes.get(m.name) or FIELD_NOTES.get(f'{cls.__name__}.{m.name}', ''))} |"
                for m in cls]
        return [*out, ""]
    fields = list(_fields(cls))
    if fields:
        out += ["| field | type | default | what |", "|---|---|---|---|"]
        out += [f"| `{n}` | `{_cell(t)}` | {d} | {w} |" for n, t, d, w in fields]
        out.append("")
    methods = [(n, m) for n, m in cls.__dict__.items()
               if inspect.isfunction(m) and not n.startswith("_") and n not in ("model_post_init",)]
    for method_name, method in methods:
        doc = inspect.cleandoc(method.__doc__) if method.__doc__ else FIELD_NOTES.get(f"{cls.__name__}.{method_name}", "")
        out += [f"- `{method_name}{_signature(method)}`" + (f": {_one_paragraph(doc)}" if doc else "")]
    if methods:
        out.append("")
    return out


def _fields(cls: type) -> Iterator[tuple[str, str, str, str]]:
    notes = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("s321"):
            notes.update(_attribute_docs(klass))
    if issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            default = "required" if info.is_required() else _default(info.default, info.default_factory)
            what = info.description or notes.get(name) or FIELD_NOTES.get(f"{cls.__name__}.{name}", "")
            yield name, _type(info.annotation), default, _cell(what)
    elif dataclasses.is_dataclass(cls):
        hints = _annotations(cls)
        for f in dataclasses.fields(cls):
            if f.name.startswith("_"):
                continue
            default = ("required" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                       else _default(f.default, None if f.default_factory is dataclasses.MISSING else f.default_factory))
            what = notes.get(f.name) or FIELD_NOTES.get(f"{cls.__name__}.{f.name}", "")
            yield f.name, hints.get(f.name, "?"), default, _cell(what)
    elif getattr(cls, "_is_protocol", False):
        for name, annotation in _annotations(cls).items():
            yield name, annotation, "—", _cell(notes.get(name, ""))


def _annotations(cls: type) -> dict[str, str]:
    return {k: (v if isinstance(v, str) else _type(v)) for k, v in cls.__dict__.get("__annotations__", {}).items()
            if not k.startswith("_") and "ClassVar" not in str(v)}


def _attribute_docs(cls: type) -> dict[str, str]:
    """The string literal under each annotated attribute of a class body."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if (isinstance(target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[target.id] = inspect.cleandoc(after.value.value)
    return docs


def _type(annotation: Any) -> str:
    """A type as a reader writes it: `Party | None`, `list[Item]` (validators left out)."""
    if isinstance(annotation, str):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else _type(a) for a in args)}]"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _default(value: Any, factory: Any) -> str:
    if factory is not None and factory is not dataclasses.MISSING:
        return f"`{factory.__name__}()`" if hasattr(factory, "__name__") else "a new one"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, Path):
        return f'`Path("{value}")`'
    if callable(value):
        return "a function"
    return f"`{value!r}`"


def _one_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s321.testing.refdoc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the page is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    absent = missing()
    if absent:
        sys.stderr.write("public names not on the page (add them to SECTIONS in s321/testing/refdoc.py, or "
                         "make them private): " + ", ".join(absent) + "\n")
        return 1
    return write_or_check(args.output, render(), args.check, "python -m s321.testing.refdoc")


if __name__ == "__main__":
    raise SystemExit(main())

"""Every finding code s321 can emit is in docs/findings.md with its severity, what it
means and how to fix it (as docs/hooks.md is kept by tests/core/test_hooks.py).

The codes are found twice: in the source, statically (every `error("code", ...)`,
`warning("code", ...)`, `Finding(code=...)`, `AckError(code=...)`, and calls of helpers
that pass their `code` argument on to one of those), and by running the bundled samples
and the real-world files through their sources, which catches a code the scan missed.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from builders import write_config
from s321 import app

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "findings.md"
SOURCE_DIRS = ("core", "plugins", "adapters")
REALWORLD = ROOT / ".." / "shared" / "realworld"
MAKERS = {"error": "error", "warning": "warning", "Finding": None, "AckError": "rejection"}
"""Calls that make a finding or an acknowledgement error, and the severity they give."""
CODE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*(?:-\*)?$")


# --------------------------------------------------------------------------- the page

def documented() -> dict[str, str]:
    """Code -> its severity cell, from the table rows of docs/findings.md whose first
    cell is a code in backticks (`type-*` documents a family of codes)."""
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", PAGE.read_text(encoding="utf-8"), re.M)
    return {code: severity.strip() for code, severity in rows}


def documented_as(code: str, page: dict[str, str]) -> str | None:
    if code in page:
        return page[code]
    family = next((c for c in page if c.endswith("*") and code.startswith(c[:-1])), None)
    return page[family] if family else None


# --------------------------------------------------------------------------- the source

def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), str(p)))
            for folder in SOURCE_DIRS for p in sorted((ROOT / folder).rglob("*.py"))]


def _constants(tree: ast.Module) -> dict[str, set[str]]:
    """Module-level `NAME = "text"` and `A, B = "a", "b"`."""
    out: dict[str, set[str]] = defaultdict(set)
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for name, value in zip(names, values):
                if isinstance(name, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    out[name.id].add(value.value)
    return out


def _aliases(tree: ast.Module) -> dict[str, str | None]:
    """Names bound to a maker: `make = error if ... else warning` -> {"make": None}
    (either severity), `report = error` -> {"report": "error"}."""
    out: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            options = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
            if all(isinstance(o, ast.Name) and o.id in ("error", "warning") for o in options):
                severities = {MAKERS[o.id] for o in options}  # type: ignore[attr-defined]
                out[node.targets[0].id] = severities.pop() if len(severities) == 1 else None
    return out


def _maker(call: ast.Call, aliases: dict[str, str | None] | None = None) -> tuple[str, str | None] | None:
    """(kind, severity) of the finding maker `call` calls: `error(...)`,
    `findings.error(...)` or an alias of one; never `log.error(...)`. The kind is
    "finding" for error and warning (the code is their first argument), else the
    maker's name."""
    func = call.func
    name = None
    if isinstance(func, ast.Name) and func.id in MAKERS:
        name = func.id
    elif (isinstance(func, ast.Attribute) and func.attr in MAKERS and isinstance(func.value, ast.Name)
            and func.value.id in ("findings", "contracts")):
        name = func.attr
    elif isinstance(func, ast.Name) and aliases and func.id in aliases:
        return "finding", aliases[func.id]
    if name is None:
        return None
    return ("finding" if name in ("error", "warning") else name), MAKERS[name]


def _code_argument(call: ast.Call, position: int | None) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "code":
            return keyword.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _forwarders(tree: ast.Module) -> dict[str, tuple[int, str | None]]:
    """Functions (at any depth) with a `code` parameter that they pass on to a finding
    maker: name -> (position of `code` in a call, severity of the maker)."""
    out = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if "code" not in params:
            continue
        for call in ast.walk(fn):
            if isinstance(call, ast.Call) and (maker := _maker(call)):
                arg = _code_argument(call, 0 if maker[0] == "finding" else None)
                if isinstance(arg, ast.Name) and arg.id == "code":
                    shift = 1 if params and params[0] in ("self", "cls") else 0
                    out[fn.name] = (params.index("code") - shift, maker[1])
                    break
    return out


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def emitted_in_source() -> dict[str, dict[str, set[str]]]:
    """Code -> severity ("error", "warning", "rejection", or "" when the call does not
    say) -> the files that emit it."""
    modules = _modules()
    everywhere: dict[str, set[str]] = defaultdict(set)
    for _, tree in modules:
        for name, values in _constants(tree).items():
            everywhere[name] |= values
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path, tree in modules:
        own = _constants(tree)
        forwarders = _forwarders(tree)
        aliases = _aliases(tree)

        def texts(node: ast.expr | None) -> set[str]:
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                return {node.value}
            if isinstance(node, ast.Name):
                return own.get(node.id) or everywhere.get(node.id) or set()
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                return {f"{node.values[0].value}*"}  # f"type-{...}": a family of codes
            return set()  # a variable: the code comes from elsewhere (an ack passed on)

        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            maker = _maker(call, aliases)
            if maker is not None:
                codes, severity = texts(_code_argument(call, 0 if maker[0] == "finding" else None)), maker[1]
            elif (name := _called_name(call)) in forwarders:
                position, severity = forwarders[name]
                codes = texts(_code_argument(call, position))
            else:
                continue
            for code in codes:
                if CODE.match(code):
                    found[code][severity or ""].add(str(path.relative_to(ROOT)))
    return found


# --------------------------------------------------------------------------- the samples

def _pipeline_config(tmp_path: Path, name: str, plugin: str, path: Path, filer_type: str, mode: str) -> Path:
    return write_config(tmp_path, f"""
        [currency_rates]
        EUR = "1.08"
        CAD = "0.73"

        [ledger]
        path = "{tmp_path / 'ledger.sqlite'}"

        [pipelines.{name}]
        originator_code = "TST001"
        filer_type = "{filer_type}"
        mode_of_transport = "{mode}"

        [pipelines.{name}.defaults]
        known_carrier_customer = true
        marketplace_seller_id = "S-1"
        identified_marketplace_merchant = true

        [pipelines.{name}.source]
        plugin = "{plugin}"
        path = "{path}"

        [pipelines.{name}.transport]
        plugin = "file"
        directory = "{tmp_path / 'out'}"
    """, name=f"{name}.toml")


SAMPLE_RUNS = [
    ("x12", "x12-309", ROOT / "contrib/samples/x12-309", "*", "carrier", "truck"),
    ("fhl", "cargo-imp-fhl", ROOT / "contrib/samples/cargo-imp-fhl", "*", "carrier", "air"),
    ("shopjson", "shopify-json", ROOT / "contrib/samples/shop", "*.json*", "online_marketplace", "air"),
    ("rwfhl", "cargo-imp-fhl", REALWORLD / "fhl", "*", "carrier", "air"),
    ("rwx12", "x12-309", REALWORLD / "x12", "*", "carrier", "truck"),
    ("rwcsv", "shopify-csv", REALWORLD / "shopify-csv", "*", "online_marketplace", "air"),
    ("rwjson", "shopify-json", REALWORLD / "shopify-json", "*", "online_marketplace", "air"),
]
"""(pipeline, source, folder, files in it, filer type, mode); config/shop.toml runs too."""


def emitted_by_samples(tmp_path: Path) -> dict[str, set[str]]:
    """Code -> the severities seen, previewing the example config and each source over
    the bundled samples and the real-world files (those that are there)."""
    seen: dict[str, set[str]] = defaultdict(set)
    _, loaded = app.load(ROOT / "config" / "shop.toml")
    outcomes = list(app.preview(loaded, "shop"))
    for name, plugin, path, pattern, filer_type, mode in SAMPLE_RUNS:
        if not path.exists():
            continue
        _, loaded = app.load(_pipeline_config(tmp_path, name, plugin, path.resolve(), filer_type, mode))
        outcomes += list(app.preview(loaded, name, sorted(p for p in path.glob(pattern) if p.is_file())))
    for outcome in outcomes:
        for f in outcome.findings:
            seen[f.code].add(f.severity.value)
    return seen


# --------------------------------------------------------------------------- the tests

def test_the_source_scan_finds_the_codes_it_should():
    # A scan that finds nothing would pass the next test: it must see codes made in
    # each way (a literal, a constant, an f-string family, a helper that passes it on).
    found = emitted_in_source()
    for code in ("missing-required", "invalid-hts", "duplicate", "unknown-transaction", "type-*",
                 "x12-309-no-bills", "x12-se-count", "deliver-to-missing-city", "fhl-no-house",
                 "fhl-missing-country"):
        assert code in found, code
    assert "mapper raised" not in found and "validator raised" not in found  # log events


def test_every_code_in_the_source_is_documented_with_its_severity():
    page = documented()
    missing = sorted(code for code in emitted_in_source() if documented_as(code, page) is None)
    assert not missing, f"finding codes not in docs/findings.md: {missing}"
    wrong = []
    for code, by_severity in emitted_in_source().items():
        cell = documented_as(code, page) or ""
        wrong += [f"{code}: {severity} (in {', '.join(sorted(files))})"
                  for severity, files in by_severity.items() if severity and severity not in cell]
    assert not wrong, f"docs/findings.md gives these codes another severity: {wrong}"


def test_every_code_the_samples_give_is_documented(tmp_path):
    page = documented()
    seen = emitted_by_samples(tmp_path)
    assert len(seen) > 10  # the samples ran
    missing = sorted(code for code in seen if documented_as(code, page) is None)
    assert not missing, f"finding codes not in docs/findings.md: {missing}"
    wrong = sorted(f"{code}: {severity}" for code, severities in seen.items()
                   for severity in severities if severity not in (documented_as(code, page) or ""))
    assert not wrong, f"docs/findings.md gives these codes another severity: {wrong}"


def test_every_documented_code_has_a_meaning_and_a_fix():
    text = PAGE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|([^\n]*)$", text, re.M)
    assert rows
    for code, rest in rows:
        cells = [c.strip() for c in rest.strip().strip("|").split("|")]
        assert len(cells) == 3 and all(len(c) > 2 for c in cells), code
        assert cells[0] in ("error", "warning", "error or warning", "rejection"), code


def test_no_code_is_documented_twice():
    codes = re.findall(r"^\| `([^`]+)` \|", PAGE.read_text(encoding="utf-8"), re.M)
    assert len(codes) == len(set(codes)), sorted({c for c in codes if codes.count(c) > 1})


@pytest.mark.parametrize("code", ["missing-required", "deliver-to-missing-zip", "hts-too-short"])
def test_a_code_emitted_by_validation_is_documented(code):
    assert documented_as(code, documented()) is not None

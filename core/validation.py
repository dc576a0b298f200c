"""Validation of one consignment: the regime profile's presence rules, the value rules
of `s321.rules`, then any extra validators, as one list of findings."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from s321 import rules
from s321.contracts import Validator
from s321.findings import Finding, error, warning
from s321.regimes import Profile
from s321.record import Consignment, FilerType


def validate(c: Consignment, profile: Profile, rates: dict[str, Decimal],
             files_as: FilerType | None = None, extra: Iterable[Validator] = ()) -> list[Finding]:
    findings = presence(c, profile, files_as)
    findings += rules.check(c, rates, profile.value_limit_usd)
    for validator in extra:
        findings.extend(validator.validate(c))
    return findings


def presence(c: Consignment, profile: Profile, files_as: FilerType | None = None) -> list[Finding]:
    # Paths are looked up on the model itself: dumping it first cost more than all the
    # look-ups together. A model answers like the dict `model_dump` would make of it.
    out: list[Finding] = []
    seen: set[str] = set()
    for es in profile.element_sets(c.filer_type, files_as):
        required = list(es.required)
        for when in es.when:
            if str(_plain(_value_at(c, when.field.split(".")))) == when.equals:
                required += when.required
        for found in _resolve_all(c, tuple(required)):
            for parts, value in found:
                if not _empty(value):
                    continue
                concrete = ".".join(parts)
                if concrete not in seen:
                    seen.add(concrete)
                    out.append(error("missing-required", concrete,
                                     f"required by {profile.name} for {_who(c, files_as)}"))
        for group in es.one_of:
            if all(_empty(_value_at(c, f.split("."))) for f in group.fields):
                out.append(error("missing-one-of", group.report_on,
                                 f"at least one of {', '.join(group.fields)} is required"))
        for path, when_text in es.conditional.items():
            for concrete, value in _resolve(c, path):
                if _empty(value):
                    out.append(warning("missing-conditional", concrete,
                                       f"{profile.name} asks for it: {when_text}"))
    return out


def _who(c: Consignment, files_as: FilerType | None) -> str:
    who = c.filer_type.value if c.filer_type else "every filer"
    return f"{who} filing as {files_as.value}" if files_as and files_as != c.filer_type else who


_MISSING = object()
_DICT = object()
_KINDS: dict[type, Any] = {}
"""Per class: its pydantic fields, _DICT for a dict, None for anything else (looked up
once per class: isinstance against BaseModel goes through ABCMeta and is slow)."""


def _kind(cls: type) -> Any:
    kind = _KINDS.get(cls, _MISSING)
    if kind is _MISSING:
        if issubclass(cls, BaseModel):
            kind = cls.__pydantic_fields__
        else:
            kind = _DICT if issubclass(cls, dict) else None
        _KINDS[cls] = kind
    return kind


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if value.__class__ is str:
        return value == ""
    kind = _kind(type(value))
    if kind is not None and kind is not _DICT:
        return not kind  # a model: its dump is {} only if it has no fields
    return value == "" or value == [] or value == {}


def _child(node: Any, name: str) -> Any:
    """`node[name]` of a model (as its dump would have it) or a dict; _MISSING when
    `node` is neither."""
    kind = _kind(type(node))
    if kind is None:
        return _MISSING
    if kind is _DICT:
        return node.get(name)
    return getattr(node, name) if name in kind else None


def _plain(value: Any) -> Any:
    """A value as `model_dump` would give it (for comparing its text)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _value_at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        data = _child(data, part)
        if data is _MISSING:
            return None
    return data


def _resolve(data: Any, path: str) -> list[tuple[str, Any]]:
    """Expand `items.*.x` into concrete paths with their values. A missing parent
    yields the parent's path (so `seller.name` on no seller is reported on `seller`)."""
    results: list[tuple[str, Any]] = []
    _expand(data, _split(path), 0, [], results)
    return results


@lru_cache(maxsize=1024)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _expand(node: Any, parts: tuple[str, ...], i: int, prefix: list[str],
            results: list[tuple[str, Any]]) -> None:
    """Follow `parts[i:]` from `node` (whose path is `prefix`, a list this call owns),
    depth first: one recursion per `*`, none per plain part."""
    last = len(parts) - 1
    while i <= last:
        head = parts[i]
        if head == "*":
            # Iterating a dump's dict gives its keys: a model gives its field names.
            kind = _kind(type(node))
            children = list(kind) if kind is not None and kind is not _DICT else node or []
            for j, child in enumerate(children):
                _expand(child, parts, i + 1, prefix + [str(j)], results)
            return
        kind = _KINDS.get(type(node), _MISSING)  # _child, inlined: this is the hot loop
        if kind is _MISSING:
            kind = _kind(type(node))
        if kind is None:
            results.append((".".join(prefix), None))
            return
        child = node.get(head) if kind is _DICT else getattr(node, head) if head in kind else None
        prefix.append(head)
        if child is None and i < last:
            results.append((".".join(prefix), None))
            return
        node = child
        i += 1
    results.append((".".join(prefix), node))


class _Trie:
    """Paths that share a prefix, walked once for all of them (`items` is looked at
    once, not once per `items.*.x`). `ends`: indices of the paths that end here;
    `below`: of those that go on."""

    __slots__ = ("children", "ends", "below")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.ends: list[int] = []
        self.below: list[int] = []


@lru_cache(maxsize=256)
def _trie(paths: tuple[str, ...]) -> _Trie:
    root = _Trie()
    for index, path in enumerate(paths):
        node = root
        parts = _split(path)
        for depth, head in enumerate(parts):
            node = node.children.setdefault(head, _Trie())
            (node.ends if depth == len(parts) - 1 else node.below).append(index)
    return root


_Found = list[list[tuple[list[str], Any]]]


def _resolve_all(data: Any, paths: tuple[str, ...]) -> _Found:
    """`[_resolve(data, p) for p in paths]` in one walk, with each concrete path as its
    parts (joined by the caller only for the few it reports)."""
    results: _Found = [[] for _ in paths]
    _visit(data, _trie(paths), [], results)
    return results


def _visit(node: Any, trie: _Trie, prefix: list[str], results: _Found) -> None:
    kind = _KINDS.get(type(node), _MISSING)
    if kind is _MISSING:
        kind = _kind(type(node))
    for head, sub in trie.children.items():
        if head == "*":
            children = list(kind) if kind is not None and kind is not _DICT else node or []
            for j, child in enumerate(children):
                _arrive(child, sub, prefix + [str(j)], results, listed=True)
            continue
        if kind is None:
            for index in sub.ends + sub.below:
                results[index].append((prefix, None))
            continue
        child = node.get(head) if kind is _DICT else getattr(node, head) if head in kind else None
        _arrive(child, sub, prefix + [head], results)


def _arrive(node: Any, trie: _Trie, path: list[str], results: _Found,
            listed: bool = False) -> None:
    """`node` found at `path`: the paths that end here get it; those that go on go on
    (or end here, reported on `path`, when a field they go through is None)."""
    for index in trie.ends:
        results[index].append((path, node))
    if trie.below:
        if node is None and not listed:
            for index in trie.below:
                results[index].append((path, None))
        else:
            _visit(node, trie, path, results)

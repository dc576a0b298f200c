"""Validation of one consignment: the regime profile's presence rules, the value rules
of `s321.rules`, then any extra validators, as one list of findings."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

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
    data = c.model_dump(mode="python")
    out: list[Finding] = []
    seen: set[str] = set()
    for es in profile.element_sets(c.filer_type, files_as):
        required = list(es.required)
        for when in es.when:
            if str(_value_at(data, when.field.split("."))) == when.equals:
                required += when.required
        for path in required:
            for concrete, value in _resolve(data, path):
                if _empty(value) and concrete not in seen:
                    seen.add(concrete)
                    out.append(error("missing-required", concrete,
                                     f"required by {profile.name} for {_who(c, files_as)}"))
        for group in es.one_of:
            if all(_empty(_value_at(data, f.split("."))) for f in group.fields):
                out.append(error("missing-one-of", group.report_on,
                                 f"at least one of {', '.join(group.fields)} is required"))
        for path, when_text in es.conditional.items():
            for concrete, value in _resolve(data, path):
                if _empty(value):
                    out.append(warning("missing-conditional", concrete,
                                       f"{profile.name} asks for it: {when_text}"))
    return out


def _who(c: Consignment, files_as: FilerType | None) -> str:
    who = c.filer_type.value if c.filer_type else "every filer"
    return f"{who} filing as {files_as.value}" if files_as and files_as != c.filer_type else who


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _value_at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def _resolve(data: Any, path: str) -> list[tuple[str, Any]]:
    """Expand `items.*.x` into concrete paths with their values. A missing parent
    yields the parent's path (so `seller.name` on no seller is reported on `seller`)."""
    results: list[tuple[str, Any]] = []

    def walk(node: Any, parts: list[str], prefix: list[str]) -> None:
        if not parts:
            results.append((".".join(prefix), node))
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            for i, child in enumerate(node or []):
                walk(child, rest, prefix + [str(i)])
            return
        if not isinstance(node, dict):
            results.append((".".join(prefix), None))
            return
        child = node.get(head)
        if child is None and rest:
            results.append((".".join(prefix + [head]), None))
            return
        walk(child, rest, prefix + [head])

    walk(data, path.split("."), [])
    return results

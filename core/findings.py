"""Findings: what validation, mapping and parsing say about a unit of input.

A finding is `{code, field, severity, message}` with `field` a dotted path into the
record (`items.0.listed_price`); `location` names the input (FILE:LINE or segment).
A consignment with an error finding is invalid and is never transmitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    field: str
    severity: Severity = Severity.ERROR
    message: str
    location: str | None = None

    def at(self, location: str | None) -> Finding:
        """This finding with `location` filled in, unless it already names one."""
        if self.location or not location:
            return self
        return self.model_copy(update={"location": location})


def error(code: str, field: str, message: str, location: str | None = None) -> Finding:
    return Finding(code=code, field=field, severity=Severity.ERROR, message=message, location=location)


def warning(code: str, field: str, message: str, location: str | None = None) -> Finding:
    return Finding(code=code, field=field, severity=Severity.WARNING, message=message, location=location)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


def dotted(loc: Iterable[object]) -> str:
    return ".".join(str(part) for part in loc)


def from_validation_error(exc: ValidationError, prefix: str = "") -> list[Finding]:
    """Turn a pydantic error into findings on dotted paths, without echoing input values
    (they may be personal data)."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        path = dotted(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        out.append(error(f"type-{err['type']}", path, err["msg"]))
    return out

"""How `s321 preview` shows its outcomes to a person: the counts, the findings by code,
then the orders with findings, one group per order, those with errors first.

Memory stays flat however large the input: counts are kept for everything, but only
the first `DETAIL` orders of each group are kept for the listing (`--json` has all)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from s321.cli import console
from s321.findings import Finding, Severity
from s321.pipeline import Outcome, Status

DETAIL = 200
"""Orders listed in detail per group (with errors, with warnings only)."""


@dataclass
class _Order:
    ref: str
    status: str
    source: str
    findings: list[Finding]


@dataclass
class PreviewView:
    pipeline: str
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    by_code: Counter[tuple[str, str]] = field(default_factory=Counter)
    with_errors: list[_Order] = field(default_factory=list)
    with_warnings: list[_Order] = field(default_factory=list)
    more: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status.value] += 1
        if outcome.status is Status.SKIPPED:
            self.skipped[outcome.reason or "?"] += 1
        if not outcome.findings:
            return
        for f in outcome.findings:
            self.by_code[(f.code, f.severity.value)] += 1
        errors = any(f.severity is Severity.ERROR for f in outcome.findings)
        group = self.with_errors if errors else self.with_warnings
        if len(group) < DETAIL:
            # Errors first within an order too, so the reason it is invalid leads.
            findings = sorted(outcome.findings, key=lambda f: f.severity is not Severity.ERROR)
            group.append(_Order(outcome.ref, outcome.status.value, outcome.source, findings))
        else:
            self.more["errors" if errors else "warnings"] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def render(self) -> None:
        if self.total == 0:
            console.line(f"pipeline {self.pipeline}: nothing to preview: the input holds no records",
                         "warning")
            return
        console.line(f"pipeline {self.pipeline}: " + ", ".join(
            f"{self.counts.get(s.value, 0)} {s.value}" for s in Status),
            "error" if self.counts.get(Status.INVALID.value) else "ok")
        for reason, n in self.skipped.most_common():
            console.line(f"  skipped x{n}: {reason}", "dim")
        if self.by_code:
            rows = [(code, severity, str(n)) for (code, severity), n in sorted(
                self.by_code.items(), key=lambda kv: (kv[0][1] != "error", kv[0][0]))]
            if console.is_terminal():
                console.table(["finding", "severity", "count"], rows, title="findings by code")
            else:
                for code, severity, n in rows:
                    print(f"  {code} ({severity}) x{n}")
        for title, group, more in (("orders with errors", self.with_errors, self.more["errors"]),
                                   ("orders with warnings only", self.with_warnings,
                                    self.more["warnings"])):
            if not group:
                continue
            console.line(f"{title}:")
            for order in group:
                console.line(f"  {order.ref} ({order.status}) {order.source}",
                             "error" if order.status == Status.INVALID.value else "warning")
                for f in order.findings:
                    console.line(f"    {f.severity.value:<7} {f.code}: {f.location or order.source}: "
                                 f"{f.field or '-'}: {f.message}",
                                 "error" if f.severity is Severity.ERROR else "warning")
            if more:
                console.line(f"  ... and {more} more (s321 preview --json lists every one)", "dim")

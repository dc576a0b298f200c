"""Filing again what was refused or what changed, safely: `resend`, `dlq retry` and
`revalidate` go through here.

Promises: nothing known to be invalid is transmitted (a record is validated against
the pipeline's current profile, rates and validators before an operator's resend or
retry queues it, and refused with its error findings); a record invalid when read is
mapped again from its raw unit kept in the ledger (no input file needed) when what
its verdict depends on changes (`fingerprint`) or on request; records already filed
are mapped again only on request (`include_filed`), so one table fix never
mass-replaces filings by itself.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import json
import pickle
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from s321 import ids, rules, validation
from s321.config import LoadedConfig, Pipeline
from s321.contracts import RawUnit
from s321.findings import Finding, Severity
from s321.ledger import Ledger
from s321.logs import get_logger
from s321.pipeline import Outcome, Processor, Status
from s321.record import Action, Consignment
from s321.states import State

log = get_logger(__name__)

NOT_REMAPPED = frozenset({"duplicate-key"})
"""Findings about the input as a whole, not the unit: mapping the unit alone again
cannot clear them (the file must be fixed), so its raw unit is not kept."""


# --------------------------------------------------------------------------- raw units

def pack(unit: RawUnit) -> bytes | None:
    """A raw unit as the ledger keeps it: pickled (a source's payload is its own
    objects, which JSON cannot bring back) and compressed. The ledger is owner-only and
    written by s321 alone; it is read back only by `unpack`, in this process. None (and
    a warning naming the unit's place) when the payload cannot be pickled: the record
    is stored all the same, and mapped again only when its file is read again."""
    try:
        return zlib.compress(pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL), 6)
    except Exception as exc:  # a plugin's payload holding a handle, a lock, a lambda
        log.warning("raw unit cannot be kept", location=unit.location, error_type=type(exc).__name__)
        return None


class _KeptUnits(pickle.Unpickler):
    """Unpickles raw units only: the value types of the standard library and the plain
    data classes of s321 and its plugins (dataclasses, pydantic models, enums, named
    tuples), never a function or any other callable a tampered ledger could name."""

    _STDLIB = {("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                                         "bytearray", "int", "float", "bool", "complex", "slice")} | {
        ("decimal", "Decimal"), ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
        ("datetime", "timedelta"), ("datetime", "timezone"), ("collections", "OrderedDict"),
        ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("copyreg", "_reconstructor"),
        ("builtins", "object")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._STDLIB:
            return super().find_class(module, name)
        if module.split(".")[0] in _PLUGIN_ROOTS():
            found = super().find_class(module, name)
            if isinstance(found, type) and (dataclasses.is_dataclass(found) or issubclass(
                    found, (BaseModel, enum.Enum, tuple))):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not a kept unit's data class")


def _PLUGIN_ROOTS() -> set[str]:  # noqa: N802 (a constant, computed when first needed)
    """Top-level packages whose data classes a kept unit may hold: s321's, and those of
    the installed plugins (their entry points in the `s321` group)."""
    global _ROOTS
    if _ROOTS is None:
        from importlib.metadata import entry_points
        _ROOTS = {"s321"} | {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group="s321")}
    return _ROOTS


_ROOTS: set[str] | None = None


def unpack(blob: bytes) -> RawUnit:
    """Raises ValueError when the unit cannot be read back (kept by another version of
    its source plugin, whose classes changed; or not a unit's data at all)."""
    try:
        unit = _KeptUnits(io.BytesIO(zlib.decompress(blob))).load()
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(unit, RawUnit):
        raise ValueError(f"not a raw unit but a {type(unit).__name__}")
    return unit


def keeps_raw(outcome: Outcome) -> bool:
    """Whether an outcome's raw unit is kept: invalid, and for a reason a change of
    tables, defaults or profile may clear."""
    return outcome.status is Status.INVALID and not any(f.code in NOT_REMAPPED for f in outcome.findings)


# --------------------------------------------------------------------------- fingerprints

def fingerprint(pipeline: Pipeline, rates: dict[str, Any]) -> str:
    """A digest of what a pipeline's verdicts depend on besides its input: the source's
    options (its enrichment tables by size and modification time), the defaults, the
    profile, the files-as setting, the validators and the currency rates. The input's
    own `path` and `pattern` are left out: new input is not a reason to revalidate."""
    options = pipeline.source_options.model_dump(mode="json")
    tables = {}
    for key, value in sorted(options.items()):
        if key in ("path", "pattern") or not isinstance(value, str):
            continue
        path = Path(value)
        try:
            if path.is_file():
                st = path.stat()
                tables[key] = [st.st_size, st.st_mtime_ns]
        except OSError:
            tables[key] = None
    parts = {
        "source": pipeline.source.name,
        "options": {k: v for k, v in options.items() if k not in ("path", "pattern")},
        "tables": tables,
        "defaults": pipeline.context.defaults.model_dump(mode="json"),
        "profile": pipeline.profile.model_dump(mode="json"),
        "files_as": str(pipeline.config.files_as),
        "validators": [[c.name, o.model_dump(mode="json")] for c, o in pipeline.validators],
        "rates": {k: str(v) for k, v in sorted(rates.items())},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- revalidation

@dataclass
class Revalidation:
    """What `revalidate` did (or, dry, would do) for one pipeline."""

    pipeline: str
    examined: int = 0
    now_valid: int = 0
    """Never filed, invalid before, valid now: queued as an add (dry: would be)."""
    still_invalid: int = 0
    replaces: int = 0
    """Filed records whose content changes: queued as a replace (dry: would be)."""
    unchanged: int = 0
    unreadable: list[str] = field(default_factory=list)
    """Transaction ids whose raw unit could not be read back."""
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "examined": self.examined, "now_valid": self.now_valid,
                "still_invalid": self.still_invalid, "replaces": self.replaces, "unchanged": self.unchanged,
                "unreadable": len(self.unreadable), "dry_run": self.dry_run}


def revalidate(processor: Processor, ledger: Ledger, include_filed: bool = False,
               dry_run: bool = False) -> Revalidation:
    """Map and validate again, with the processor's current tables, defaults and profile,
    every record of its pipeline whose raw unit is kept: the never-filed invalid ones,
    and with `include_filed` the filed ones too (a changed one goes as a replace).
    With `dry_run` nothing is written: the counts say what would happen."""
    pipeline = processor.pipeline
    ctx = pipeline.context
    report = Revalidation(pipeline.name, dry_run=dry_run)
    outcomes: list[Outcome] = []
    raw: dict[str, bytes] = {}
    mapped_from: dict[str, bytes] = {}
    for txid, state, blob in ledger.raw_units(pipeline.name, include_filed):
        report.examined += 1
        try:
            unit = unpack(blob)
        except ValueError as exc:
            report.unreadable.append(txid)
            log.warning("kept unit cannot be read back", pipeline=pipeline.name, transaction_id=txid,
                        error=str(exc))
            continue
        outcome = processor.process_unit(unit)
        never_filed = state == State.INVALID
        if outcome.status is Status.VALID and outcome.record is not None:
            if never_filed:
                report.now_valid += 1
            elif ids.filed_json(outcome.record)[1] != (ledger.get(txid) or {}).get("content_hash"):
                report.replaces += 1
            else:
                report.unchanged += 1
        elif never_filed:
            report.still_invalid += 1
        else:
            report.unchanged += 1  # a filed record now invalid here keeps its filing
        outcomes.append(outcome)
        mapped_from[txid] = blob  # stored only if still the unit kept (no newer read came meanwhile)
        if keeps_raw(outcome):
            raw[outcome.ref] = blob
    if not dry_run and outcomes:
        ledger.ingest(pipeline.name, ctx.originator_code, ctx.ids, outcomes, raw=raw, event="revalidated",
                      mapped_from=mapped_from)
    return report


# --------------------------------------------------------------------------- checked resends

@dataclass
class Refused:
    """A record an operator asked to send that validation refuses."""

    transaction_id: str
    findings: list[Finding]
    reason: str | None = None
    """Why it cannot be validated at all (its pipeline is no longer in the config)."""


def findings_before_sending(pipeline: Pipeline, rates: dict[str, Any], record_json: str) -> list[Finding]:
    """Error findings of a stored record against its pipeline's current profile, rates
    and validators."""
    record = Consignment.model_validate_json(record_json)
    rules.derive(record, rates)
    ctx = pipeline.context
    validators = [comp.factory(opts, ctx) for comp, opts in pipeline.validators]
    found = validation.validate(record, pipeline.profile, rates, pipeline.config.files_as, validators)
    return [f for f in found if f.severity is Severity.ERROR]


def checked(loaded: LoadedConfig, ledger: Ledger, transaction_ids: Iterable[str],
            action: Action | None = None) -> tuple[list[str], list[Refused]]:
    """Split transaction ids into those that may be sent and those validation refuses.
    A delete is not validated (it carries no content to judge)."""
    ok: list[str] = []
    refused: list[Refused] = []
    for txid in transaction_ids:
        row = ledger.get(txid)
        if row is None or action is Action.DELETE or row.get("record") is None:
            ok.append(txid)  # the ledger says why it cannot (no such record, nothing valid)
            continue
        pipeline = loaded.pipelines.get(row["pipeline"])
        if pipeline is None:
            refused.append(Refused(txid, [], f"the config has no pipeline {row['pipeline']!r} to validate it"
                                             " against"))
            continue
        errors = findings_before_sending(pipeline, loaded.rates, row["record"])
        if errors:
            refused.append(Refused(txid, errors))
        else:
            ok.append(txid)
    return ok, refused

"""The processing half of a pipeline: raw units -> mapped, derived, validated outcomes.

`Processor.process()` turns every unit a source yields into exactly one `Outcome`
(valid, invalid or skipped): nothing is dropped silently, and a broken unit or a
plugin that raises becomes an invalid outcome with findings, never a crash.

Keys are unique within one input file: units of one file that share a key are all
invalid (`duplicate-key`, naming each other's locations), since filing one of them
would silently pick a winner. Finding them takes a first pass over the files that keeps
only keys and locations, never units, and past 50,000 keys not even those in memory
(s321.repeats); a source that is not file-based (a queue, an API: it cannot be read
twice) gets no first pass. A source may offer `read_keys(paths)` for that pass: the
units of `read()` with the same keys, locations and checkpoints, payloads left out
where that is cheaper (shopify-csv skips building its orders); otherwise `read()` is used.

A file-based source may also offer spans, which let `s321 preview`'s workers read their
own share of the input (s321.parallel; shopify-csv, x12-309 and cargo-imp-fhl do):
`read_key_positions(paths)`
yields the units of `read_keys` each with a position, a picklable tuple whose first
item tells the readings of inputs apart (shopify-csv: the file's number in this read,
then file, byte offset, line), or with None for a unit no reading can start at, which
must then be the unit `read()` yields there, in full; `read_span(position, count)`
yields the `count` units `read()` yields from the one at `position` on, equal in every
field (key, location, checkpoint, findings, payload), as long as they share the first
item of their positions; a file changed since its positions were taken yields a unit
that says so, never fewer units than asked unsaid. Both or neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from s321 import ids, rules, validation
from s321.config import Pipeline
from s321.contracts import RawUnit
from s321.findings import Finding, error, from_validation_error, has_errors
from s321.repeats import RepeatedKeys
from s321.logs import get_logger
from s321.record import Consignment

log = get_logger(__name__)


class Status(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Outcome:
    ref: str
    status: Status
    source: str
    record: Consignment | None = None
    findings: list[Finding] = field(default_factory=list)
    reason: str | None = None
    checkpoint: Any = None
    line: str | None = None
    """The `--json` line, when a preview worker wrote it (its record then stays there)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status.value,
            "source": self.source,
            "reason": self.reason,
            "record": self.record.model_dump(mode="json", exclude_none=True) if self.record else None,
            "findings": [f.model_dump(mode="json", exclude_none=True) for f in self.findings],
        }

    def to_json(self) -> str:
        """`json.dumps(self.as_dict(), ensure_ascii=False, default=str)`: the same text
        (a line of `s321 preview --json`) at about half the cost, because the record is
        written by pydantic-core in one pass instead of dumped to a dict and encoded."""
        if self.line is not None:  # written by a preview worker (s321.parallel)
            return self.line
        try:
            # indent=0 puts a newline after every separator, and JSON strings never
            # hold a raw one: so the newlines show where json.dumps puts its spaces.
            # (`model_dump_json`, without its decode until the bytes are spaced.)
            record = self.record.__pydantic_serializer__.to_json(
                self.record, exclude_none=True, indent=0).replace(b",\n", b", ").replace(
                b"\n", b"").decode() if self.record else "null"
        except Exception:  # whatever the one-pass writer refuses, the dict way decides
            return json.dumps(self.as_dict(), ensure_ascii=False, default=str)
        findings = json.dumps([f.model_dump(mode="json", exclude_none=True) for f in self.findings],
                              ensure_ascii=False, default=str) if self.findings else "[]"
        return (f'{{"ref": {_json_text(self.ref)}, "status": {_STATUS_JSON[self.status]}, '
                f'"source": {_json_text(self.source)}, "reason": {_json_text(self.reason)}, '
                f'"record": {record}, "findings": {findings}}}')


_STATUS_JSON = {status: encode_basestring(status.value) for status in Status}


def _json_text(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, default=str)`, quicker for a str or None."""
    if value.__class__ is str:
        return encode_basestring(value)  # json.dumps(ensure_ascii=False) quotes with it
    return "null" if value is None else json.dumps(value, ensure_ascii=False, default=str)


class Processor:
    """Source, mapper and validators of one pipeline, built from its config."""

    def __init__(self, pipeline: Pipeline, rates: dict[str, Decimal]):
        self.pipeline = pipeline
        self.rates = rates
        ctx = pipeline.context
        self.source = pipeline.source.factory(pipeline.source_options, ctx)
        self.mapper = pipeline.mapper.factory(pipeline.source_options, ctx)
        self.validators = [comp.factory(opts, ctx) for comp, opts in pipeline.validators]

    @classmethod
    def reading(cls, pipeline: Pipeline, rates: dict[str, Decimal]) -> Processor:
        """A processor for `repeated_keys` and its source's `read` only: no mapper and no
        validators are built (so no enrichment table is opened)."""
        processor = cls.__new__(cls)
        processor.pipeline, processor.rates = pipeline, rates
        processor.source = pipeline.source.factory(pipeline.source_options, pipeline.context)
        return processor

    def process(self, paths: Iterable[Path] | None = None) -> Iterator[Outcome]:
        paths = list(paths) if paths is not None else None
        # Only files can be read twice: a source fed by a queue or an API is not.
        repeated = self.repeated_keys(paths) if paths is not None or self._file_based() else {}
        for unit in self.source.read(paths):
            outcome = self.process_unit(unit)
            if repeated:
                others = repeated.get((input_of(unit), unit.key))
                if others is not None:
                    mark_duplicate(outcome, unit, others)
            yield outcome

    def _file_based(self) -> bool:
        opts = self.pipeline.source_options
        return hasattr(opts, "path") and hasattr(opts, "pattern")

    def repeated_keys(self, paths: list[Path] | None) -> dict[tuple[str, str], list[str]]:
        """(input, key) -> the locations of every unit with that key in that input, for
        the keys that occur more than once: a first pass over the source, holding keys
        and one location each, never the units."""
        read = getattr(self.source, "read_keys", None) or self.source.read
        with RepeatedKeys() as keys:  # flat memory: past a limit the keys wait on disk
            try:
                for unit in read(paths):
                    keys.add((input_of(unit), unit.key), unit.location)
            except Exception as exc:  # the second pass meets the same problem and reports it
                log.error("source raised while its keys were read", pipeline=self.pipeline.name,
                          error_type=type(exc).__name__)
            return keys.repeated()

    def process_unit(self, unit: RawUnit) -> Outcome:
        where = unit.location
        found = [f.at(where) for f in unit.findings]
        if unit.payload is None:
            if not found:
                found = [error("unreadable", "", "the source yielded a unit with nothing in it", where)]
            return Outcome(unit.key, Status.INVALID, where, None, found, checkpoint=unit.checkpoint)
        try:
            mapped = self.mapper.map(unit)
        except Exception as exc:  # a mapper bug must not stop the pipeline
            log.error("mapper raised", pipeline=self.pipeline.name, mapper=self.pipeline.mapper.name,
                      location=where, error_type=type(exc).__name__)
            found.append(error("mapper-error", "", f"the mapper failed: {type(exc).__name__}", where))
            return Outcome(unit.key, Status.INVALID, where, None, found, checkpoint=unit.checkpoint)
        found += [f.at(where) for f in mapped.findings]
        if mapped.skipped:
            return Outcome(unit.key, Status.SKIPPED, where, None, found, reason=mapped.skipped,
                           checkpoint=unit.checkpoint)
        if mapped.record is None:
            if not has_errors(found):
                found.append(error("not-a-consignment", "", "the mapper made no record of it", where))
            return Outcome(unit.key, Status.INVALID, where, None, found, checkpoint=unit.checkpoint)
        ctx = self.pipeline.context
        fields = dict(mapped.record)
        if fields.get("security_scan") is None and ctx.defaults.security_scan is not None:
            fields["security_scan"] = ctx.defaults.security_scan.model_dump()  # says source = configuration
        fields["transaction_id"] = ids.transaction_id(ctx.originator_code, ctx.ids, unit.key)
        try:
            # (`Consignment.model_validate`, without its Python wrapper: 1.4 µs a record.)
            consignment = _VALIDATE(fields)
        except ValidationError as exc:
            found += [f.at(_location_of(f.field, mapped.locations, where))
                      for f in from_validation_error(exc)]
            return Outcome(unit.key, Status.INVALID, where, None, found, checkpoint=unit.checkpoint)
        if consignment.originator_code not in (None, ctx.originator_code):  # another filer's
            found.append(error("originator-mismatch", "originator_code",
                               f"this pipeline files for {ctx.originator_code!r} only; remove "
                               "originator_code from the input or send it through its own pipeline",
                               where))
        rules.derive(consignment, self.rates)
        placed = mapped.locations
        found += [f.at(_location_of(f.field, placed, where) if placed else where)
                  for f in self.validate(consignment, found, mapped.hints)]
        status = Status.INVALID if has_errors(found) else Status.VALID
        return Outcome(unit.key, status, where, consignment, found, checkpoint=unit.checkpoint)

    def validate(self, consignment: Consignment, prior: list[Finding] | None = None,
                 hints: dict[str, str] | None = None) -> list[Finding]:
        try:
            return validation.validate(consignment, self.pipeline.profile, self.rates,
                                       self.pipeline.config.files_as, self.validators,
                                       prior or (), hints)
        except Exception as exc:  # a validator bug must not stop the pipeline
            log.error("validator raised", pipeline=self.pipeline.name, error_type=type(exc).__name__)
            return [error("validator-error", "", f"a validator failed: {type(exc).__name__}")]


_VALIDATE = Consignment.__pydantic_validator__.validate_python


def _location_of(path: str, locations: dict[str, str], where: str) -> str:
    """The location of the longest prefix of `path` (`items.1.hts_code` -> `items.1`) a
    mapper placed, else the unit's."""
    while path:
        found = locations.get(path)
        if found is not None:
            return found
        path = path.rpartition(".")[0]
    return where


def input_of(unit: RawUnit) -> str:
    """The input (file) a unit came from: its checkpoint's file when the source gives
    one as (file, position), else its location without the line or segment."""
    checkpoint = unit.checkpoint
    if isinstance(checkpoint, tuple) and checkpoint and isinstance(checkpoint[0], str):
        return checkpoint[0]
    head, sep, _tail = unit.location.rpartition(":")
    return head if sep else unit.location


def mark_duplicate(outcome: Outcome, unit: RawUnit, locations: list[str]) -> None:
    """`outcome` made invalid: its key is shared with the units at the other locations."""
    others = [loc for loc in locations if loc != unit.location] or locations
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    outcome.findings.append(error(
        "duplicate-key", "",
        f"the unit at {shown} in the same file has the same key {unit.key!r} (made of the "
        f"order name, bill number or house waybill number), so none of them is filed: give "
        f"each its own number, or remove the repeated one, and read the file again",
        unit.location))
    outcome.status = Status.INVALID
    outcome.reason = None

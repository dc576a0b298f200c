"""Conformance suite for validators: subclass `ValidatorConformance`, name your
validator, and pytest fails one whose findings are malformed or point at no record
field, that raises on some record, or that changes the record it is given.
"""

from __future__ import annotations

import copy
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from s321.contracts import Validator
from s321.findings import Finding, Severity
from s321.record import Consignment
from s321.testing.harness import PipelineHarness, pipeline_config
from s321.testing.samples import carrier_record, consignment, marketplace_record
from s321.testing.suite import PluginSuite, assert_rejects_unknown_keys

CODE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
"""Finding codes are kebab-case words, like the built-in ones (`missing-required`)."""

_ODD_TEXT = ["", " ", "gift", "x" * 300, "\u00fc\u00df\u4e2d", "0", "-1", "NaN", "None"]
_ODD_VALUES: dict[str, list[Any]] = {
    "quantity": [None, 0, -1, 100000],
    "listed_price": [None, "0", "-5", "0.001", "100000"],
    "weight_kg": [None, "0", "-1", "5000"],
}


def field_error(path: str, record: Consignment) -> str | None:
    """Why `path` is not a dotted path into `record` and into the Consignment model,
    or None if it is one. "" means the record as a whole; a path may stop at a part
    that is absent (`seller.name` on a record without a seller)."""
    if path == "":
        return None
    annotation: Any = Consignment
    value: Any = record
    walked: list[str] = []
    for part in path.split("."):
        here = ".".join(walked) or "the record"
        annotation = _unwrap(annotation)
        if typing.get_origin(annotation) is list:
            if not part.isdigit():
                return f"{here} is a list: the next part must be an index, not {part!r}"
            annotation = typing.get_args(annotation)[0]
            if value is not None and int(part) >= len(value):
                return f"{here} has {len(value)} entries: there is no index {part}"
            value = value[int(part)] if value is not None else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                valid = ", ".join(annotation.model_fields)
                return f"{here} has no field {part!r} (fields: {valid})"
            annotation = annotation.model_fields[part].annotation
            value = getattr(value, part) if value is not None else None
        else:
            return f"{here} is a value: it has no part {part!r}"
        walked.append(part)
    return None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def finding_errors(finding: Any, record: Consignment) -> list[str]:
    """What is wrong with one finding a validator returned (empty when nothing)."""
    if not isinstance(finding, Finding):
        return [f"a finding must be an s321.findings.Finding, not {type(finding).__name__}"]
    problems = []
    if not CODE.fullmatch(finding.code):
        problems.append(f"code {finding.code!r} is not kebab-case (like `missing-required`)")
    if not isinstance(finding.severity, Severity):
        problems.append(f"severity {finding.severity!r} is not error or warning")
    if not finding.message.strip():
        problems.append(f"finding {finding.code!r} has no message: say what is wrong and what would be valid")
    wrong = field_error(finding.field, record)
    if wrong:
        problems.append(f"finding {finding.code!r}: field {finding.field!r} is not a record field: {wrong}")
    return problems


@st.composite
def record_shapes(draw: st.DrawFn, samples: Sequence[Mapping[str, Any]]) -> Consignment:
    """A sample record with parts taken away or changed: absent parties and items,
    empty strings, odd text, zero and negative numbers."""
    fields = copy.deepcopy(dict(draw(st.sampled_from(list(samples)))))
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
        fields[name] = None if name != "items" else []
    for item in fields.get("items") or []:
        for name in draw(st.lists(st.sampled_from(sorted(item)), max_size=4, unique=True)):
            item[name] = draw(st.sampled_from(_ODD_VALUES.get(name, [None, *_ODD_TEXT])))
    try:
        return consignment({k: v for k, v in fields.items() if v is not None or k == "items"})
    except ValidationError:
        return consignment({k: v for k, v in fields.items() if k != "items"} | {"items": []})


class ValidatorConformance(PluginSuite):
    """The checks every validator must pass. Subclass it (name it `Test...`) and set:

        validator_name = "acme-client-rules"
        plugin_module = acme_s321               # unless the distribution is installed
        sample_records = [{...record fields...}] # optional: records your rules are about
    """

    validator_name: ClassVar[str] = ""
    sample_records: ClassVar[Sequence[Mapping[str, Any]]] = ()
    """Record fields (no transaction id) of records that exercise the rules: some
    that pass, some that do not. Two valid samples (marketplace, carrier) are added."""
    fuzz_examples: ClassVar[int] = 50

    def test_it_is_registered_and_needs_no_options(self, tmp_path: Path) -> None:
        registry = self.registry()
        component = self.component_or_fail(registry, "validator", self.validator_name)
        try:
            component.options.model_validate({})
        except ValidationError as exc:
            pytest.fail(f"a pipeline names validators without options, so its options model "
                        f"must accept none (give every option a default): {exc}")
        assert_rejects_unknown_keys(component.options, {"no_such_option_xyz": 1}, tmp_path)

    def test_findings_are_well_formed_and_point_at_real_fields(self, tmp_path: Path) -> None:
        validator = self.validator(tmp_path)
        for record in self.records():
            for finding in _validate(validator, record):
                problems = finding_errors(finding, record)
                assert not problems, "; ".join(problems)

    def test_any_record_shape_never_crashes_it(self, tmp_path: Path) -> None:
        validator = self.validator(tmp_path)

        @settings(max_examples=self.fuzz_examples, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(record_shapes([*self.sample_records, *_builtin_samples()]))
        def check(record: Consignment) -> None:
            for finding in _validate(validator, record):
                problems = finding_errors(finding, record)
                assert not problems, "; ".join(problems)

        check()

    def test_it_neither_changes_the_record_nor_its_mind(self, tmp_path: Path) -> None:
        validator = self.validator(tmp_path)
        for record in self.records():
            before = record.model_dump()
            first = _validate(validator, record)
            assert record.model_dump() == before, "validate() changed the record it was given"
            assert _validate(validator, record) == first, "the same record got other findings"

    def test_a_pipeline_runs_it(self, tmp_path: Path) -> None:
        harness = self.harness(tmp_path)
        outcomes = harness.preview()
        assert outcomes, "the pipeline read no records"
        for outcome in outcomes:
            codes = {f.code for f in outcome.findings}
            assert "validator-error" not in codes, "the validator raised inside a pipeline"

    # ------------------------------------------------------------------ helpers

    def records(self) -> list[Consignment]:
        return [consignment(dict(fields), key=f"sample-{i}")
                for i, fields in enumerate([*self.sample_records, *_builtin_samples()])]

    def validator(self, folder: Path) -> Validator:
        """The validator as a pipeline builds it (factory, options, context)."""
        harness = self.harness(folder)
        pipeline = harness.loaded.pipelines[harness.name()]
        [(component, options)] = pipeline.validators
        return component.factory(options, pipeline.context)

    def harness(self, folder: Path) -> PipelineHarness:
        """A pipeline over the sample records (records-jsonl) that runs this validator."""
        inbox = folder / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"ref": f"sample-{i}", **r}, default=str)
                 for i, r in enumerate([*self.sample_records, *_builtin_samples()])]
        (inbox / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        registry = self.registry()
        self.component_or_fail(registry, "validator", self.validator_name)
        config = pipeline_config({"plugin": "records-jsonl", "path": str(inbox)},
                                 validators=[self.validator_name])
        return PipelineHarness(folder, config, registry=registry)


def _builtin_samples() -> list[dict[str, Any]]:
    return [marketplace_record(1), carrier_record(2)]


def _validate(validator: Validator, record: Consignment) -> list[Any]:
    try:
        return list(validator.validate(record))
    except Exception as exc:
        raise AssertionError(f"validate() raised {type(exc).__name__}: {exc}; a validator returns "
                             f"findings, it never raises (a record missing what you look at is "
                             f"the profile's business)") from exc

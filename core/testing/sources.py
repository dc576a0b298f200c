"""Conformance suite for file sources and their mappers: subclass `SourceConformance`,
set a few class attributes, and pytest fails a source that crashes on arbitrary bytes,
reports without FILE:LINE or at the wrong line, drops a damaged line or files a unit
without it, grows in memory with its input, or gives the same input other ids (keys
from counters or file names); and a mapper that raises on one bad cell, reports on
field paths the record does not have, sets what the framework owns, or makes other
records of the samples than the author expects.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import random
import re
import shutil
import tracemalloc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s321 import ids
from s321.contracts import Mapped, RawUnit
from s321.findings import Finding, has_errors
from s321.pipeline import Outcome, Processor, Status
from s321.testing.harness import PipelineHarness, pipeline_config
from s321.testing.suite import PluginSuite, assert_rejects_unknown_keys
from s321.testing.validators import field_error

_COLLECT_EVERY = 50

LOCATION = re.compile(r":(\d+|segment \d+)$")
"""How a location ends: a line number, or an X12-style segment number."""

# Bytes that parsers trip on: separators, quotes, BOMs, control and non-UTF-8
# bytes, numbers that do not fit.
_AWKWARD = [b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r", b"\n", b"\r\n", b'"', b",", b";", b"|", b"~",
            b"*", b"/", b"{", b"}", b"[", b"]", b"\t", b"'", b"9" * 40, b"-1", b"0", b"NaN",
            b"Infinity", b"1e999", "\u00fc".encode(), "\u2028".encode(), b"\xc3"]


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A seed input with a few edits: bytes replaced, inserted, deleted, a region
    repeated, the end cut off. Reaches deeper into a parser than random bytes."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    # Half the time the first line (a CSV header, an ISA envelope) is left alone, so
    # that the edits reach the units behind it.
    head = data.find(b"\n") + 1 if draw(st.booleans()) else 0
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(min(head, len(data)), len(data)))
        op = draw(st.sampled_from(("replace", "insert", "awkward", "delete", "repeat", "truncate")))
        if op == "replace":
            data[at:at + draw(st.integers(1, 16))] = draw(st.binary(min_size=1, max_size=16))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "awkward":
            data[at:at] = draw(st.sampled_from(_AWKWARD))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
        else:
            del data[at:]
    return bytes(data)


class SourceConformance(PluginSuite):
    """The checks every file source must pass. Subclass it (name it `Test...`) and set:

        source_name = "acme-csv"                 # the name you register
        plugin_module = acme_s321                # unless the distribution is installed
        sample_inputs = [SAMPLES / "orders.csv"] # real input files (Paths) or bytes
        def make_input(self, n): ...             # bytes of an input holding n units

    and, where your source needs them: `options` (its config table, without `path`),
    `pipeline` (pipeline keys: filer_type, mode_of_transport, defaults, ...),
    `config` (top-level keys, e.g. currency_rates), `input_suffix` (for bytes inputs).
    """

    source_name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Any]] = {}
    pipeline: ClassVar[Mapping[str, Any]] = {}
    config: ClassVar[Mapping[str, Any]] = {}
    sample_inputs: ClassVar[Sequence[Path | bytes]] = ()
    input_suffix: ClassVar[str] = ".txt"
    fuzz_examples: ClassVar[int] = 50
    memory_units: ClassVar[int] = 100
    memory_slack: ClassVar[int] = 512 * 1024
    """Bytes that peak memory may grow by from n to 10n units (or a quarter of the
    10n input, if that is more): room for caches, never for the input itself."""

    expected_records: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    """Unit key -> the record you expect the first sample's unit to become, as `s321
    preview --json` prints it (without `transaction_id`, `version`, `total_value_usd`):
    a mapper that invents values the input does not carry fails the comparison."""
    damage_lines: ClassVar[int] = 8
    """How many lines of each sample the damage check breaks, one at a time."""
    cell_variants: ClassVar[int] = 150
    """How many one-bad-cell copies of the first sample the mapper is given."""
    stable_broken_keys: ClassVar[bool] = True
    """Units that cannot be read get keys that survive a renamed file too. Set False
    only for a source that has not been fixed yet, and say why."""

    def make_input(self, n: int) -> bytes:
        """An input holding `n` units (orders, bills...), for the memory check."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the checks

    def test_it_is_registered_with_a_mapper_and_strict_options(self, tmp_path: Path) -> None:
        registry = self.registry()
        source = self.component_or_fail(registry, "source", self.source_name)
        mapper = self.pipeline.get("mapper", self.source_name)
        assert registry.has("mapper", mapper), (
            f"no mapper named {mapper!r}: register one under the source's name with "
            f"`register_mappers`, or set `mapper` in `pipeline`")
        table = {**self._table(source, tmp_path), "no_such_option_xyz": 1}
        assert_rejects_unknown_keys(source.options, table, tmp_path)

    def test_sample_inputs_make_consignments(self, tmp_path: Path) -> None:
        processor = self.harness(tmp_path).processor()
        outcomes = [o for path in self._samples(tmp_path) for _, o in self.read_checked(processor, path)]
        assert any(o.record is not None for o in outcomes), (
            f"no unit of the sample inputs became a record; findings: "
            f"{[f.message for o in outcomes for f in o.findings][:5]}")

    def test_findings_carry_locations(self, tmp_path: Path) -> None:
        processor = self.harness(tmp_path).processor()
        garbage = tmp_path / f"garbage{self.input_suffix}"
        garbage.write_bytes(b"\x00\xff not an input of this source \xfe\n,,;|~\n")
        for path in [*self._samples(tmp_path), garbage]:
            self.read_checked(processor, path)

    def test_arbitrary_bytes_never_crash_it(self, tmp_path: Path) -> None:
        processor = self.harness(tmp_path).processor()
        folder = tmp_path / "fuzz"
        folder.mkdir()

        @settings(max_examples=self.fuzz_examples, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(self._fuzz_inputs(tmp_path))
        def check(example: tuple[bytes, str]) -> None:
            data, suffix = example
            target = folder / f"input{suffix}"
            target.write_bytes(data)
            self.read_checked(processor, target)

        check()

    def test_memory_stays_flat(self, tmp_path: Path) -> None:
        n = self.memory_units
        try:
            small = self._generated(tmp_path / "small", n)
        except NotImplementedError:
            pytest.fail(f"{type(self).__name__}: define `make_input(self, n) -> bytes`, an input "
                        f"holding n units, so that memory can be compared at n and 10n units")
        large = self._generated(tmp_path / "large", 10 * n)
        processor = self.harness(tmp_path / "run").processor()
        for unit in processor.source.read([small]):  # warm-up: tables, caches, lazy imports
            if unit.payload is not None:
                processor.mapper.map(unit)
        units_small, peak_small = _peak(processor, small)
        units_large, peak_large = _peak(processor, large)
        assert units_large >= 5 * units_small > 0, (
            f"make_input({n}) gave {units_small} units and make_input({10 * n}) {units_large}: "
            f"it must make an input of about n units")
        allowed = max(self.memory_slack, large.stat().st_size // 4)
        growth = peak_large - peak_small
        assert growth <= allowed, (
            f"peak memory grew by {growth:,} bytes from {units_small} to {units_large} units "
            f"(allowed {allowed:,}; the larger input is {large.stat().st_size:,} bytes): the "
            f"source must stream, one unit in memory at a time (docs/record.md, rule 3)")

    def test_reading_twice_gives_the_same_transaction_ids(self, tmp_path: Path) -> None:
        harness = self.harness(tmp_path / "run")
        inputs = self._samples(tmp_path)
        try:
            inputs.append(self._generated(tmp_path / "generated", 5))
        except NotImplementedError:
            pass
        for path in inputs:
            first = _transaction_ids(harness, path)
            again = _transaction_ids(harness, path)
            assert first == again, (
                f"{path.name}: reading it again gave other transaction ids: unit keys must "
                f"come from the input (an order number), never from a clock or a counter")
            moved = tmp_path / "renamed" / f"other-name-{path.name}"
            moved.parent.mkdir(exist_ok=True)
            shutil.copyfile(path, moved)
            renamed = _transaction_ids(harness, moved)
            filed = sorted(t for t, record in first if record)
            moved_filed = sorted(t for t, record in renamed if record)
            assert filed == moved_filed, (
                f"{path.name}: the same consignments under another file name got other "
                f"transaction ids: a record's key must not contain the file's name or path, "
                f"or the next day's export files every order again")
            if self.stable_broken_keys:
                assert sorted(t for t, _ in first) == sorted(t for t, _ in renamed), (
                    f"{path.name}: a unit that could not be read got another key under another file "
                    f"name: key it by what it holds (its order number, or a hash of its text), never "
                    f"by the file's name and line, or the same broken row is a new unit every day")

    def test_keys_do_not_shift_when_a_unit_goes(self, tmp_path: Path) -> None:
        processor = self.harness(tmp_path / "run").processor()
        for path in self._samples(tmp_path):
            read = self.read_checked(processor, path)
            starts = sorted({_line_of(u.location) for u, _ in read} - {None})  # type: ignore[type-var]
            if len([o for _, o in read if o.record is not None]) < 2 or len(starts) < 2:
                continue
            lines = path.read_bytes().splitlines(keepends=True)
            first, second = starts[0], starts[1]
            shorter = tmp_path / "shorter" / path.name
            shorter.parent.mkdir(exist_ok=True)
            shorter.write_bytes(b"".join(lines[:first - 1] + lines[second - 1:]))
            before = _records_by_content(read)
            after = _records_by_content(self.read_checked(processor, shorter))
            for content, txids in after.items():
                if content in before:
                    assert txids == before[content], (
                        f"{path.name}: with the lines {first}-{second - 1} (its first unit) taken out, the "
                        f"same records got other transaction ids: unit keys must come from the input (an "
                        f"order number), never from a counter or a position")

    def test_a_damaged_line_is_reported_where_it_is(self, tmp_path: Path) -> None:
        harness = self.harness(tmp_path / "run")
        processor = harness.processor()
        for path in self._samples(tmp_path):
            read = self.read_checked(processor, path)
            starts = [n for n in (_line_of(u.location) for u, _ in read) if n is not None]
            if not starts:
                continue
            valid = {o.record.transaction_id: _content(o.record) for _, o in read
                     if o.record is not None and o.status is Status.VALID}
            lines = path.read_bytes().splitlines(keepends=True)
            candidates = [n for n in range(min(starts), len(lines) + 1) if lines[n - 1].strip()]
            step = max(1, len(candidates) // max(1, self.damage_lines))
            for n in candidates[::step][:self.damage_lines]:
                # Destroyed: nothing of the line can be read; it must be reported at its line.
                damaged = tmp_path / f"destroyed-{n}" / path.name
                damaged.parent.mkdir(exist_ok=True)
                damaged.write_bytes(b"".join(lines[:n - 1] + [_destroyed(lines[n - 1])] + lines[n:]))
                where = _error_locations(self.read_checked(processor, damaged))
                segments = any("segment" in w for w in where)
                assert f"{damaged}:{n}" in where or (segments and where), (
                    f"{path.name}: line {n} was replaced by garbage, and no error finding names "
                    f"{damaged.name}:{n} (errors at: {sorted(where)[:5]}): a damaged line is reported "
                    f"at its own line, never dropped, never a line off")
                if self.stable_broken_keys:
                    renamed = damaged.parent / f"other-name-{path.name}"
                    shutil.copyfile(damaged, renamed)
                    assert sorted(_transaction_ids(harness, damaged)) == sorted(_transaction_ids(harness, renamed)), (
                        f"{path.name} with line {n} damaged: under another file name a unit got another "
                        f"key; key a unit that cannot be read by what it holds (its order number, a hash "
                        f"of its text), never by the file's name and line, or the same broken row is a "
                        f"new unit every day")
                # Cut short: what is left may still name its unit (an order number); if the
                # source sees the damage, no unit may be filed without the line.
                cut = tmp_path / f"cut-{n}" / path.name
                cut.parent.mkdir(exist_ok=True)
                cut.write_bytes(b"".join(lines[:n - 1] + [_cut(lines[n - 1])] + lines[n:]))
                outcomes = [o for _, o in self.read_checked(processor, cut)]
                seen = _error_locations([(None, o) for o in outcomes])
                if f"{cut}:{n}" not in seen and not (segments and {w.replace(str(cut), "") for w in seen}
                                                      != {w.replace(str(path), "") for w in _error_locations(read)}):
                    continue  # the rest of the line still reads (a shorter text): nothing to hold to
                for o in outcomes:
                    if o.record is not None and o.status is Status.VALID:
                        assert valid.get(o.record.transaction_id) == _content(o.record), (
                            f"{path.name}: with line {n} cut short (and reported), unit {o.ref!r} was "
                            f"still filed, without what that line held: a unit whose line cannot be "
                            f"read is invalid as a whole (an error finding on the unit)")

    def test_one_bad_cell_never_crashes_the_mapper(self, tmp_path: Path) -> None:
        processor = self.harness(tmp_path / "run").processor()
        path = self._samples(tmp_path)[0]
        read = self.read_checked(processor, path)
        starts = sorted({n for n in (_line_of(u.location) for u, _ in read) if n is not None})
        lines = path.read_bytes().splitlines(keepends=True)
        variants = [(n, cell, value) for n in starts[:2] if n <= len(lines)
                    for cell, value in _cell_edits(lines[n - 1])]
        random.Random(321).shuffle(variants)
        folder = tmp_path / "cells"
        folder.mkdir()
        for i, (n, line, edited) in enumerate(variants[:self.cell_variants]):
            target = folder / f"{i}" / path.name
            target.parent.mkdir()
            target.write_bytes(b"".join(lines[:n - 1] + [edited] + lines[n:]))
            try:
                self.read_checked(processor, target)
            except AssertionError as exc:
                raise AssertionError(f"line {n}, cell {line}: {exc}") from exc

    def test_sample_records_are_as_expected(self, tmp_path: Path) -> None:
        if not self.expected_records:
            pytest.skip(f"{type(self).__name__}: set `expected_records` (unit key -> the record you expect, "
                        f"as `s321 preview --json` prints it) to catch a mapper that invents values")
        processor = self.harness(tmp_path / "run").processor()
        path = self._samples(tmp_path)[0]
        made = {o.ref: o for _, o in self.read_checked(processor, path)}
        for key, expected in self.expected_records.items():
            assert key in made, f"{path.name} holds no unit {key!r} (units: {sorted(made)[:10]})"
            record = made[key].record
            assert record is not None, f"unit {key!r} became no record: {made[key].findings[:3]}"
            got = _content(record)
            want = {k: v for k, v in expected.items() if k not in _FRAMEWORK_OWNS}
            wrong = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
            assert not wrong, (
                f"unit {key!r}: the record differs from the expected one in {', '.join(wrong)}: "
                + "; ".join(f"{k}: made {got.get(k)!r}, expected {want.get(k)!r}" for k in wrong[:3])
                + ". A mapper fills only what the input or the pipeline's defaults carry")

    def test_a_pipeline_files_its_sample_inputs(self, tmp_path: Path) -> None:
        harness = self.harness(tmp_path / "run")
        inbox = tmp_path / "run" / "inbox"
        for path in self._samples(tmp_path):
            shutil.copyfile(path, inbox / path.name)
        [summary] = harness.run_once()
        counts = summary.counts
        assert summary.error is None, summary.error
        assert counts["received"] > 0, (
            "the pipeline read nothing from the inbox: does the source's `pattern` match "
            f"the sample files ({', '.join(p.name for p in inbox.iterdir())})?")
        assert counts["received"] == counts["valid"] + counts["invalid"] + counts["skipped"]
        assert counts["accepted"] == counts["valid"]
        [again] = harness.run_once()
        assert again.counts["sent"] == 0, "a second run filed the same input again"

    # ------------------------------------------------------------------ helpers

    def harness(self, folder: Path) -> PipelineHarness:
        """A one-pipeline harness over this source, reading `folder/inbox`, sending to
        the in-memory receiver."""
        registry = self.registry()
        source = self.component_or_fail(registry, "source", self.source_name)
        (folder / "inbox").mkdir(parents=True, exist_ok=True)
        config = pipeline_config(self._table(source, folder), **self.pipeline)
        for key, value in self.config.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, Mapping) else value
        return PipelineHarness(folder, config, registry=registry)

    def read_checked(self, processor: Processor, path: Path) -> list[tuple[RawUnit, Outcome]]:
        """Read `path`, map every unit, and check what came out; fail on the first
        unit that breaks a rule, naming it."""
        out = []
        for unit in _guarded(processor.source.read([path])):
            self.check_unit(unit, path)
            if unit.payload is not None:
                try:
                    mapped = processor.mapper.map(unit)
                except Exception as exc:
                    raise AssertionError(f"the mapper raised {type(exc).__name__} on the unit at "
                                         f"{unit.location}: {exc}; a mapper returns findings for "
                                         f"bad input, it never raises") from exc
                assert isinstance(mapped, Mapped), f"map() returned {type(mapped).__name__}, not Mapped"
                check_mapped(mapped, unit.location)
            try:
                outcome = processor.process_unit(unit)
            except Exception as exc:
                raise AssertionError(f"the pipeline raised {type(exc).__name__} on the unit at "
                                     f"{unit.location}, after the mapper: {exc!r}; a value the mapper "
                                     f"let through broke the framework (report it to s321, and bound "
                                     f"the value in the mapper)") from exc
            for finding in outcome.findings:
                _check_location(finding.location, path, f"finding {finding.code!r} of {unit.location}")
            out.append((unit, outcome))
        return out

    def check_unit(self, unit: Any, path: Path) -> None:
        assert isinstance(unit, RawUnit), f"read() yielded {type(unit).__name__}, not a RawUnit"
        assert isinstance(unit.key, str) and unit.key, f"the unit at {unit.location} has no key"
        _check_location(unit.location, path, f"unit {unit.key!r}")
        for finding in unit.findings:
            assert isinstance(finding, Finding), f"unit {unit.key!r}: a finding is a {type(finding).__name__}"
            _check_location(finding.at(unit.location).location, path, f"finding {finding.code!r}")
        if unit.payload is None:
            assert has_errors(unit.findings), (
                f"the unit at {unit.location} has no payload and no error finding: a unit that "
                f"cannot be read must say why (an error finding naming FILE:LINE)")

    def _table(self, source: Any, folder: Path) -> dict[str, Any]:
        table = {"plugin": self.source_name, **self.options}
        if "path" in source.options.model_fields and "path" not in table:
            table["path"] = str(folder / "inbox")
        return table

    def _samples(self, folder: Path) -> list[Path]:
        if not self.sample_inputs:
            pytest.fail(f"{type(self).__name__}: set `sample_inputs` to a few real input files")
        paths = []
        for i, sample in enumerate(self.sample_inputs):
            if isinstance(sample, bytes):
                path = folder / "samples" / f"sample-{i}{self.input_suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sample)
                sample = path
            paths.append(Path(sample))
        return paths

    def _generated(self, folder: Path, n: int) -> Path:
        data = self.make_input(n)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"generated-{n}{self.input_suffix}"
        path.write_bytes(data)
        return path

    def _fuzz_inputs(self, folder: Path) -> st.SearchStrategy[tuple[bytes, str]]:
        """Random bytes, and edited copies of the samples and of a generated input,
        each written under the suffix of the file it came from (a source may parse
        `.json` and `.jsonl` differently)."""
        seeds = [(p.read_bytes(), p.suffix or self.input_suffix) for p in self._samples(folder)]
        try:
            seeds.append((self.make_input(3), self.input_suffix))
        except NotImplementedError:
            pass
        suffixes = sorted({suffix for _, suffix in seeds} | {self.input_suffix})
        by_suffix = {suffix: [data for data, s in seeds if s == suffix and data] for suffix in suffixes}
        edited = [st.tuples(mutated(datas), st.just(suffix)) for suffix, datas in by_suffix.items() if datas]
        noise = st.tuples(st.binary(max_size=2048), st.sampled_from(suffixes))
        return st.one_of(noise, *edited, *edited) if edited else noise


_FRAMEWORK_OWNS = ("transaction_id", "version", "total_value_usd")
"""Record fields the framework sets: a mapper leaves them out."""


def check_mapped(mapped: Mapped, where: str) -> None:
    """What a mapper returns: nothing the framework owns, findings on real record fields."""
    record = mapped.record or {}
    for name in _FRAMEWORK_OWNS:
        assert record.get(name) is None, (
            f"the mapper set `{name}` for the unit at {where}: the framework sets it (the "
            f"transaction id from the unit's key, the version in the ledger, totals derived from "
            f"the items); leave it out")
    for finding in mapped.findings:
        wrong = _mapped_path_error(finding.field, record)
        assert wrong is None, (
            f"the mapper's finding {finding.code!r} at {where} is on {finding.field!r}, which is not "
            f"a field of the record: {wrong}; name the record field, as `items.0.quantity`")


def _mapped_path_error(path: str, record: Mapping[str, Any]) -> str | None:
    """`field_error` for a mapper's record, still a dict: the model's fields, and list
    indexes within the record's lists."""
    wrong = field_error(path, None)  # type: ignore[arg-type]
    if wrong or not path:
        return wrong
    value: Any = record
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit():
            if int(part) >= len(value):
                return f"the record has {len(value)} entries there: there is no index {part}"
            value = value[int(part)]
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return None


def _line_of(location: str | None) -> int | None:
    match = re.search(r":(\d+)$", location or "")
    return int(match.group(1)) if match else None


def _content(record: Any) -> dict[str, Any]:
    """A record as JSON, without what the framework sets: what a mapper made of a unit."""
    dumped: dict[str, Any] = record.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in dumped.items() if k not in _FRAMEWORK_OWNS}


def _records_by_content(read: list[tuple[RawUnit, Outcome]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for _, outcome in read:
        if outcome.record is not None:
            text = json.dumps(_content(outcome.record), sort_keys=True)
            out.setdefault(text, set()).add(outcome.record.transaction_id)
    return out


def _destroyed(line: bytes) -> bytes:
    """The line replaced by text no source reads, its terminators kept."""
    body = line.rstrip(b"\r\n")
    ending = line[len(body):]
    return b"#damaged-line#\x00" + (b"~" if body.endswith(b"~") else b"") + ending


def _cut(line: bytes) -> bytes:
    """The line's first half (quotes taken out, so that no quoted field opens), its
    terminators kept."""
    body = line.rstrip(b"\r\n")
    ending = line[len(body):]
    return body[:len(body) // 2].replace(b'"', b"") + ending


def _error_locations(read: Any) -> set[str]:
    return {f.location or "" for _, o in read for f in o.findings if f.severity == "error"}


_BAD_CELLS = ["", " ", "NaN", "Infinity", "-1", "0", "1e999", "9" * 40, "\u00b2", "three",
              "\u00fc\u00df\u4e2d", "x" * 300, "-0.001", "2025-13-45"]
_BAD_JSON: list[Any] = [*_BAD_CELLS, None, -1, 0, 1e308, True, [], {}]


def _cell_edits(line: bytes) -> Iterator[tuple[str, bytes]]:
    """(which cell, the line with that one cell replaced) for every cell and bad value:
    a JSON object's leaves, or the fields of a delimited line."""
    body = line.rstrip(b"\r\n")
    ending = line[len(body):]
    text = body.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for path in _leaves(document, ())[:40]:
            for value in _BAD_JSON:
                yield "/".join(map(str, path)), json.dumps(_replaced(document, path, value)).encode() + ending
        return
    terminator = "~" if text.endswith("~") else ""
    text = text[:len(text) - len(terminator)]
    sep = max(",|\t;*", key=text.count)
    if sep == ",":
        cells = next(csv.reader([text]), [])
    else:
        cells = text.split(sep)
    for i in range(len(cells)):
        for value in _BAD_CELLS:
            edited = [*cells[:i], value, *cells[i + 1:]]
            if sep == ",":
                out = io.StringIO()
                csv.writer(out, lineterminator="").writerow(edited)
                joined = out.getvalue()
            else:
                joined = sep.join(edited)
            yield f"#{i + 1}", (joined + terminator).encode("utf-8") + ending


def _leaves(value: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [path]


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = list(document) if isinstance(document, list) else dict(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], value)
    return copy


def _guarded(units: Iterator[Any]) -> Iterator[Any]:
    """The units of `read()`; an exception from it fails the check, saying why."""
    try:
        yield from units
    except Exception as exc:
        raise AssertionError(f"read() raised {type(exc).__name__}: {exc}; a source never raises "
                             f"for bad input: it yields a unit with an error finding") from exc


def _check_location(where: str | None, path: Path, what: str) -> None:
    assert where, f"{what} has no location: name the input as FILE:LINE or FILE:segment N"
    assert path.name in where and LOCATION.search(where), (
        f"{what}: location {where!r} must name the input file ({path.name}) and a line "
        f"or segment, as FILE:LINE or FILE:segment N")


def _peak(processor: Processor, path: Path) -> tuple[int, int]:
    """(units, peak bytes allocated above the start) of reading and mapping `path`.

    Garbage in reference cycles waits for the collector, and how much of it piles up
    depends on the size of the whole test process, not on the source: so the
    collector runs every few units here, over young objects only (the rest frozen),
    and what is measured is what the source holds."""
    started = not tracemalloc.is_tracing()
    gc.collect()
    gc.freeze()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        units = 0
        # Read and map only: validation is the framework's, and tracing makes it slow.
        for unit in processor.source.read([path]):
            if unit.payload is not None:
                processor.mapper.map(unit)
            units += 1
            if units % _COLLECT_EVERY == 0:
                gc.collect()
        return units, tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()
        gc.unfreeze()


def _transaction_ids(harness: PipelineHarness, path: Path) -> list[tuple[str, bool]]:
    """(transaction id, whether it became a record) of each unit, in order, as the
    ledger would store it."""
    ctx = harness.loaded.pipelines[harness.name()].context
    return [(o.record.transaction_id if o.record else ids.transaction_id(ctx.originator_code, ctx.ids, o.ref),
             o.record is not None)
            for o in harness.processor().process([path])]

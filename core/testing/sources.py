"""Conformance suite for file sources: subclass `SourceConformance`, set a few class
attributes, and pytest fails a source that crashes on arbitrary bytes, reports without
FILE:LINE, grows in memory with its input, or gives the same input other ids.
"""

from __future__ import annotations

import gc
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
from s321.pipeline import Outcome, Processor
from s321.testing.harness import PipelineHarness, pipeline_config
from s321.testing.suite import PluginSuite, assert_rejects_unknown_keys

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
            f"source must stream, one unit in memory at a time (DESIGN 7)")

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
            filed = sorted(t for t, record in first if record)
            moved_filed = sorted(t for t, record in _transaction_ids(harness, moved) if record)
            assert filed == moved_filed, (
                f"{path.name}: the same consignments under another file name got other "
                f"transaction ids: a record's key must not contain the file's name or path, "
                f"or the next day's export files every order again")

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
            outcome = processor.process_unit(unit)
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

"""The pytest plugin of s321 (entry point `pytest11`, name `s321`): fixtures for
testing s321 plugins against the real runtime. Importing it needs pytest only;
the conformance suites (`s321.testing.sources` etc.) also need hypothesis.

Fixtures: `s321_harness` (build pipelines from a config dict and run them),
`s321_ledger` (a real SQLite ledger in tmp_path), `s321_sandbox` (the CBP stand-in
on a loopback port), `s321_faulty_transport` (a transport that fails on command) and
`s321_logs` (what was logged, as text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from s321.ledger import Ledger
from s321.sandbox import Sandbox
from s321.testing.capture import CapturedLogs, captured_logs
from s321.testing.doubles import FaultyTransport
from s321.testing.harness import PipelineHarness, Plugin


def pytest_report_header(config: pytest.Config) -> str:
    # Names only: importing every plugin here would slow every pytest start-up.
    names = sorted(ep.name for ep in metadata.entry_points(group="s321"))
    try:
        version = metadata.version("s321")
    except metadata.PackageNotFoundError:
        version = "?"
    return f"s321 {version}, plugins installed: {', '.join(names) or 'none'}"


@pytest.fixture
def s321_harness(tmp_path: Path) -> Iterator[Callable[..., PipelineHarness]]:
    """A factory: `s321_harness(config, plugins=[my_plugin])` -> PipelineHarness, each
    in its own folder under tmp_path, closed after the test."""
    made: list[PipelineHarness] = []

    def make(config: Mapping[str, Any], plugins: Iterable[Plugin] = ()) -> PipelineHarness:
        harness = PipelineHarness(tmp_path / f"harness-{len(made) + 1}", config, plugins)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def s321_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A real ledger: a SQLite file in WAL mode, in tmp_path."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    yield ledger
    ledger.close()


@pytest.fixture
def s321_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """`s321 sandbox` in this process, on a free loopback port, with throw-away
    certificates; `s321_sandbox.transport_options()` is a `p2p-socket` table for it."""
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        yield sandbox


@pytest.fixture
def s321_faulty_transport() -> FaultyTransport:
    """A FaultyTransport over an in-memory receiver; wrap another transport with
    `FaultyTransport(inner)` or `harness.wrap_transport()`."""
    return FaultyTransport()


@pytest.fixture
def s321_logs() -> Iterator[CapturedLogs]:
    """Everything logged during the test, at debug level, as `s321_logs.text`."""
    with captured_logs("debug") as captured:
        yield captured

"""Conformance suite for transports: subclass `TransportConformance` and give it an
`endpoint` (a receiver to deliver to) and a `scripted_receiver` (one that answers as
told), and pytest holds the transport to the delivery promise through the real
runtime: idempotent connect and close, lost acks and failed sends filed exactly once,
errors only Retriable or Fatal, no secret in the logs; and (`receiver_checks`) what
the receiver said reported as said, each failure classified, connections released,
the declared capabilities honoured.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, SecretStr
from s321 import ids
from s321.contracts import Ack, Capabilities, Receipt, Transport
from s321.errors import TransportError
from s321.states import State
from s321.testing.capture import captured_logs
from s321.testing.harness import PipelineHarness, pipeline_config
from s321.testing.receiver_checks import ReceiverChecks
from s321.testing.samples import ORIGINATOR, records_jsonl, sample_batch
from s321.testing.suite import PluginSuite, assert_rejects_unknown_keys

_SECRET_NAME = re.compile(r"pass(word|phrase)?|secret|token|api_?key|credential", re.IGNORECASE)


@dataclass
class Endpoint:
    """A receiver the transport under test delivers to, for the length of one test."""

    options: dict[str, Any]
    """The transport's config table (without `plugin`), pointing at this receiver.
    Use absolute paths; secrets as references ({env = ...} set with monkeypatch)."""
    accepted: Callable[[], Mapping[str, int]] | None = None
    """Transaction id -> how many times the receiver accepted it (for a transport
    without acknowledgements: how many times it arrived). None if it cannot tell."""
    secrets: Sequence[str] = ()
    """Further strings that must never be logged (key material, say), besides the
    values of the transport's `Secret` options, which are found by themselves."""
    connections: Callable[[], int] | None = None
    """How many connections are open at the receiver now, if it can tell: the check
    that close() releases them uses it besides the process's own socket count."""


@dataclass
class ErrorCase:
    """Options that make the transport fail, and the error it must raise."""

    options: dict[str, Any]
    expect: type[TransportError] | None = None
    """RetriableError or FatalError; None accepts either."""
    why: str = ""
    env: dict[str, str] = field(default_factory=dict)


class TransportConformance(ReceiverChecks, PluginSuite):
    """The checks every transport must pass. Subclass it (name it `Test...`) and set:

        transport_name = "acme-api"
        plugin_module = acme_s321               # unless the distribution is installed

        @pytest.fixture
        def scripted_receiver(self, monkeypatch):   # a receiver that answers as told
            monkeypatch.setenv("ACME_TOKEN", "test-token")
            with AcmeStandIn("test-token") as server:   # a ScriptedReceiver subclass
                yield server

        @pytest.fixture
        def endpoint(self, scripted_receiver):  # a receiver for one test
            yield Endpoint(scripted_receiver.options, accepted=lambda: scripted_receiver.accepted,
                           connections=scripted_receiver.connections)

        def error_cases(self, endpoint, tmp_path):
            return [ErrorCase({**endpoint.options, "url": "https://127.0.0.1:1"}, RetriableError)]
    """

    transport_name: ClassVar[str] = ""
    records: ClassVar[int] = 6
    batch_size: ClassVar[int] = 2
    ack_timeout: ClassVar[float] = 1.0
    """The pipeline's `retry.ack_timeout`: how long a lost ack takes to be noticed."""
    ack_wait: ClassVar[float] = 10.0
    """How long the direct checks wait for an acknowledgement to arrive."""

    @pytest.fixture
    def endpoint(self, tmp_path: Path) -> Iterator[Endpoint]:
        pytest.fail(f"{type(self).__name__}: define an `endpoint` fixture that starts a receiver "
                    f"your transport can reach and yields Endpoint(options, accepted=...)")
        yield  # pragma: no cover

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> Sequence[ErrorCase]:
        """Options that make the transport fail: an unreachable peer (retriable), a
        credential the peer refuses (fatal)..."""
        return ()

    # ------------------------------------------------------------------ the checks

    def test_it_is_registered_with_strict_options(self, endpoint: Endpoint, tmp_path: Path) -> None:
        registry = self.registry()
        component = self.component_or_fail(registry, "transport", self.transport_name)
        assert_rejects_unknown_keys(component.options, {**endpoint.options, "no_such_option_xyz": 1},
                                    tmp_path)
        transport = self.harness(tmp_path, endpoint).transport()
        assert isinstance(transport.capabilities, Capabilities), "`capabilities` must be a Capabilities"
        for method in ("connect", "send", "acks", "close"):
            assert callable(getattr(transport, method, None)), f"the transport has no {method}()"

    def test_connect_and_close_are_idempotent(self, endpoint: Endpoint, tmp_path: Path) -> None:
        transport = self.harness(tmp_path, endpoint).transport()
        transport.close()  # never opened: nothing to do, and no error
        transport.connect()
        transport.connect()
        self._exchange(transport, sample_batch(2, start=1))
        transport.close()
        transport.close()
        transport.connect()  # a closed transport opens again
        self._exchange(transport, sample_batch(2, start=3))
        transport.close()

    def test_records_whose_acks_are_lost_are_sent_again_and_accepted_once(
            self, endpoint: Endpoint, tmp_path: Path) -> None:
        harness = self.harness(tmp_path, endpoint)
        faulty = harness.wrap_transport().lose_acks(1)
        harness.settle()
        if self._delivered_without_acks(harness, faulty, resends_allowed=False):
            return
        lost = faulty.lost_transaction_ids()
        assert lost, "no acknowledgement came back to lose"
        for txid in lost:
            assert faulty.sends_of(txid) >= 2, (
                f"{txid}: its ack was lost but it was not sent again under the same id")
        self._filed_once(harness, endpoint, faulty.sent)

    def test_a_send_that_failed_after_delivery_is_filed_once(self, endpoint: Endpoint,
                                                              tmp_path: Path) -> None:
        harness = self.harness(tmp_path, endpoint)
        faulty = harness.wrap_transport().fail_send(1, after_delivery=True)
        answered = _answered_batches(faulty)
        harness.settle()
        if self._delivered_without_acks(harness, faulty, resends_allowed=True):
            return
        assert faulty.sent, "no batch reached the receiver"
        first = faulty.sent[0]
        # The batch arrived: it is sent again, unless its ack came back anyway (a relay
        # answers a batch it stored, on the next connection); either way, filed once.
        if first.batch_id not in answered:
            for record in first.records:
                assert faulty.sends_of(record.transaction_id) >= 2, (
                    "the batch was not sent again, and no ack of it came back")
        self._filed_once(harness, endpoint, faulty.sent)

    def test_errors_are_classified_retriable_or_fatal(self, endpoint: Endpoint, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        cases = self.error_cases(endpoint, tmp_path)
        if not cases:
            pytest.fail(f"{type(self).__name__}: define `error_cases(self, endpoint, tmp_path)` "
                        f"returning ErrorCase(options, RetriableError or FatalError): at least an "
                        f"unreachable receiver")
        for i, case in enumerate(cases):
            for name, value in case.env.items():
                monkeypatch.setenv(name, value)
            transport = self.harness(tmp_path / f"case-{i}", endpoint, case.options).transport()
            error = _first_error(transport, case)
            assert error is not None, f"error case {case.why or i}: nothing failed"
            if case.expect is not None:
                assert isinstance(error, case.expect), (
                    f"error case {case.why or i}: raised {type(error).__name__} ({error}), "
                    f"expected {case.expect.__name__}")

    def test_secrets_never_reach_the_logs(self, endpoint: Endpoint, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        secrets = list(endpoint.secrets)
        with captured_logs("debug") as logs:
            harness = self.harness(tmp_path / "run", endpoint)
            secrets += self._secret_values(harness)
            summaries = harness.run_once()
            for i, case in enumerate(self.error_cases(endpoint, tmp_path)):
                for name, value in case.env.items():
                    monkeypatch.setenv(name, value)
                failing = self.harness(tmp_path / f"case-{i}", endpoint, case.options)
                secrets += self._secret_values(failing)
                summaries += failing.run_once()
        assert logs.text, "nothing was logged: the capture is not working"
        shown = logs.text + "\n".join(s.error or "" for s in summaries)
        for secret in {s for s in secrets if len(s) >= 4}:
            assert secret not in shown, (
                "a secret option value was logged (or shown in a run summary): log "
                "`options.x` only as a SecretStr, never `get_secret_value()` or the raw text")

    def test_a_pipeline_files_through_it(self, endpoint: Endpoint, tmp_path: Path) -> None:
        harness = self.harness(tmp_path, endpoint)
        [summary] = harness.run_once()
        assert summary.error is None, summary.error
        expected = self.records
        if summary.acknowledges:
            assert summary.counts["accepted"] == expected, dict(summary.counts)
        else:
            assert summary.counts["sent"] == expected, dict(summary.counts)
        if endpoint.accepted is not None:
            accepted = endpoint.accepted()
            for n in range(1, expected + 1):
                txid = ids.transaction_id(ORIGINATOR, "records-jsonl", f"order-{n}")
                assert accepted.get(txid) == 1, f"order-{n} was filed {accepted.get(txid, 0)} times"
        [again] = harness.run_once()
        assert again.counts["sent"] == 0, "a second run sent the same records again"

    # ------------------------------------------------------------------ helpers

    def harness(self, folder: Path, endpoint: Endpoint,
                options: Mapping[str, Any] | None = None) -> PipelineHarness:
        """A pipeline reading `records` sample records (records-jsonl), `batch_size`
        a batch, sending through this transport with `options` (default: the
        endpoint's)."""
        inbox = folder / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "records.jsonl").write_bytes(records_jsonl(self.records))
        transport = {"plugin": self.transport_name, **(endpoint.options if options is None else options)}
        config = pipeline_config(
            {"plugin": "records-jsonl", "path": str(inbox)}, transport, batch_size=self.batch_size,
            retry={"initial": 0.05, "maximum": 0.2, "ack_timeout": self.ack_timeout})
        return PipelineHarness(folder, config, registry=self.registry())

    def _exchange(self, transport: Transport, batch: Any) -> None:
        receipt = transport.send(batch)
        assert isinstance(receipt, Receipt) and receipt.batch_id == batch.batch_id, (
            f"send() must return the Receipt of the batch it sent, got {receipt!r}")
        if not transport.capabilities.acknowledges:
            assert transport.acks(0.0) == [], "a transport without acknowledgements invented one"
            return
        ack = _await_ack(transport, batch.batch_id, self.ack_wait)
        sent = {r.transaction_id for r in batch.records}
        answered = {r.transaction_id for r in ack.results}
        assert answered == sent, f"the ack answers {sorted(answered)}, the batch held {sorted(sent)}"

    def _delivered_without_acks(self, harness: PipelineHarness, faulty: Any,
                                resends_allowed: bool) -> bool:
        """For a transport that gets no acknowledgements (such as `file`), what holds
        instead: every record handed over ends `delivered`, and, as no ack can ever come,
        never sent again except after a send that failed. False for the others."""
        if harness.transport().capabilities.acknowledges:
            return False
        counts = harness.ledger.counts(harness.name())
        assert counts == {State.DELIVERED.value: self.records}, (
            f"ledger states {counts}: without acknowledgements every record must end `delivered`")
        for txid in {r.transaction_id for batch in faulty.sent for r in batch.records}:
            sends = faulty.sends_of(txid)
            assert sends >= 1 and (resends_allowed or sends == 1), (
                f"{txid} was sent {sends} times; a transport without acks must not be resent")
        return True

    def _filed_once(self, harness: PipelineHarness, endpoint: Endpoint, sent: list[Any]) -> None:
        counts = harness.ledger.counts(harness.name())
        assert counts == {"accepted": self.records}, (
            f"ledger states {counts}: every record must end accepted, once")
        if endpoint.accepted is not None:
            accepted = endpoint.accepted()
            for txid in {r.transaction_id for batch in sent for r in batch.records}:
                assert accepted.get(txid) == 1, (
                    f"{txid} was accepted {accepted.get(txid, 0)} times at the receiver")

    def _secret_values(self, harness: PipelineHarness) -> list[str]:
        options = harness.loaded.pipelines[harness.name()].transport_options
        for name in type(options).model_fields:
            value = getattr(options, name)
            assert not (_SECRET_NAME.search(name) and isinstance(value, str)), (
                f"option {name!r} looks like a secret but holds a plain string: declare it "
                f"`s321.secrets.Secret`, so a config must give a reference and it never prints")
        return [s.get_secret_value() for s in _secrets_in(options)]


def _secrets_in(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secrets_in(item)


def _answered_batches(faulty: Any) -> set[str]:
    """From now on, the ids of the batches whose acks `faulty` hands to the runtime."""
    answered: set[str] = set()
    passing = faulty.acks

    def acks(timeout: float = 0.0) -> list[Ack]:
        out = passing(timeout)
        answered.update(a.batch_id for a in out)
        return out

    faulty.acks = acks
    return answered


def _await_ack(transport: Transport, batch_id: str, wait: float) -> Ack:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for ack in transport.acks(timeout=0.5):
            if ack.batch_id == batch_id:
                return ack
    raise AssertionError(f"no acknowledgement of batch {batch_id} within {wait:g} s")


def _first_error(transport: Transport, case: ErrorCase) -> TransportError | None:
    """Run connect, send and acks as the runtime would, up to the first error; fail on
    any exception that is not a TransportError."""
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("connect()", transport.connect),
        ("send()", lambda: transport.send(sample_batch(1))),
        ("acks()", lambda: transport.acks(timeout=0.5)),
    ]
    try:
        for what, step in steps:
            try:
                step()
            except TransportError as exc:
                return exc
            except Exception as exc:
                raise AssertionError(
                    f"error case {case.why!r}: {what} raised {type(exc).__name__}: {exc}; only "
                    f"RetriableError or FatalError may leave a transport (s321.errors.classify "
                    f"maps any exception onto one of them)") from exc
        return None
    finally:
        try:
            transport.close()
        except Exception as exc:
            raise AssertionError(f"close() raised {type(exc).__name__} after a failure") from exc

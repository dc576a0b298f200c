"""The transport suite fails the transports that hurt users: each transport here is the
template's HTTP transport (`bazaarly-http`) with one fault an integrator could write,
run against the template's scripted receiver, and the check about that fault must fail
on it, saying so. The unchanged transport passes every check.

The suite is subclassed without the `Test` prefix, so pytest does not collect it here;
each test calls one check directly, with the fixtures it needs made by hand.
"""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from s321.contracts import Ack, AckStatus, Batch, Capabilities, Receipt, RecordAck
from s321.errors import FatalError, RetriableError, classify
from s321.hookspecs import hookimpl
from s321.testing import Endpoint, ErrorCase, TransportConformance

TEMPLATE_SRC = Path(__file__).resolve().parents[2] / "contrib" / "plugin-template" / "src"
if str(TEMPLATE_SRC) not in sys.path:  # installed by `make test`; found here without it too
    sys.path.append(str(TEMPLATE_SRC))

from s321_bazaarly.receiver import TOKEN_ENV, BazaarlyReceiver  # noqa: E402
from s321_bazaarly.transport import BazaarlyHttpOptions, BazaarlyHttpTransport  # noqa: E402

FAILED = (AssertionError, pytest.fail.Exception)
TOKEN = "wrong-http-token-0d1e"


class InventingHttp(BazaarlyHttpTransport):
    """Takes any 200 for "all accepted", without reading the answer."""

    def send(self, batch: Batch) -> Receipt:
        assert self._conn is not None
        try:
            self._conn.request("POST", self._path, body=self.serializer.encode_batch(batch),
                               headers={"Authorization": f"Bearer {self.options.token.get_secret_value()}"})
            response = self._conn.getresponse()
            response.read()
        except Exception as exc:
            self.close()
            raise classify(exc) from exc
        if response.status != 200:
            raise RetriableError(f"HTTP {response.status}")
        self._acks.append(Ack(batch_id=batch.batch_id, received_at=datetime.now(UTC), results=[
            RecordAck(transaction_id=r.transaction_id, status=AckStatus.ACCEPTED) for r in batch.records]))
        return Receipt(batch_id=batch.batch_id)


class VersionlessHttp(BazaarlyHttpTransport):
    """Sends the records without their versions (a copy made with the wrong fields)."""

    def send(self, batch: Batch) -> Receipt:
        records = [r.model_copy(update={"version": None}) for r in batch.records]
        return super().send(Batch(batch_id=batch.batch_id, originator_code=batch.originator_code,
                                  profile=batch.profile, sent_at=batch.sent_at, records=records))


class SilentOnGarbageHttp(BazaarlyHttpTransport):
    """An answer it cannot read is neither an ack nor an error: the batch just waits."""

    def send(self, batch: Batch) -> Receipt:
        try:
            return super().send(batch)
        except RetriableError as exc:
            if "not an acknowledgement" in str(exc):
                return Receipt(batch_id=batch.batch_id)
            raise


class EverythingFatalHttp(BazaarlyHttpTransport):
    def send(self, batch: Batch) -> Receipt:
        try:
            return super().send(batch)
        except RetriableError as exc:
            raise FatalError(str(exc)) from exc


class EverythingRetriableHttp(BazaarlyHttpTransport):
    def send(self, batch: Batch) -> Receipt:
        try:
            return super().send(batch)
        except FatalError as exc:
            raise RetriableError(str(exc)) from exc


class NoTimeoutHttp(BazaarlyHttpTransport):
    """Waits for an answer for ever."""

    def connect(self) -> None:
        super().connect()
        assert self._conn is not None and self._conn.sock is not None
        self._conn.sock.settimeout(None)


class NoCloseHttp(BazaarlyHttpTransport):
    def close(self) -> None:
        pass


class ReconnectingHttp(BazaarlyHttpTransport):
    """Every connect() opens a fresh connection; the old ones are kept "for later"."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._spare: list[http.client.HTTPConnection] = []

    def connect(self) -> None:
        if self._conn is not None:
            self._spare.append(self._conn)
            self._conn = None
        super().connect()


class OverpromisingHttp(BazaarlyHttpTransport):
    """Declares a batch size the receiver does not take."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.capabilities = Capabilities(max_batch=self.options.max_batch * 10, window=4, acknowledges=True)


class ClaimsSurvivingAcksHttp(BazaarlyHttpTransport):
    """Says its acks survive a reconnect; they live in the transport object, and die with it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.capabilities = Capabilities(max_batch=self.options.max_batch, window=4, acknowledges=True,
                                         acks_survive_reconnect=True)


class LastAckOnlyHttp(BazaarlyHttpTransport):
    """Declares a window of 4 but keeps only the latest answer."""

    def send(self, batch: Batch) -> Receipt:
        receipt = super().send(batch)
        self._acks = self._acks[-1:]
        return receipt


TRANSPORTS: dict[str, type[BazaarlyHttpTransport]] = {
    "good-http": BazaarlyHttpTransport, "inventing-http": InventingHttp, "versionless-http": VersionlessHttp,
    "silent-on-garbage-http": SilentOnGarbageHttp, "everything-fatal-http": EverythingFatalHttp,
    "everything-retriable-http": EverythingRetriableHttp, "no-timeout-http": NoTimeoutHttp,
    "no-close-http": NoCloseHttp, "reconnecting-http": ReconnectingHttp,
    "overpromising-http": OverpromisingHttp, "last-ack-only-http": LastAckOnlyHttp,
    "claims-surviving-acks-http": ClaimsSurvivingAcksHttp,
}


class WrongHttpPlugins:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        for name, transport in TRANSPORTS.items():
            register(name, transport, options=BazaarlyHttpOptions)


class HttpSuite(TransportConformance):
    plugin_module = WrongHttpPlugins()
    plugin_name = "wrong-http-plugins"
    ack_wait = 3.0
    ack_timeout = 0.5

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        return [ErrorCase({**endpoint.options, "url": "http://127.0.0.1:9/batches"}, RetriableError, "nobody there")]


def http_suite(name: str) -> TransportConformance:
    return type(f"Suite_{name}", (HttpSuite,), {"transport_name": name})()


@contextmanager
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BazaarlyReceiver, Endpoint]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with BazaarlyReceiver(TOKEN, max_batch=50) as scripted:
        yield scripted, Endpoint(scripted.options, accepted=lambda: scripted.accepted,
                                 connections=scripted.connections)


def run_check(name: str, check: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One check of the suite on transport `name`, its fixtures made here."""
    s = http_suite(name)
    method = getattr(s, check)
    with receiver(monkeypatch) as (scripted, endpoint):
        wants = method.__code__.co_varnames[1:method.__code__.co_argcount]
        given = {"scripted_receiver": scripted, "endpoint": endpoint, "tmp_path": tmp_path,
                 "monkeypatch": monkeypatch}
        method(*(given[w] for w in wants))


CHECKS = [
    "test_it_is_registered_with_strict_options", "test_connect_and_close_are_idempotent",
    "test_records_whose_acks_are_lost_are_sent_again_and_accepted_once",
    "test_a_send_that_failed_after_delivery_is_filed_once", "test_errors_are_classified_retriable_or_fatal",
    "test_secrets_never_reach_the_logs", "test_a_pipeline_files_through_it",
    "test_rejections_are_reported_as_the_receiver_said", "test_records_and_versions_pass_through_unchanged",
    "test_a_partial_answer_is_reported_as_partial", "test_a_late_answer_is_waited_for",
    "test_a_malformed_answer_is_an_error_not_an_ack", "test_a_dropped_connection_is_retriable",
    "test_a_refused_credential_is_fatal", "test_a_busy_receiver_is_retriable",
    "test_a_receiver_that_never_answers_is_retriable", "test_close_releases_the_connection",
    "test_declared_capabilities_hold",
]


def test_every_check_of_the_suite_is_run_here() -> None:
    assert set(CHECKS) == {n for n in dir(TransportConformance) if n.startswith("test_")}


@pytest.mark.parametrize("check", CHECKS)
def test_the_template_transport_passes_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    check: str) -> None:
    run_check("good-http", check, tmp_path, monkeypatch)


@pytest.mark.parametrize(("transport", "check", "says"), [
    ("inventing-http", "test_rejections_are_reported_as_the_receiver_said", "report exactly what the receiver said"),
    ("inventing-http", "test_a_partial_answer_is_reported_as_partial", "never invent an acknowledgement"),
    ("inventing-http", "test_a_malformed_answer_is_an_error_not_an_ack", "never invent an acknowledgement"),
    ("versionless-http", "test_records_and_versions_pass_through_unchanged", "passes each record's version"),
    ("silent-on-garbage-http", "test_a_malformed_answer_is_an_error_not_an_ack", "neither raised nor reported"),
    ("everything-fatal-http", "test_a_busy_receiver_is_retriable", "it must be RetriableError"),
    ("everything-fatal-http", "test_a_dropped_connection_is_retriable", "it must be RetriableError"),
    ("everything-fatal-http", "test_a_receiver_that_never_answers_is_retriable", "a timeout is retriable"),
    ("everything-retriable-http", "test_a_refused_credential_is_fatal", "it must be FatalError"),
    ("no-timeout-http", "test_a_receiver_that_never_answers_is_retriable", "give every call to the receiver a timeout"),
    ("no-close-http", "test_close_releases_the_connection", "close() must close the link"),
    ("reconnecting-http", "test_close_releases_the_connection", "a second connect() opened more connections"),
    ("overpromising-http", "test_declared_capabilities_hold", "declare what the receiver takes"),
    ("last-ack-only-http", "test_declared_capabilities_hold", "never acknowledged"),
    ("claims-surviving-acks-http", "test_declared_capabilities_hold", "acks_survive_reconnect=True"),
])
def test_a_wrong_transport_fails_the_check_about_its_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            transport: str, check: str, says: str) -> None:
    with pytest.raises(FAILED) as caught:
        run_check(transport, check, tmp_path, monkeypatch)
    assert says in str(caught.value)

"""The transport checks that need the receiver's side: what a scripted receiver said
must be what the transport reports (nothing invented, nothing lost, versions echoed),
each failure classified by what it is (a refused credential fatal, a timeout, a drop
or a busy receiver retriable), connections released by close(), and the declared
window and batch size honoured. Part of `TransportConformance`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from s321.contracts import Ack, Batch, Transport
from s321.errors import FatalError, RetriableError, TransportError
from s321.record import Consignment
from s321.testing.capture import captured_logs
from s321.testing.samples import sample_batch
from s321.testing.scripted import Play, Script, ScriptedReceiver

_VERSIONS = (3, 1, 4, 2)
"""Versions given to the records of a scripted batch: out of order, so that a transport
that numbers records itself is caught."""


@dataclass
class Driven:
    """What a transport made of one batch: the acks it reported, the error it raised."""

    acks: list[Ack] = field(default_factory=list)
    error: TransportError | None = None

    def about(self, batch: Batch) -> list[Ack]:
        return [a for a in self.acks if a.batch_id == batch.batch_id]


class ReceiverChecks:
    """Mixed into `TransportConformance`. Define a `scripted_receiver` fixture that
    yields a `ScriptedReceiver` for your protocol (the template's
    `s321_bazaarly.receiver.BazaarlyReceiver` is one for HTTP); a transport that
    does not acknowledge needs none."""

    scripted_receiver_missing: ClassVar[str] = ""
    """Why this transport's receiver cannot be scripted yet: the scripted checks are
    then skipped, saying so. Leave empty: a skipped check protects nobody."""
    late_delay: ClassVar[float] = 1.0
    """How late a LATE answer comes: the transport must wait at least this long."""
    max_batch_probe: ClassVar[int] = 2000
    """The largest batch the capability check sends (`max_batch`, capped by this)."""
    ack_wait: ClassVar[float]
    harness: Callable[..., Any]

    @pytest.fixture
    def scripted_receiver(self, endpoint: Any, tmp_path: Path) -> Iterator[ScriptedReceiver | None]:
        transport = self.harness(tmp_path / "probe", endpoint).transport()
        if not transport.capabilities.acknowledges:
            yield None  # no answers to script: the checks pass by themselves
            return
        if self.scripted_receiver_missing:
            pytest.skip(f"no scripted receiver: {self.scripted_receiver_missing}")
        pytest.fail(f"{type(self).__name__}: define a `scripted_receiver` fixture yielding a "
                    f"s321.testing.scripted.ScriptedReceiver that speaks your protocol (its `options` "
                    f"point the transport at it); see docs/plugins.md, 'A scripted receiver'")
        yield None  # pragma: no cover

    # ------------------------------------------------------------------ what the receiver said

    def test_rejections_are_reported_as_the_receiver_said(self, scripted_receiver: ScriptedReceiver | None,
                                                          tmp_path: Path) -> None:
        batch = versioned_batch(4, start=201)
        rejected = frozenset({batch.records[1].transaction_id, batch.records[3].transaction_id})
        driven = self._play(scripted_receiver, tmp_path, Script(Play.REJECT, reject=rejected), batch)
        if driven is not None:
            assert driven.error is None, f"the receiver answered, but the transport raised: {driven.error!r}"
            self._reported_as_said(scripted_receiver, driven, batch)

    def test_records_and_versions_pass_through_unchanged(self, scripted_receiver: ScriptedReceiver | None,
                                                         tmp_path: Path) -> None:
        batch = versioned_batch(4, start=211)
        driven = self._play(scripted_receiver, tmp_path, Script(Play.ACCEPT), batch)
        if driven is None or scripted_receiver is None:
            return
        assert driven.error is None, f"the receiver accepted, but the transport raised: {driven.error!r}"
        [arrived] = [b for b in scripted_receiver.received if b.batch_id == batch.batch_id] or [None]
        assert arrived is not None, f"batch {batch.batch_id} did not arrive under its own id"
        sent_versions = [getattr(r, "version", None) for r in batch.records]
        arrived_versions = [getattr(r, "version", None) for r in arrived.records]
        assert arrived_versions == sent_versions, (
            f"the records arrived with versions {arrived_versions}, they were sent as {sent_versions}: "
            f"a transport passes each record's version through unchanged")
        assert _dumped(arrived.records) == _dumped(batch.records), (
            "the records arrived changed: a transport sends what it is given, as the serializer encodes it")
        assert (arrived.originator_code, arrived.profile) == (batch.originator_code, batch.profile)
        self._reported_as_said(scripted_receiver, driven, batch)

    def test_a_partial_answer_is_reported_as_partial(self, scripted_receiver: ScriptedReceiver | None,
                                                     tmp_path: Path) -> None:
        batch = versioned_batch(4, start=221)
        driven = self._play(scripted_receiver, tmp_path, Script(Play.PARTIAL), batch)
        if driven is not None:
            assert driven.error is None, f"the receiver answered, but the transport raised: {driven.error!r}"
            self._reported_as_said(scripted_receiver, driven, batch)

    def test_a_late_answer_is_waited_for(self, scripted_receiver: ScriptedReceiver | None,
                                         tmp_path: Path) -> None:
        batch = versioned_batch(2, start=231)
        driven = self._play(scripted_receiver, tmp_path, Script(Play.LATE, delay=self.late_delay), batch)
        if driven is not None:
            assert driven.error is None, (
                f"the receiver answered after {self.late_delay:g} s and the transport raised "
                f"{driven.error!r}: wait longer for an answer (a timeout option of a few seconds)")
            self._reported_as_said(scripted_receiver, driven, batch)

    # ------------------------------------------------------------------ failures, classified

    def test_a_malformed_answer_is_an_error_not_an_ack(self, scripted_receiver: ScriptedReceiver | None,
                                                       tmp_path: Path) -> None:
        # Raised, or logged as an error where an answer is not tied to a request (a file
        # in a drop folder, set aside): either way someone is told. Silence is the fault.
        self._fails_as(scripted_receiver, tmp_path, Script(Play.MALFORMED), TransportError,
                       "answered with bytes that are not an acknowledgement", logged_is_reported=True)

    def test_a_dropped_connection_is_retriable(self, scripted_receiver: ScriptedReceiver | None,
                                               tmp_path: Path) -> None:
        self._fails_as(scripted_receiver, tmp_path, Script(Play.DROP), RetriableError,
                       "dropped the connection without answering")

    def test_a_refused_credential_is_fatal(self, scripted_receiver: ScriptedReceiver | None,
                                           tmp_path: Path) -> None:
        self._fails_as(scripted_receiver, tmp_path, Script(Play.REFUSE_CREDENTIAL), FatalError,
                       "refused the credential")

    def test_a_busy_receiver_is_retriable(self, scripted_receiver: ScriptedReceiver | None,
                                          tmp_path: Path) -> None:
        self._fails_as(scripted_receiver, tmp_path, Script(Play.BUSY, retry_after=1), RetriableError,
                       "said it is busy (try again later)")

    def test_a_receiver_that_never_answers_is_retriable(self, scripted_receiver: ScriptedReceiver | None,
                                                        tmp_path: Path) -> None:
        script = Script(Play.TIMEOUT, delay=self.ack_wait + 30)
        batch = versioned_batch(2, start=241)
        driven = self._play(scripted_receiver, tmp_path, script, batch)
        if driven is None:
            return
        assert not driven.about(batch), (
            f"the receiver never answered, yet the transport reported {_said(driven.about(batch))}: "
            f"never invent an acknowledgement")
        # Long-lived links may simply have no ack yet (the runtime's ack_timeout resends);
        # a request that timed out must say so as retriable.
        assert driven.error is None or isinstance(driven.error, RetriableError), (
            f"the receiver did not answer and the transport raised {type(driven.error).__name__} "
            f"({driven.error}): a timeout is retriable")

    # ------------------------------------------------------------------ connections and capabilities

    def test_close_releases_the_connection(self, endpoint: Any, tmp_path: Path) -> None:
        # The receiver's own count when it keeps one; else this process's sockets (the
        # receiver's side of a loopback link closes when the transport's side does).
        counter = getattr(endpoint, "connections", None) or _open_sockets
        counters = [counter] if counter() is not None else []
        if not counters:
            pytest.skip("cannot count connections here: no /proc/self/fd and no Endpoint.connections")
        base = [c() for c in counters]
        harness = self.harness(tmp_path, endpoint)
        transport = harness.transport()
        transport.connect()
        once = _steady(counters)
        transport.connect()
        twice = _steady(counters)
        assert all(b <= a for a, b in zip(once, twice)), (
            f"a second connect() opened more connections ({once} -> {twice}): connect() on an open "
            f"link does nothing")
        self._exchange(transport, sample_batch(1, start=251))
        transport.close()
        _settles(counters, base, "close() left {extra} connection(s) open: close() must close the link")
        for n in range(3):
            transport = harness.transport()
            transport.connect()
            transport.connect()
            self._exchange(transport, sample_batch(1, start=252 + n))
            transport.close()
        _settles(counters, base, "after three connect/close cycles {extra} more connection(s) are open: "
                                 "connect() leaks a connection that close() does not close")

    def test_declared_capabilities_hold(self, endpoint: Any, tmp_path: Path) -> None:
        transport = self.harness(tmp_path, endpoint).transport()
        caps = transport.capabilities
        transport.connect()
        try:
            size = min(caps.max_batch, self.max_batch_probe)
            full = sample_batch(size, start=1001)
            try:
                transport.send(full)
            except TransportError as exc:
                raise AssertionError(
                    f"the transport declares max_batch={caps.max_batch}, but a batch of {size} records "
                    f"failed: {type(exc).__name__}: {exc}; declare what the receiver takes") from exc
            batches = [full]
            if caps.acknowledges:
                # As the runtime does: `window` batches out before the acks are read.
                for i in range(min(caps.window, 16) - 1):
                    batches.append(sample_batch(2, start=5001 + 10 * i))
                    transport.send(batches[-1])
            if not caps.acknowledges:
                return
            # A batch may be answered in several acks (a relay answers as its upstream
            # does, part by part): it is done when every record was named, and no ack
            # names a record the batch did not hold.
            waiting = {b.batch_id: {r.transaction_id for r in b.records} for b in batches}
            deadline = time.monotonic() + self.ack_wait
            while waiting and time.monotonic() < deadline:
                for ack in transport.acks(timeout=0.5):
                    unnamed = waiting.get(ack.batch_id)
                    if unnamed is None:
                        continue
                    named = {r.transaction_id for r in ack.results}
                    held = {r.transaction_id for b in batches if b.batch_id == ack.batch_id
                            for r in b.records}
                    assert named <= held, (
                        f"the ack of batch {ack.batch_id} names {len(named - held)} records it did not hold")
                    unnamed -= named
                    if not unnamed:
                        del waiting[ack.batch_id]
            assert not waiting, (
                f"the transport declares window={caps.window}: of {len(batches)} batches sent before "
                f"acks() was read, {len(waiting)} were never acknowledged (in full); hold the acks of every "
                f"batch in the window, or declare a smaller one")
            if caps.acks_survive_reconnect:
                # Then the runtime does not resend after a reconnect: the ack must still come.
                batch = sample_batch(2, start=6001)
                transport.send(batch)
                transport.close()
                transport = self.harness(tmp_path / "again", endpoint).transport()
                transport.connect()
                deadline = time.monotonic() + self.ack_wait
                while time.monotonic() < deadline:
                    if any(a.batch_id == batch.batch_id for a in transport.acks(timeout=0.5)):
                        break
                else:
                    raise AssertionError(
                        "the transport declares acks_survive_reconnect=True, but the ack of a batch sent "
                        "before close() never reached a new connection: declare False, and the runtime "
                        "sends such batches again")
        finally:
            transport.close()

    # ------------------------------------------------------------------ helpers

    _exchange: Callable[..., None]

    def _play(self, receiver: ScriptedReceiver | None, tmp_path: Path, script: Script,
              batch: Batch) -> Driven | None:
        """A fresh transport to `receiver`, which answers the batch as `script` says;
        None for a transport that does not acknowledge."""
        if receiver is None:
            return None
        from s321.testing.transports import Endpoint
        transport = self.harness(tmp_path, Endpoint(dict(receiver.options))).transport()
        receiver.play(script)
        return drive(transport, batch, self.ack_wait)

    def _fails_as(self, receiver: ScriptedReceiver | None, tmp_path: Path, script: Script,
                  expect: type[TransportError], what: str, logged_is_reported: bool = False) -> None:
        batch = versioned_batch(2, start=261)
        with captured_logs("info") if logged_is_reported else nullcontext() as logs:
            driven = self._play(receiver, tmp_path, script, batch)
        if driven is None:
            return
        assert not driven.about(batch), (
            f"the receiver {what}, yet the transport reported {_said(driven.about(batch))}: never invent "
            f"an acknowledgement")
        if driven.error is None and logs is not None and _errors_logged(logs.text):
            return
        assert driven.error is not None, (
            f"the receiver {what}, and the transport neither raised nor reported it: raise "
            f"{expect.__name__} so that the runtime retries or stops")
        assert isinstance(driven.error, expect), (
            f"the receiver {what}: the transport raised {type(driven.error).__name__} ({driven.error}), "
            f"it must be {expect.__name__}")

    def _reported_as_said(self, receiver: ScriptedReceiver | None, driven: Driven, batch: Batch) -> None:
        assert receiver is not None
        answered = [a for a in receiver.answered if a.batch_id == batch.batch_id]
        assert answered, f"the receiver never answered batch {batch.batch_id}: did it arrive?"
        reported = driven.about(batch)
        assert reported, (
            f"the receiver answered {_said(answered)}, and the transport reported nothing within "
            f"{self.ack_wait:g} s")
        assert _said(reported) == _said(answered), (
            f"the receiver answered {_said(answered)}, the transport reported {_said(reported)}: report "
            f"exactly what the receiver said, record by record, and never invent an acknowledgement")


def versioned_batch(size: int, start: int) -> Batch:
    """`sample_batch`, its records given versions out of order (when records have them)."""
    batch = sample_batch(size, start=start)
    if "version" not in Consignment.model_fields:
        return batch
    records = [r.model_copy(update={"version": _VERSIONS[i % len(_VERSIONS)]}) for i, r in enumerate(batch.records)]
    return batch.model_copy(update={"records": records})


def drive(transport: Transport, batch: Batch, wait: float) -> Driven:
    """connect, send and acks as the runtime calls them, until the batch's ack comes,
    an error is raised, or `wait` seconds pass; in a thread, so that a transport that
    hangs fails the check instead of the test run."""
    driven = Driven()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            transport.connect()
            transport.send(batch)
            deadline = time.monotonic() + wait
            while not driven.about(batch) and time.monotonic() < deadline:
                driven.acks.extend(transport.acks(timeout=0.2))
        except TransportError as exc:
            driven.error = exc
        except BaseException as exc:  # reported below, in the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="s321-drive", daemon=True)
    worker.start()
    worker.join(wait + 5)
    try:
        assert not worker.is_alive(), (
            f"connect(), send() or acks() had not returned after {wait + 5:g} s: give every call to the "
            f"receiver a timeout shorter than the suite's ack_wait ({wait:g} s)")
        if failure:
            raise AssertionError(f"{type(failure[0]).__name__}: {failure[0]} left the transport; only "
                                 f"RetriableError or FatalError may (s321.errors.classify)") from failure[0]
    finally:
        if not worker.is_alive():
            transport.close()
    return driven


def _said(acks: list[Ack]) -> list[tuple[Any, ...]]:
    """What acks say, record by record, comparable: id, status, version, errors."""
    return sorted((r.transaction_id[:12], r.status.value, getattr(r, "version", None),
                   tuple((e.code, e.field, e.message) for e in r.errors))
                  for a in acks for r in a.results)


def _errors_logged(text: str) -> list[str]:
    """The lines of captured logs (s321's JSON lines, `logging`'s plain ones) at error
    level or above."""
    return [line for line in text.splitlines()
            if '"level": "error"' in line or '"level": "critical"' in line
            or " ERROR " in line or " CRITICAL " in line]


def _dumped(records: list[Consignment]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", exclude_none=True) for r in records]


def _open_sockets() -> int | None:
    """Sockets this process holds open (Linux), or None where that cannot be told."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            pass
    return count


def loopback_connections(port: int) -> int | None:
    """TCP connections established at a local `port` (its server side), read from
    /proc/net/tcp and tcp6 (Linux), or None where that cannot be told. For an
    `Endpoint.connections` of a receiver that runs in the test's process and opens
    connections of its own (a relay to its upstream), which a count of the process's
    sockets would take for the transport's."""
    count, seen = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for row in rows:
            fields = row.split()
            # local_address is HEXIP:HEXPORT; state 01 is ESTABLISHED.
            if len(fields) > 3 and fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count if seen else None


def _steady(counters: list[Callable[[], int | None]]) -> list[int | None]:
    """The counts once they stop moving (a receiver takes a connection a moment after
    the client opened it): unchanged for 0.3 s, 3 s at most."""
    last, since = [c() for c in counters], time.monotonic()
    deadline = since + 3.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = [c() for c in counters]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.3:
            break
    return last


def _settles(counters: list[Callable[[], int | None]], base: list[int | None], message: str) -> None:
    """Wait (5 s at most) until every counter is back at its base; fail with `message`."""
    deadline = time.monotonic() + 5.0
    while True:
        now = [c() for c in counters]
        extra = max((n or 0) - (b or 0) for n, b in zip(now, base))
        if extra <= 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(message.format(extra=extra))
        time.sleep(0.05)

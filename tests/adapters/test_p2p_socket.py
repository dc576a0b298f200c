"""Transport `p2p-socket` against a real `s321 sandbox` over real TLS on loopback:
certificates from trustme, no mocks. Also the framing parser, classify() and backoff."""

from __future__ import annotations

import errno
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from builders import carrier_fields, consignment
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from s321 import ids
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport, check_connect
from s321.adapters.p2p_socket.link import client_context, open_link
from s321.backoff import Backoff, retry
from s321.contracts import Ack, AckStatus, Batch
from s321.errors import FatalError, ProtocolError, RetriableError, classify
from s321.framing import (
    FRAME_TOO_LARGE,
    HEADER,
    Frame,
    FrameDecoder,
    FrameStream,
    FrameType,
    encode,
    parse_json,
)
from s321.plugins.wire_s321 import S321Json
from s321.record import Consignment
from s321.sandbox import Faults, Sandbox
from ports import free_port

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "connect_timeout": 5.0}


# --------------------------------------------------------------------------- helpers


def carrier(txid: str, **changes: object) -> Consignment:
    return consignment(carrier_fields(**changes), txid=txid)


def batch(*records: Consignment) -> Batch:
    return Batch(batch_id=ids.batch_id(), originator_code="CAR001", profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=list(records))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox").start() as sb:
        yield sb


@pytest.fixture
def connect(sandbox: Sandbox) -> Iterator[Callable[..., P2PSocketTransport]]:
    """Build transports to the sandbox; closed before the sandbox stops."""
    made: list[P2PSocketTransport] = []

    def make(sb: Sandbox | None = None, serializer: S321Json | None = None,
             **overrides: object) -> P2PSocketTransport:
        target = sb or sandbox
        options = P2POptions.model_validate(target.transport_options(**{**FAST, **overrides}))
        transport = P2PSocketTransport(options, None, serializer or S321Json())
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def collect(transport: P2PSocketTransport, batch_ids: set[str], timeout: float = 10.0) -> list[Ack]:
    """ACKs until every batch in `batch_ids` has one."""
    acks: list[Ack] = []
    deadline = time.monotonic() + timeout
    while not batch_ids <= {a.batch_id for a in acks}:
        assert time.monotonic() < deadline, f"no ACK for {batch_ids - {a.batch_id for a in acks}}"
        acks += transport.acks(timeout=0.5)
    return acks


def results(acks: list[Ack]) -> dict[str, list[tuple[AckStatus, list[str]]]]:
    out: dict[str, list[tuple[AckStatus, list[str]]]] = {}
    for ack in acks:
        for r in ack.results:
            out.setdefault(r.transaction_id, []).append((r.status, [e.code for e in r.errors]))
    return out


def filed_once(outcomes: list[tuple[AckStatus, list[str]]]) -> bool:
    """Every answer for one id says "filed": accepted, or a duplicate of an accepted add."""
    return all(s is AckStatus.ACCEPTED or codes == ["duplicate"] for s, codes in outcomes)


def raw_stream(sb: Sandbox, context: ssl.SSLContext | None = None) -> FrameStream:
    context = context or client_context(sb.ca_path, sb.client_cert, sb.client_key)
    sock = socket.create_connection((sb.host, sb.port), timeout=5)
    return FrameStream(context.wrap_socket(sock, server_hostname=sb.host))


def other_ca_identity(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(ca, cert, key) of a CA the sandbox has never heard of."""
    ca = trustme.CA()
    leaf = ca.issue_cert("client.elsewhere.invalid", "127.0.0.1")
    paths = tmp_path / "other-ca.pem", tmp_path / "other.pem", tmp_path / "other.key"
    ca.cert_pem.write_to_path(str(paths[0]))
    paths[1].write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(paths[2]))
    return paths


# --------------------------------------------------------------------------- the protocol


def test_happy_path_batches_in_flight_are_all_accepted_once(sandbox: Sandbox, connect) -> None:
    transport = connect(window=2)
    first, second = batch(carrier("T1"), carrier("T2")), batch(carrier("T3"))
    assert transport.send(first).batch_id == first.batch_id
    assert transport.send(second).accepted_for_processing
    acks = collect(transport, {first.batch_id, second.batch_id})
    assert {txid: [s for s, _ in o] for txid, o in results(acks).items()} == {
        "T1": [AckStatus.ACCEPTED], "T2": [AckStatus.ACCEPTED], "T3": [AckStatus.ACCEPTED]}
    assert transport.in_flight == []
    assert sandbox.store.accepted_counts() == {"T1": 1, "T2": 1, "T3": 1}
    assert transport.links_opened == 1


def test_rejection_carries_coded_errors_per_field(sandbox: Sandbox, connect) -> None:
    transport = connect()
    abroad = carrier_fields()
    abroad["ultimate_deliver_to"]["address"]["country"] = "CA"
    no_description = carrier_fields(items=[{"quantity": 1}])
    sent = batch(carrier("T-OK"), consignment(abroad, txid="T-CA"),
                 consignment(no_description, txid="T-NODESC"))
    transport.send(sent)
    by_id = {r.transaction_id: r for a in collect(transport, {sent.batch_id}) for r in a.results}
    assert by_id["T-OK"].status is AckStatus.ACCEPTED
    assert by_id["T-CA"].status is AckStatus.REJECTED
    assert [(e.code, e.field) for e in by_id["T-CA"].errors] == [
        ("deliver-to-not-us", "ultimate_deliver_to.address.country")]
    assert ("missing-required", "items.0.description") in [
        (e.code, e.field) for e in by_id["T-NODESC"].errors]
    assert sandbox.store.accepted_counts() == {"T-OK": 1}


def test_second_add_of_an_accepted_id_is_a_duplicate(sandbox: Sandbox, connect) -> None:
    transport = connect()
    first, again = batch(carrier("T1")), batch(carrier("T1"))
    transport.send(first)
    transport.send(again)
    by_batch = {a.batch_id: a.results[0] for a in collect(transport, {first.batch_id, again.batch_id})}
    assert by_batch[first.batch_id].status is AckStatus.ACCEPTED
    assert by_batch[again.batch_id].status is AckStatus.REJECTED
    assert [e.code for e in by_batch[again.batch_id].errors] == ["duplicate"]
    assert sandbox.store.accepted_counts() == {"T1": 1}


def test_probe_handshakes_and_sends_nothing(sandbox: Sandbox, connect) -> None:
    transport = connect()
    message = transport.probe()
    assert "s321/1 agreed" in message and "TLSv1." in message
    assert check_connect(transport)[0] is True
    assert sandbox.store.accepted_counts() == {}


def test_probe_of_a_closed_port_is_retriable(sandbox: Sandbox, connect) -> None:
    ok, message = check_connect(connect(port=free_port()))
    assert not ok and message.startswith("retriable")


# --------------------------------------------------------------------------- TLS refusals


def test_client_without_certificate_is_refused_fatally(sandbox: Sandbox, connect) -> None:
    context = client_context(sandbox.ca_path, cert=None, key=None)
    with pytest.raises(Exception) as caught:
        open_link(sandbox.host, sandbox.port, sandbox.host, context, ["s321/1"], 1 << 20, 5, 5)
    error = classify(caught.value)
    assert isinstance(error, FatalError), error
    assert "CERTIFICATE" in str(error).upper()
    # ... and the sandbox still serves a client that has one.
    assert "agreed" in connect().probe()


def test_client_certificate_from_another_ca_is_refused_fatally(sandbox: Sandbox, connect,
                                                               tmp_path: Path) -> None:
    _ca, cert, key = other_ca_identity(tmp_path)
    transport = connect(cert={"file": str(cert)}, key={"file": str(key)})
    with pytest.raises(FatalError):
        transport.connect()
    assert sandbox.store.accepted_counts() == {}


def test_server_certificate_from_another_ca_is_refused_fatally(sandbox: Sandbox, connect,
                                                               tmp_path: Path) -> None:
    ca, _cert, _key = other_ca_identity(tmp_path)
    with pytest.raises(FatalError, match="certificate"):
        connect(ca=str(ca)).connect()


def test_server_certificate_for_another_name_is_refused_fatally(sandbox: Sandbox, connect) -> None:
    with pytest.raises(FatalError, match="certificate"):
        connect(server_name="cbp-gateway.example").connect()


# --------------------------------------------------------------------------- protocol refusals


def test_version_refused_is_fatal(sandbox: Sandbox, connect) -> None:
    class FutureFormat(S321Json):
        name = "s321/9"

    with pytest.raises(FatalError, match="version-refused"):
        connect(serializer=FutureFormat()).connect()


def test_oversize_frame_gets_an_error_frame_and_a_closed_connection(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "small", max_frame=64 * 1024).start() as sb:
        stream = raw_stream(sb)
        options = P2POptions.model_validate(sb.transport_options(**FAST))
        healthy = P2PSocketTransport(options, None, S321Json())
        try:
            stream.write(FrameType.HELLO, b'{"versions":["s321/1"]}')
            assert stream.read(5).type is FrameType.WELCOME
            # Announce a 1 MiB body and start sending it: refused on the header alone.
            stream.sock.sendall(HEADER.pack(1 << 20, FrameType.BATCH) + b"{" * 4096)
            answer = stream.read(5)
            assert answer is not None and answer.type is FrameType.ERROR
            assert parse_json(answer)["code"] == FRAME_TOO_LARGE
            with pytest.raises((EOFError, ConnectionError)):
                stream.read(5)
            # The server keeps serving others.
            sent = batch(carrier("T1"))
            healthy.send(sent)
            assert collect(healthy, {sent.batch_id})[0].results[0].status is AckStatus.ACCEPTED
            # A batch over the limit the server announced never leaves the client.
            big = batch(*[carrier(f"T-BIG-{i}") for i in range(200)])
            with pytest.raises(FatalError, match="frame-too-large"):
                healthy.send(big)
            assert sb.store.accepted_counts() == {"T1": 1}
        finally:
            stream.close()
            healthy.close()


# --------------------------------------------------------------------------- failures and recovery


def test_connection_dropped_mid_batch_resumes_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    # Frames: HELLO (1), BATCH one (2), BATCH two (3): the sandbox stores batch two,
    # then cuts the connection before its RECEIPT or ACK.
    with Sandbox(tmp_path / "drop", faults=Faults(drop_after_frames=3)).start() as sb:
        transport = P2PSocketTransport(
            P2POptions.model_validate(sb.transport_options(window=3, **FAST)), None, S321Json())
        try:
            one = batch(carrier("T1"), carrier("T2"))
            two = batch(carrier("T3"), carrier("T4"))
            three = batch(carrier("T5"))
            for b in (one, two, three):
                transport.send(b)
            outcomes = results(collect(transport, {one.batch_id, two.batch_id, three.batch_id}))
        finally:
            transport.close()
        assert transport.links_opened == 2
        assert set(outcomes) == {"T1", "T2", "T3", "T4", "T5"}
        assert all(filed_once(o) for o in outcomes.values()), outcomes
        # Batch two went twice over the wire: the second time its adds were duplicates.
        assert [codes for _, codes in outcomes["T3"]] == [["duplicate"]]
        assert sb.store.accepted_counts() == {t: 1 for t in ("T1", "T2", "T3", "T4", "T5")}


def test_sandbox_restarted_on_the_same_port_while_a_client_keeps_sending(tmp_path: Path) -> None:
    folder = tmp_path / "restart"
    first = Sandbox(folder).start()
    port = first.port
    options = P2POptions.model_validate(first.transport_options(reconnect_attempts=1, **FAST))
    transport = P2PSocketTransport(options, None, S321Json())
    second: list[Sandbox] = []
    try:
        before = batch(carrier("T1"))
        transport.send(before)
        collect(transport, {before.batch_id})
        first.stop()  # killed: the client's link dies under it

        def restart() -> None:
            time.sleep(0.8)
            second.append(Sandbox(folder, port=port).start())

        threading.Thread(target=restart, daemon=True).start()
        retriable = 0
        sent: list[Batch] = []
        deadline = time.monotonic() + 15
        for records in (["T2", "T3"], ["T4"]):
            b = batch(*[carrier(t) for t in records])
            while True:
                assert time.monotonic() < deadline, "the client never got through"
                try:
                    transport.send(b)
                    break
                except RetriableError:
                    retriable += 1
                    time.sleep(0.05)
            sent.append(b)
        outcomes = results(collect(transport, {b.batch_id for b in sent}))
    finally:
        transport.close()
        for sb in second:
            sb.stop()
    assert retriable >= 1
    assert all(o == [(AckStatus.ACCEPTED, [])] for o in outcomes.values()), outcomes
    assert second[0].port == port
    from s321.sandbox import SandboxStore

    store = SandboxStore(folder / "sandbox.sqlite")
    try:
        assert store.accepted_counts() == {"T1": 1, "T2": 1, "T3": 1, "T4": 1}
    finally:
        store.close()


def test_heartbeats_keep_an_idle_link_open(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "idle", idle_timeout=0.6).start() as sb:
        beating = P2PSocketTransport(P2POptions.model_validate(
            sb.transport_options(heartbeat_interval=0.15, **FAST)), None, S321Json())
        quiet = P2PSocketTransport(P2POptions.model_validate(
            sb.transport_options(heartbeat_interval=30, **FAST)), None, S321Json())
        try:
            for transport in (beating, quiet):
                transport.connect()
            assert beating.acks(timeout=1.2) == []  # waits on an idle link: PING, PONG
            time.sleep(0.2)
            for transport in (beating, quiet):
                sent = batch(carrier(f"T-{id(transport)}"))
                transport.send(sent)
                collect(transport, {sent.batch_id})
        finally:
            beating.close()
            quiet.close()
        assert beating.links_opened == 1
        # The quiet one was closed by the server as idle, and reconnected on its own.
        assert quiet.links_opened == 2


# --------------------------------------------------------------------------- options


def test_certificate_and_key_must_be_references(sandbox: Sandbox, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    table = sandbox.transport_options(cert=str(sandbox.client_cert))
    with pytest.raises(ValidationError, match="must be a reference"):
        P2POptions.model_validate(table)
    monkeypatch.setenv("S321_TEST_CLIENT_KEY", str(sandbox.client_key))
    certs = sandbox.client_cert.parent
    options = P2POptions.model_validate(
        {**sandbox.transport_options(), "ca": "ca.pem", "cert": {"file": "client.pem"},
         "key": {"env": "S321_TEST_CLIENT_KEY"}},
        context={"base_dir": certs})
    assert options.cert == certs / "client.pem" and options.key == sandbox.client_key
    assert options.ca == certs / "ca.pem" and options.tls_server_name == sandbox.host
    with pytest.raises(ValidationError, match="no such file"):
        P2POptions.model_validate(sandbox.transport_options(key={"file": str(tmp_path / "nope")}))


def test_encrypted_key_with_passphrase_reference(sandbox: Sandbox, connect, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    key = serialization.load_pem_private_key(sandbox.client_key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse")))
    monkeypatch.setenv("S321_TEST_PASSPHRASE", "correct horse")
    assert "agreed" in connect(key={"file": str(locked)},
                               key_passphrase={"env": "S321_TEST_PASSPHRASE"}).probe()
    # A wrong passphrase, or none, is the config's fault, said at load (`s321 check`)
    # naming the option, not at the first connection as OpenSSL's "PEM lib".
    monkeypatch.setenv("S321_TEST_PASSPHRASE", "wrong")
    with pytest.raises(ValidationError, match=f"key_passphrase: does not open {locked}"):
        connect(key={"file": str(locked)}, key_passphrase={"env": "S321_TEST_PASSPHRASE"})
    with pytest.raises(ValidationError, match=f"key: {locked} is encrypted: give key_passphrase"):
        connect(key={"file": str(locked)})


# --------------------------------------------------------------------------- framing


@given(st.binary(max_size=256), st.integers(min_value=1, max_value=64))
def test_frame_decoder_never_crashes_on_arbitrary_bytes(data: bytes, chunk: int) -> None:
    decoder = FrameDecoder(max_frame=100)
    try:
        for i in range(0, len(data), chunk):
            decoder.feed(data[i:i + chunk])
            while (frame := decoder.next()) is not None:
                assert len(frame.body) <= 100
    except ProtocolError as exc:
        assert exc.code in {"frame-too-large", "malformed-frame"}


@given(st.lists(st.tuples(st.sampled_from(list(FrameType)), st.binary(max_size=300)), max_size=8),
       st.integers(min_value=1, max_value=50))
def test_frames_survive_any_chunking(frames: list[tuple[FrameType, bytes]], chunk: int) -> None:
    wire = b"".join(encode(t, b) for t, b in frames)
    decoder = FrameDecoder(max_frame=300)
    out: list[Frame] = []
    for i in range(0, len(wire), chunk):
        decoder.feed(wire[i:i + chunk])
        while (frame := decoder.next()) is not None:
            out.append(frame)
    assert out == [Frame(t, b) for t, b in frames]


def test_decoder_refuses_an_oversize_frame_on_its_header() -> None:
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(HEADER.pack(11, FrameType.BATCH))
    with pytest.raises(ProtocolError) as caught:
        decoder.next()
    assert caught.value.code == FRAME_TOO_LARGE


# --------------------------------------------------------------------------- classify, backoff


@pytest.mark.parametrize("exc, kind", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), RetriableError),
    (ConnectionResetError(errno.ECONNRESET, "reset"), RetriableError),
    (TimeoutError("timed out"), RetriableError),
    (EOFError("the peer closed the connection"), RetriableError),
    (ProtocolError("unavailable", "stopping", from_peer=True), RetriableError),
    (ProtocolError("idle-timeout", "idle", from_peer=True), RetriableError),
    (ProtocolError("version-refused", "s321/9", from_peer=True), FatalError),
    (ProtocolError("frame-too-large", "too big"), FatalError),
    (ProtocolError("malformed-batch", "bad"), FatalError),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), FatalError),
    (FatalError("already classified"), FatalError),
])
def test_classify(exc: BaseException, kind: type) -> None:
    assert type(classify(exc)) is kind


def test_backoff_delays_stay_within_the_full_jitter_bounds() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(321))
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.ceiling(10_000) == 4.0  # no overflow after days of failures
    for attempt in range(8):
        delays = [backoff.delay(attempt) for _ in range(300)]
        assert all(0.0 <= d <= backoff.ceiling(attempt) for d in delays)
        # Full jitter spreads over the whole range, not near the ceiling only.
        assert min(delays) < 0.2 * backoff.ceiling(attempt) < 0.8 * backoff.ceiling(attempt) < max(delays)


def test_retry_backs_off_then_gives_up_or_stops_on_fatal() -> None:
    waits: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetriableError("refused")
        return "sent"

    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(1))
    assert retry(flaky, attempts=5, backoff=backoff, sleep=waits.append) == "sent"
    assert len(waits) == 2 and 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0
    with pytest.raises(RetriableError):
        retry(lambda: (_ for _ in ()).throw(RetriableError("down")), attempts=3, backoff=backoff,
              sleep=waits.append)
    fatal_calls = []

    def fatal() -> None:
        fatal_calls.append(1)
        raise FatalError("certificate refused")

    with pytest.raises(FatalError):
        retry(fatal, attempts=3, backoff=backoff, sleep=waits.append)
    assert fatal_calls == [1]


def test_tls_files_that_cannot_be_used_are_named_at_load(sandbox: Sandbox, tmp_path: Path) -> None:
    """`s321 check` loads the CA, certificate and key, and says which option is wrong:
    OpenSSL says "PEM lib" for all of these."""
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("other.test").private_key_pem.write_to_path(str(other_key))
    cases = {
        "swapped": ({"cert": {"file": str(sandbox.client_key)}, "key": {"file": str(sandbox.client_cert)}},
                    f"cert: {sandbox.client_key} holds no PEM certificate (it holds a private key: "
                    "are cert and key swapped?)"),
        "not the pair": ({"key": {"file": str(other_key)}},
                         f"key: {other_key} is not the private key of the certificate in {sandbox.client_cert}"),
        "a key for a CA": ({"ca": str(sandbox.client_key)}, f"ca: {sandbox.client_key} holds no CA certificate"),
    }
    for overrides, said in cases.values():
        with pytest.raises(ValidationError, match=re.escape(said)):
            P2POptions.model_validate(sandbox.transport_options(**overrides))

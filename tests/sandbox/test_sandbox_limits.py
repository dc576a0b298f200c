"""The sandbox keeps serving when peers hold connections open: 300 silent TCP
connections and 300 idle authenticated ones from other loopback addresses do not keep
a client on 127.0.0.1 from being served within a second; one address cannot take
more than its share; a HELLO nested 100,000 deep is `malformed-frame`; client
certificates bound to originator codes may file for those codes only."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from builders import carrier_fields, consignment
from s321 import ids
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.adapters.p2p_socket.link import client_context
from s321.contracts import Ack, AckStatus, Batch
from s321.errors import FatalError
from s321.framing import FrameStream, FrameType, client_handshake, parse_json
from s321.plugins.wire_s321 import S321Json
from s321.sandbox import Sandbox
from s321.sandbox import cli as sandbox_cli
from s321.sandbox.connection import bindings, fingerprint, parse_binding

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "connect_timeout": 5.0}


def source(i: int) -> str:
    """127.0.0.2 and up: loopback addresses other than the client's (Linux routes all
    of 127.0.0.0/8 to lo)."""
    return f"127.0.{i // 250}.{2 + i % 250}"


def batch(originator: str = "CAR001", *codes: str) -> Batch:
    records = [consignment(carrier_fields(originator_code=c), txid=f"T-{c}-{i}")
               for i, c in enumerate(codes or (originator,))]
    return Batch(batch_id=ids.batch_id(), originator_code=originator, profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=records)


def transport_to(sb: Sandbox, **overrides: object) -> P2PSocketTransport:
    options = P2POptions.model_validate(sb.transport_options(**{**FAST, **overrides}))
    return P2PSocketTransport(options, None, S321Json())


def round_trip(transport: P2PSocketTransport, sent: Batch, timeout: float = 10.0) -> Ack:
    transport.send(sent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ack in transport.acks(timeout=0.2):
            if ack.batch_id == sent.batch_id:
                return ack
    raise AssertionError("no ack")


def raw_connection(sb: Sandbox, src: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the transport does
    sock.bind((src, 0))
    sock.settimeout(5)
    sock.connect((sb.host, sb.port))
    return sock


def tls_stream(sb: Sandbox, src: str, context: ssl.SSLContext | None = None) -> FrameStream:
    context = context or client_context(sb.ca_path, sb.client_cert, sb.client_key)
    return FrameStream(context.wrap_socket(raw_connection(sb, src), server_hostname=sb.host))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox").start() as sb:
        yield sb


def test_a_client_is_served_within_a_second_while_600_connections_are_held(sandbox):
    held: list[socket.socket] = []
    try:
        for i in range(300):  # never start TLS
            held.append(raw_connection(sandbox, source(i)))
        context = client_context(sandbox.ca_path, sandbox.client_cert, sandbox.client_key)
        for i in range(300):  # authenticated, said HELLO, then idle
            stream = tls_stream(sandbox, source(300 + i), context)
            client_handshake(stream, ["s321/1"], 5.0)
            held.append(stream.sock)
        started = time.monotonic()
        transport = transport_to(sandbox)
        try:
            ack = round_trip(transport, batch())
        finally:
            transport.close()
        elapsed = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()
    assert [r.status for r in ack.results] == [AckStatus.ACCEPTED]
    assert elapsed < 1.0, f"served after {elapsed:.2f} s"
    assert sandbox.server.evictions > 0


def test_an_evicted_idle_client_is_told_unavailable(tmp_path):
    with Sandbox(tmp_path / "sb", max_connections=2).start() as sb:
        idle = tls_stream(sb, source(0))
        client_handshake(idle, ["s321/1"], 5.0)
        time.sleep(0.05)
        busy = transport_to(sb)
        other = transport_to(sb)
        try:
            round_trip(busy, batch())
            round_trip(other, batch())  # the third connection: the idle one must go
        finally:
            busy.close()
            other.close()
        frame = idle.read(3.0)
        assert frame is not None and frame.type is FrameType.ERROR
        assert parse_json(frame)["code"] == "unavailable"


def test_one_address_gets_at_most_its_share(tmp_path):
    with Sandbox(tmp_path / "sb", max_per_peer=4).start() as sb:
        held = [raw_connection(sb, "127.0.0.9") for _ in range(4)]
        extra = raw_connection(sb, "127.0.0.9")
        try:
            extra.settimeout(3)
            with pytest.raises(ConnectionResetError):
                extra.recv(1)  # reset at once, not after a handshake timeout
            transport = transport_to(sb)  # another address is still served
            try:
                assert round_trip(transport, batch()).results[0].status is AckStatus.ACCEPTED
            finally:
                transport.close()
        finally:
            for sock in [*held, extra]:
                sock.close()


def test_a_silent_connection_is_closed_after_the_short_handshake_timeout(tmp_path):
    with Sandbox(tmp_path / "sb", handshake_timeout=0.5).start() as sb:
        sock = raw_connection(sb, source(1))
        started = time.monotonic()
        sock.settimeout(5)
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        assert data == b"" and time.monotonic() - started < 2.0
        sock.close()


def test_a_hello_nested_100000_deep_is_malformed_frame(sandbox):
    stream = tls_stream(sandbox, "127.0.0.1")
    body = b'{"versions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    stream.write(FrameType.HELLO, body)
    frame = stream.read(5.0)
    stream.close()
    assert frame is not None and frame.type is FrameType.ERROR
    assert parse_json(frame)["code"] == "malformed-frame"


def test_a_hello_with_a_5000_digit_number_is_malformed_frame(sandbox):
    stream = tls_stream(sandbox, "127.0.0.1")
    stream.write(FrameType.HELLO, b'{"versions": ["s321/1"], "max_frame": ' + b"9" * 5000 + b"}")
    frame = stream.read(5.0)
    stream.close()
    assert frame is not None and parse_json(frame)["code"] == "malformed-frame"


# --------------------------------------------------------------------------- identities


@pytest.fixture
def two_clients(tmp_path):
    """The dev certificates, and a second client certificate from the same CA."""
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server.private_key_and_cert_chain_pem.write_to_path(str(certs / "server.pem"))
    paths = {}
    for name in ("alpha", "beta"):
        issued = ca.issue_cert(f"{name}.s321.invalid")
        issued.cert_chain_pems[0].write_to_path(str(certs / f"{name}.pem"))
        issued.private_key_pem.write_to_path(str(certs / f"{name}.key"))
        paths[name] = (certs / f"{name}.pem", certs / f"{name}.key")
    from s321.sandbox.certs import DevCerts
    dev = DevCerts(ca=certs / "ca.pem", server_cert=certs / "server.pem",
                   server_key=certs / "server.pem", client_cert=paths["alpha"][0],
                   client_key=paths["alpha"][1])
    return dev, paths


def test_a_bound_certificate_files_for_its_codes_only(tmp_path, two_clients):
    dev, paths = two_clients
    identities = bindings([f"{paths['alpha'][0]}=CAR001,CAR002"])
    with Sandbox(tmp_path / "sb", certs=dev, identities=identities).start() as sb:
        transport = transport_to(sb)
        try:
            ack = round_trip(transport, batch("CAR001", "CAR001", "CAR003", "CAR002"))
            [own1, other, own2] = ack.results
            assert own1.status is own2.status is AckStatus.ACCEPTED
            assert other.status is AckStatus.REJECTED
            assert [e.code for e in other.errors] == ["originator-refused"]
            whole = round_trip(transport, batch("CAR009"))
            assert [e.code for r in whole.results for e in r.errors] == ["originator-refused"]
        finally:
            transport.close()
        assert sb.store.accepted_counts().keys() == {own1.transaction_id, own2.transaction_id}
        # beta is signed by the same CA but bound to nothing: refused at HELLO.
        beta = transport_to(sb, cert={"file": str(paths["beta"][0])},
                            key={"file": str(paths["beta"][1])})
        try:
            with pytest.raises(FatalError, match="identity-refused"):
                beta.connect()
        finally:
            beta.close()


def test_bindings_take_a_file_or_a_fingerprint(two_clients):
    _dev, paths = two_clients
    der = ssl.PEM_cert_to_DER_cert(paths["beta"][0].read_text())
    fp = fingerprint(der)
    colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
    assert parse_binding(f"{colons}=MKT1") == (fp, frozenset({"MKT1"}))
    assert bindings([f"{paths['beta'][0]}=A", f"{fp}=B"]) == {fp: frozenset({"A", "B"})}
    with pytest.raises(ValueError, match="--bind"):
        parse_binding("no-codes-here")


def test_the_cli_refuses_a_bad_bind_with_a_message(tmp_path, capsys):
    code = sandbox_cli.main(["sandbox", "--certs-dir", str(tmp_path / "c"), "--db",
                             str(tmp_path / "db.sqlite"), "--bind", f"{tmp_path}/missing.pem=X"])
    assert code == 2
    assert "missing.pem" in capsys.readouterr().err

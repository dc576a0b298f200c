"""The relay keeps serving: 300 TCP connections that never finish a handshake and 300
idle authenticated clients from other loopback addresses do not keep a client on
127.0.0.1 from being served within a second; a connection that does not finish its
CURVE handshake in time is closed; a HELLO nested 100,000 deep is answered with
`malformed-message` instead of nothing. Real ZeroMQ sockets with CURVE keys."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zmq
import zmq.auth

from builders import consignment, marketplace_fields
from s321 import app, ids
from s321.adapters.broker_relay import BrokerRelayTransport, RelayClientOptions
from s321.contracts import Batch, PipelineContext, PipelineDefaults
from s321.plugins.wire_s321 import S321Json
from s321.record import FilerType, ModeOfTransport
from s321.relay import config as relay_config
from s321.relay import keys, protocol
from s321.relay.server import RelayServer
from ports import free_port


def source(i: int) -> str:
    return f"127.0.{i // 250}.{2 + i % 250}"


@pytest.fixture(scope="module")
def keyring(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("relay", "alice"):
        keys.generate(name, folder)
    return folder




@pytest.fixture
def relay(request, tmp_path, keyring) -> Iterator[RelayServer]:
    """A relay with a file upstream; `@pytest.mark.parametrize("relay", [seconds],
    indirect=True)` shortens its handshake timeout."""
    port = free_port()
    path = tmp_path / "relay.toml"
    path.write_text(textwrap.dedent(f"""
        [relay]
        bind = "tcp://0.0.0.0:{port}"
        secret_key = {{file = "{keyring / 'relay.key_secret'}"}}
        poll_interval = 0.05

        [ledger]
        path = "relay.sqlite"

        [upstreams.out]
        plugin = "file"
        directory = "{tmp_path / 'upstream'}"

        [clients.alice]
        public_key = "{keyring / 'alice.key'}"
        originator_codes = ["MKT001"]
        upstream = "out"
        """), encoding="utf-8")
    registry = app.load_registry()
    server = RelayServer(relay_config.load(path, registry), registry)
    server.handshake_timeout = getattr(request, "param", RelayServer.handshake_timeout)
    server.start()
    server.port = port  # type: ignore[attr-defined]
    yield server
    server.stop()


def dealer(ctx: zmq.Context, keyring: Path, port: int, src: str = "127.0.0.1") -> zmq.Socket:
    public, secret = zmq.auth.load_certificate(str(keyring / "alice.key_secret"))
    server_public, _ = zmq.auth.load_certificate(str(keyring / "relay.key"))
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://{src}:0;127.0.0.1:{port}")  # source address first, as libzmq spells it
    return sock


def hello(session: str = "s1") -> list[bytes]:
    return [protocol.HELLO, session.encode(), protocol.dumps({"protocol": protocol.PROTOCOL,
                                                              "format": "s321/1"})]


def test_a_hello_nested_100000_deep_is_answered_malformed(relay, keyring):
    ctx = zmq.Context()
    try:
        sock = dealer(ctx, keyring, relay.port)
        body = b'{"protocol": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        sock.send_multipart([protocol.HELLO, b"s1", body])
        assert sock.poll(5000), "no answer to a deeply nested HELLO"
        kind, answer = sock.recv_multipart()
        assert kind == protocol.ERROR
        assert json.loads(answer)["code"] == protocol.MALFORMED_MESSAGE
        sock.send_multipart(hello())  # and the relay still serves this very peer
        assert sock.poll(5000) and sock.recv_multipart()[0] == protocol.WELCOME
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("relay", [0.5], indirect=True)
def test_a_connection_that_never_handshakes_is_closed(relay):
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
        started = time.monotonic()
        data = b"x"
        try:
            while data:  # the relay's greeting, then the close
                data = sock.recv(4096)
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 2.0  # 0.5 s, where libzmq's default is 30 s


def test_a_client_is_served_within_a_second_while_others_hold_connections(relay, keyring):
    held: list[socket.socket] = []
    ctx = zmq.Context()
    try:
        for i in range(300):
            sock = socket.socket()
            sock.bind((source(i), 0))
            sock.connect(("127.0.0.1", relay.port))
            held.append(sock)
        idle = []
        for i in range(300):
            sock = dealer(ctx, keyring, relay.port, source(300 + i))
            sock.send_multipart(hello(f"idle-{i}"))
            idle.append(sock)
        for sock in idle:
            assert sock.poll(10000) and sock.recv_multipart()[0] == protocol.WELCOME
        options = RelayClientOptions.model_validate({
            "endpoint": f"tcp://127.0.0.1:{relay.port}", "server_key": str(keyring / "relay.key"),
            "secret_key": {"file": str(keyring / "alice.key_secret")}, "connect_timeout": 3,
            "receipt_timeout": 3})
        context = PipelineContext(pipeline="shop", originator_code="MKT001",
                                  filer_type=FilerType.ONLINE_MARKETPLACE,
                                  mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019",
                                  source="test", defaults=PipelineDefaults())
        started = time.monotonic()
        transport = BrokerRelayTransport(options, context, S321Json())
        try:
            transport.connect()
            record = consignment(marketplace_fields(), txid=ids.transaction_id("MKT001", "t", "r1"))
            receipt = transport.send(Batch(batch_id=ids.batch_id(), originator_code="MKT001",
                                           profile="pilot-2019", sent_at=datetime.now(UTC),
                                           records=[record]))
        finally:
            transport.close()
        elapsed = time.monotonic() - started
        assert receipt.batch_id and elapsed < 1.0, f"served after {elapsed:.2f} s"
    finally:
        for sock in held:
            sock.close()
        ctx.destroy(linger=0)


"""The daemon's HTTP port keeps answering: 300 connections that never send a request,
from other loopback addresses, do not keep a scrape from 127.0.0.1 from being answered
within a second; one address cannot hold more than its share; a silent connection is
dropped after the request timeout."""

import socket
import time
import urllib.request

import pytest

from s321 import httpd
from s321.metrics import Metrics


def source(i: int) -> str:
    return f"127.0.{i // 250}.{2 + i % 250}"


@pytest.fixture
def server():
    srv = httpd.serve(("127.0.0.1", 0), Metrics(), lambda: (True, {"pipelines": {}}))
    yield srv
    srv.shutdown()
    srv.server_close()


def connect(port: int, src: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((src, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def test_healthz_is_answered_within_a_second_while_300_connections_are_held(server):
    port = server.server_address[1]
    held = [connect(port, source(i)) for i in range(300)]
    try:
        time.sleep(0.2)  # let the server accept them all
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200 and b'"ok": true' in resp.read()
        assert time.monotonic() - started < 1.0
    finally:
        for sock in held:
            sock.close()


def test_one_address_holds_at_most_its_share(server):
    port = server.server_address[1]
    held = [connect(port, "127.0.0.7") for _ in range(httpd.MAX_PER_PEER)]
    extra = connect(port, "127.0.0.7")
    try:
        try:
            assert extra.recv(1) == b""  # closed at once, nothing served
        except ConnectionResetError:
            pass
    finally:
        for sock in [*held, extra]:
            sock.close()


def test_a_silent_connection_is_dropped_after_the_request_timeout(monkeypatch):
    monkeypatch.setattr(httpd, "REQUEST_TIMEOUT", 1.0)
    srv = httpd.serve(("127.0.0.1", 0), Metrics(), lambda: (True, {}))
    try:
        sock = connect(srv.server_address[1], "127.0.0.8")
        started = time.monotonic()
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        sock.close()
        assert data == b"" or data.startswith(b"HTTP/")  # closed, perhaps with a 408
        assert time.monotonic() - started < 3.0
    finally:
        srv.shutdown()
        srv.server_close()

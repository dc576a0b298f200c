"""The daemon's HTTP port keeps answering: 300 connections that never send a request,
from other loopback addresses, do not keep a scrape from 127.0.0.1 from being answered
within a second; one address cannot hold more than its share, and its newcomer is
answered; a silent or trickling connection is dropped after the request timeout."""

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


def test_one_address_holds_at_most_its_share_and_a_newcomer_is_answered(server):
    """Connections held open from 127.0.0.1 (the daemon's own host) must not keep its
    scrape, or `s321 status`, from being answered: a newcomer of an address at its share
    takes the slot of that address's oldest connection."""
    port = server.server_address[1]
    held = [connect(port, "127.0.0.7") for _ in range(httpd.MAX_PER_PEER)]
    try:
        time.sleep(0.2)  # let the server accept them all
        scrape = connect(port, "127.0.0.7")
        scrape.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert scrape.recv(1024).startswith(b"HTTP/1.0 200")
        scrape.close()
        try:
            assert held[0].recv(1) == b""  # the oldest was let go
        except ConnectionResetError:
            pass
    finally:
        for sock in held:
            sock.close()


def test_a_request_trickled_a_byte_at_a_time_is_cut_at_the_request_timeout(monkeypatch):
    """The socket timeout is per read: a byte every 0.3 s would never time out. The
    whole request has REQUEST_TIMEOUT."""
    monkeypatch.setattr(httpd, "REQUEST_TIMEOUT", 1.0)
    srv = httpd.serve(("127.0.0.1", 0), Metrics(), lambda: (True, {}))
    try:
        sock = connect(srv.server_address[1], "127.0.0.9")
        started = time.monotonic()
        cut = False
        for byte in b"GET /healthz HTTP/1.0\r\nX-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            time.sleep(0.3)
        sock.settimeout(1)
        if not cut:
            try:
                cut = sock.recv(1024) == b""
            except (ConnectionResetError, TimeoutError):
                cut = False
        sock.close()
        assert cut and time.monotonic() - started < 4.0
    finally:
        srv.shutdown()
        srv.server_close()


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

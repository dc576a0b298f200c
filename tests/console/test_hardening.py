"""The console against hostile clients, over a real `s321 console` (uvicorn on a free
loopback port, started as a user would): Host names that are not the console's (DNS
rebinding), the login limiter, slow password checks, oversized or unfinished requests,
crafted form values, refusals in the audit log, and the logged-out sessions kept."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from console.world import PASSWORD, World
from ports import free_port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str


@dataclass
class Console:
    """A running `s321 console` and a client of it that keeps its cookie."""

    port: int
    cookie: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": f"127.0.0.1:{self.port}", **self.extra, **(headers or {})}
        if self.cookie:
            sent["Cookie"] = self.cookie
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                            response.read().decode(errors="replace"))
        finally:
            conn.close()
        cookie = answer.headers.get("set-cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return answer

    def csrf(self, path: str = "/login") -> str:
        page = self.request("GET", path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, (page.status, page.text[:300])
        return found.group(1)

    def log_in(self, user: str, password: str = PASSWORD) -> Answer:
        return self.request("POST", "/login", {"csrf": self.csrf(), "username": user, "password": password})

    def fresh(self, **extra: str) -> Console:
        return Console(self.port, extra=extra)


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"s321 console exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("s321 console did not start listening")


@pytest.fixture(scope="module")
def console(world: World) -> Iterator[Console]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "console", "-c", str(world.config),
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_for_port(port, proc)
        yield Console(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------- 1. Host


def test_a_host_that_does_not_name_the_console_is_refused_before_any_route(console: Console) -> None:
    """DNS rebinding: a page on rebind.attacker.example, its name pointed at 127.0.0.1,
    would be same-origin with the console if the console believed the Host header."""
    evil = f"rebind.attacker.example:{console.port}"
    rebound = console.fresh(Host=evil)
    assert rebound.request("GET", "/login").status == 400
    login = rebound.request("POST", "/login", {"csrf": "x", "username": "ada", "password": PASSWORD},
                            headers={"Origin": f"http://{evil}", "Sec-Fetch-Site": "same-origin"})
    assert login.status == 400 and "set-cookie" not in login.headers
    assert rebound.request("GET", "/static/console.css").status == 400
    for name in ("127.0.0.1", "localhost", "[::1]", "LOCALHOST"):
        assert console.fresh(Host=f"{name}:{console.port}").request("GET", "/login").status == 200, name
    assert console.fresh(Host=f"127.0.0.1:{console.port + 1}").request("GET", "/login").status == 400
    # The Origin is compared with the console's own origins, not with the Host sent.
    client = console.fresh()
    token = client.csrf()
    other = client.request("POST", "/login", {"csrf": token, "username": "ada", "password": PASSWORD},
                           headers={"Origin": f"http://{evil}"})
    assert other.status == 403
    own = client.request("POST", "/login", {"csrf": token, "username": "ada", "password": PASSWORD},
                         headers={"Origin": f"http://localhost:{console.port}"})
    assert own.status == 303 and own.headers["location"] == "/"

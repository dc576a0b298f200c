"""The console against hostile clients, over a real `s321 console` (uvicorn on a free
loopback port, started as a user would): Host names that are not the console's (DNS
rebinding), the login limiter, slow password checks, oversized or unfinished requests,
crafted form values, refusals in the audit log, and the logged-out sessions kept."""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from console.world import PASSWORD, World, running_console
from s321.console import auth


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


@pytest.fixture(scope="module")
def console(world: World) -> Iterator[Console]:
    with running_console(world.config) as port:
        yield Console(port)


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


# ---------------------------------------------------------------------------- 2. login limiter


def test_failed_logins_for_made_up_names_do_not_lock_a_user_out(console: Console) -> None:
    """Every user of a loopback console comes from 127.0.0.1: failures for other names
    from that address must not refuse the right password of a real user."""
    for i in range(8):
        wrong = console.fresh().log_in(f"nobody-{i}", "guess")
        assert wrong.status == 303 and wrong.headers["location"] == "/login?error=wrong"
    ada = console.fresh().log_in("ada")
    assert ada.status == 303 and ada.headers["location"] == "/"


def test_guessing_one_name_stays_slow_whatever_x_forwarded_for_says(console: Console) -> None:
    """The address a login is counted under is the connection's: a client rotating
    X-Forwarded-For is still one address, and its guesses at one name are refused
    after five, even the right password, with a Retry-After."""
    for i in range(5):
        wrong = console.fresh(**{"X-Forwarded-For": f"10.0.{i}.1"}).log_in("otto", "guess")
        assert wrong.headers["location"] == "/login?error=wrong"
    limited = console.fresh(**{"X-Forwarded-For": "10.0.99.1"}).log_in("otto")
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    # Other users from the same address are not refused.
    assert console.fresh().log_in("vera").headers["location"] == "/"


def test_the_limiters_delays_grow_per_name_and_address_and_per_name() -> None:
    limiter = auth.LoginLimiter()
    for t in range(5):
        assert limiter.blocked("ada", "10.0.0.1", now=t) == 0
        limiter.failed("ada", "10.0.0.1", now=t)
    assert limiter.blocked("ada", "10.0.0.1", now=4) == 1  # the 6th waits 1 s after the 5th
    limiter.failed("ada", "10.0.0.1", now=5)
    assert limiter.blocked("ada", "10.0.0.1", now=5) == 2  # then 2, 4, 8 ... up to the window
    assert limiter.blocked("ada", "10.0.0.2", now=5) == 0  # another address: its own count
    assert limiter.blocked("eve", "10.0.0.1", now=5) == 0  # another name: never refused for ada's
    for i in range(20):  # many addresses, one name
        limiter.failed("otto", f"10.1.0.{i}", now=100)
    assert 0 < limiter.blocked("otto", "10.9.9.9", now=100) <= 60
    assert limiter.slowdown(now=100) == 0
    for i in range(100):  # spraying many names: slowed, not refused
        limiter.failed(f"name-{i}", "10.0.0.3", now=101)
    assert limiter.slowdown(now=101) > 0 and limiter.blocked("vera", "10.0.0.3", now=101) == 0
    assert limiter.slowdown(now=200) == 0


# ---------------------------------------------------------------------------- 3. slow work off the loop


def test_other_requests_are_served_while_passwords_are_checked(console: Console) -> None:
    """Each argon2id check takes ~140 ms: done on the event loop, ten logins at once
    held every other request (a static file) for over a second."""
    clients = [console.fresh() for _ in range(10)]
    tokens = [c.csrf() for c in clients]
    started = time.monotonic()
    threads = [threading.Thread(target=c.request, args=("POST", "/login"),
                                kwargs={"form": {"csrf": t, "username": f"spray-{i}", "password": "guess"}})
               for i, (c, t) in enumerate(zip(clients, tokens))]
    for t in threads:
        t.start()
    time.sleep(0.15)  # the logins are in
    t0 = time.monotonic()
    assert console.fresh().request("GET", "/static/console.css").status == 200
    probe = time.monotonic() - t0
    for t in threads:
        t.join()
    logins = time.monotonic() - started
    assert logins > 0.5  # the checks did take their time...
    assert probe < 0.4, (probe, logins)  # ...and a static file did not wait for them


# ---------------------------------------------------------------------------- 4. bounded input


def raw(console: Console, head: str, body: bytes = b"", wait: float = 10) -> bytes:
    """Send a request's head (and the start of a body), and read the answer, if any."""
    with socket.create_connection(("127.0.0.1", console.port), timeout=wait) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


def test_bodies_are_refused_before_they_are_read(console: Console) -> None:
    host = f"Host: 127.0.0.1:{console.port}"
    multipart = raw(console, f"POST /login HTTP/1.1\n{host}\nContent-Type: multipart/form-data; boundary=b\n"
                             f"Content-Length: {100 * 2**20}\n", b"--b\r\n")
    assert multipart.startswith(b"HTTP/1.1 415"), multipart[:100]
    big = raw(console, f"POST /login HTTP/1.1\n{host}\nContent-Type: application/x-www-form-urlencoded\n"
                       f"Content-Length: {1000 * 2**20}\n", b"username=x&f=AAAA")
    assert big.startswith(b"HTTP/1.1 413"), big[:100]
    chunk = b"A" * 16384
    chunked = raw(console, f"POST /login HTTP/1.1\n{host}\nContent-Type: application/x-www-form-urlencoded\n"
                           "Transfer-Encoding: chunked\n",
                  b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)))
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:100]
    client = console.fresh()
    token = client.csrf()
    fields = client.request("POST", "/login", body=("&".join(f"f{i}=1" for i in range(2000)) + f"&csrf={token}").encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert fields.status == 400
    # A form as the console's own pages post it still works.
    assert console.fresh().log_in("vera").headers["location"] == "/"


def test_a_request_that_never_ends_its_headers_is_closed(console: Console) -> None:
    with socket.create_connection(("127.0.0.1", console.port), timeout=15) as s:
        s.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert s.recv(100) == b""  # closed, answered nothing
        assert time.monotonic() - started < 9


# ---------------------------------------------------------------------------- 5. crafted values


def test_crafted_values_are_refused_not_500s(console: Console) -> None:
    client = console.fresh()
    client.csrf()
    login = client.request("POST", "/login", {"csrf": "é" * 43, "username": "ada", "password": PASSWORD})
    assert login.status == 303 and login.headers["location"] == "/login?error=expired"
    assert client.log_in("ada").headers["location"] == "/"
    logout = client.request("POST", "/logout", {"csrf": "é" * 43})
    assert logout.status == 403 and "stale" in logout.text
    assert client.request("GET", "/records?before=" + "9" * 30).status == 400
    assert client.request("GET", f"/records?before={2**63 - 1}").status == 200


def test_names_given_in_console_hosts_are_the_consoles_own() -> None:
    """A console reached under another name (a proxy, a DNS name) is told that name in
    `[console] hosts`: only those names, with or without the port, are added."""
    from s321.config import ConsoleSection
    from s321.console.app import hosts_of

    section = ConsoleSection.model_validate({"hosts": ["console.example.test"]})
    hosts = hosts_of(section, https=False)
    assert {"console.example.test", "console.example.test:9322", "127.0.0.1:9322"} <= hosts
    assert "rebind.attacker.example:9322" not in hosts
    with pytest.raises(ValueError):
        ConsoleSection.model_validate({"hosts": ["evil.example/path"]})


# ---------------------------------------------------------------------------- 7. logged-out sessions


def test_a_flood_of_logged_out_sessions_is_bounded_and_ends_no_login() -> None:
    """Every GET /login without a cookie makes a session (for the form's CSRF token):
    past the cap the oldest logged-out ones end, never a logged-in one."""
    sessions = auth.Sessions(max_anonymous=1_000)
    ada = sessions.new("ada", now=1000.0)
    first = sessions.new(now=1000.0)
    for i in range(5_000):
        sessions.new(now=1000.0 + i * 0.001)
    assert len(sessions._by_id) == 1_001
    assert sessions.get(first.id, now=1006.0) is None  # the oldest went first
    assert sessions.get(ada.id, now=1006.0) is not None


def test_a_logged_out_session_lives_shorter_than_a_login() -> None:
    sessions = auth.Sessions()
    form, ada = sessions.new(now=0.0), sessions.new("ada", now=0.0)
    later = sessions.anonymous_seconds + 1
    assert sessions.get(form.id, now=later) is None
    assert sessions.get(ada.id, now=later) is not None

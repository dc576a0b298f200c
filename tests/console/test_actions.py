"""The console's changes and its defences: every action route × role × scope (generated
from the router), the audit log, the origin and CSRF checks, the headers, login (id
rotation, rate limit), session expiry and a user removed from the config."""

from __future__ import annotations

import io
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import trustme
from starlette.routing import Route

from console.world import ORIGIN, PASSWORD, USERS, World, client_for, csrf_of, log_in
from s321 import logs
from s321.config import ConsoleSection
from s321.console import auth
from s321.console.app import ROUTES
from s321.console.queries import LedgerReader
from s321.console.security import HTTP_COOKIE
from ports import free_port

ACTION_ROUTES = [r for r in ROUTES if isinstance(r, Route) and r.name in ("retry", "resend", "delete")]


def state(world: World, txid: str) -> str:
    found = LedgerReader(world.ledger).record(None, txid)
    assert found is not None
    return str(found["state"])


def audit_lines(world: World) -> list[dict[str, object]]:
    path = world.folder / "audit" / "console-audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("route", ACTION_ROUTES, ids=lambda r: r.name)
def test_action_route_role_scope(world: World, route: Route, user: str) -> None:
    """Refused (403) without the role's permission, not found (404) outside the scope,
    and in both cases nothing changes and the refusal is audited; allowed, it is done
    through the CLI's code and audited (a delete without its typed reference: refused,
    and audited so)."""
    client = client_for(world)
    token = log_in(client, user)
    role, scope = USERS[user]
    targets = {"ALPHA01": world.alpha[4] if route.name == "resend" else world.alpha[0], "BETA002": world.beta[2]}
    for code, txid in targets.items():
        before, audited = state(world, txid), len(audit_lines(world))
        data = {"csrf": token}
        if route.name == "delete":
            data["confirm"] = "not its reference"
        response = client.post(route.path.replace("{transaction_id}", txid), data=data)
        if not auth.allowed(role, route.name):
            assert response.status_code == 403 and "may not" in response.text
        elif scope is not None and code not in scope:
            assert response.status_code == 404
        else:
            assert response.status_code == 303
            assert len(audit_lines(world)) == audited + 1
            assert audit_lines(world)[-1]["user"] == user
            if route.name == "delete":  # not confirmed: not even tried
                assert audit_lines(world)[-1]["ok"] is False and state(world, txid) == before
            continue
        assert state(world, txid) == before and len(audit_lines(world)) == audited + 1
        line = audit_lines(world)[-1]
        assert (line["user"], line["action"], line["transaction_id"], line["ok"]) == (user, route.name, txid, False)


def test_retry_of_a_dead_letter_queues_it_and_is_audited(world: World) -> None:
    client = client_for(world)
    token = log_in(client, "bob")
    txid = world.beta[0]
    assert state(world, txid) == "dead"
    done = client.post(f"/records/{txid}/retry", data={"csrf": token, "back": "dead"})
    assert done.status_code == 303 and done.headers["location"] == "/dead"
    assert state(world, txid) == "queued"
    assert "retry: queued again" in client.get("/dead").text  # the outcome, shown once
    line = audit_lines(world)[-1]
    assert (line["user"], line["role"], line["action"], line["transaction_id"], line["ref"], line["ok"]) == \
        ("bob", "operator", "retry", txid, "B-0", True)
    assert stat.S_IMODE(os.stat(world.folder / "audit" / "console-audit.log").st_mode) == 0o600
    assert "Ada Quartermaine" not in (world.folder / "audit" / "console-audit.log").read_text()


def test_delete_needs_the_typed_reference(world: World) -> None:
    client = client_for(world)
    token = log_in(client, "ada")
    txid = world.alpha[1]
    ref = LedgerReader(world.ledger).record(None, txid)["ref"]
    client.post(f"/records/{txid}/delete", data={"csrf": token, "confirm": "A-1?"})
    assert state(world, txid) == "accepted"
    assert "type the record" in client.get(f"/records/{txid}").text
    client.post(f"/records/{txid}/delete", data={"csrf": token, "confirm": ref})
    record = LedgerReader(world.ledger).record(None, txid)
    assert (record["state"], record["action"]) == ("queued", "delete")
    assert audit_lines(world)[-1]["action"] == "delete"


def test_a_form_from_another_origin_or_without_its_token_is_refused(world: World) -> None:
    client = client_for(world)
    token = log_in(client, "ada")
    txid = world.beta[1]
    hostile = client.post(f"/records/{txid}/retry", data={"csrf": token},
                          headers={"origin": "http://evil.example"})
    assert hostile.status_code == 403 and "another site" in hostile.text
    cross_site = client.post(f"/records/{txid}/retry", data={"csrf": token}, headers={"sec-fetch-site": "cross-site"})
    assert cross_site.status_code == 403
    no_token = client.post(f"/records/{txid}/retry", data={})
    assert no_token.status_code == 403 and "stale" in no_token.text
    wrong_token = client.post(f"/records/{txid}/retry", data={"csrf": "x" * 43})
    assert wrong_token.status_code == 403
    assert state(world, txid) == "dead"
    refusals = [line for line in audit_lines(world) if line["transaction_id"] == txid]
    assert [line["ok"] for line in refusals] == [False] * 4 and "another site" in str(refusals[0]["outcome"])
    ok = client.post(f"/records/{txid}/retry", data={"csrf": token}, headers={"origin": ORIGIN})
    assert ok.status_code == 303 and state(world, txid) == "queued"


def test_headers_on_every_response(world: World) -> None:
    client = client_for(world)
    for path in ("/login", "/", "/static/console.css"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    assert client.get("/login").headers["cache-control"] == "no-store"
    assert "<script>" not in client.get("/login").text  # no inline script to allow


def test_login_rotates_the_session_and_logout_ends_it(world: World) -> None:
    client = client_for(world)
    client.get("/login")
    before = client.cookies[HTTP_COOKIE]
    log_in(client, "vera")
    after = client.cookies[HTTP_COOKIE]
    assert after != before
    set_cookie = client.get("/login").headers.get("set-cookie", "")
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
    # The pre-login id is dead: presenting it again gets the login page.
    stale = client_for(world)
    stale.cookies.set(HTTP_COOKIE, before)
    assert stale.get("/").status_code == 303
    token = csrf_of(client.get("/").text)
    client.post("/logout", data={"csrf": token})
    replay = client_for(world)
    replay.cookies.set(HTTP_COOKIE, after)
    assert replay.get("/").headers["location"] == "/login"


def test_login_is_rate_limited(world: World) -> None:
    client = client_for(world)
    for _ in range(5):
        token = csrf_of(client.get("/login").text)
        wrong = client.post("/login", data={"csrf": token, "username": "otto", "password": "guess"})
        assert wrong.headers["location"] == "/login?error=wrong"
    token = csrf_of(client.get("/login").text)
    limited = client.post("/login", data={"csrf": token, "username": "otto", "password": PASSWORD})
    assert limited.status_code == 429 and "Too many failed logins" in limited.text
    assert int(limited.headers["retry-after"]) > 0


def test_sessions_expire_idle_and_absolute() -> None:
    sessions = auth.Sessions(idle_seconds=1800, absolute_seconds=12 * 3600)
    s = sessions.new("vera", now=0)
    assert sessions.get(s.id, now=1700) is s
    assert sessions.get(s.id, now=1700 + 1801) is None  # idle
    s = sessions.new("vera", now=0)
    for t in range(1000, 12 * 3600, 1000):
        assert sessions.get(s.id, now=t) is s
    assert sessions.get(s.id, now=12 * 3600 + 1) is None  # absolute, however busy


def test_a_user_removed_from_the_config_is_logged_out_at_once(world: World, tmp_path: Path) -> None:
    config = tmp_path / "s321.toml"
    config.write_text(world.config.read_text())
    client = client_for(World(tmp_path, config, world.ledger, world.sandbox, [], []))
    log_in(client, "vera")
    assert client.get("/").status_code == 200
    text = config.read_text()
    start = text.index("[console.users.vera]")
    config.write_text(text[:start] + text[text.index("[console.users.otto]"):])
    os.utime(config, (1, 1))  # a changed mtime, even within the clock's resolution
    assert client.get("/").headers["location"] == "/login"


def test_config_console_section() -> None:
    with pytest.raises(ValueError, match="plain HTTP is served on loopback only"):
        ConsoleSection.model_validate({"listen": "0.0.0.0:9322"})
    with pytest.raises(ValueError, match="go together"):
        ConsoleSection.model_validate({"certificate": "/tmp/c.pem"})
    with pytest.raises(ValueError, match="argon2id"):
        ConsoleSection.model_validate({"users": {"x": {"role": "viewer", "password_hash": "plain"}}})
    with pytest.raises(ValueError, match="extra"):
        ConsoleSection.model_validate({"users": {"x": {"role": "viewer", "password_hash": "$argon2id$x",
                                                       "password": "no"}}})
    assert ConsoleSection.model_validate({"listen": "0.0.0.0:443", "certificate": "/c", "private_key": "/k"})


def test_hash_password_command() -> None:
    done = subprocess.run([sys.executable, "-m", "s321.cli", "console", "hash-password"], input="s3cret\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert auth.verify({"u": ConsoleSection.model_validate(
        {"users": {"u": {"role": "viewer", "password_hash": hashed}}}).users["u"]}, "u", "s3cret")


def test_console_refuses_a_config_without_users(world: World, tmp_path: Path) -> None:
    text = world.config.read_text()
    config = tmp_path / "s321.toml"
    config.write_text(text[:text.index("[console.users.")] + text[text.index("[pipelines."):])
    done = subprocess.run([sys.executable, "-m", "s321.cli", "console", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no [console.users.NAME]" in done.stderr



def test_logs_hold_neither_searches_nor_personal_data(world: World) -> None:
    stream = io.StringIO()
    logs.configure(level="info", json=True, stream=stream)
    try:
        client = client_for(world)
        log_in(client, "ada")
        assert "ALPHTRK0003" in client.get("/records", params={"q": "ALPHTRK0003"}).text
        page = client.get(f"/records/{world.alpha[3]}").text
        assert "Ada Quartermaine" in page and "ada.quartermaine@example.com" in page  # shown to her...
    finally:
        logs.configure(level="warning")
    written = stream.getvalue()
    assert '"path": "/records"' in written and world.alpha[3] in written  # ...the requests are logged
    for secret in ("ALPHTRK0003", "Ada Quartermaine", "quartermaine", "12 Elmwood", PASSWORD):
        assert secret not in written


def test_https_with_the_operators_certificate(world: World, tmp_path: Path) -> None:
    """Served over TLS with a given certificate: the cookie is `__Host-` and Secure,
    and HSTS is sent; without a certificate, a non-loopback address is refused."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "console.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "console.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    refused = subprocess.run([sys.executable, "-m", "s321.cli", "console", "-c", str(world.config),
                              "--listen", "0.0.0.0:9"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "plain HTTP is served on loopback only" in refused.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "console", "-c", str(world.config),
                             "--listen", f"127.0.0.1:{port}", "--certificate", str(tmp_path / "console.pem"),
                             "--private-key", str(tmp_path / "console.key")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=context, timeout=5) as page:
                    headers = page.headers
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        cookie = headers["set-cookie"]
        assert cookie.startswith("__Host-s321-session=") and "Secure" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
        assert headers["strict-transport-security"].startswith("max-age=")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

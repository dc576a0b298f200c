"""The console's HTTP hardening: the Host check, security headers on every response, the
cross-origin check on every POST, and the session cookie's attributes.

Promises: a request whose Host does not name the console (its listen address, the
loopback names of a loopback console, the certificate's names, the names the operator
lists) is answered 400 before any route runs, so a page on a rebound DNS name is
never the console's own origin; a request body that is not a urlencoded form, or is over
64 KiB (said or counted), or takes over 10 s, is refused before any route reads it;
every response carries a Content-Security-Policy without inline scripts,
eval or framing (`frame-ancestors 'none'`), `nosniff`, `same-origin` referrers (a search in a URL
never leaves the console in a Referer) and, for pages, `no-store`; a POST whose Origin is not the
console's own, or that a browser marks as cross-site, is refused before any handler
runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from s321.logs import get_logger

log = get_logger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""What a browser on this machine may call a console listening on loopback."""

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
       " form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: with it, browsers send `Origin: null` on form posts, and the
    # origin check could not tell the console's own forms from another site's.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

HTTPS_COOKIE = "__Host-s321-session"
HTTP_COOKIE = "s321-session"
"""Browsers accept a `__Host-` cookie only with Secure, which plain HTTP cannot set: on
loopback HTTP the cookie has a plain name, and the same other attributes."""


def cookie_name(https: bool) -> str:
    return HTTPS_COOKIE if https else HTTP_COOKIE


class SecurityHeaders:
    """ASGI middleware adding HEADERS (and HSTS on HTTPS) to every response."""

    def __init__(self, app: ASGIApp, https: bool):
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                if self.https:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def own_hosts(listen: str, https: bool, names: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values that name the console listening on `listen` (HOST:PORT,
    the port it really has): the listen host with the port; for a loopback listen
    address, every loopback name with the port; `names` (the certificate's, the
    operator's) with the port and, since a proxy or the default port drops it, bare.
    Lower case; the default port of the scheme may be left out, as browsers do."""
    host, port = listen.lower().rsplit(":", 1)
    hosts = {host, *LOOPBACK_NAMES} if host in LOOPBACK_NAMES else {host}
    accepted = {f"{h}:{port}" for h in hosts}
    if port == ("443" if https else "80"):
        accepted |= hosts
    for name in names:
        accepted |= {name.lower(), f"{name.lower()}:{port}"}
    return frozenset(accepted)


def own_origins(hosts: Iterable[str], https: bool) -> frozenset[str]:
    """The origins (scheme://host[:port]) of the console's own pages."""
    scheme = "https" if https else "http"
    return frozenset(f"{scheme}://{h}" for h in hosts)


def certificate_names(certificate: Path) -> list[str]:
    """The DNS names and addresses a PEM certificate is for (its subjectAltName): what
    browsers will call an HTTPS console. [] when it cannot be read (uvicorn says why)."""
    from cryptography import x509  # trustme's dependency; only for HTTPS

    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    for ip in san.get_values_for_type(x509.IPAddress):
        names.append(f"[{ip}]" if ip.version == 6 else str(ip))
    return names


class HostCheck:
    """ASGI middleware answering 400 to a request whose Host is not one of `hosts`
    (from `own_hosts`), before routing: DNS rebinding gets no page and no login."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host in self.hosts:
            await self.app(scope, receive, send)
            return
        log.info("console request refused: Host does not name the console", path=scope["path"])
        await _answer(send, 400, "400: the Host header does not name this console. Use its own address,"
                                 " or list the name in [console] hosts (docs/console.md).")


MAX_BODY = 64 * 1024
"""The largest request body: the console's forms are a few short fields."""
BODY_SECONDS = 10.0
"""The longest a request body may take to arrive."""
FORM = "application/x-www-form-urlencoded"


async def _answer(send: Send, status: int, text: str) -> None:
    body = text.encode() + b"\n"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware in front of routing: a request with a body must be a urlencoded
    form (else 415: no multipart, so no file is ever spooled), of at most `limit` bytes
    whether its Content-Length says so or its chunks add up to it (else 413), arriving
    within `seconds` (else 408). The body is read here, whole, and handed on."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY, seconds: float = BODY_SECONDS):
        self.app = app
        self.limit = limit
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        has_body = b"transfer-encoding" in headers or (length not in ("", "0"))
        if not has_body:
            await self.app(scope, receive, send)
            return
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        if kind != FORM:
            await _answer(send, 415, f"415: a request body must be {FORM}.")
            return
        if length and (not length.isdigit() or int(length) > self.limit):
            await _answer(send, 413, f"413: a request body may be {self.limit} bytes at most.")
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.seconds):
                more = True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.limit:
                        await _answer(send, 413, f"413: a request body may be {self.limit} bytes at most.")
                        return
                    more = message.get("more_body", False)
        except TimeoutError:
            await _answer(send, 408, f"408: the request body did not arrive within {self.seconds:g} s.")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def same_origin(request: Request, origins: frozenset[str]) -> bool:
    """Whether a state-changing request comes from the console's own pages: its Origin
    is one of the console's `origins` (never one made from the request's own Host),
    or, without one, the browser's Sec-Fetch-Site says same-origin (or a user's own
    navigation). A client sending neither (a script) relies on the CSRF token alone."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() in origins
    return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")

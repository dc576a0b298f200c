"""The console's HTTP hardening: the Host check, security headers on every response, the
cross-origin check on every POST, and the session cookie's attributes.

Promises: a request whose Host does not name the console (its listen address, the
loopback names of a loopback console, the certificate's names, the names the operator
lists) is answered 400 before any route runs, so a page on a rebound DNS name is
never the console's own origin; every response carries a Content-Security-Policy without inline scripts,
eval or framing (`frame-ancestors 'none'`), `nosniff`, `same-origin` referrers (a search in a URL
never leaves the console in a Referer) and, for pages, `no-store`; a POST whose Origin is not the
console's own, or that a browser marks as cross-site, is refused before any handler
runs.
"""

from __future__ import annotations

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
        body = (b"400: the Host header does not name this console. Use its own address,"
                b" or list the name in [console] hosts (docs/console.md).\n")
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def same_origin(request: Request, origins: frozenset[str]) -> bool:
    """Whether a state-changing request comes from the console's own pages: its Origin
    is one of the console's `origins` (never one made from the request's own Host),
    or, without one, the browser's Sec-Fetch-Site says same-origin (or a user's own
    navigation). A client sending neither (a script) relies on the CSRF token alone."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() in origins
    return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")

"""The console's HTTP hardening: security headers on every response, the cross-origin
check on every POST, and the session cookie's attributes.

Promises: every response carries a Content-Security-Policy without inline scripts,
eval or framing (`frame-ancestors 'none'`), `nosniff`, `same-origin` referrers (a search in a URL
never leaves the console in a Referer) and, for pages, `no-store`; a POST whose Origin is not the
console's own, or that a browser marks as cross-site, is refused before any handler
runs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from the console's own pages: its Origin
    is the console's (scheme, host and port), or, without one, the browser's
    Sec-Fetch-Site says same-origin (or a user's own navigation). A client sending
    neither (a script) relies on the CSRF token alone."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        return origin == own
    return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")

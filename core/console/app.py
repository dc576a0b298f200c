"""The console's web application (Starlette, server-rendered Jinja2 pages): routes,
the permission each needs, and the pages' data from `s321.console.queries`.

Promises: every route but the login page and static files needs a live session; every
route names the permission it needs (`ROUTES`, the matrix the tests are generated
from); every page reads the ledger with the user's scope, so a record outside it is
"not found", exactly like one that does not exist; every POST is checked for origin
and CSRF token before its handler runs; the access log (structlog) carries method, the
route's path without its query string (searches stay out), status and role, never a
record's content; password checks and ledger queries run in worker threads, never on
the event loop, so one slow request does not hold the others.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from s321.config import ConsoleSection, ConsoleUser, LoadedConfig, read_toml
from s321.console import auth, fixes, svg
from s321.console.actions import ACTIONS, AuditLog, Result, perform
from s321.console.queries import LedgerReader, LedgerUnavailable
from s321.console.security import (BodyLimit, HostCheck, SecurityHeaders, certificate_names, cookie_name, own_hosts,
                                   own_origins, same_origin)
from s321.logs import get_logger
from s321.states import State

log = get_logger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    s = max(0, int(time.time() - ts))
    return f"{s // 86400}d{s % 86400 // 3600:02d}h" if s >= 86400 else \
        f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


templates.env.filters["when"] = _when
templates.env.filters["age"] = _age


@dataclass
class Console:
    """What the routes share: the config, the ledger reader, users, sessions."""

    loaded: LoadedConfig
    https: bool = False
    hosts: frozenset[str] = frozenset()
    """The Host values that name the console (security.own_hosts)."""
    users: dict[str, ConsoleUser] = field(default_factory=dict)
    sessions: auth.Sessions = field(default_factory=auth.Sessions)
    limiter: auth.LoginLimiter = field(default_factory=auth.LoginLimiter)
    _config_mtime: float = 0.0

    def __post_init__(self) -> None:
        section = self.loaded.config.console
        self.users = dict(section.users)
        self.sessions.idle_seconds = section.idle_minutes * 60
        self.sessions.absolute_seconds = section.absolute_hours * 3600
        self.reader = LedgerReader(self.loaded.config.ledger)  # a file, or a PostgreSQL database
        self.audit = AuditLog(section.audit_log)
        self.cookie = cookie_name(self.https)
        self.origins = own_origins(self.hosts, self.https)
        self._config_mtime = self._mtime()

    def _mtime(self) -> float:
        try:
            return self.loaded.path.stat().st_mtime
        except OSError:
            return self._config_mtime

    def refresh_users(self) -> None:
        """Users as the config file says now: a user removed (or whose role or scope
        changed) is so from the next request, and a removed user's sessions end."""
        mtime = self._mtime()
        if mtime == self._config_mtime:
            return
        self._config_mtime = mtime
        try:
            raw = read_toml(self.loaded.path).get("console", {}).get("users", {})
            users = {name: ConsoleUser.model_validate(u) for name, u in raw.items()}
        except Exception as exc:  # a half-written file: keep the users we have
            log.warning("console users not reloaded", config=str(self.loaded.path), error=str(exc))
            return
        self.users = users
        self.sessions.end_users_not_in(set(users))


@dataclass
class Who:
    name: str
    user: ConsoleUser
    session: auth.Session

    @property
    def scope(self) -> list[str] | None:
        return self.user.originator_codes

    def may(self, action: str) -> bool:
        return auth.allowed(self.user.role, action)


MAX_CURSOR = 2**63 - 1
"""The largest rowid (and body_id) a ledger has: a page cursor beyond it is not one of ours."""

Handler = Callable[[Request, "Who"], Awaitable[Response]]


def _console(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def refused(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(request, "refused.html", {"message": message, "who": None},
                                      status_code=status)


async def form_of(request: Request) -> Any:
    """The posted form: a few short fields, no files (BodyLimit has already refused any
    body but a urlencoded one of 64 KiB at most)."""
    return await request.form(max_files=0, max_fields=16, max_part_size=4096)


def guarded(permission: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: live session, user still configured, `permission` in the user's
    role, and for a POST the origin check and the CSRF token."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            console = _console(request)
            console.refresh_users()
            session = console.sessions.get(request.cookies.get(console.cookie))
            user = console.users.get(session.user) if session and session.user else None

            def refuse(status: int, message: str) -> Response:
                if permission in ACTIONS:  # an action asked for and refused is audited too
                    console.audit.write(session.user if user and session else "-", user.role if user else "-",
                                        permission, request.path_params.get("transaction_id", ""), "",
                                        Result(False, f"refused: {message}"))
                return refused(request, status, message)

            if request.method == "POST" and not same_origin(request, console.origins):
                return refuse(403, "This form was posted from another site: refused.")
            if session is None or user is None:
                if request.method == "GET":
                    return RedirectResponse("/login", status_code=303)
                return refuse(403, "Your session has ended: log in again.")
            if request.method == "POST":
                form = await form_of(request)
                token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
                # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
                if not hmac.compare_digest(token.encode(), session.csrf.encode()):
                    return refuse(403, "This form is stale or was not made by the console: refused.")
            if not auth.allowed(user.role, permission):
                return refuse(403, f"Your role ({user.role}) may not {permission}.")
            who = Who(session.user or "", user, session)
            return await handler(request, who)

        endpoint.permission = permission  # type: ignore[attr-defined]
        return endpoint

    return wrap


def page(request: Request, name: str, who: Who | None, status_code: int = 200, **context: Any) -> Response:
    flash = None
    if who is not None:
        flash, who.session.flash = who.session.flash, None
    return templates.TemplateResponse(request, name, {
        "who": who, "csrf": who.session.csrf if who else context.pop("csrf", ""), "flash": flash,
        # `received` is a state no record is stored in: not a column, not a filter.
        "states": [s.value for s in State if s is not State.RECEIVED], "nav": name, **context},
        status_code=status_code)


# ---------------------------------------------------------------------------- login


async def login_form(request: Request) -> Response:
    console = _console(request)
    session = console.sessions.get(request.cookies.get(console.cookie))
    if session is None:
        session = console.sessions.new()
    response = templates.TemplateResponse(request, "login.html", {"csrf": session.csrf, "who": None,
                                                                  "error": request.query_params.get("error")})
    _set_cookie(console, response, session)
    return response


async def login(request: Request) -> Response:
    console = _console(request)
    console.refresh_users()
    if not same_origin(request, console.origins):
        return refused(request, 403, "This form was posted from another site: refused.")
    session = console.sessions.get(request.cookies.get(console.cookie))
    form = await form_of(request)
    if session is None or not hmac.compare_digest(str(form.get("csrf") or "").encode(), session.csrf.encode()):
        return RedirectResponse("/login?error=expired", status_code=303)
    name = str(form.get("username") or "").strip()
    # The peer's own address: uvicorn runs without proxy headers (server.py), so a
    # client cannot pick the address it is counted under.
    client = request.client.host if request.client else "-"
    wait = console.limiter.blocked(name, client)
    if wait:
        response = templates.TemplateResponse(
            request, "login.html", {"csrf": session.csrf, "who": None, "error": "limited",
                                    "wait": int(wait) + 1}, status_code=429)
        response.headers["retry-after"] = str(int(wait) + 1)
        return response
    slow = console.limiter.slowdown()
    if slow:
        await asyncio.sleep(slow)
    # argon2id takes ~140 ms: in a worker thread, so that other requests are served meanwhile.
    user = await run_in_threadpool(auth.verify, console.users, name, str(form.get("password") or ""))
    if user is None:
        console.limiter.failed(name, client)
        log.info("console login refused", role=None)
        return RedirectResponse("/login?error=wrong", status_code=303)
    console.limiter.succeeded(name, client)
    new = console.sessions.login(session, name)
    log.info("console login", role=user.role)
    response = RedirectResponse("/", status_code=303)
    _set_cookie(console, response, new)
    return response


def _set_cookie(console: Console, response: Response, session: auth.Session) -> None:
    response.set_cookie(console.cookie, session.id, path="/", httponly=True, samesite="lax", secure=console.https)


@guarded("read")
async def logout(request: Request, who: Who) -> Response:
    _console(request).sessions.end(who.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(_console(request).cookie, path="/", httponly=True, samesite="lax",
                           secure=_console(request).https)
    return response


# ---------------------------------------------------------------------------- pages


@guarded("read")
async def overview(request: Request, who: Who) -> Response:
    reader = _console(request).reader
    rows = await run_in_threadpool(reader.overview, who.scope)
    timeline = await run_in_threadpool(reader.timeline, who.scope)
    return page(request, "overview.html", who, rows=rows, chart=svg.timeline_chart(timeline),
                timeline=timeline)


@guarded("read")
async def records(request: Request, who: Who) -> Response:
    q = request.query_params
    filters = {k: (q.get(k) or "").strip() or None for k in ("state", "finding", "day", "q")}
    error = None
    if filters["day"]:
        try:
            datetime.strptime(filters["day"], "%Y-%m-%d")
        except ValueError:
            error = f"date {filters['day']!r}: give it as YYYY-MM-DD"
            filters["day"] = None
    if filters["state"] and filters["state"] not in {s.value for s in State}:
        error = f"state {filters['state']!r}: not a state ({', '.join(s.value for s in State)})"
        filters["state"] = None
    before = q.get("before")
    cursor = int(before) if before and before.isascii() and before.isdigit() else None
    if cursor is not None and cursor > MAX_CURSOR:
        return refused(request, 400, "This page link is not one the console made: refused.")
    rows, next_cursor = await run_in_threadpool(
        _console(request).reader.records, who.scope, state=filters["state"], finding=filters["finding"],
        day=filters["day"], search=filters["q"], before=cursor)
    links = {k: v for k, v in filters.items() if v}
    return page(request, "records.html", who, rows=rows, filters=filters, next_cursor=next_cursor,
                links=links, error=error, first_page=cursor is None)


@guarded("read")
async def record(request: Request, who: Who) -> Response:
    txid = request.path_params["transaction_id"]
    found = await run_in_threadpool(_console(request).reader.record, who.scope, txid)
    if found is None:
        return page(request, "missing.html", who, 404, transaction_id=txid)
    hints = fixes.hints()
    return page(request, "record.html", who, r=found, hints=hints,
                may={a: who.may(a) for a in ACTIONS})


@guarded("read")
async def findings(request: Request, who: Who) -> Response:
    rows = await run_in_threadpool(_console(request).reader.findings, who.scope)
    return page(request, "findings.html", who, rows=rows,
                hints=fixes.hints())


@guarded("read")
async def dead(request: Request, who: Who) -> Response:
    rows, total = await run_in_threadpool(_console(request).reader.dead, who.scope)
    return page(request, "dead.html", who, rows=rows, total=total,
                may={a: who.may(a) for a in ACTIONS})


# ---------------------------------------------------------------------------- actions


def _action(action: str) -> Callable[[Request], Awaitable[Response]]:
    @guarded(action)
    async def endpoint(request: Request, who: Who) -> Response:
        console = _console(request)
        txid = request.path_params["transaction_id"]
        found = await run_in_threadpool(console.reader.record, who.scope, txid)
        if found is None:  # or outside the user's scope: the same answer, and the same audit line
            console.audit.write(who.name, who.user.role, action, txid, "", Result(False, "refused: not found"))
            return page(request, "missing.html", who, 404, transaction_id=txid)
        form = await form_of(request)
        if action == "delete" and str(form.get("confirm") or "").strip() not in (found["ref"], txid):
            console.audit.write(who.name, who.user.role, action, txid, found["ref"],
                                Result(False, "refused: not confirmed (the reference was not typed)"))
            who.session.flash = {"ok": False, "message": "Not deleted: type the record's reference to confirm."}
        else:
            result = await run_in_threadpool(perform, console.loaded, action, txid)
            console.audit.write(who.name, who.user.role, action, txid, found["ref"], result)
            log.info("console action", action=action, transaction_id=txid, ok=result.ok, role=who.user.role)
            who.session.flash = {"ok": result.ok, "message": f"{action}: {result.message}",
                                 "findings": result.findings}
        back = str(form.get("back") or "")
        target = "/dead" if back == "dead" else f"/records/{txid}"
        return RedirectResponse(target, status_code=303)

    endpoint.__name__ = action
    return endpoint


ROUTES: list[Route | Mount] = [
    Route("/login", login_form, methods=["GET"], name="login_form"),
    Route("/login", login, methods=["POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/", overview, methods=["GET"], name="overview"),
    Route("/records", records, methods=["GET"], name="records"),
    Route("/records/{transaction_id}", record, methods=["GET"], name="record"),
    Route("/findings", findings, methods=["GET"], name="findings"),
    Route("/dead", dead, methods=["GET"], name="dead"),
    *[Route(f"/records/{{transaction_id}}/{a}", _action(a), methods=["POST"], name=a) for a in ACTIONS],
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]


class AccessLog:
    """One structlog line per request: method, path without query, status."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        log.info("console request", method=scope["method"], path=scope["path"], status=status["code"])


async def ledger_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("console cannot read the ledger", error=str(exc))
    return templates.TemplateResponse(request, "refused.html", {"message": str(exc), "who": None,
                                                               "title": "The ledger cannot be read"},
                                      status_code=503)


def hosts_of(section: ConsoleSection, https: bool, listen: str | None = None) -> frozenset[str]:
    """The Host values of a console: its listen address (`listen` when the port it
    really has differs, as with port 0), the certificate's names over HTTPS, and the
    operator's `[console] hosts`."""
    names = certificate_names(section.certificate) if https and section.certificate else []
    names += section.hosts
    return own_hosts(listen or section.listen, https, names)


def build(loaded: LoadedConfig, https: bool = False, hosts: frozenset[str] | None = None) -> Starlette:
    """The console app for a loaded config; `hosts` the Host values it answers (by
    default those of its `[console]` section: `hosts_of`)."""
    hosts = hosts_of(loaded.config.console, https) if hosts is None else hosts
    app = Starlette(routes=ROUTES, middleware=[Middleware(AccessLog), Middleware(SecurityHeaders, https=https),
                                               Middleware(HostCheck, hosts=hosts), Middleware(BodyLimit)],
                    exception_handlers={LedgerUnavailable: ledger_unavailable})
    app.state.console = Console(loaded, https=https, hosts=hosts)
    return app

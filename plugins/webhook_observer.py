"""An observer that posts what an operator must act on to a webhook (Slack, Teams,
Alertmanager's webhook receiver, a ticketing system): consignments CBP rejected, records
dead-lettered, pipelines that failed or stalled.

Promises: it is off unless `S321_WEBHOOK_URL` is set; a post never holds a pipeline up
(a background thread sends, a full queue drops and counts); a payload names pipelines,
transaction ids, finding codes and fields, never a record's content or a finding's text,
so no personal data leaves this way. Settings (environment):

- `S321_WEBHOOK_URL`: where to POST (JSON, one event a request);
- `S321_WEBHOOK_EVENTS`: which events, comma-separated (default
  `rejected,dead,failed,stalled,recovered`; add `invalid` for records refused by
  validation). `dead`, `failed` and `recovered` are posted as they happen, while the
  daemon runs (the `consignments_dead_lettered`, `pipeline_failing` and
  `pipeline_recovered` hooks); `stalled` and a run's failure when it ends;
- `S321_WEBHOOK_TIMEOUT`: seconds per request (default 5).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from s321.hookspecs import hookimpl
from s321.logs import get_logger

log = get_logger(__name__)

URL_ENV = "S321_WEBHOOK_URL"
EVENTS_ENV = "S321_WEBHOOK_EVENTS"
TIMEOUT_ENV = "S321_WEBHOOK_TIMEOUT"
DEFAULT_EVENTS = frozenset({"rejected", "dead", "failed", "stalled", "recovered"})
EVENTS = DEFAULT_EVENTS | {"invalid"}
QUEUE_SIZE = 1000
ATTEMPTS = 3


class WebhookPoster:
    """Posts events from a queue on one background thread; `flush` waits for it."""

    def __init__(self, url: str, events: frozenset[str], timeout: float = 5.0):
        self.url, self.events, self.timeout = url, events, timeout
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self.dropped = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, name="s321-webhook", daemon=True)
        self._thread.start()

    def post(self, event: dict[str, Any]) -> None:
        if event["event"] not in self.events:
            return
        event = {"source": "s321", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **event}
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("webhook queue full: events dropped", dropped=self.dropped)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was tried (at exit), at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread, dropping the events not yet tried (a process that ends just
        exits: `flush` runs at exit). For whoever started a poster and must leave no
        thread behind (tests, an embedding program)."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
            self.queue.task_done()
        self.queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                self.queue.task_done()
                return
            try:
                self._send(event)
            except Exception as exc:  # the poster outlives any one event
                log.warning("webhook event not delivered", kind=event.get("event"),
                            error_type=type(exc).__name__)
            finally:
                self.queue.task_done()

    def _send(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "User-Agent": "s321-webhook"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # the receiver refuses it: asking again will not help
                    log.warning("webhook refused the event", status=exc.code, kind=event["event"])
                    return
                problem = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:  # URLError is an OSError
                problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * 2 ** attempt)
        # The URL may hold a token: it is not logged.
        log.warning("webhook unreachable: event not delivered", kind=event["event"], problem=problem)


_poster: WebhookPoster | None = None
_lock = threading.Lock()


def poster() -> WebhookPoster | None:
    """The process's poster, made on first use from the environment; None when off."""
    global _poster
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    with _lock:
        if _poster is None or _poster.url != url:
            names = os.environ.get(EVENTS_ENV, "")
            events = frozenset(e.strip() for e in names.split(",") if e.strip()) or DEFAULT_EVENTS
            unknown = events - EVENTS
            if unknown:
                log.warning("unknown webhook events ignored", unknown=sorted(unknown),
                            known=sorted(EVENTS))
            _poster = WebhookPoster(url, events & EVENTS, float(os.environ.get(TIMEOUT_ENV, "5") or 5))
            atexit.register(_poster.flush)
        return _poster


def close() -> None:
    """Stop the process's poster, if one was made (see `WebhookPoster.close`)."""
    global _poster
    with _lock:
        if _poster is not None:
            _poster.close()
            _poster = None


def _findings(findings: list[Any]) -> list[dict[str, str]]:
    # Codes and fields only: a finding's message may quote the value it is about.
    return [{"code": str(getattr(f, "code", "")), "field": str(getattr(f, "field", "") or ""),
             "severity": str(getattr(getattr(f, "severity", None), "value", "error"))} for f in findings]


# --------------------------------------------------------------------------- hooks


@hookimpl
def consignment_rejected(pipeline: str, transaction_id: str, stage: str, findings: list[Any]) -> None:
    p = poster()
    if p is None:
        return
    p.post({"event": "rejected" if stage == "cbp" else "invalid", "pipeline": pipeline,
            "transaction_id": transaction_id, "stage": stage, "findings": _findings(findings)})


@hookimpl
def pipeline_finished(pipeline: str, summary: Any) -> None:
    """After a run (`run --once`) or when the daemon stops a pipeline: a failure, a
    stall (records owed that no longer move). Dead letters are posted as they happen."""
    p = poster()
    if p is None:
        return
    stalled = getattr(summary, "stalled", None)
    if callable(stalled) and stalled():
        p.post({"event": "stalled", "pipeline": pipeline, "error": _short(getattr(summary, "error", None))})
    elif getattr(summary, "error", None):
        p.post({"event": "failed", "pipeline": pipeline, "error": _short(summary.error),
                "queued": getattr(summary, "queued", None),
                "awaiting_ack": getattr(summary, "awaiting_ack", None)})


@hookimpl
def consignments_dead_lettered(pipeline: str, transaction_ids: list[str], error: str) -> None:
    """As records go to the dead-letter queue, while the daemon runs."""
    p = poster()
    if p is not None:
        p.post({"event": "dead", "pipeline": pipeline, "count": len(transaction_ids),
                "transaction_ids": transaction_ids[:100], "error": _short(error)})


@hookimpl
def pipeline_failing(pipeline: str, error: str) -> None:
    """When a running pipeline starts failing (the daemon retries it meanwhile)."""
    p = poster()
    if p is not None:
        p.post({"event": "failed", "pipeline": pipeline, "error": _short(error)})


@hookimpl
def pipeline_recovered(pipeline: str, after: str) -> None:
    p = poster()
    if p is not None:
        p.post({"event": "recovered", "pipeline": pipeline, "after": _short(after)})


def _short(text: Any) -> str | None:
    return None if text is None else str(text)[:300]

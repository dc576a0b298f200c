"""`s321 run -c CONFIG`: the daemon. One thread per pipeline, each watching its inbox
(watchfiles, backed by a periodic rescan), transmitting through the shared ledger; with
`[daemon] transmit = "process"` (or "auto", the default, as s321.transmit_process.choose
rules) the threads only ingest and one child process transmits for all of them
(s321.transmit_process), started again with backoff if it dies.

SIGTERM/SIGINT: stop reading, wait for in-flight acks up to the shutdown timeout, exit
cleanly (what is still owed stays in the ledger).

At `info` (the daemon's default level) it logs its lifecycle, without personal data:
start (pipelines, inboxes, HTTP address), each input file read with its counts, each
batch acknowledged with its rejections by code, reloads, stop. SIGHUP: reload the config and restart
only the pipelines whose configuration changed. Pipelines are independent: one whose
transport fails keeps retrying on its own while the others go on.

A PostgreSQL ledger whose database cannot be reached at start is waited for, with
backoff, and said so in the log and /healthz (503, "ledger unavailable"); the pipelines
start when it answers. One lost while running makes each pipeline report failing and
retry (the same weather as a full disk) until it is back.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import watchfiles

from s321 import app
from s321.backoff import Backoff
from s321.config import LoadedConfig, Pipeline
from s321.errors import ConfigError, S321Error
from s321.httpd import serve
from s321.ledger import Ledger, LedgerUnavailable
from s321.ledger_open import open_ledger
from s321.logs import error_text, get_logger
from s321.metrics import Metrics
from s321.observers import Observers
from s321.registry import Registry
from s321.transmit_process import TransmitLink, choose
from s321.worker import PipelineWorker

log = get_logger(__name__)


class PipelineThread(threading.Thread):
    def __init__(self, worker: PipelineWorker, daemon_cfg: Any, observers: Observers):
        super().__init__(name=f"s321-{worker.name}", daemon=True)
        self.worker = worker
        self.cfg = daemon_cfg
        self.observers = observers
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.failed: str | None = None

    def run(self) -> None:
        w = self.worker
        self.observers.pipeline_started(w.name, w.pipeline.context)
        watcher = self._watch()
        backoff = Backoff(initial=1.0, maximum=30.0)
        failures = 0
        recovered = False
        next_scan = 0.0
        try:
            while not self.stop_event.is_set():
                # A fault (disk full, an I/O error, a read-only or damaged ledger, a bad
                # enrichment table) is weather: this pipeline reports it and tries again
                # with backoff, the others go on; it resumes by itself once the cause is gone.
                try:
                    if not recovered:
                        w.recover()
                        recovered = True
                    if self.wake.is_set() or time.monotonic() >= next_scan:
                        self.wake.clear()
                        w.revalidate_if_changed()  # a table, the defaults or the profile changed
                        w.ingest()
                        next_scan = time.monotonic() + self.cfg.rescan_seconds
                        if w.settles_at is not None:  # a file too young to read: read it once settled
                            next_scan = min(next_scan, time.monotonic() + max(0.01, w.settles_at - time.time()))
                    w.transmit()
                    w.poll_acks(timeout=0.05 if w.owes()[1] else 0.0)
                    idle = w.idle()
                except Exception as exc:
                    if self.failed is None:
                        self.observers.pipeline_failing(w.name, error_text(exc))
                    self.failed = error_text(exc)  # /healthz shows it to whoever asks
                    delay = max(0.5, backoff.delay(failures))
                    failures += 1
                    log.error("pipeline failed, retrying", pipeline=w.name, error=self.failed,
                              retry_in=round(delay, 1), attempt=failures, exc_info=failures == 1)
                    self.stop_event.wait(delay)
                    continue
                if self.failed is not None:
                    log.warning("pipeline resumed", pipeline=w.name, after=self.failed)
                    self.observers.pipeline_recovered(w.name, self.failed)
                    self.failed, failures = None, 0
                if idle:
                    self.wake.wait(min(self.cfg.poll_interval, max(0.0, next_scan - time.monotonic())))
            self._drain()
        except Exception as exc:
            self.failed = error_text(exc)
            log.error("pipeline stopped on a failure", pipeline=w.name, error=self.failed, exc_info=True)
        finally:
            if watcher is not None:
                watcher.set()
            try:
                w.close()
            except Exception as exc:
                log.warning("pipeline close failed", pipeline=w.name, error=f"{type(exc).__name__}: {exc}")
            self.observers.pipeline_finished(w.name, w)

    def _drain(self) -> None:
        """Stop reading; wait for acks of what is on the wire, up to the timeout."""
        deadline = time.monotonic() + self.cfg.shutdown_timeout
        while self.worker.owes()[1] and time.monotonic() < deadline:
            self.worker.poll_acks(timeout=0.2)

    def _watch(self) -> threading.Event | None:
        opts = self.worker.pipeline.source_options
        folder = getattr(opts, "path", None)
        if not isinstance(folder, Path) or not folder.is_dir():
            return None
        stop = threading.Event()

        def loop() -> None:
            try:
                for _changes in watchfiles.watch(folder, stop_event=stop, recursive=False,
                                                 rust_timeout=500, yield_on_timeout=False):
                    self.wake.set()
            except Exception as exc:  # the rescan still finds the files
                log.warning("inbox watch stopped", pipeline=self.worker.name, error=str(exc))

        threading.Thread(target=loop, name=f"s321-watch-{self.worker.name}", daemon=True).start()
        return stop


def _fingerprint(p: Pipeline) -> str:
    return p.config.model_dump_json()


class Daemon:
    def __init__(self, config_path: str | Path, only: list[str] | None = None):
        self.config_path = Path(config_path)
        self.only = set(only or ())  # `s321 run -p NAME`: only these pipelines
        self.registry: Registry
        self.loaded: LoadedConfig
        self.registry, self.loaded = app.load(self.config_path)
        cfg = self.loaded.config
        # SQLite: this daemon's alone (a lock); PostgreSQL: shared, leases keep daemons apart.
        # A database that cannot be reached yet is waited for (run_forever), not fatal.
        self.ledger: Ledger | None = None
        self.ledger_error: str | None = None
        # `[daemon] transmit = "process"`: the pipelines here ingest, one child transmits;
        # its first start is forked now, before the ledger is open or a thread runs.
        chosen = choose(cfg.daemon.transmit, self.registry,
                        [p for n, p in self.loaded.pipelines.items() if not self.only or n in self.only])
        self.link = TransmitLink(self.config_path, None, None) if chosen == "process" else None
        if self.link is not None:
            self.link.prefork()
        self._open_ledger()
        self.metrics = Metrics(depth=self._depth, daemon=self.ledger.owner if self.ledger else None)
        self.observers = Observers(self.registry.pm)
        self.threads: dict[str, PipelineThread] = {}
        if self.link is not None:
            self.link.observers, self.link.metrics = self.observers, self.metrics
        self._restart_at: float | None = None
        self._restart_pending = False
        self._restarts = 0
        self._transmit_failed: str | None = None  # why the transmit process stopped, until one is up
        self.stopped = threading.Event()
        self._reload = threading.Event()
        self.http = None
        if cfg.daemon.http:
            host, _, port = cfg.daemon.http.rpartition(":")
            try:
                self.http = serve((host or "127.0.0.1", int(port)), self.metrics, self.health)
            except S321Error as exc:  # in use, or not this machine's: the config must change
                self.stop()  # the ledger and a forked transmit process, opened above
                raise ConfigError([f"{self.config_path}: daemon.http: {exc}"]) from None

    # ------------------------------------------------------------------ pipelines

    def _start(self, name: str) -> None:
        assert self.ledger is not None  # pipelines start once the ledger is open
        pipeline = self.loaded.pipelines[name]
        self.metrics.prepare(name)
        worker = PipelineWorker(pipeline, self.loaded.rates, self.ledger, self.observers, self.metrics,
                                make_sender=self.link.sender if self.link is not None else None)
        thread = PipelineThread(worker, self.loaded.config.daemon, self.observers)
        self.threads[name] = thread
        thread.start()
        inbox = getattr(pipeline.source_options, "path", None)
        log.info("pipeline started", pipeline=name, source=pipeline.source.name, inbox=str(inbox) if inbox else None,
                 transport=pipeline.transport.name, profile=pipeline.profile.name)
        if isinstance(inbox, Path) and not inbox.exists():
            log.warning("inbox does not exist; nothing will be read until it does", pipeline=name,
                        inbox=str(inbox))

    def _stop(self, names: list[str]) -> None:
        for name in names:
            self.threads[name].stop_event.set()
            self.threads[name].wake.set()
        for name in names:
            self.threads.pop(name).join(self.loaded.config.daemon.shutdown_timeout + 5)
            log.info("pipeline stopped", pipeline=name)

    def _open_ledger(self) -> bool:
        """Open the ledger; False (and `ledger_error` says why) while its database cannot
        be reached. Anything else (a ledger in use, damaged, a newer schema) is raised."""
        try:
            self.ledger = open_ledger(self.loaded.config.ledger, held=True, holder="s321 run (the daemon)")
        except LedgerUnavailable as exc:
            self.ledger_error = str(exc)  # names the database without its password
            return False
        self.ledger_error = None
        return True

    def wait_for_ledger(self) -> bool:
        """Until the ledger's database answers, try again with backoff, saying so in the
        log and /healthz; False when the daemon was stopped meanwhile."""
        backoff = Backoff(initial=1.0, maximum=30.0)
        attempt = 0
        while self.ledger is None:
            delay = max(0.5, backoff.delay(attempt))
            attempt += 1
            log.error("waiting for the ledger's database", ledger=self.loaded.config.ledger.describe(),
                      error=self.ledger_error, retry_in=round(delay, 1), attempt=attempt)
            if self.stopped.wait(delay):
                return False
            if self._open_ledger():
                assert self.ledger is not None
                self.metrics.daemon = self.ledger.owner
                log.warning("ledger reachable again", ledger=self.ledger.describe(), after=attempt)
        return True

    def start(self) -> None:
        for name, p in self.loaded.pipelines.items():
            if p.config.enabled and (not self.only or name in self.only):
                self._start(name)
        if self.link is not None and self.threads:
            assert self.ledger is not None
            self.link.owner = self.ledger.owner
            self.link.start(list(self.threads))  # from the main thread (see s321.transmit_process)

    def _watch_transmit(self) -> None:
        """A transmit process that died is started again, with backoff (from the main
        thread); what it had `sent` is requeued by the new one's recovery."""
        link = self.link
        if link is None or not self.threads:
            return
        if link.running():
            if self._transmit_failed is not None and link.ready.is_set():
                for name in self.threads:  # told as a pipeline's own failure and recovery are
                    log.warning("pipeline resumed", pipeline=name, after=self._transmit_failed)
                    self.observers.pipeline_recovered(name, self._transmit_failed)
                self._transmit_failed = None
            if self._restarts and link.ready.is_set() and time.monotonic() - (self._restart_at or 0) > 60:
                self._restarts = 0  # up a minute: the next failure starts the backoff again
            return
        if not link.down():
            return
        now = time.monotonic()
        if not self._restart_pending:
            delay = max(0.5, Backoff(initial=1.0, maximum=30.0).delay(self._restarts))
            assert link.proc is not None
            log.error("transmit process stopped; starting it again", exit=link.proc.returncode,
                      retry_in=round(delay, 1), attempt=self._restarts + 1)
            if self._transmit_failed is None:
                self._transmit_failed = f"transmit process stopped: {link.failure or f'exit {link.proc.returncode}'}"
                for name in self.threads:
                    self.observers.pipeline_failing(name, self._transmit_failed)
            self._restart_at = now + delay
            self._restart_pending = True
            return
        if now >= self._restart_at:
            self._restart_pending = False
            self._restarts += 1
            link.start(list(self.threads))

    def reload(self) -> list[str]:
        """Load the config again; restart only pipelines whose configuration changed.
        A config that does not load leaves everything running as it was."""
        try:
            registry, loaded = app.load(self.config_path)
        except ConfigError as exc:
            log.error("reload refused: the config has errors", errors=len(exc.lines), first=exc.lines[0])
            return []
        old = {n: _fingerprint(p) for n, p in self.loaded.pipelines.items() if n in self.threads}
        new = {n: _fingerprint(p) for n, p in loaded.pipelines.items()
               if p.config.enabled and (not self.only or n in self.only)}
        changed = sorted(n for n in old if old[n] != new.get(n)) + sorted(n for n in new if n not in old)
        if self.link is not None:  # it reads the config anew: restarted whatever changed
            self.link.stop(self.loaded.config.daemon.shutdown_timeout + 5)
        self._stop([n for n in changed if n in self.threads])
        self.registry, self.loaded = registry, loaded
        for name in changed:
            if name in new:
                self._start(name)
        if self.link is not None and self.threads:
            self.link.start(list(self.threads))
        log.info("config reloaded", restarted=changed)
        return changed

    def stop(self) -> None:
        for thread in self.threads.values():  # ingest stops first; then the child drains
            thread.stop_event.set()
            thread.wake.set()
        if self.link is not None:
            self.link.stop(self.loaded.config.daemon.shutdown_timeout + 5)
        self._stop(list(self.threads))
        if self.http is not None:
            self.http.shutdown()
        if self.ledger is not None:
            self.ledger.close()
        self.stopped.set()

    # ------------------------------------------------------------------ running

    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stopped.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopped.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        if not self.wait_for_ledger():
            self.stop()
            log.info("daemon stopped", before="its ledger was reachable")
            return 0
        assert self.ledger is not None
        self.start()
        log.info("daemon running", pipelines=list(self.threads), http=self.loaded.config.daemon.http,
                 ledger=self.ledger.describe(), daemon=self.ledger.owner)
        while not self.stopped.wait(0.2):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self._watch_transmit()
        log.info("daemon stopping", shutdown_timeout=self.loaded.config.daemon.shutdown_timeout)
        self.stopped.clear()
        self.stop()
        log.info("daemon stopped")
        return 0

    def health(self) -> tuple[bool, dict[str, Any]]:
        if self.ledger is None:
            return False, {"ledger": f"ledger unavailable: {self.ledger_error}", "pipelines": {}}
        detail = {}
        ok = True
        for name, t in list(self.threads.items()):
            alive = t.is_alive() and not t.failed and not t.worker.stalled()
            ok = ok and alive
            detail[name] = {"alive": alive, "error": t.failed or t.worker.error}
        if self.link is not None and self.threads:
            # Healthy once the transmit process has read the config and sends: until then
            # (starting, or started again after it stopped) nothing is sent.
            ready = self.link.ready.is_set() and not self.link.down()
            ok = ok and ready
            return ok, {"pipelines": detail, "transmit": "ready" if ready else "starting"}
        return ok, {"pipelines": detail}

    def _depth(self) -> dict[str, tuple[int, int]]:
        return {name: t.worker.outstanding() for name, t in list(self.threads.items())}


def live_health(http: str | None, timeout: float = 1.0) -> dict[str, Any] | None:
    """What a running daemon's `/healthz` says (its `pipelines` with their errors), or
    None when no daemon answers at `http` ("host:port" of `[daemon] http`). Lets
    `s321 status` show a failure the daemon could not write to its ledger (disk full)."""
    if not http:
        return None
    host, _, port = http.rpartition(":")
    try:
        with urllib.request.urlopen(f"http://{host or '127.0.0.1'}:{int(port)}/healthz", timeout=timeout) as r:
            body = r.read(1 << 20)
    except urllib.error.HTTPError as exc:  # 503: unhealthy, and the body says why
        body = exc.read(1 << 20)
    except (OSError, ValueError):
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None

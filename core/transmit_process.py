"""Transmission in a process of its own (`[daemon] transmit = "process"`): the daemon or
`run --once` ingests, one child process per daemon sends for every pipeline, so the two
halves run on two cores with the ledger between them.

Promises:
- The parent only ingests (its pipelines' sender is a `RemoteSender`, which wakes the
  child and never sends). The child runs a Transmitter per pipeline (recover, transmit,
  acks, lease renewal, expiry, dead-lettering) on its own connection to the same ledger:
  durability is the Transmitter's (`sent` is committed before a batch leaves). The
  child never takes the ledger's lock: the parent holds it, and the child dies with it.
- What the child does reaches the parent as small pickled messages over a socket pair
  that only these two processes hold (never a file or a peer): its counts (summed, every
  0.2 s and before it reports a pipeline finished), ack latency and other metrics,
  transport state (error, stalled) and every observer hook call. The
  parent applies them and calls the observers in its own process, so an observer plugin
  loaded in the parent sees what it saw when one process did both halves.
- The child dies with its parent: PR_SET_PDEATHSIG (SIGKILL) set at its start, a check
  that its parent is still the process that started it, and end of file on the socket.
  A child that dies is started again by the daemon, with backoff; what it had `sent`
  stays `sent` and is requeued by the new child's recovery, as after any restart.
- The first child is forked (`prefork`) before the parent opens its ledger or starts a
  thread, and waits for its orders: it starts in milliseconds, with the modules loaded.
  Any later one (a restart, a reload, or a parent that already runs threads) is a fresh
  interpreter (`python -m s321.transmit_process`, by fork and exec): a daemon by then has
  threads (HTTP, inbox watches, pipelines) and an open SQLite connection, whose locks a
  bare fork would copy in whatever state they are; exec copies nothing but the one
  descriptor it is given, at the price of about half a second of one core to start.
  Children are started from the main thread, since PR_SET_PDEATHSIG fires when the
  *thread* that forked them ends.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import structlog

from s321.backoff import Backoff
from s321.lifeline import die_with_parent
from s321.logs import error_text, get_logger
from s321.observers import Observers
from s321.registry import ENTRY_POINT_GROUP, Registry
from s321.transmitter import Transmitter, drive

if TYPE_CHECKING:
    from s321.config import Pipeline

log = get_logger(__name__)

HOOKS = frozenset({"consignment_rejected", "consignments_dead_lettered", "pipeline_failing",
                   "pipeline_recovered"})
"""The observer hooks a Transmitter calls: the ones the child passes on."""

FLUSH_SECONDS = 0.2
"""How often the child sends its counts while it works (and at each pipeline's end)."""


# ---------------------------------------------------------------- in the parent


@dataclass
class _Remote:
    """What the parent knows of one pipeline's transmission, from the child's messages."""

    counts: Counter[str] = field(default_factory=Counter)
    rejections: list[tuple[str, list[Any]]] = field(default_factory=list)
    error: str | None = None
    stalled: bool = False
    failing: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class RemoteSender(Transmitter):
    """A pipeline's transmission half as the parent sees it: `transmit` wakes the child,
    the counters, rejections, error and stalled state are the child's (as reported);
    `outstanding` reads the shared ledger. Made by `TransmitLink.sender`."""

    def __init__(self, link: TransmitLink, *args: Any, **kwargs: Any):
        self.link = link
        self.state = link.state(args[1] if len(args) > 1 else kwargs["name"])
        error, rejections = self.state.error, list(self.state.rejections)
        super().__init__(*args, **kwargs)  # sets error and rejections: as the child reported them
        self.state.error, self.state.rejections[:] = error, rejections
        link.attach(self)

    # The transmitter's attributes, kept in the state the child's messages update.
    @property  # type: ignore[override]
    def error(self) -> str | None:
        return self.state.error or self.state.failing

    @error.setter
    def error(self, value: str | None) -> None:
        self.state.error = value

    @property  # type: ignore[override]
    def rejections(self) -> list[tuple[str, list[Any]]]:
        return self.state.rejections

    @rejections.setter
    def rejections(self, value: list[tuple[str, list[Any]]]) -> None:
        self.state.rejections[:] = value

    def recover(self) -> int:
        return 0  # the child recovers when it starts

    def transmit(self, max_batches: int | None = None) -> int:
        """Wake the child: to send `max_batches` full batches (ingest is under way), or
        everything due (None), as a Transmitter here would."""
        self.link.tell("wake", self.name, max_batches)
        return 0

    def poll_acks(self, timeout: float = 0.0) -> int:
        return 0

    def idle(self) -> bool:
        return True  # the parent has nothing to send: it waits for input

    def owes(self) -> tuple[bool, bool]:
        return False, False  # what is owed, the child owes (and drains on a stop)

    def stalled(self) -> bool:
        return self.state.stalled or self.state.failing is not None or self.link.down()

    def close(self) -> None:
        pass

    def finish(self, stop: threading.Event | None = None) -> None:
        """`run --once`: the input is read; wait until the child has sent what is due and
        its acks are in (or its ack timeout passed), or until it stopped."""
        self.link.tell("input_done", self.name)
        told = False
        while not self.state.finished.wait(0.1):
            if stop is not None and stop.is_set() and not told:
                self.link.tell("stop", False)
                told = True


class TransmitLink:
    """The parent's end: starts the child, tells it to wake, finish or stop, and applies
    what it reports. `observers` and `metrics` are the parent's own."""

    def __init__(self, config_path: str | os.PathLike[str], observers: Observers | None, metrics: Any = None,
                 once: bool = False):
        self.config_path = str(config_path)
        self.observers = observers
        self.metrics = metrics
        self.once = once
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipelines: list[str] = []
        self._states: dict[str, _Remote] = {}
        self._lock = threading.Lock()
        self._send = threading.Lock()
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self.ready = threading.Event()
        self.stopping = False
        self.failure: str | None = None
        """Why the last child could not start (its config, its ledger), or None."""
        self._forked: tuple[_Forked, Connection] | None = None
        self.owner: str | None = None
        """The daemon's identity (its ledger's owner name): the child takes its leases in
        it, so that the daemon is one holder on a shared ledger, whichever process sends."""

    # -------------------------------------------------------- pipelines

    def state(self, name: str) -> _Remote:
        with self._lock:
            return self._states.setdefault(name, _Remote())

    def attach(self, sender: RemoteSender) -> None:
        """The worker's counter becomes the one the child's counts go to (any counted
        before it was made are carried over)."""
        with self._lock:
            state = self._states[sender.name]
            if sender.counts is not state.counts:
                sender.counts.update(state.counts)
                state.counts = sender.counts

    def sender(self, *args: Any, **kwargs: Any) -> RemoteSender:
        """A PipelineWorker's `make_sender`: Transmitter's arguments."""
        return RemoteSender(self, *args, **kwargs)

    # -------------------------------------------------------- the child

    def start(self, pipelines: list[str]) -> None:
        """Start the child for `pipelines`. Call from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("transmit process started from another thread: it outlives that thread's end")
        self.pipelines = list(pipelines)
        for name in self.pipelines:
            state = self.state(name)
            state.finished.clear()
            state.error, state.stalled, state.failing = None, False, None  # the new child reports its own
        self.ready.clear()
        self.stopping = False
        self.failure = None
        spec = {"config": self.config_path, "pipelines": self.pipelines, "once": self.once,
                "parent": os.getpid(), "owner": self.owner, **_log_settings()}
        if self._forked is not None:  # made early: it only waits for its orders
            proc, self._conn = self._forked
            self._forked = None
            self.proc = proc  # type: ignore[assignment]
            self.tell("begin", spec)
        else:
            mine, theirs = socket.socketpair()
            spec["fd"] = theirs.fileno()
            try:
                self.proc = subprocess.Popen([sys.executable, "-m", "s321.transmit_process", json.dumps(spec)],
                                             pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            finally:
                theirs.close()
            self._conn = Connection(mine.detach())
        self._reader = threading.Thread(target=self._read, args=(self._conn, self.proc), daemon=True,
                                        name="s321-transmit-link")
        self._reader.start()
        log.info("transmit process started", pid=self.proc.pid, pipelines=self.pipelines)

    def prefork(self) -> bool:
        """Fork the first child now, before this process opens its ledger or starts a
        thread: it starts in milliseconds (the modules are loaded) and waits for `start`.
        False (and `start` execs a fresh interpreter) where that is not safe: another
        thread is running, or not in the main thread."""
        if not hasattr(os, "fork") or threading.active_count() > 1 \
                or threading.current_thread() is not threading.main_thread():
            return False
        mine, theirs = socket.socketpair()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            code = 2
            try:
                mine.close()
                code = _forked_child(theirs, parent)
            finally:
                sys.stderr.flush()  # its log lines; never the parent's stdout buffer
                os._exit(code)
        theirs.close()
        self._forked = (_Forked(pid), Connection(mine.detach()))
        return True

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def down(self) -> bool:
        """A daemon's child that ended without being told to (the daemon restarts it)."""
        return not self.once and not self.stopping and self.proc is not None and self.proc.poll() is not None

    def tell(self, *message: Any) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._send:
            try:
                conn.send(message)
            except (OSError, ValueError):
                pass  # the child is gone: the daemon restarts it, a run reports it

    def stop(self, timeout: float, drain: bool = True) -> int | None:
        """Tell the child to stop (after waiting up to the shutdown timeout for acks of
        what is on the wire, with `drain`); wait `timeout` seconds, then kill it.
        Returns its exit code."""
        if self._forked is not None:  # made early, never started: end of file ends it
            forked, conn = self._forked
            self._forked = None
            conn.close()
            forked.wait(5)
        proc = self.proc
        if proc is None:
            return None
        self.stopping = True
        self.tell("stop", drain)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("transmit process did not stop in time; killed", pid=proc.pid)
            proc.kill()
            code = proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        return code

    def _read(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                try:
                    self._apply(message)
                except Exception as exc:  # a message the parent cannot apply must not end the link
                    log.warning("transmit process message not applied", error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
            code = proc.wait()
            if proc is not self.proc:
                return  # a child before the one now running: its news are old
            for name in self.pipelines:
                state = self.state(name)
                if not state.finished.is_set():
                    if not self.stopping:
                        state.error = state.error or f"the transmit process stopped (exit {code})"
                    state.finished.set()

    def _apply(self, message: tuple[Any, ...]) -> None:
        kind, *rest = message
        if kind == "counts":
            for (name, outcome), n in rest[0].items():
                with self._lock:
                    self._states.setdefault(name, _Remote()).counts[outcome] += n
                if self.metrics is not None:
                    self.metrics.count(name, outcome, n)
        elif kind == "metric":
            method, args = rest
            if self.metrics is not None and method in ("ack_latency", "batches_taken_over", "at_risk"):
                getattr(self.metrics, method)(*args)
        elif kind == "observe":
            hook, kwargs = rest
            if hook not in HOOKS:
                return
            state = self.state(kwargs["pipeline"])
            if hook == "consignment_rejected" and kwargs.get("stage") == "cbp":
                state.rejections.append((kwargs["transaction_id"], kwargs["findings"]))
            elif hook == "pipeline_failing":
                state.failing = kwargs["error"]
            elif hook == "pipeline_recovered":
                state.failing = None
            getattr(self.observers, hook)(**kwargs)
        elif kind == "state":
            name, error, stalled = rest
            state = self.state(name)
            state.error, state.stalled = error, stalled
        elif kind == "finished":
            name, error, stalled = rest
            state = self.state(name)
            state.error, state.stalled = error, stalled
            state.finished.set()
        elif kind == "ready":
            self.ready.set()
        elif kind == "failed":  # the child could not start (its config, its ledger)
            log.error("transmit process could not start", error=rest[0])
            self.failure = rest[0]
            for name in self.pipelines:
                self.state(name).error = f"the transmit process could not start: {rest[0]}"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def in_process_components(registry: Registry, pipelines: Iterable[Pipeline]) -> list[str]:
    """The components of `pipelines` that a child loading its plugins from the `s321`
    entry points would not have as they are here: registered by code in this process
    (a test, the `s321.testing` harness, an embedding program), or replaced after loading
    (the harness's `wrap_transport`). "kind name (plugin)" each, sorted."""
    installed = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    found: set[str] = set()
    for p in pipelines:
        used = [p.source, p.mapper, p.transport, p.serializer, *(c for c, _ in p.validators)]
        for c in used:
            if c.plugin not in installed or not registry.has(c.kind, c.name) \
                    or registry.get(c.kind, c.name) is not c:
                found.add(f"{c.kind} {c.name} ({c.plugin})")
    return sorted(found)


def choose(setting: str, registry: Registry, pipelines: Iterable[Pipeline]) -> str:
    """Where this run's or daemon's pipelines transmit, "thread" or "process", for
    `[daemon] transmit` = `setting`:

    - "thread": always.
    - "auto" (the default): "process", unless this process may use one core only (the
      two halves would take turns on it, and the child costs its own CPU), or a pipeline
      uses a component that the child, which loads its plugins from the entry points,
      would not have as it is here; then "thread", said in the log at info level.
    - "process": also on one core (with a warning: the two halves take turns on it);
      with components the child cannot have, "thread" with a warning naming them, since
      a child without them would fail every send.
    """
    if setting == "thread":
        return "thread"
    missing = in_process_components(registry, list(pipelines))
    if missing:
        say = log.warning if setting == "process" else log.info
        say("transmitting in this process: the transmit process would not have these components, "
            "registered by code here rather than installed as plugins", components=missing)
        return "thread"
    if cores() < 2:
        if setting == "auto":
            log.info("transmitting in this process: one core only")
            return "thread"
        log.warning("transmit process on one core: the two halves take turns on it")
    return "process"


def _log_settings() -> dict[str, Any]:
    """The parent's log level and format, for the child's own log lines (same stderr)."""
    try:
        level = structlog.get_logger().bind().get_effective_level()
    except Exception:
        level = 20
    renderer = structlog.get_config()["processors"][-1]
    return {"level": level, "json": isinstance(renderer, structlog.processors.JSONRenderer)}


# ---------------------------------------------------------------- in the child


class _Observers(Observers):
    """The child's observers: each call goes to the parent, which makes it."""

    def __init__(self, tell: Any):
        self.tell = tell

    def _call(self, hook: str, **kwargs: Any) -> None:
        self.tell("observe", hook, kwargs)


class _Metrics:
    """The child's metrics, for the parent's registry (and counters). Counts are summed
    here and sent by `flush` (a message a record cost more than sending the record)."""

    def __init__(self, tell: Any):
        self.tell = tell
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, pipeline: str, outcome: str, n: int = 1) -> None:
        with self._lock:
            self._counts[pipeline, outcome] += n

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if counts:
            self.tell("counts", dict(counts))

    def ack_latency(self, pipeline: str, seconds: float) -> None:
        self.tell("metric", "ack_latency", (pipeline, seconds))

    def batches_taken_over(self, pipeline: str, n: int) -> None:
        self.tell("metric", "batches_taken_over", (pipeline, n))

    def at_risk(self, pipeline: str, n: int) -> None:
        self.tell("metric", "at_risk", (pipeline, n))


class _Child:
    def __init__(self, conn: Connection, spec: dict[str, Any]):
        from s321 import app
        from s321.ledger_open import open_ledger
        from s321.worker import bound_serializer

        self.conn = conn
        self.once = bool(spec["once"])
        self._send = threading.Lock()
        self.stop = threading.Event()
        self.drain = True
        _registry, loaded = app.load(spec["config"])
        self.daemon_cfg = loaded.config.daemon
        # Not held: the parent holds the lock of the file both processes write.
        self.ledger = open_ledger(loaded.config.ledger)
        if spec.get("owner"):  # one daemon, one lease holder (its predecessor child is gone)
            self.ledger.owner = spec["owner"]
        observers = _Observers(self.tell)
        self.metrics = metrics = _Metrics(self.tell)
        self.senders: dict[str, Transmitter] = {}
        self.wake: dict[str, threading.Event] = {}
        # What the parent allowed since the last pass: everything due (a pass after its
        # ingest, or idle), or this many full batches (its ingest is under way), so that
        # batches stay as full as when one process does both halves.
        self.everything: dict[str, bool] = {}
        self.allowed: dict[str, int] = {}
        self._allow = threading.Lock()
        self.input_done: dict[str, threading.Event] = {}
        self.budget: dict[str, float] = {}
        for name in spec["pipelines"]:
            p = loaded.pipelines.get(name)
            if p is None:
                self.tell("finished", name, "not in the config the transmit process read", False)
                continue
            ctx = p.context

            def make(p: Any = p, ctx: Any = ctx) -> Any:
                return p.transport.factory(p.transport_options, ctx, bound_serializer(p, self.ledger))

            self.senders[name] = Transmitter(self.ledger, name, make, ctx.originator_code, ctx.profile,
                                             p.config.retry, p.config.batch_size, observers, metrics)
            self.wake[name] = threading.Event()
            self.everything[name] = False
            self.allowed[name] = 0
            self.input_done[name] = threading.Event()
            self.budget[name] = p.config.retry.ack_timeout

    def tell(self, *message: Any) -> None:
        with self._send:
            try:
                self.conn.send(message)
            except (OSError, ValueError):
                self.stop.set()  # the parent is gone

    def run(self) -> int:
        threads = [threading.Thread(target=self._pipeline, args=(n,), name=f"s321-transmit-{n}", daemon=True)
                   for n in self.senders]
        for t in threads:
            t.start()
        self.tell("ready")
        listener = threading.Thread(target=self._listen, name="s321-transmit-commands", daemon=True)
        listener.start()
        while threads:
            threads[0].join(FLUSH_SECONDS)
            if not threads[0].is_alive():
                threads.pop(0)
            self.metrics.flush()  # live counts for a progress display and /metrics
        self.ledger.close()
        return 0

    def _listen(self) -> None:
        while True:
            try:
                kind, *rest = self.conn.recv()
            except (EOFError, OSError):
                self.drain = False
                self.stop.set()  # the parent is gone: nothing to report to
                for e in self.wake.values():
                    e.set()
                return
            if kind == "wake":
                name, batches = rest
                if name in self.wake:
                    with self._allow:
                        if batches is None:
                            self.everything[name] = True
                        else:
                            self.allowed[name] += batches
                    self.wake[name].set()
            elif kind == "input_done":
                if rest[0] in self.input_done:
                    self.input_done[rest[0]].set()
                    self.wake[rest[0]].set()
            elif kind == "stop":
                self.drain = bool(rest[0])
                self.stop.set()
                for e in self.wake.values():
                    e.set()

    def _transmit(self, name: str, t: Transmitter) -> None:
        with self._allow:
            everything, allowed = self.everything[name], self.allowed[name]
            self.everything[name], self.allowed[name] = False, 0
        if everything:
            t.transmit()
            return
        sent = t.transmit(max_batches=allowed)  # 0: connect, watch deadlines, send nothing
        if allowed:
            left = allowed - -(-sent // t.batch_limit())  # the window was full: the rest later
            if left > 0:
                with self._allow:
                    self.allowed[name] += left

    def _pipeline(self, name: str) -> None:
        t = self.senders[name]
        backoff = Backoff(initial=1.0, maximum=30.0)
        failures = 0
        failed: str | None = None
        recovered = False
        reported: tuple[str | None, bool] = (None, False)
        try:
            while not self.stop.is_set():
                self.wake[name].clear()
                try:
                    if not recovered:
                        t.recover()
                        recovered = True
                    if self.once and self.input_done[name].is_set():
                        drive(t, budget=self.budget[name], stop=self.stop)
                        break
                    self._transmit(name, t)
                    t.poll_acks(timeout=0.05 if t.owes()[1] else 0.0)
                    idle = t.idle()
                except Exception as exc:
                    message = error_text(exc)
                    if self.once:  # as run_pipeline_once: the run reports the failure
                        t.error = f"pipeline failed: {message}"
                        log.error("pipeline failed", pipeline=name, error=t.error, exc_info=True)
                        break
                    if failed is None:
                        t.observers.pipeline_failing(name, message)  # type: ignore[union-attr]
                    failed = message
                    delay = max(0.5, backoff.delay(failures))
                    failures += 1
                    log.error("pipeline failed, retrying", pipeline=name, error=failed, retry_in=round(delay, 1),
                              attempt=failures, exc_info=failures == 1)
                    self.stop.wait(delay)
                    continue
                if failed is not None:
                    log.warning("pipeline resumed", pipeline=name, after=failed)
                    t.observers.pipeline_recovered(name, failed)  # type: ignore[union-attr]
                    failed, failures = None, 0
                self.metrics.flush()  # each pass's counts (a pass in progress when killed is lost)
                now = (t.error, t.stalled())
                if now != reported:
                    self.tell("state", name, *now)
                    reported = now
                if idle:
                    self.wake[name].wait(self.daemon_cfg.poll_interval)
            if not self.once and self.drain:
                deadline = time.monotonic() + self.daemon_cfg.shutdown_timeout
                while t.owes()[1] and time.monotonic() < deadline:
                    t.poll_acks(timeout=0.2)
        except Exception as exc:
            t.error = f"pipeline failed: {error_text(exc)}"
            log.error("transmission stopped on a failure", pipeline=name, error=t.error, exc_info=True)
        finally:
            try:
                t.close()
            except Exception as exc:
                t.error = t.error or f"pipeline failed: {error_text(exc)}"
            stalled = False
            try:
                stalled = t.stalled()
            except Exception:
                pass
            self.metrics.flush()  # the counts before the end
            self.tell("finished", name, t.error, stalled)


class _Forked:
    """A forked child, as much of `subprocess.Popen` as the link uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status = self.pid, 255 << 8  # reaped elsewhere: gone
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _forked_child(sock: socket.socket, parent: int) -> int:
    """The pre-forked child: waits for its orders ("begin", spec), or for the parent to
    go (end of file: it exits)."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn = Connection(sock.detach())
    try:
        kind, spec = conn.recv()
    except (EOFError, OSError):
        return 0
    if kind != "begin":
        return 2
    return _serve(conn, spec)


def _serve(conn: Connection, spec: dict[str, Any]) -> int:
    try:
        child = _Child(conn, spec)
    except Exception as exc:
        try:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
        return 2
    return child.run()


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    die_with_parent(int(spec["parent"]))
    # Ctrl-C and a terminal's hang-up reach the whole process group: they are the parent's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from s321 import gctune, logs

    logs.configure(level=logging.getLevelName(int(spec["level"])), json=bool(spec["json"]))
    gctune.for_batches()
    return _serve(Connection(int(spec["fd"])), spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

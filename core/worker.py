"""One pipeline's durable runtime: ingest its input files into the ledger, and transmit
through a `Transmitter` (s321.transmitter).

Units are committed to the ledger before their input file is archived or the source
acknowledged, so a crash during ingestion makes the file be read again, idempotently.

Each input file is claimed in the ledger before it is read (`Ledger.claim_input`, by
path, size, modification time and content hash): daemons sharing one PostgreSQL ledger
and one inbox split the files between them instead of each reading all; a read that
fails or stops half-way gives its claim back. The claim is a row in the database, not a
lock or a rename on the (possibly network) file system. A file another daemon archived
first is no error. Files are still stored in their order (oldest first): a daemon
reads a file only once every older file of the inbox is stored, so that an earlier
export, read late by another daemon, never overtakes a later one of the same
consignments. The daemons share the reading file by file, and send side by side.

An invalid unit is stored with its raw unit (s321.refile.pack), so that it can be
mapped again without its file; when the pipeline's fingerprint (tables, defaults,
profile, rates) differs from the one in the ledger, `revalidate_if_changed` maps the
never-filed invalid records again, with fresh tables, and files those now valid.

A large input is transmitted while it is read: each time a batch's worth of valid
records has been committed, full batches go out and the acks that came back are
resolved, so the receiver works while this process keeps reading (the ledger is the
only hand-over between the two halves; nothing is sent that is not committed). With
`[daemon] transmit = "process"` the sender is a stand-in that only wakes the transmit
process (s321.transmit_process), which sends from the ledger on its own core.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from s321 import private, refile
from s321.config import Pipeline
from s321.contracts import RawUnit, Transport
from s321.inputs import NotRegularFile, input_files, open_regular
from s321.ledger import Ledger
from s321.logs import get_logger
from s321.observers import Observers
from s321.pipeline import Outcome, Processor, Status
from s321.transmitter import Transmitter

log = get_logger(__name__)

CHUNK = 500
"""Units per ledger transaction while ingesting: big files never hold the lock long."""


def bound_serializer(pipeline: Pipeline, ledger: Ledger) -> Any:
    """The pipeline's serializer; one that declares `bind` (ace-truck-309: durable control
    numbers, trip files beside the config) gets the ledger and the pipeline's context."""
    serializer = pipeline.serializer.factory()
    bind = getattr(serializer, "bind", None)
    if callable(bind):
        bind(ledger, pipeline.context)
    return serializer


class PipelineWorker:
    def __init__(self, pipeline: Pipeline, rates: dict[str, Decimal], ledger: Ledger,
                 observers: Observers, metrics: Any = None, clock: Callable[[], float] = time.time,
                 counts: Counter[str] | None = None, make_sender: Callable[..., Transmitter] | None = None):
        """`make_sender` makes the transmission half (Transmitter's arguments); by default a
        Transmitter in this process, or a stand-in for a transmit process
        (s321.transmit_process.TransmitLink.sender): this worker then only ingests."""
        self.pipeline = pipeline
        self.name = pipeline.name
        self.ledger = ledger
        self.observers = observers
        self.metrics = metrics
        self.clock = clock
        self.rates = rates
        self.processor = self._processor()
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self.stop: threading.Event | None = None
        """Set: ingestion ends between chunks (what was not committed is read again)."""
        self._complete = False  # the last input was read to its end
        self._due = 0  # valid units committed since the last transmission while ingesting
        self.settles_at: float | None = None
        """When (time.time()) the first input file left unread as too young has settled:
        set by `pending_inputs`, None when it left none."""
        ctx = pipeline.context
        self.sender = (make_sender or Transmitter)(
            ledger, pipeline.name,
            lambda: pipeline.transport.factory(pipeline.transport_options, ctx, bound_serializer(pipeline, ledger)),
            ctx.originator_code, ctx.profile, pipeline.config.retry, pipeline.config.batch_size,
            observers, metrics, self.counts, clock)
        # The transmission half, delegated (see Transmitter).
        self.transmit = self.sender.transmit
        self.poll_acks = self.sender.poll_acks
        self.recover = self.sender.recover
        self.idle = self.sender.idle
        self.outstanding = self.sender.outstanding
        self.owes = self.sender.owes
        self.stalled = self.sender.stalled
        self.close = self.sender.close

    def _processor(self) -> Processor:
        # What the tables were when they were read: a later change makes a new processor.
        self._built_with = refile.fingerprint(self.pipeline, self.rates)
        processor = Processor(self.pipeline, self.rates)
        self._reading = _Remembering(processor.source)
        processor.source = self._reading  # type: ignore[assignment]
        return processor

    def revalidate_if_changed(self) -> refile.Revalidation | None:
        """When the tables, defaults, profile or rates changed since the ledger last saw
        this pipeline: map its never-filed invalid records again (tables read anew) and
        queue those now valid. None when nothing changed."""
        current = refile.fingerprint(self.pipeline, self.rates)
        if current != self._built_with:
            self.processor = self._processor()  # the tables as they are now, for new input too
        if self.ledger.fingerprint(self.name) == current:
            return None  # seen already (by an earlier run, or `s321 revalidate`)
        report = refile.revalidate(self.processor, self.ledger)
        self.ledger.set_fingerprint(self.name, current)
        if report.examined:
            self.counts["revalidated"] += report.now_valid
            log.info("invalid records revalidated", pipeline=self.name, examined=report.examined,
                     now_valid=report.now_valid, still_invalid=report.still_invalid)
        return report

    @property
    def transport(self) -> Transport:
        return self.sender.transport

    @property
    def error(self) -> str | None:
        return self.sender.error

    @error.setter
    def error(self, value: str | None) -> None:
        self.sender.error = value

    @property
    def rejections(self) -> list[tuple[str, list[Any]]]:
        return self.sender.rejections

    # ------------------------------------------------------------------ ingestion

    def pending_inputs(self, settle: bool = True) -> list[Path] | None:
        """Input files ready to read now, or None for a source that is not file-based.
        With `settle`, a file modified in the last `settle_seconds` is left for later
        (the daemon's guard against half-written files; `--once` takes what is there)."""
        opts = self.pipeline.source_options
        inputs = getattr(self.processor.source, "inputs", None)
        if callable(inputs) and _no_arguments(inputs):
            files = list(inputs())
        elif hasattr(opts, "path") and hasattr(opts, "pattern"):
            files = list(input_files([opts.path], opts.pattern,
                                     follow_symlinks=getattr(opts, "follow_symlinks", False)))
        else:
            return None
        now = time.time()
        ready = []
        self.settles_at = None
        for f in files:
            if f.name.startswith(".") or f.suffix in (".tmp", ".part"):
                continue  # written under a temporary name: not complete yet
            try:
                st = f.stat()
            except OSError:
                continue
            if settle and now - st.st_mtime < self.pipeline.config.settle_seconds:
                # Still being written, or just landed: read once it has settled (the
                # daemon scans again then, not at its next rescan, seconds later).
                at = st.st_mtime + self.pipeline.config.settle_seconds
                self.settles_at = at if self.settles_at is None else min(self.settles_at, at)
                continue
            if not self.ledger.input_seen(self.name, str(f), st.st_size, st.st_mtime_ns):
                ready.append(f)
            else:
                # Its commit is on disk but the process ended before the move: finish it.
                self._archive(f)
        return ready

    def ingest(self, paths: Iterable[Path] | None = None, settle: bool = True, transmit: bool = True) -> int:
        """Read, map, validate and commit. Returns the number of units stored. With
        `transmit`, full batches are sent (and acks resolved) while reading."""
        files = list(paths) if paths is not None else self.pending_inputs(settle)
        self._due = 0
        if files is None:
            return self._ingest_stream(self.processor.process(), None, transmit)
        total = 0
        for f in files:
            if self.stop is not None and self.stop.is_set():
                break
            try:
                st = f.stat()
                digest = _sha256(f)
            except NotRegularFile:
                digest = ""  # a FIFO or a device: the source refuses it with its own finding
            except OSError as exc:
                # Taken away; with daemons sharing the inbox, usually archived by the one that read it.
                (log.info if self.ledger.backend != "sqlite" else log.warning)(
                    "input vanished", pipeline=self.name, file=str(f), error=exc.strerror)
                continue
            if not self.ledger.claim_input(self.name, str(f), st.st_size, st.st_mtime_ns, digest):
                if self.ledger.input_seen(self.name, str(f), st.st_size, st.st_mtime_ns):
                    continue  # stored already
                # Another daemon reads it now: the newer files wait until it is stored,
                # or an older version of a consignment could be stored after a newer one.
                break
            before = self.counts.copy()
            try:
                total += self._ingest_stream(self.processor.process([f]), (str(f), st.st_size, st.st_mtime_ns),
                                             transmit)
            except BaseException:
                self._release(f)
                raise
            if not self._complete:
                self._release(f)  # stopped half-way: read again, by whichever daemon claims it
            read = self.counts - before
            log.info("input read", pipeline=self.name, file=str(f), units=read["received"], valid=read["valid"],
                     invalid=read["invalid"], skipped=read["skipped"], unchanged=read["unchanged"],
                     complete=self._complete)
            if self._complete:  # stopped half-way: the file stays, and is read again
                self._archive(f)
        return total

    def _release(self, path: Path) -> None:
        """Give back the claim on an input not read to its end; a ledger that cannot be
        reached now lets the claim expire instead."""
        try:
            self.ledger.release_input(self.name, str(path))
        except Exception as exc:  # the read's own failure is what gets reported
            log.warning("input claim not released; it expires", pipeline=self.name, file=str(path),
                        error=f"{type(exc).__name__}: {exc}")

    def _transmit_full_batches(self, valid: int) -> None:
        """Called after each committed chunk with its number of valid units: once a
        batch's worth is queued, send what is due and resolve the acks that are in."""
        self._due += valid
        size = self.sender.batch_limit()
        if self._due < size:
            return
        batches, self._due = divmod(self._due, size)
        self.sender.transmit(max_batches=batches)
        self.sender.poll_acks(timeout=0.0)

    def _ingest_stream(self, outcomes: Iterator[Outcome], input_file: tuple[str, int, int] | None,
                       transmit: bool = False) -> int:
        ctx = self.pipeline.context
        n = 0
        last_checkpoint = None
        self._complete = False
        while True:
            chunk = []
            raw: dict[str, bytes] = {}
            for outcome in outcomes:
                chunk.append(outcome)
                if refile.keeps_raw(outcome):
                    unit = self._reading.last  # the unit this outcome was made of
                    if unit is not None and unit.key == outcome.ref:
                        kept = refile.pack(unit)
                        if kept is not None:
                            raw[outcome.ref] = kept
                if len(chunk) >= CHUNK:
                    break
            done = len(chunk) < CHUNK
            # The input is marked processed with its last chunk only, so a crash in
            # the middle makes the whole file be read again (idempotently).
            stored = self.ledger.ingest(self.name, ctx.originator_code, ctx.ids, chunk,
                                        input_file=input_file if done else None, raw=raw)
            self.counts["unchanged"] += stored.unchanged
            for outcome in chunk:
                self._observe(outcome)
                if outcome.checkpoint is not None:
                    last_checkpoint = outcome.checkpoint
            n += len(chunk)
            self._complete = done
            if done:
                break
            if self.stop is not None and self.stop.is_set():
                break  # not marked processed: read again, idempotently, next time
            if transmit:
                self._transmit_full_batches(sum(o.status is Status.VALID for o in chunk))
        if last_checkpoint is not None:
            self.processor.source.ack(last_checkpoint)
        return n

    def _observe(self, outcome: Outcome) -> None:
        self.counts["received"] += 1
        self.counts[outcome.status.value] += 1
        self._metric("received")
        self._metric(outcome.status.value)
        if outcome.status is Status.INVALID:
            txid = outcome.record.transaction_id if outcome.record else outcome.ref
            self.observers.consignment_rejected(self.name, txid, "validation", outcome.findings)

    def _archive(self, path: Path) -> None:
        """Move an input to the archive folder. Called only once the ledger commit that
        covers the file is on disk (`Ledger.ingest` with `input_file`); the folders are
        fsynced after the rename, so a crash cannot leave the move half-known."""
        folder = self.pipeline.config.archive_dir
        if folder is None:
            return
        try:
            private.ensure_dir(folder, tighten=True)  # the archive holds buyers' data: s321's alone
            target = folder / path.name
            if target.exists():
                target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
            try:
                shutil.move(str(path), str(target))
            except FileNotFoundError:
                if path.exists():
                    raise
                # Daemons sharing the inbox: another one that saw the file stored moved it first.
                log.debug("input archived by another daemon", pipeline=self.name, file=str(path))
                return
            private.ensure_file(target, warn=False)  # it arrived with its uploader's modes
            for changed in {folder, path.parent}:
                _fsync_dir(changed)
        except OSError as exc:
            log.warning("archive failed", pipeline=self.name, file=str(path), error=exc.strerror)

    def _metric(self, name: str, n: int = 1) -> None:
        if self.metrics is not None and n:
            self.metrics.count(self.name, name, n)


def _no_arguments(method: Callable[..., Any]) -> bool:
    """Whether a source's `inputs` is the worker's hook (`inputs()`: its files), not a
    method of its own of that name that wants arguments (shopify-csv's `inputs(paths)`)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _sha256(path: Path) -> str:
    """The content hash of an input file, part of its claim's key (a file rewritten in
    place with the same size and modification time is another input)."""
    digest = hashlib.sha256()
    with open_regular(path, "rb") as fh:  # a FIFO swapped in must not block the daemon
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the directory entry is in the folder)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Remembering:
    """A pipeline's source that remembers the unit it yielded last. The processor makes
    each unit's outcome before it reads the next, so when an outcome arrives, `last` is
    its unit: an invalid one is kept with its raw unit without the processor holding
    units. Everything else is the source's own."""

    def __init__(self, source: Any):
        self._source = source
        self.last: RawUnit | None = None

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for unit in self._source.read(paths):
            self.last = unit
            yield unit
        self.last = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

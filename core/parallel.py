"""`s321 preview` on several cores: the parent reads the units (and finds the keys that
repeat, as the serial path does), worker processes map, validate and write each unit's
JSON line, in chunks; the outcomes come back in input order. A source that can be read
from a unit on (`read_key_positions` and `read_span`, see s321.pipeline) is not read by
the parent at all: its keys pass notes where each chunk starts, and each worker reads
its own chunk of the file.

While the keys pass of such a source runs, the workers already read the chunks it has
cut (as many at a time as the parent lets them have later on): their outcomes cannot be
given before the pass ends (a key found again later marks them), so each finished
chunk's outcomes wait in an unlinked temporary file of this process's (mode 0600), at
most SPILL_BYTES of them; past that, or if the file cannot be written, no more chunks are
handed out until the pass has ended.

Promises: the same outcomes in the same order as `Processor.process()`, each carrying
the `--json` line that path would print (`Outcome.line`; `record` is left out, since
shipping models between processes costs more than making them). A worker that cannot
open the pipeline, raises, or is killed never hangs the preview: the parent does the
rest itself, so findings, counts and exit codes stay those of the serial path; a preview
killed outright takes its workers with it (s321.lifeline).
Workers are forked before anything opens an SQLite connection (the mappers' enrichment
tables are loaded in each worker), and only from a parent with one thread. Pickles
pass only between the parent and the workers it forked, over the executor's own pipes
(the parent pickles units it read; a worker, the outcomes it made), and through the
parent's own spill, a file it made with no name and mode 0600: never from a file of
anyone else's, a peer or anything outside the process tree.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import pickle
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from tempfile import TemporaryFile
from typing import Any

from s321.config import Pipeline
from s321.contracts import RawUnit
from s321.errors import S321Error
from s321.inputs import input_files
from s321.lifeline import die_with_parent
from s321.logs import get_logger
from s321.pipeline import Outcome, Processor, Status, input_of, mark_duplicate
from s321.repeats import RepeatedKeys

log = get_logger(__name__)

MIN_BYTES = 1_000_000
"""Inputs smaller than this (about 1,400 shop orders) are previewed in one process:
starting workers, each loading the enrichment tables, would cost more than it saves."""

CHUNK = 256
"""Units a worker is given at a time: enough to make a hand-over cheap per unit."""

AHEAD = 4
"""Chunks in flight per worker: keeps workers busy while memory stays bounded."""

SPILL_BYTES = 128 * 1024 * 1024
"""The most that the outcomes of chunks finished while the keys pass runs may take in the
temporary file they wait in (about 85,000 bills or houses of the carrier sources, whose
keys pass is the longest): enough for all of them at 100k units, bounded at any size."""

Chunk = list[tuple[RawUnit, list[str] | None]]
"""Units, each with the locations of the other units of its key when it repeats."""

Piece = list[Any] | RawUnit
"""Part of a chunk of a source that reads spans: [position, count], the `count` units
that `read_span` reads from `position` on; or a unit handed on as the keys pass had it
(one that no span can start at: a file refused whole)."""

Repeats = dict[tuple[str, str], list[str]]
"""(input, key) -> the locations of every unit with that key in that input, for the keys
that repeat (s321.pipeline.Processor.repeated_keys)."""


@dataclasses.dataclass(slots=True)
class Plan:
    """One chunk of a source that reads spans: its pieces, and the repeated keys among
    its units (None when none of them repeats)."""

    pieces: list[Piece]
    repeats: Repeats | None = None

Jobs = int | str
"""A number of worker processes, or "auto" (one per core, when the input pays)."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_for(jobs: Jobs) -> int:
    """Worker processes to use for `jobs` ("auto" or a number; 1 is the serial path)."""
    if jobs == "auto":
        n = cores()
    else:
        n = int(jobs)
    if n < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return n


def parse_jobs(text: str) -> Jobs:
    """`--jobs` and `[preview] jobs`: "auto" or a whole number >= 1 (raises ValueError)."""
    if text == "auto":
        return "auto"
    n = int(text)
    if n < 1:
        raise ValueError("jobs must be 1 or more, or auto")
    return n


# ---------------------------------------------------------------- between processes


class _Pickler(pickle.Pickler):
    """Pickles a dataclass as a call of its constructor with its fields' values: the
    default way (a state set slot by slot) made unpickling a shop
    order three times as slow as reading it (24 against 8 µs an order, with its
    addresses and lines). Classes where that call would not give back an equal object
    (a custom `__init__`, `__post_init__`, fields outside `__init__`) pickle as usual."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        values = _constructors.get(cls, _UNKNOWN)
        if values is _UNKNOWN:
            values = _constructors[cls] = _constructor_values(obj)
        if values is None:
            return NotImplemented
        return cls, values(obj)


_UNKNOWN: Any = object()
_constructors: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}


def _constructor_values(obj: Any) -> Callable[[Any], tuple[Any, ...]] | None:
    cls = type(obj)
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    params = getattr(cls, "__dataclass_params__", None)
    fields = dataclasses.fields(cls)
    if params is None or not params.init or not params.eq or not all(f.init for f in fields):
        return None
    names = [f.name for f in fields]
    values = attrgetter(*names) if len(names) > 1 else (lambda o: (getattr(o, names[0]),))
    try:
        if cls(*values(obj)) != obj:  # an __init__ of its own: not a plain copy
            return None
    except Exception:
        return None
    return values


def dumps(value: Any) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return out.getvalue()


# ---------------------------------------------------------------- in the worker

_job: tuple[Pipeline, dict[str, Decimal], int] | None = None
"""Set in the parent just before the fork: what each worker builds its Processor from,
and the parent's pid."""
_processor: Processor | None = None


def _start_worker() -> None:
    global _processor
    assert _job is not None
    pipeline, rates, parent = _job
    die_with_parent(parent)  # a parent killed by SIGKILL runs no shutdown of this pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        _processor = Processor(pipeline, rates)
    except Exception:  # the parent opens the pipeline itself and reports why, as today
        _processor = None


def _ready() -> None:
    """Nothing: submitted once to start the workers early."""


def _process_plan(blob: bytes) -> bytes | None:
    """`_process_chunk` for a chunk this worker reads itself (a `Plan`): per unit also its
    key, location and checkpoint, which the parent never read."""
    processor = _processor
    if processor is None:
        return None
    return dumps([(outcome.ref, outcome.source, outcome.checkpoint, outcome.status.value,
                   outcome.to_json(), outcome.findings or None, outcome.reason)
                  for outcome in _plan_outcomes(processor, pickle.loads(blob))])


def _plan_outcomes(processor: Processor, plan: Plan) -> Iterator[Outcome]:
    read_span = processor.source.read_span  # type: ignore[attr-defined]
    repeats = plan.repeats
    for piece in plan.pieces:
        for unit in read_span(*piece) if isinstance(piece, list) else (piece,):
            outcome = processor.process_unit(unit)
            if repeats:
                others = repeats.get((input_of(unit), unit.key))
                if others is not None:
                    mark_duplicate(outcome, unit, others)
            yield outcome


def _process_chunk(blob: bytes) -> bytes | None:
    """What the parent needs of the chunk's outcomes (pickled): per unit its status, JSON
    line, findings and reason (the parent has the unit's key, location and checkpoint);
    None when this worker could not open the pipeline."""
    processor = _processor
    if processor is None:
        return None
    done = []
    for unit, others in pickle.loads(blob):
        outcome = processor.process_unit(unit)
        if others is not None:
            mark_duplicate(outcome, unit, others)
        done.append((outcome.status.value, outcome.to_json(), outcome.findings or None,
                     outcome.reason))
    return dumps(done)


# ---------------------------------------------------------------- in the parent


def preview(pipeline: Pipeline, rates: dict[str, Decimal], paths: list[Path] | None,
            workers: int, open_processor: Callable[[], Processor]) -> Iterator[Outcome]:
    """Outcomes of the pipeline's input (or `paths`) as `open_processor().process(paths)`
    yields them. `open_processor` builds the pipeline in this process (raising the
    ConfigError a user sees): used for small or non-file inputs, and whenever a worker
    fails."""
    global _job
    try:  # the source alone: the mapper's tables are loaded in the workers
        reader = Processor.reading(pipeline, rates)
    except Exception:
        yield from open_processor().process(paths)  # raises the same error, worded
        return
    if paths is None and not reader._file_based():
        yield from open_processor().process(paths)
        return
    if _input_bytes(pipeline, paths) < MIN_BYTES or threading.active_count() > 1:
        # Forking a process with other threads may copy a lock one of them holds.
        yield from open_processor().process(paths)
        return
    _job = (pipeline, rates, os.getpid())
    spill = _Spill(SPILL_BYTES)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker)
    try:
        # The first task forks every worker: each loads the mapper's tables while this
        # process finds the keys that repeat.
        pool.submit(_ready)
        if reads_spans(reader.source):
            cut = _plans(pool, reader, paths, workers, spill)
            if cut is not None:
                early, rest = cut
                yield from _in_order(pool, rest, workers, open_processor, early)
                return
        repeated = reader.repeated_keys(paths)
        yield from _in_order(pool, _chunks(reader.source.read(paths), repeated), workers, open_processor)
    finally:
        _job = None
        pool.shutdown(wait=True, cancel_futures=True)
        spill.close()


def _input_bytes(pipeline: Pipeline, paths: list[Path] | None) -> int:
    opts = pipeline.source_options
    try:
        files = input_files(paths if paths is not None else [opts.path], opts.pattern)
        return sum(f.stat().st_size for f in files if f.is_file())
    except (OSError, S321Error, AttributeError):  # the serial path reports it as always
        return 0


def reads_spans(source: Any) -> bool:
    return callable(getattr(source, "read_key_positions", None)) and callable(
        getattr(source, "read_span", None))


def _plans(pool: ProcessPoolExecutor, reader: Processor, paths: list[Path] | None,
           workers: int, spill: _Spill) -> tuple[deque[tuple[Plan, Handle]], Iterator[Plan]] | None:
    """The keys pass of a source that reads spans, which also cuts the input into chunks
    of CHUNK units: a position per span (never one per unit), the units no span can
    start at, and each chunk's repeated keys. Meanwhile the chunks cut so far go to the
    workers in order, as many in flight as `_in_order` keeps, and each one finished
    waits in `spill` (a chunk that turns out to hold a repeated key is worked again).
    Returns those handed out and the rest; None when the source raised: the parent then
    reads the units itself, as it does for any other source."""
    plans: list[Plan] = []
    early: list[tuple[Plan, Handle]] = []  # plans[:len(early)], handed out in order
    running: deque[int] = deque()  # those of `early` a worker may still be working on
    handing_out = True
    pieces: list[Piece] = []
    in_chunk = 0
    span: list[Any] | None = None  # the chunk's last span, while units go on extending it

    def cut() -> None:
        nonlocal handing_out
        plans.append(Plan(pieces))
        for _ in range(len(running)):  # the finished ones wait on disk, in any order
            at = running.popleft()
            plan, future = early[at]
            assert isinstance(future, Future)
            if not future.done():
                running.append(at)
            elif (kept := _keep(spill, future)) is not None:
                early[at] = (plan, kept)
            else:  # the spill is full or failed, or a worker did: the rest wait for the pass
                handing_out = False
        while handing_out and len(running) <= workers * AHEAD and len(early) < len(plans):
            plan = plans[len(early)]
            running.append(len(early))
            early.append((plan, _submit(pool, _process_plan, plan)))

    with RepeatedKeys() as keys:  # flat memory: past a limit the keys wait on disk
        try:
            for unit, at in reader.source.read_key_positions(paths):  # type: ignore[attr-defined]
                keys.add((input_of(unit), unit.key), unit.location, len(plans))
                if at is None:
                    pieces.append(unit)
                    span = None
                elif span is not None and at[0] == span[0][0]:  # the same reading of an input
                    span[1] += 1
                else:
                    span = [at, 1]
                    pieces.append(span)
                in_chunk += 1
                if in_chunk == CHUNK:
                    cut()
                    pieces, in_chunk, span = [], 0, None
            if pieces:
                cut()
        except Exception as exc:  # read_keys() and read() meet it again, and say so
            log.error("source raised while its keys were read", pipeline=reader.pipeline.name,
                      error_type=type(exc).__name__)
            return None
        repeated = keys.repeated()
        for slot, tags in keys.tags().items():
            for tag in tags:
                chunk_repeats = plans[tag].repeats
                if chunk_repeats is None:
                    chunk_repeats = plans[tag].repeats = {}
                chunk_repeats[slot] = repeated[slot]
    # Handed out before its units were known to repeat: worked again with them.
    handed = deque((plan, _submit(pool, _process_plan, plan) if plan.repeats else handle)
                   for plan, handle in early)
    return handed, iter(plans[len(handed):])


class _SpillLost(Exception):
    """Outcomes that waited in the spill cannot be read back."""


class _Spill:
    """Outcomes of finished chunks (pickled, as a worker sent them) waiting for the keys
    pass to end, in one unlinked temporary file, at most `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.file: Any = None

    def keep(self, blob: bytes) -> _Kept | None:
        """Where `blob` now is; None when it does not fit or cannot be written."""
        if self.used + len(blob) > self.limit:
            return None
        try:
            if self.file is None:
                # Buyers' data: the file is this process's alone (mkstemp's 0600) and
                # has no name in any folder, so nothing is left behind by a crash.
                self.file = TemporaryFile(prefix="s321-preview-")
            self.file.seek(self.used)
            self.file.write(blob)
        except OSError as exc:
            log.warning("outcomes cannot wait on disk while the keys are read; the workers "
                        "wait for the keys instead", error=exc.strerror)
            self.limit = 0  # never again
            return None
        kept = _Kept(self, self.used, len(blob))
        self.used += len(blob)
        return kept

    def read(self, offset: int, size: int) -> bytes:
        try:
            self.file.flush()
            self.file.seek(offset)
            blob: bytes = self.file.read(size)
        except OSError as exc:
            raise _SpillLost(exc.strerror or str(exc)) from exc
        if len(blob) != size:
            raise _SpillLost(f"{size - len(blob)} bytes of {size} are gone")
        return blob

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    """A finished chunk's outcomes in the spill: `result()` as its future's."""

    spill: _Spill
    offset: int
    size: int

    def result(self) -> bytes:
        return self.spill.read(self.offset, self.size)


Handle = Future[Any] | _Kept
"""A chunk handed to the workers: its future, or its outcomes waiting in the spill."""


def _keep(spill: _Spill, future: Future[Any]) -> _Kept | None:
    """A finished future's outcomes moved to the spill; None when the worker failed or
    could not open the pipeline (`_collect` says so) or the spill did not take them."""
    if future.exception() is not None:
        return None
    blob = future.result()
    return spill.keep(blob) if blob is not None else None


def _submit(pool: ProcessPoolExecutor, task: Callable[[bytes], bytes | None],
            chunk: Chunk | Plan) -> Future[Any]:
    try:
        return pool.submit(task, dumps(chunk))
    except Exception as exc:  # a worker gone, a unit that does not pickle: _collect says so
        future: Future[Any] = Future()
        future.set_exception(exc)
        return future


def _chunks(units: Iterator[RawUnit], repeated: dict[tuple[str, str], list[str]]
            ) -> Iterator[Chunk]:
    chunk: Chunk = []
    for unit in units:
        chunk.append((unit, repeated.get((input_of(unit), unit.key)) if repeated else None))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _in_order(pool: ProcessPoolExecutor, chunks: Iterator[Chunk] | Iterator[Plan], workers: int,
              open_processor: Callable[[], Processor],
              submitted: deque[tuple[Plan, Handle]] | None = None) -> Iterator[Outcome]:
    """The outcomes of `chunks` (after those `submitted` already) in order, each chunk
    handed to the workers while at most AHEAD a worker are in flight; outcomes that wait
    in the spill are not in flight, so the workers go on while they are given."""
    pending: deque[tuple[Chunk | Plan, Handle | None]] = deque(submitted or ())
    in_flight = sum(not isinstance(handle, _Kept) for _chunk, handle in pending)
    local: Processor | None = None  # once a worker failed, this process does the rest
    rest = iter(chunks)
    while True:
        while in_flight <= (workers * AHEAD if local is None else 0):
            chunk = next(rest, None)
            if chunk is None:
                break
            future: Future[Any] | None = None
            if local is None:
                future = _submit(pool, _process_plan if isinstance(chunk, Plan) else _process_chunk,
                                 chunk)
            pending.append((chunk, future))
            in_flight += 1
        if not pending:
            return
        chunk, handle = pending.popleft()
        if not isinstance(handle, _Kept):
            in_flight -= 1
        outcomes, local = _collect(chunk, handle, local, open_processor)
        yield from outcomes


def _collect(chunk: Chunk | Plan, future: Handle | None, local: Processor | None,
             open_processor: Callable[[], Processor]) -> tuple[list[Outcome], Processor | None]:
    if future is not None and local is None:
        try:
            blob = future.result()
            if blob is not None and isinstance(chunk, Plan):
                return [Outcome(key, _STATUS[status], location, None, findings or [], reason,
                                checkpoint, line)
                        for key, location, checkpoint, status, line, findings, reason
                        in pickle.loads(blob)], None
            if blob is not None:
                return [Outcome(unit.key, _STATUS[status], unit.location, None, findings or [],
                                reason, unit.checkpoint, line)
                        for (unit, _others), (status, line, findings, reason)
                        in zip(chunk, pickle.loads(blob), strict=True)], None
            log.error("a preview worker could not open the pipeline; the preview goes on in "
                      "one process")
        except BrokenProcessPool:
            log.error("a preview worker stopped; the preview goes on in one process")
        except _SpillLost as exc:
            log.error("the preview's temporary file could not be read back; the preview goes "
                      "on in one process", error=str(exc))
        except Exception as exc:
            log.error("a preview worker failed; the preview goes on in one process",
                      error_type=type(exc).__name__)
    if local is None:
        local = open_processor()  # raises the ConfigError a worker met opening it
    if isinstance(chunk, Plan):  # the worker's share, read here instead
        return list(_plan_outcomes(local, chunk)), local
    outcomes = []
    for unit, others in chunk:
        outcome = local.process_unit(unit)
        if others is not None:
            mark_duplicate(outcome, unit, others)
        outcomes.append(outcome)
    return outcomes, local


_STATUS = {s.value: s for s in Status}

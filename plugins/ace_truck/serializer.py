"""Serializer `ace-truck-309`: a batch of one trip's shipments as one ACE truck 309, and
a 309 read back into a batch (the sandbox's side); the answers (997, 355, 350) are
`answers.py`'s.

Promises: a batch is one trip (the transmitter asks `batch_key` which records go
together); the trip comes from the config's `trip_files` (else the `trips` folder beside
the config), validated whole before anything is written, and is refused when ACE would
get it too late; control numbers come from the ledger's durable sequence (`Ledger.next_number`) once
the pipeline binds it, so they stay unique across restarts, and the batch each group was
sent as is noted in the ledger, so a 997 read after a restart still names its records. Decoding names each record
by its shipment control number (the receiver knows no transaction ids).
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from s321.contracts import Ack, Batch, PipelineContext, PipelineDefaults
from s321.errors import S321Error
from s321.hookspecs import hookimpl
from s321.logs import get_logger
from s321.paths import ConfigPath
from s321.record import Action, Consignment, FilerType, ModeOfTransport
from s321.regimes import DEFAULT as DEFAULT_PROFILE

from ..x12.envelope import Problem, read_sets_from_bytes
from ..x12.manifest309 import BillBuilder, map_bill
from ..x12.tokenizer import Segment, segments
from . import write309
from .trip import TRIP_SUFFIXES, Trip, TripBook, TripError, at_risk, exposed
from .write309 import EncodeError, Envelope, Shipment

log = get_logger(__name__)

NAME = "ace-truck-309"
TRIPS_FOLDER = "trips"
"""Trip files live in this folder beside the config file (docs/ace-truck.md)."""
GROUP_PREFIX = "ace-group:"
"""How `answers` asks for a transmission's records by its group control number."""
WATCH_SECONDS = 60.0
"""How often a running pipeline looks for trips at risk of reaching ACE late."""
SEQUENCE = "ace-truck-309:interchange"
"""The ledger sequence ISA13/GS06/ST02 are drawn from."""
GROUP_NOTE = "ace-truck-309:group:"
"""`Ledger.note` key (+ GS06) of the batch a transmission was sent as: a 997 names only
its group, and may come after a restart."""
ACTIONS = {"C": Action.REPLACE, "D": Action.DELETE, "X": Action.DELETE}
"""M1303 read back: change is a replace; delete and delink take the shipment off."""


class AceTruckOptions(BaseModel):
    """`[pipelines.NAME.serializer_options]` of `ace-truck-309`, checked by `s321 check`."""

    model_config = ConfigDict(extra="forbid")
    trip_files: list[ConfigPath] = Field(
        default=[], description="Trip files, or folders of them (*.toml, *.json), relative to the config "
        "file's folder; default: the folder trips/ beside the config file.")

    @field_validator("trip_files")
    @classmethod
    def _readable_trips(cls, paths: list[Path]) -> list[Path]:
        """Every path exists and every trip in it is valid (each problem names the file and
        the field, never crew data); whether a trip is still in time is decided when it is sent."""
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ValueError(f"no such trip file or folder: {', '.join(missing)}")
        try:
            TripBook.load(paths)
        except TripError as exc:
            raise ValueError("trip files refused: " + "; ".join(exc.problems)) from None
        return paths

    warn_minutes: float = Field(
        default=30.0, gt=0, le=24 * 60,
        description="A running daemon warns (log, observers, /metrics) when a trip's shipments are still "
        "queued or unanswered this many minutes before ACE's deadline for it.")


class Ace309Error(S321Error):
    """Bytes that are not a 309 this serializer can read; the message names the segment."""


class AceTruck309:
    """The `ace-truck-309` serializer (see the module docstring)."""

    name = NAME
    content_type = "application/edi-x12"

    def __init__(self, options: AceTruckOptions | None = None, trips: Path | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.trip_files: list[Path] = list(options.trip_files) if options is not None else []
        """The config's `trip_files` (files and folders); empty: the folder `trips_dir`."""
        self.warn_minutes = options.warn_minutes if options is not None else 30.0
        self._risk_checked = float("-inf")  # time.monotonic() of the last look
        self._at_risk: set[str] = set()  # trip numbers at risk at the last look
        self.trips_dir = trips
        self.clock = clock or (lambda: datetime.now(UTC))
        self._numbers: Callable[[str], int] | None = None
        self._ledger: Any = None
        self._fallback = itertools.count(1)
        self._book: tuple[tuple[tuple[str, int], ...], TripBook] | None = None
        self._pipeline: str | None = None
        self._groups: dict[str, str] = {}
        """GS06 of each transmission this process wrote -> its batch id, so that a 997
        that rejects a group names its records; kept in the ledger too (`Ledger.note`),
        so that a 997 read after a restart finds them as well."""
        self.persistent_numbers = False
        """True once control numbers come from the ledger (False: counted in memory,
        which a restart starts again: never for production)."""

    # ------------------------------------------------------------------ binding

    def bind(self, ledger: Any, context: PipelineContext | None) -> None:
        """Called by the pipeline's worker before the first batch: the ledger gives
        durable control numbers and resolves shipment control numbers to records; the
        context gives the config's folder, where the `trips` folder is."""
        self._ledger = ledger
        if context is not None:
            self._pipeline = context.pipeline
            if self.trips_dir is None:
                self.trips_dir = context.base_dir / TRIPS_FOLDER
        next_number = getattr(ledger, "next_number", None)
        if callable(next_number):
            self._numbers = next_number
            self.persistent_numbers = True
        else:
            log.warning("ace-truck-309: the ledger has no durable sequence; control numbers are "
                        "counted in memory and start again after a restart (not for production)")

    def control_number(self) -> int:
        if self._numbers is not None:
            return int(self._numbers(SEQUENCE))
        return next(self._fallback)

    # ------------------------------------------------------------------ trips

    def book(self) -> TripBook:
        """The trips of the config's `trip_files` (else of the trips folder), read again
        when a file changed."""
        places = self.trip_files or ([self.trips_dir] if self.trips_dir is not None else [])
        if not places:
            raise EncodeError("ace-truck-309: no trips folder: the pipeline did not bind the serializer")
        files: list[Path] = []
        try:
            for place in places:
                if place.is_dir() or not self.trip_files:
                    files += sorted(f for f in place.iterdir() if f.suffix.lower() in TRIP_SUFFIXES)
                else:
                    files.append(place)
            signature = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        except OSError as exc:
            raise EncodeError(f"{exc.filename or places[0]}: the trip files cannot be read: "
                              f"{exc.strerror or exc}") from None
        if self._book is None or self._book[0] != signature:
            try:
                self._book = (signature, TripBook.load(files))
            except TripError as exc:
                raise EncodeError("trip files refused:\n" + str(exc)) from None
            for f in files:
                if exposed(f):  # crew data: personal (the path only, never the content)
                    log.warning("trip file readable by others than its owner: chmod 600", file=str(f))
        return self._book[1]

    def batch_key(self, record_json: str | None) -> str | None:
        """The trip a record (as the ledger stores it) rides on, or None: records with
        different keys never share a batch (one 309 is one trip)."""
        if not record_json:
            return None
        try:
            record = json.loads(record_json)
            book = self.book()
        except (ValueError, EncodeError):
            return None
        scn = book.scn_for(_references(record))
        trip = book.trip_of(scn) if scn else None
        return trip.trip_number if trip else None

    def deadlines_at_risk(self) -> tuple[int, list[str]]:
        """(trips at risk now, a message for each that became at risk since the last look):
        a trip whose shipments are still queued or unanswered in the ledger within
        `warn_minutes` of its ACE deadline (`trip.at_risk`). The transmitter asks on every
        pass; the ledger is looked at once every WATCH_SECONDS at most. Messages and the
        warning logged name the trip and its shipment control numbers, never its crew."""
        if self._ledger is None or time.monotonic() - self._risk_checked < WATCH_SECONDS:
            return len(self._at_risk), []
        self._risk_checked = time.monotonic()
        try:
            book = self.book()
        except EncodeError:
            return len(self._at_risk), []  # said where the trip is used: its records are dead-lettered
        now = self.clock()
        found: dict[str, str] = {}
        for trip in book.trips.values():
            message = at_risk(trip, ledger_states(self._ledger, trip.shipments), now, self.warn_minutes)
            if message is not None:
                found[trip.trip_number] = message
        news = [message for number, message in found.items() if number not in self._at_risk]
        for number in found.keys() - self._at_risk:
            log.warning("ACE trip at risk of being late", pipeline=self._pipeline, trip=number)
        self._at_risk = set(found)
        return len(found), news

    # ------------------------------------------------------------------ contract

    def encode_batch(self, batch: Batch) -> bytes:
        book = self.book()
        trip: Trip | None = None
        shipments: list[Shipment] = []
        for record in batch.records:
            scn = book.scn_for(_references(record.model_dump()))
            if scn is None:
                raise EncodeError(
                    f"record {record.transaction_id}: no shipment control number: neither its house bill "
                    "nor its tracking number is on a trip file, nor mapped by one (`references`); add the "
                    "shipment to a trip file in the trips folder")
            this = book.trip_of(scn)
            if this is None:
                raise EncodeError(f"record {record.transaction_id}: shipment {scn} is on no trip file; "
                                  "list it under `shipments` of its trip")
            if trip is not None and this is not trip:
                raise EncodeError(f"a batch holds trips {trip.trip_number} and {this.trip_number}: a 309 is "
                                  "one trip (the transmitter groups batches by trip)")
            trip = this
            shipments.append(Shipment(scn, record))
        if trip is None:
            raise EncodeError("an empty batch makes no 309")
        late = trip.timing_problem(self.clock())
        if late:
            raise EncodeError(f"trip {trip.trip_number}: {late}")
        env = Envelope(batch.originator_code, trip.receiver_id, self.control_number(),
                       batch.sent_at, trip.usage == "production")
        data = write309.interchange(trip, shipments, env)
        self._groups[str(env.control)] = batch.batch_id
        note = getattr(self._ledger, "note", None)
        if callable(note) and self.persistent_numbers:  # before the bytes can reach ACE
            note(GROUP_NOTE + str(env.control), batch.batch_id)
        return data

    def decode_batch(self, data: bytes) -> Batch:
        return decode_309(data)

    def encode_ack(self, ack: Ack) -> bytes:
        from . import answers  # h20b's module: the 997 and 355 the sandbox answers with

        return answers.encode_ack(ack)  # type: ignore[no-any-return]

    def decode_ack(self, data: bytes) -> Ack:
        from . import answers

        return answers.decode_ack(data, self.resolve)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ answers

    def resolve(self, scn: str) -> list[dict[str, Any]]:
        """The ledger's records a shipment control number names (through the trip files'
        `references` too), or the records of the transmission a group control number
        names (`answers.GROUP_PREFIX` + GS06, for a 997): each as `Ledger.get` returns it
        (transaction_id, batch_id, wire_version...). Empty without a bound ledger."""
        if self._ledger is None:
            return []
        if scn.startswith(GROUP_PREFIX):
            group = scn[len(GROUP_PREFIX):]
            batch_id = self._groups.get(group)
            noted = getattr(self._ledger, "noted", None)
            if batch_id is None and callable(noted):
                batch_id = noted(GROUP_NOTE + group)
            if batch_id is None or self._pipeline is None:
                return []
            rows = self._ledger.sent_in(self._pipeline, [batch_id])
            return [r for r in (self._ledger.get(row.transaction_id) for row in rows) if r is not None]
        try:
            names = self.book().references_of(scn)
        except EncodeError:
            names = [scn]
        txids = dict.fromkeys(t for name in names for t in self._ledger.find(name))
        rows = [self._ledger.get(t) for t in txids]
        return [r for r in rows if r is not None]


def ledger_states(ledger: Any, shipments: Iterable[str]) -> dict[str, str | None]:
    """Each shipment control number's record state in the ledger (None: no record yet)."""
    out: dict[str, str | None] = {}
    for scn in shipments:
        rows = [ledger.get(t) for t in ledger.find(scn)]
        out[scn] = next((str(r["state"]) for r in rows if r), None)
    return out


def trip_places(pipelines: Iterable[Any]) -> list[Path]:
    """The trip files and folders of the pipelines (`config.Pipeline`s) that file with
    `ace-truck-309`: their `trip_files`, else the `trips` folder beside the config."""
    places: list[Path] = []
    for pipeline in pipelines:
        if pipeline.serializer.name != NAME:
            continue
        made = pipeline.serializer.factory()
        places += made.trip_files or [pipeline.context.base_dir / TRIPS_FOLDER]
    return list(dict.fromkeys(places))


def _references(record: dict[str, Any]) -> list[str | None]:
    """A record's own names for its shipment control number, in the order they are tried."""
    return [record.get("house_bill_number"), record.get("tracking_number"), record.get("master_bill_number")]


# --------------------------------------------------------------------------- decoding


def decode_309(data: bytes, source: str = "309") -> Batch:
    """A 309 transmission as a batch: batch id ISA13, originator GS02, one record per
    shipment (LX loop) named by its shipment control number. Raises Ace309Error naming
    the segment for a transmission the X12 reader refuses."""
    isa = _first(data, source, "ISA")
    gs = _first(data, source, "GS")
    if isa is None or gs is None:
        raise Ace309Error(f"{source}: no ISA/GS envelope: not an X12 transmission")
    context = PipelineContext(NAME, gs.get(2) or isa.get(6), FilerType.CARRIER, ModeOfTransport.TRUCK,
                              DEFAULT_PROFILE, "x12-309", PipelineDefaults())
    records: list[Consignment] = []
    builder: BillBuilder | None = None
    actions: dict[int, Action] = {}
    lx = 0
    for item in read_sets_from_bytes(data, source):
        if isinstance(item, Problem):
            first = item.findings[0]
            raise Ace309Error(f"{first.location}: {first.message}")
        header, seg = item
        if seg.tag == "ST":
            if header.type != "309":
                raise Ace309Error(f"{header.location}: ST01 {header.type!r}: not a 309")
            builder = BillBuilder(header)
        if builder is None:
            continue
        if seg.tag == "LX":
            lx = seg.number
        elif seg.tag == "M13" and lx:
            actions[lx] = ACTIONS.get(seg.get(3), Action.ADD)
        bill = builder.feed(seg)
        if bill is not None:
            mapped = map_bill(bill, context, None)
            fields = {k: v for k, v in (mapped.record or {}).items() if v is not None}
            fields.pop("filer_type", None)
            records.append(Consignment.model_validate({
                **fields, "filer_type": FilerType.CARRIER,
                "transaction_id": bill.house_bill or f"{source}:segment {bill.position}",
                "action": actions.get(bill.position, Action.ADD)}))
    return Batch(batch_id=isa.get(13), originator_code=context.originator_code, profile=DEFAULT_PROFILE,
                 sent_at=_sent_at(isa), records=records)


def _first(data: bytes, source: str, tag: str) -> Segment | None:
    for item in segments(io.BytesIO(data), source):
        if isinstance(item, Segment) and item.tag == tag:
            return item
    return None


def _sent_at(isa: Segment) -> datetime:
    try:
        return datetime.strptime(isa.get(9) + isa.get(10), "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)


@hookimpl
def register_serializers(register: Any) -> None:
    register(NAME, AceTruck309, options=AceTruckOptions, description="ACE truck eManifest: X12 309 out (one trip a transmission); "
             "997, 355 and 350 back")

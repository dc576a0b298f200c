"""ACE truck trips: one truck's crossing (conveyance, crew, port, estimated arrival) and
the shipment control numbers that ride on it, read from a trip file (TOML or JSON).

Promises: a trip file is validated whole before anything is sent, and every problem is
one line naming the file and the field (`trips/T1.toml: crew.0.date_of_birth: ...`);
crew data (names, dates of birth, documents) never appears in a message or a log, only
the field that is wrong. `TripBook` finds the trip of a shipment control number.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from s321.errors import S321Error
from s321.references import ref_key

SCAC = re.compile(r"[A-Z]{2,4}\Z")
"""X12 element 140 (Standard Carrier Alpha Code): ID 2/4 (M10-01)."""
SCN_TAIL_MAX = 12
"""A shipment control number is the carrier's SCAC plus up to 12 characters (issue 20;
the PAPS label carries it)."""
LEAD = timedelta(hours=1)
"""ACE wants a trip at least one hour before the truck reaches the port..."""
LEAD_FAST = timedelta(minutes=30)
"""...and 30 minutes before for a FAST (Free and Secure Trade) trip."""
TRIP_SUFFIXES = (".toml", ".json")


class TripError(S321Error):
    """A trip file that cannot be used; `problems` lists each as `FILE: field: what`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LicensePlate(_Model):
    number: str = Field(min_length=1, max_length=30)
    state_or_province: str | None = Field(default=None, min_length=2, max_length=2,
                                          description="Two-letter code of the issuing state or province.")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2 of the issuing country.")


class Conveyance(_Model):
    """The truck (tractor) that crosses."""

    number: str = Field(min_length=1, max_length=30, description="The carrier's unit number.")
    vin: str | None = Field(default=None, min_length=1, max_length=30,
                            description="Vehicle identification number (VEH02, AN 1/30).")
    license_plate: LicensePlate | None = None


class Equipment(_Model):
    """A trailer or container the truck pulls."""

    number: str = Field(min_length=1, max_length=15, description="VID03 (AN 1/15) and VEH09.")
    license_plate: LicensePlate | None = None


class TravelDocument(_Model):
    type: Literal["fast_card", "passport", "passport_card", "enhanced_drivers_license", "nexus",
                  "sentri", "permanent_resident_card", "drivers_license"]
    number: str = Field(min_length=1, max_length=30)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2 of the issuer.")
    state_or_province: str | None = Field(default=None, min_length=2, max_length=2)


class CrewMember(_Model):
    """A driver or crew member: personal data (never logged, files 0600)."""

    role: Literal["driver", "passenger"] = "driver"
    first_name: str = Field(min_length=1, max_length=35)
    last_name: str = Field(min_length=1, max_length=60)
    date_of_birth: date
    gender: Literal["M", "F", "X"] | None = None
    citizenship: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2.")
    documents: list[TravelDocument] = Field(min_length=1)

    def __repr__(self) -> str:  # a crew member printed by mistake shows no personal data
        return f"CrewMember(role={self.role!r}, [redacted])"

    __str__ = __repr__


class Trip(_Model):
    """One trip: the file's content, validated."""

    trip_number: str = Field(min_length=3, max_length=25,
                             description="The carrier's trip number, starting with its SCAC.")
    scac: str = Field(description="The carrier's Standard Carrier Alpha Code (2 to 4 letters).")
    port_of_arrival: str = Field(pattern=r"^\d{4}$",
                                 description="CBP port code of the port of arrival (Schedule D, 4 digits).")
    estimated_arrival: datetime = Field(description="When the truck reaches the port, with its UTC offset.")
    fast: bool = Field(default=False, description="A FAST trip: ACE wants it 30 minutes ahead, not one hour.")
    usage: Literal["test", "production"] = Field(
        default="test", description="ISA15: test until CBP certified the connection for production.")
    receiver_id: str = Field(default="CBP", min_length=1, max_length=15,
                             description="ISA08/GS03: the receiver's id, as CBP or the service provider gives it.")
    conveyance: Conveyance
    equipment: list[Equipment] = Field(default_factory=list)
    crew: list[CrewMember] = Field(min_length=1)
    shipments: list[str] = Field(default_factory=list,
                                 description="Shipment control numbers on this trip (SCAC + up to 12 characters).")
    references: dict[str, str] = Field(
        default_factory=dict,
        description="A reference the records carry (order name, house bill, tracking number) -> its "
                    "shipment control number, for records whose own fields hold none.")

    @field_validator("scac")
    @classmethod
    def _scac(cls, value: str) -> str:
        if not SCAC.match(value):
            raise ValueError(f"{value!r} is not a SCAC: 2 to 4 capital letters")
        return value

    @field_validator("estimated_arrival")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the UTC offset too (2026-12-07T18:00:00-05:00): a port's local "
                             "time alone is ambiguous")
        return value

    @model_validator(mode="after")
    def _numbers(self) -> Trip:
        problems = []
        if not self.trip_number.startswith(self.scac):
            problems.append(f"trip_number {self.trip_number!r} must start with the SCAC {self.scac!r}")
        for i, scn in enumerate(self.shipments):
            problem = scn_problem(scn, self.scac)
            if problem:
                problems.append(f"shipments.{i}: {problem}")
        for ref, scn in self.references.items():
            problem = scn_problem(scn, self.scac)
            if problem:
                problems.append(f"references.{ref}: {problem}")
        if len(set(self.shipments)) != len(self.shipments):
            problems.append("shipments: a shipment control number is listed twice")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def drivers(self) -> list[CrewMember]:
        return [c for c in self.crew if c.role == "driver"]

    def lead_time(self) -> timedelta:
        return LEAD_FAST if self.fast else LEAD

    def deadline(self) -> datetime:
        """The latest time ACE wants the trip by."""
        return self.estimated_arrival - self.lead_time()

    def timing_problem(self, now: datetime | None = None) -> str | None:
        """Why the trip is too late to file now, or None."""
        now = now or datetime.now(UTC)
        if now <= self.deadline():
            return None
        minutes = int(self.lead_time().total_seconds() // 60)
        late = "has passed" if now >= self.estimated_arrival else "is less than " + (
            f"{minutes} minutes" if self.fast else "one hour") + " away"
        return (f"estimated_arrival {self.estimated_arrival.isoformat()} {late}: ACE wants a "
                f"{'FAST ' if self.fast else ''}trip at least {minutes} minutes before arrival; "
                "set the new estimated arrival")


UNANSWERED = frozenset({"queued", "sent"})
"""Ledger states of a shipment ACE has not answered yet."""


def at_risk(trip: Trip, states: dict[str, str | None], now: datetime, warn_minutes: float) -> str | None:
    """Why a trip whose shipments are queued or unanswered may reach ACE too late, or None:
    `states` maps each shipment control number to its record's ledger state (None: no
    record yet)."""
    waiting = sorted(scn for scn, state in states.items() if state in UNANSWERED)
    left = trip.deadline() - now
    if not waiting or left > timedelta(minutes=warn_minutes):
        return None
    minutes = max(0, int(left.total_seconds() // 60))
    return (f"trip {trip.trip_number} is at risk of reaching ACE late: {len(waiting)} shipments "
            f"({', '.join(waiting[:5])}{', ...' if len(waiting) > 5 else ''}) not answered yet and "
            f"{minutes} minutes left before its deadline")


def exposed(path: Path) -> str | None:
    """Why a trip file (crew data: personal) is readable by others than its owner, or None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return (f"{path}: holds crew data but its mode is {mode:04o}: make it owner-only "
                f"(chmod 600 {path})")
    return None


def scn_problem(scn: str, scac: str) -> str | None:
    """Why `scn` is not a shipment control number of the carrier `scac`, or None."""
    if not scn.startswith(scac):
        return f"{scn!r} must start with the carrier's SCAC {scac!r}"
    tail = scn[len(scac):]
    if not tail or len(tail) > SCN_TAIL_MAX or not tail.isalnum() or not tail.isascii():
        return f"{scn!r}: after the SCAC come 1 to {SCN_TAIL_MAX} letters or digits"
    return None


def load_trip(path: Path) -> Trip:
    """Read and validate one trip file; raises TripError naming the file and each field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TripError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    try:
        if path.suffix.lower() == ".json":
            table: Any = json.loads(raw.decode("utf-8"))
        else:
            table = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TripError([f"{path}: not UTF-8 text"]) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise TripError([f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {exc}"]) from None
    if not isinstance(table, dict):
        raise TripError([f"{path}: a trip file holds one table (object) of trip fields"])
    try:
        return Trip.model_validate(table)
    except ValidationError as exc:
        raise TripError([_problem(path, err) for err in exc.errors(include_input=False)]) from None


def _problem(path: Path, err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(trip)"
    # pydantic's message never quotes the input here (include_input=False); ours quote
    # only numbers and codes, never a crew member's data.
    return f"{path}: {where}: {err['msg'].removeprefix('Value error, ')}"


class TripBook:
    """The trips of a folder (or of given files): which trip a shipment rides on.

    Promises: every file is read and validated when the book is made, and all their
    problems are raised together (TripError); a shipment control number listed by two
    trips is a problem, so a shipment can never ride on two trips at once."""

    def __init__(self, trips: dict[Path, Trip]):
        self.trips = trips
        self._by_scn: dict[str, Trip] = {}
        self._scn_of_ref: dict[str, str] = {}
        problems = []
        for path, trip in trips.items():
            for scn in trip.shipments:
                other = self._by_scn.get(scn)
                if other is not None and other is not trip:
                    problems.append(f"{path}: shipments: {scn} is on trip {other.trip_number} too")
                self._by_scn[scn] = trip
            for ref, scn in trip.references.items():
                self._scn_of_ref[ref_key(ref)] = scn
        if problems:
            raise TripError(problems)

    @classmethod
    def load(cls, paths: Iterable[Path]) -> TripBook:
        """Trip files, and every *.toml / *.json in a folder given."""
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                files += sorted(f for f in p.iterdir() if f.suffix.lower() in TRIP_SUFFIXES and f.is_file())
            else:
                files.append(p)
        trips: dict[Path, Trip] = {}
        problems: list[str] = []
        for f in files:
            try:
                trips[f] = load_trip(f)
            except TripError as exc:
                problems += exc.problems
        if problems:
            raise TripError(problems)
        return cls(trips)

    def trip_of(self, scn: str) -> Trip | None:
        return self._by_scn.get(scn)

    def scn_for(self, references: Iterable[str | None], scac: str | None = None) -> str | None:
        """The shipment control number of a record: one of its own references that is
        an SCN on a trip, else the SCN a trip file maps one of them to."""
        refs = [r for r in references if r]
        for ref in refs:
            if ref in self._by_scn and (scac is None or ref.startswith(scac)):
                return ref
        for ref in refs:
            scn = self._scn_of_ref.get(ref_key(ref))
            if scn is not None:
                return scn
        return None

    def references_of(self, scn: str) -> list[str]:
        """The names a trip file maps to `scn` (order names, bills), and the SCN itself."""
        return [scn] + [ref for ref, s in self._scn_of_ref.items() if s == scn]

"""Regime profiles: which record elements each filer type must send, as data.

A profile is a TOML file (bundled ones live in `config/profiles/`, more can be named by
`profile_paths` in the config). Adding a regime is adding a file, not code. See
`config/profiles/pilot-2019.toml` for the format.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import types
import typing

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from s321.record import Consignment, FilerType

DEFAULT = "pilot-2019"


class ProfileError(Exception):
    pass


class OneOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[str] = Field(min_length=2)
    report_on: str


class When(BaseModel):
    """Extra requirements that apply when a record field has a given value."""

    model_config = ConfigDict(extra="forbid")
    field: str
    equals: str
    required: list[str] = []


class ElementSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files_as: FilerType | None = None
    required: list[str] = []
    one_of: list[OneOf] = []
    conditional: dict[str, str] = {}
    optional: list[str] = []
    when: list[When] = []


Level = Literal["error", "warning", "off"]
"""How a rule of a profile reports: an error (the record is not filed), a warning, or not at all."""


class UsAddress(BaseModel):
    """The rules for the ultimate deliver-to's U.S. address, each at its own level:
    a first line, a city, a USPS state code and a ZIP code (5 digits or ZIP+4)."""

    model_config = ConfigDict(extra="forbid")
    line1: Level = "error"
    city: Level = "error"
    state: Level = "error"
    zip: Level = "error"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    value_limit_usd: Decimal | None = Decimal(800)
    hts_digits: Literal[6, 8, 10] = 6
    """Digits an HTS code must have where the profile requires one (6, 8 or 10).
    Where it does not, any well-formed code (6, 8 or 10 digits) is accepted."""
    us_address: UsAddress = UsAddress()
    all: ElementSet = ElementSet()
    filer: dict[FilerType, ElementSet] = {}

    @model_validator(mode="after")
    def _fields_exist(self) -> Profile:
        """Every path names a record field: a misspelt one would make every record
        invalid ("nosuch: required"), or a rule that never applies, with no word at load."""
        sets = [("all", self.all), *((f"filer.{k}", v) for k, v in self.filer.items())]
        for where, element_set in sets:
            paths = [("required", p) for p in element_set.required]
            paths += [("optional", p) for p in element_set.optional]
            paths += [("conditional", p) for p in element_set.conditional]
            for rule in element_set.one_of:
                paths += [("one_of.fields", p) for p in rule.fields] + [("one_of.report_on", rule.report_on)]
            for rule in element_set.when:
                paths += [("when.field", rule.field)] + [("when.required", p) for p in rule.required]
            for key, path in paths:
                problem = record_path_problem(path)
                if problem:
                    raise ValueError(f"{where}.{key}: {problem}")
        return self

    def element_sets(self, filer_type: FilerType | None,
                     files_as: FilerType | None = None) -> list[ElementSet]:
        """The sets that apply to a filer: the common set, then its own (or, for a
        broker or forwarder, that of the role it files in)."""
        sets = [self.all]
        own = self.filer.get(filer_type) if filer_type else None
        role = files_as or (own.files_as if own else None)
        if own is not None:
            sets.append(own)
        if role is not None and role != filer_type and role in self.filer:
            sets.append(self.filer[role])
        return sets


def record_path_problem(path: str) -> str | None:
    """Why `path` (`seller.address`, `items.*.hts_code`) names no field of the record;
    None when it names one."""
    kind: Any = Consignment
    done: list[str] = []
    for part in path.split("."):
        kind = _unwrap_optional(kind)
        if part == "*":
            if typing.get_origin(kind) is not list:
                return f"{path!r}: {'.'.join(done) or 'the record'} is not a list, so '*' has no items"
            kind = typing.get_args(kind)[0]
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            if part not in kind.model_fields:
                close = difflib.get_close_matches(part, list(kind.model_fields), n=1, cutoff=0.6)
                hint = f"; did you mean {'.'.join([*done, close[0]])!r}?" if close else ""
                return f"{path!r}: no record field {'.'.join([*done, part])!r}{hint}"
            kind = kind.model_fields[part].annotation
        elif typing.get_origin(kind) is list:
            return f"{path!r}: {'.'.join(done)} is a list: its items' fields are {'.'.join(done)}.*.{part}"
        else:
            return f"{path!r}: {'.'.join(done)} has no fields"
        done.append(part)
    return None


def _unwrap_optional(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


def _bundled() -> dict[str, Path]:
    folder = resources.files("s321.profiles")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def available(extra_dirs: Iterable[Path] = ()) -> dict[str, Path]:
    """Profile name -> file, the bundled ones first, overridden by `extra_dirs`."""
    found = _bundled()
    for folder in extra_dirs:
        for p in sorted(Path(folder).glob("*.toml")):
            found[p.stem] = p
    return found


def load(name_or_path: str, known: dict[str, Path] | None = None) -> Profile:
    known = available() if known is None else known
    path = known.get(name_or_path)
    if path is None and name_or_path.endswith(".toml") and Path(name_or_path).is_file():
        path = Path(name_or_path)
    if path is None:
        close = difflib.get_close_matches(name_or_path, list(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProfileError(
            f"unknown profile {name_or_path!r}{hint} (known: {', '.join(sorted(known))})"
        )
    return _load_file(path)


def toml_text(data: bytes) -> str:
    """The text of a TOML file (a profile, a config) from its bytes: UTF-8, with a
    leading byte-order mark dropped (Windows editors write one; tomllib refuses it).
    Raises ValueError naming the line and column of the first byte that is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]  # valid UTF-8: the column counts characters, as tomllib's do
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8")) + 1
        raise ValueError(f"not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}, column {column}); "
                         "save it as UTF-8") from None
    return text.removeprefix("\ufeff")


@lru_cache(maxsize=64)
def _load_file(path: Path) -> Profile:
    try:
        raw = tomllib.loads(toml_text(path.read_bytes()))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not TOML
        raise ProfileError(f"{path}: {exc}") from None
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")  # pydantic's wording of our own ValueError
        raise ProfileError(f"{path}: {loc + ': ' if loc else ''}{message}") from None

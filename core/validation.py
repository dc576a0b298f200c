"""Validation of one consignment: the regime profile's presence rules, its U.S.
deliver-to address and HTS rules, the value rules of `s321.rules`, then any extra
validators, as one list of findings.

Promises: one problem, one finding (a field the source or mapper already reported as
an error is not reported again here); every finding says what to supply and, where
the mapper or the pipeline's defaults say so, where to supply it. Presence answers as
if the record were first dumped to a dict (`model_dump`) and each path looked up in
it; each profile is compiled once per record class and filer type."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from itertools import repeat
from operator import attrgetter, is_
from types import UnionType
from typing import Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel

from s321 import rules
from s321.contracts import PipelineDefaults, Validator
from s321.findings import Finding, Severity, error, warning
from s321.regimes import Profile
from s321.record import Consignment, FilerType


def validate(c: Consignment, profile: Profile, rates: dict[str, Decimal],
             files_as: FilerType | None = None, extra: Iterable[Validator] = (),
             prior: Collection[Finding] = (), hints: Mapping[str, str] | None = None) -> list[Finding]:
    """Every finding about `c` under `profile`.

    `prior`: what the source and mapper already found about the unit; a finding on a
    field they reported as an error is left out. `hints`: field path (`items.*.x` for
    every item) -> where the source takes it from, written for a person ("add the order
    to the tracking table (`source.tracking`)"); it completes the message of every
    finding on that field or below it. Fields the pipeline's `defaults` can fill get a
    hint saying so when the mapper gives none."""
    findings = presence(c, profile, files_as)
    findings += deliver_to_address(c, profile)
    findings += hts_digits(c, profile, files_as)
    missing = {f.field for f in findings if f.code == "missing-required"}
    findings += [f for f in rules.check(c, rates, profile.value_limit_usd)
                 if f.field not in missing]  # a missing currency has no rate either
    for validator in extra:
        findings.extend(validator.validate(c))
    if prior:
        findings = without_repeats(findings, prior)
    return with_hints(findings, hints or {})


def presence(c: Consignment, profile: Profile, files_as: FilerType | None = None) -> list[Finding]:
    # Paths are looked up on the model itself: dumping it first cost more than all the
    # look-ups together. A model answers like the dict `model_dump` would make of it.
    out: list[Finding] = []
    seen: set[str] = set()
    sets, all_required, all_conditional = _plan(profile, type(c), c.filer_type, files_as)
    # Most records have everything: one quick check for every set's paths at once.
    required_present = all_required is not None and all_required(c)
    conditional_present = all_conditional is not None and all_conditional(c)
    for es in sets:
        missing: list[tuple[str, ...]] = []
        if not required_present and (es.all_required is None or not es.all_required(c)):
            for walk in es.required:
                walk(c, (), missing)
        for parts, equals, walks in es.when:
            if str(_plain(_value_at(c, parts))) == equals:
                for walk in walks:
                    walk(c, (), missing)
        for path in missing:
            concrete = ".".join(path)
            if concrete not in seen:
                seen.add(concrete)
                out.append(error("missing-required", concrete, es.required_message))
        for values, fields, report_on, message in es.one_of:
            if all(_empty(v) for v in _values(c, values, fields)):
                out.append(error("missing-one-of", report_on, message))
        if not conditional_present and (es.all_conditional is None or not es.all_conditional(c)):
            for walk, message in es.conditional:
                missing = []
                walk(c, (), missing)
                for path in missing:
                    out.append(warning("missing-conditional", ".".join(path), message))
    return out


# --------------------------------------------------------------------------- one problem, one finding

_MISSING_CODES = frozenset({"missing-required", "missing-one-of", "missing-conditional"})


def without_repeats(findings: list[Finding], prior: Iterable[Finding]) -> list[Finding]:
    """`findings` without those on a field that `prior` reports as an error: the same
    field for any code, and for a missing value also a field above or below it (a
    quantity the mapper could not read is not also missing; a seller whose vendor row
    is broken is not also missing its address)."""
    failed = {f.field for f in prior if f.severity is Severity.ERROR and f.field}
    if not failed:
        return findings
    return [f for f in findings if not _repeats(f, failed)]


def _repeats(f: Finding, failed: set[str]) -> bool:
    if f.field in failed:
        return True
    if f.code not in _MISSING_CODES:
        return False
    return any(other.startswith(f.field + ".") or f.field.startswith(other + ".") for other in failed)


# --------------------------------------------------------------------------- where to supply it


def _defaults_hints() -> dict[str, str]:
    """A hint for each field the pipeline's `defaults` can fill (items' currency and
    country of origin are per item)."""
    per_item = {"currency", "country_of_origin"}
    hints = {}
    for name in PipelineDefaults.model_fields:
        path = f"items.*.{name}" if name in per_item else name
        hints[path] = (f"supply it in the input, or for every consignment of the pipeline as "
                       f"`defaults.{name}` in [pipelines.NAME.defaults] (docs/configuration.md)")
    return hints


_DEFAULTS_HINTS = _defaults_hints()


_NOT_IN_THE_INPUT = frozenset({"unknown-currency-rate", "not-section-321"})
"""Codes whose fix is not where the field comes from (a rate in the config; another
kind of entry): their messages say what to do without a hint."""


def with_hints(findings: list[Finding], hints: Mapping[str, str]) -> list[Finding]:
    """Each finding with the hint for its field (or the nearest field above it) after
    its message: the mapper's hints first, then those of the pipeline's defaults."""
    if not findings:
        return findings
    out = []
    for f in findings:
        if f.code in _NOT_IN_THE_INPUT:
            out.append(f)
            continue
        hint = _hint_for(f.field, hints) or _hint_for(f.field, _DEFAULTS_HINTS)
        if hint and hint not in f.message:
            f = f.model_copy(update={"message": f"{f.message}; {hint}"})
        out.append(f)
    return out


def _hint_for(field: str, hints: Mapping[str, str]) -> str | None:
    if not field or not hints:
        return None
    parts = field.split(".")
    generic = ["*" if part.isdigit() else part for part in parts]
    for n in range(len(parts), 0, -1):
        hint = hints.get(".".join(parts[:n])) or hints.get(".".join(generic[:n]))
        if hint:
            return hint
    return None


# --------------------------------------------------------------------------- the U.S. deliver-to address

USPS_STATES = frozenset("""
    AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV
    NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY
    DC PR VI GU AS MP FM MH PW AA AE AP""".split())
"""USPS state codes: the 50 states, DC, Puerto Rico, the territories and freely
associated states (VI GU AS MP FM MH PW) and the military 'states' AA, AE and AP."""
_ZIP = re.compile(r"[0-9]{5}(?:[- ]?[0-9]{4})?")
_ADDRESS = "ultimate_deliver_to.address"


def deliver_to_address(c: Consignment, profile: Profile) -> list[Finding]:
    """The U.S. address rules of the profile (`[us_address]`: each `error`, `warning`
    or `off`) on the ultimate deliver-to. Nothing when there is no address (presence
    says so where the profile requires one) or when it is outside the U.S. (the value
    rules say so). Values are never echoed: an address is personal data."""
    party = c.ultimate_deliver_to
    address = party.address if party is not None else None
    if address is None:
        return []
    country = (address.country or "").upper()
    if country and country not in rules.US_CUSTOMS_TERRITORY:
        return []
    levels = profile.us_address
    out: list[Finding] = []

    def report(rule: str, code: str, field: str, message: str) -> None:
        level = getattr(levels, rule)
        if level != "off":
            out.append(Finding(code=code, field=f"{_ADDRESS}.{field}", severity=Severity(level),
                               message=f"{message} ({profile.name})"))

    if not address.line1:
        report("line1", "deliver-to-missing-line1", "line1",
               "the U.S. deliver-to address has no first line: give the street and number "
               "(or PO box) in line1")
    if not address.city:
        report("city", "deliver-to-missing-city", "city", "the U.S. deliver-to address has no city")
    state = (address.state_or_province or "").strip().upper()
    if not state:
        report("state", "deliver-to-missing-state", "state_or_province",
               "the U.S. deliver-to address has no state: give its two-letter USPS code "
               "(e.g. NY, DC, PR, AE)")
    elif state not in USPS_STATES:
        report("state", "deliver-to-invalid-state", "state_or_province",
               "the U.S. deliver-to state is not a USPS state code: give the two-letter "
               "code (e.g. NY, DC, PR, GU, or AA/AE/AP for military mail)")
    postal = (address.postal_code or "").strip().lstrip("'")
    if not postal:
        report("zip", "deliver-to-missing-zip", "postal_code",
               "the U.S. deliver-to address has no ZIP code: give 5 digits or ZIP+4")
    elif not _ZIP.fullmatch(postal):
        report("zip", "deliver-to-invalid-zip", "postal_code",
               "the U.S. deliver-to ZIP code is not 5 digits or ZIP+4 (e.g. 62701 or 62701-1234)")
    return out


# --------------------------------------------------------------------------- HTS digits

_WELL_FORMED_HTS = re.compile(r"[0-9]{6}(?:[0-9]{2}){0,2}")


def hts_digits(c: Consignment, profile: Profile, files_as: FilerType | None = None) -> list[Finding]:
    """Where the profile requires an HTS code of this filer, a well-formed code with
    fewer digits than the profile's `hts_digits` is an error (`hts-too-short`). Where it
    does not require one, any well-formed code is enough; a malformed code is the value
    rules' `invalid-hts` either way."""
    need = profile.hts_digits
    if need <= 6 or not any("items.*.hts_code" in es.required
                            for es in profile.element_sets(c.filer_type, files_as)):
        return []
    out = []
    for i, item in enumerate(c.items):
        code = rules.normalise_hts(item.hts_code or "")
        if code and _WELL_FORMED_HTS.fullmatch(code) and len(code) < need:
            out.append(error("hts-too-short", f"items.{i}.hts_code",
                             f"{profile.name} needs the {need}-digit HTSUS number; this code "
                             f"has {len(code)} digits: give the full {need}-digit classification"))
    return out


_Check = Callable[[Any], bool]
_Values = Callable[[Any], tuple[Any, ...]]


class _SetPlan(NamedTuple):
    """One element set, ready to check: each path compiled into a walk (`_walker`),
    each message written once, and a quick check per group of paths (`_all_present`)
    that spares the walks when nothing is missing, as in most records."""

    required: tuple[_Walk, ...]
    all_required: _Check | None
    required_message: str
    when: tuple[tuple[tuple[str, ...], str, tuple[_Walk, ...]], ...]
    """(field, value it must have, the walks of what it then requires)"""
    one_of: tuple[tuple[_Values | None, tuple[tuple[str, ...], ...], str, str], ...]
    """(quick getter of the fields' values, the fields, report_on, message)"""
    conditional: tuple[tuple[_Walk, str], ...]
    all_conditional: _Check | None


class _Plan(NamedTuple):
    """A profile's element sets for one record class, filer type and role, with a quick
    check over the required (and one over the conditional) paths of all of them."""

    sets: list[_SetPlan]
    all_required: _Check | None
    all_conditional: _Check | None


_PLANS: dict[tuple[int, type, FilerType | None, FilerType | None], tuple[Profile, _Plan]] = {}
"""Plans by profile (its id; the entry keeps the profile alive, so the id stays its
own), record class, filer type and role. A profile is not changed once loaded."""


def _plan(profile: Profile, root: type, filer_type: FilerType | None,
          files_as: FilerType | None) -> _Plan:
    key = (id(profile), root, filer_type, files_as)
    entry = _PLANS.get(key)
    if entry is not None and entry[0] is profile:
        return entry[1]
    if len(_PLANS) > 512:  # profiles made on the fly (tests): keep the cache small
        _PLANS.clear()
    who = filer_type.value if filer_type else "every filer"
    if files_as and files_as != filer_type:
        who = f"{who} filing as {files_as.value}"
    plan = []
    for es in profile.element_sets(filer_type, files_as):
        fields_of = [tuple(_split(f) for f in g.fields) for g in es.one_of]
        plan.append(_SetPlan(
            required=tuple(_walker(_split(p)) for p in es.required),
            all_required=_all_present(root, [_split(p) for p in es.required]),
            required_message=f"required by {profile.name} for {who}",
            when=tuple((_split(w.field), w.equals, tuple(_walker(_split(p)) for p in w.required))
                       for w in es.when),
            one_of=tuple((_getter(root, fields), fields, g.report_on,
                          f"at least one of {', '.join(g.fields)} is required")
                         for g, fields in zip(es.one_of, fields_of)),
            conditional=tuple((_walker(_split(p)), f"{profile.name} asks for it: {text}")
                              for p, text in es.conditional.items()),
            all_conditional=_all_present(root, [_split(p) for p in es.conditional]),
        ))
    sets = profile.element_sets(filer_type, files_as)
    whole = _Plan(plan,
                  _all_present(root, [_split(p) for es in sets for p in es.required]),
                  _all_present(root, [_split(p) for es in sets for p in es.conditional]))
    _PLANS[key] = (profile, whole)
    return whole


# --------------------------------------------------------------------------- quick checks
# A validated model holds, in each field, what the field's annotation says. So a path
# whose every part is a field, through `Model | None` annotations, can be read with one
# `attrgetter` (C code) for many paths at once: when every value is there and none is
# empty, the walks would find nothing; in any other case they run and decide.


def _values(c: Any, getter: _Values | None, fields: tuple[tuple[str, ...], ...]) -> Iterable[Any]:
    if getter is not None:
        try:
            return getter(c)
        except Exception:  # a None on the way (or an odd value): the slow way decides
            pass
    return [_value_at(c, parts) for parts in fields]


def _all_present(root: type, paths: list[tuple[str, ...]]) -> _Check | None:
    """A check that is True only if no path in `paths` leads to an empty value of a
    `root` record (False: look with the walks). None when some path is not plain
    fields (at most one `*`, over a list of models)."""
    plain: list[tuple[str, ...]] = []
    listed: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for parts in paths:
        if "*" not in parts:
            plain.append(parts)
            continue
        star = parts.index("*")
        item = _list_item(root, parts[:star])
        if item is None or star == len(parts) - 1:
            return None
        listed.setdefault(parts[:star], []).append(parts[star + 1:])
    plain_empty = _any_empty(root, plain)
    lists = []
    for prefix, suffixes in listed.items():
        item_empty = _any_empty(_list_item(root, prefix), suffixes)  # type: ignore[arg-type]
        if item_empty is None:
            return None
        lists.append((attrgetter(".".join(prefix)), item_empty))
    if plain_empty is None:
        return None

    def all_present(c: Any) -> bool:
        try:
            if plain_empty(c):
                return False
            for get_list, item_empty in lists:
                for item in get_list(c):
                    if item_empty(item):
                        return False
        except Exception:  # a None on the way (or an odd value): the walks decide
            return False
        return True

    return all_present


def _any_empty(root: type, paths: list[tuple[str, ...]]) -> _Check | None:
    """A check: does one of `paths` (plain fields of a `root` model) hold an empty
    value? It raises when a path leads through None. Each kind of value is told in C:
    text, lists, dicts and models with fields are empty exactly when they are false
    (`all()`); numbers, booleans and times only when None (`is`: 0 and False are not
    empty, and comparing a Decimal with anything else goes through Python's ABCs);
    anything else is compared with the empty values. None when `_getter` is."""
    groups: tuple[list[tuple[str, ...]], ...] = ([], [], [])  # false, None, compared
    for parts in paths:
        annotation = _annotation_at(root, parts)
        if annotation is _MISSING:
            return None
        kinds = {_emptiness(t) for t in _options(annotation)}
        groups[kinds.pop() if len(kinds) == 1 else 2].append(parts)
    getters = [_getter(root, group) for group in groups]
    if None in getters:
        return None
    get_false, get_none, get_other = getters  # type: ignore[misc]
    false, none, other = (bool(group) for group in groups)

    def any_empty(node: Any) -> bool:
        if false and not all(get_false(node)):
            return True
        if none and any(map(is_, get_none(node), _NONES)):
            return True
        if other:
            values = get_other(node)
            return None in values or "" in values or [] in values or {} in values
        return False

    return any_empty


_NONES = repeat(None)
_NEVER_EQUAL_TO_EMPTY = (int, float, Decimal, datetime, date, time)
"""Types whose values are empty only when None (bool is an int)."""


def _emptiness(annotation: Any) -> int:
    """How a value of this type is told empty: 0 when exactly if false, 1 when only
    if None, 2 by comparing it with each empty value."""
    if annotation in (list, dict) or get_origin(annotation) in (list, dict):
        return 0
    if not isinstance(annotation, type):
        return 2
    if issubclass(annotation, str) or (issubclass(annotation, BaseModel) and _kind(annotation)):
        return 0  # (a str enum too: its value is its text)
    return 1 if issubclass(annotation, _NEVER_EQUAL_TO_EMPTY) else 2


def _getter(root: type, paths: list[tuple[str, ...]] | tuple[tuple[str, ...], ...]) -> _Values | None:
    """`attrgetter` of plain field paths of a `root` model, always giving a tuple; None
    when a path is not fields all the way, or may end on a model without fields (whose
    dump, `{}`, counts as empty)."""
    for parts in paths:
        annotation = _annotation_at(root, parts)
        if annotation is _MISSING or any(_kind(t) == {} for t in _types_in(annotation)):
            return None
    names = [".".join(parts) for parts in paths]
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda c: (one(c),)
    return attrgetter(*names) if names else lambda c: ()


def _list_item(root: type, parts: tuple[str, ...]) -> type | None:
    """The model of the items when `parts` are fields leading to a `list[Model]`."""
    annotation = _annotation_at(root, parts)
    options = _options(annotation) if annotation is not _MISSING else []
    if len(options) == 1 and get_origin(options[0]) is list and get_args(options[0]):
        return _model_in(get_args(options[0])[0])
    return None


def _annotation_at(root: type, parts: tuple[str, ...]) -> Any:
    """The annotation of the field `parts` leads to from a `root` model, through fields
    annotated `Model` or `Model | None`; _MISSING when it does not lead to a field so."""
    cls: Any = root
    annotation: Any = _MISSING
    for head in parts:
        fields = _kind(cls) if cls is not None else None
        if fields is None or fields is _DICT or head not in fields:
            return _MISSING
        annotation = fields[head].annotation
        cls = _model_in(annotation)
    return annotation


def _options(annotation: Any) -> list[Any]:
    """What an annotation allows besides None: `A | B | None` -> [A, B]."""
    union = get_origin(annotation) in (Union, UnionType)
    return [a for a in (get_args(annotation) if union else (annotation,)) if a is not type(None)]


def _model_in(annotation: Any) -> type | None:
    """`Model` of a `Model` or `Model | None` annotation."""
    options = _options(annotation)
    if len(options) == 1 and isinstance(options[0], type) and issubclass(options[0], BaseModel):
        return options[0]
    return None


def _types_in(annotation: Any) -> list[type]:
    args = get_args(annotation)
    if not args:
        return [annotation] if isinstance(annotation, type) else []
    return [t for a in args for t in _types_in(a)]


_MISSING = object()
_DICT = object()
_KINDS: dict[type, Any] = {}
"""Per class: its pydantic fields, _DICT for a dict, None for anything else (looked up
once per class: isinstance against BaseModel goes through ABCMeta and is slow)."""


def _kind(cls: type) -> Any:
    kind = _KINDS.get(cls, _MISSING)
    if kind is _MISSING:
        if issubclass(cls, BaseModel):
            kind = cls.__pydantic_fields__
        else:
            kind = _DICT if issubclass(cls, dict) else None
        _KINDS[cls] = kind
    return kind


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if value.__class__ is str:
        return value == ""
    kind = _kind(type(value))
    if kind is not None and kind is not _DICT:
        return not kind  # a model: its dump is {} only if it has no fields
    return value == "" or value == [] or value == {}


def _child(node: Any, name: str) -> Any:
    """`node[name]` of a model (as its dump would have it) or a dict; _MISSING when
    `node` is neither."""
    kind = _kind(type(node))
    if kind is None:
        return _MISSING
    if kind is _DICT:
        return node.get(name)
    return getattr(node, name) if name in kind else None


def _plain(value: Any) -> Any:
    """A value as `model_dump` would give it (for comparing its text)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _value_at(data: Any, parts: list[str]) -> Any:
    for part in parts:
        data = _child(data, part)
        if data is _MISSING:
            return None
    return data


_Walk = Callable[[Any, tuple[str, ...], list[tuple[str, ...]]], None]


@lru_cache(maxsize=1024)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _walker(parts: tuple[str, ...]) -> _Walk:
    """A walk `(node, path, missing)` that follows `parts` (`items.*.x`: every item)
    from `node`, whose path is `path`, and appends to `missing` the concrete path of
    every empty value it leads to. A missing parent is reported on its own path (so
    `seller.name` on no seller is reported on `seller`); paths come in the order of
    the items. The plain parts up to a `*` are followed in one loop; the rest of the
    path after a `*` is a walk of its own, once per item."""
    star = parts.index("*") if "*" in parts else len(parts)
    plain = parts[:star]
    rest = _walker(parts[star + 1:]) if star < len(parts) else None
    kinds = _KINDS

    def walk(node: Any, path: tuple[str, ...], missing: list[tuple[str, ...]]) -> None:
        for depth, head in enumerate(plain):
            kind = kinds.get(type(node), _MISSING)
            if kind is _MISSING:
                kind = _kind(type(node))
            if kind is None:  # neither a model nor a dict: nothing below it
                missing.append(path + plain[:depth])
                return
            node = node.get(head) if kind is _DICT else getattr(node, head) if head in kind else None
            if node is None:
                missing.append(path + plain[:depth + 1])
                return
        if rest is None:
            if _empty(node):
                missing.append(path + plain)
            return
        # Iterating a dump's dict gives its keys: a model gives its field names.
        kind = kinds.get(type(node), _MISSING)
        if kind is _MISSING:
            kind = _kind(type(node))
        children = list(kind) if kind is not None and kind is not _DICT else node or []
        if children:
            below = path + plain
            for j, child in enumerate(children):
                rest(child, (*below, str(j)), missing)

    return walk

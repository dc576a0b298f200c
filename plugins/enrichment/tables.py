"""The enrichment tables: catalog (by SKU), vendors (by vendor name), tracking (by order).

Each CSV is read once, and again only when its file changes; a bad row never stops a
run: its problems become findings naming `FILE:LINE`, kept with the row that has them.
A row with more fields than its header (a decimal comma such as `0,55` split a cell)
is not used: its key is flagged, so that every record using the key gets the finding.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from s321 import rules
from s321.findings import Finding, error, warning
from s321.logs import get_logger

from .errors import EnrichmentError
from .store import KeyedRow, MemoryStore, Row, SqliteStore, Store, store_rows
from .values import country_code, parse_bool, parse_decimal

log = get_logger(__name__)


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    sku: str
    location: str
    description: str | None = None
    hts_code: str | None = None
    country_of_origin: str | None = None
    product_url: str | None = None
    weight_kg: Decimal | None = None
    findings: tuple[Finding, ...] = ()
    """Problems of the row, with `field` relative to an item (`weight_kg`)."""


@dataclass(frozen=True, slots=True)
class VendorEntry:
    vendor: str
    location: str
    seller: dict[str, Any] | None = None
    marketplace_seller_id: str | None = None
    identified_merchant: bool | None = None
    findings: tuple[Finding, ...] = ()
    """Problems of the row, with `field` a path into the record (`seller.address.country`)."""


@dataclass(frozen=True, slots=True)
class TrackingEntry:
    order: str
    tracking_number: str
    location: str


# --------------------------------------------------------------------------- tables

E = TypeVar("E")


def _header_key(name: str) -> str:
    """'Tracking Number', 'tracking-number' and 'Tracking #' all become comparable."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class TableSpec(Generic[E]):
    """What one kind of table looks like: its columns (with accepted header variants),
    the key column, and how a row becomes an entry."""

    kind: str
    columns: dict[str, tuple[str, ...]]
    key: str
    build: Callable[[Row, str], E]
    normalise_key: Callable[[str], str] = lambda k: k.strip().casefold()
    field: str = ""
    """The record field (relative to an item for the catalog) a flagged key's finding is on."""
    unique: bool = False
    """Two rows with one key are an error on every record using the key (none of them is
    used), not a log line with the first row kept; costs a set of the table's keys."""
    report_without_key: bool = True


@dataclass
class Table(Generic[E]):
    """One loaded table: entries by normalised key, plus problems of rows that could not
    be keyed (reported once, at load). Reloads itself when its file changes. A table of
    more than `store.SPILL_ROWS` rows is kept in a temporary SQLite database."""

    spec: TableSpec[E]
    path: Path
    problems: list[Finding] = field(default_factory=list)
    flagged: dict[str, Finding] = field(default_factory=dict)
    """Normalised keys whose rows are not used (too many fields, or repeated in a
    `unique` table) -> the error a record using the key gets."""
    _store: Store[E] = field(default_factory=lambda: MemoryStore({}))
    _stamp: tuple[int, int] | None = None

    def get(self, key: str | None) -> E | None:
        if not key:
            return None
        return self._store.get(self.spec.normalise_key(key))

    def flag(self, key: str | None) -> Finding | None:
        """The error for a key whose rows are not used, or None."""
        if not key or not self.flagged:
            return None
        return self.flagged.get(self.spec.normalise_key(key))

    @property
    def size(self) -> int:
        """Rows with a key, the first of each key."""
        return len(self._store)

    @property
    def in_database(self) -> bool:
        """Whether the rows are in SQLite rather than in memory."""
        return isinstance(self._store, SqliteStore)

    def refresh(self) -> None:
        """Read the file again if it changed since the last read (a tracking table grows
        as labels are printed). A file that vanished keeps the last good contents."""
        try:
            st = self.path.stat()
        except OSError:
            return
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            try:
                self._load((st.st_mtime_ns, st.st_size))
            except EnrichmentError as exc:
                # Half-written by another program, most likely: keep what we had.
                self._stamp = (st.st_mtime_ns, st.st_size)
                log.warning("enrichment table not reloaded", table=self.spec.kind, problem=str(exc))

    def _too_long(self, key: str, line: int, width: int, header: int) -> Finding:
        return error(
            "enrichment-row-too-long", self.spec.field,
            f"{self.spec.kind} row {self.path}:{line} has {width} fields, its header {header} "
            f"(a decimal comma such as 0,55, or a comma in an unquoted cell?); the row is not "
            f"used: quote that cell or write 0.55, and save the table again",
            f"{self.path}:{line}")

    def _load(self, stamp: tuple[int, int]) -> None:
        spec = self.spec
        with _CsvTable(spec, self.path) as csv_table:
            rows = csv_table.keyed_rows()
            repeats: dict[str, list[int]] = {}
            if spec.unique:
                rows = _noting_repeats(rows, repeats)
            loaded, duplicates = store_rows(self.path, csv_table.columns, spec.build, rows)
        flagged = {key: self._too_long(key, line, width, csv_table.width)
                   for key, line, width in reversed(csv_table.too_long) if key}
        for key, lines in repeats.items():
            flagged.setdefault(key, error(
                "enrichment-duplicate-key", spec.field,
                f"{spec.kind} rows {', '.join(f'{self.path}:{n}' for n in lines)} have the same "
                f"{spec.key}; none of them is used: keep one row per {spec.key}",
                f"{self.path}:{lines[0]}"))
        lines = sorted([(line, False) for line in csv_table.without_key if spec.report_without_key]
                       + [(line, True) for line in duplicates])
        problems = [
            warning("enrichment-duplicate-key", "", f"{spec.kind}: {spec.key} repeats an "
                    f"earlier row; " + ("no row of the key is used" if spec.unique else
                                        "the first row is used"), f"{self.path}:{line}")
            if duplicate else
            error("enrichment-row-without-key", "", f"{spec.kind} row has no {spec.key}; it "
                  f"is not used", f"{self.path}:{line}")
            for line, duplicate in lines]
        problems += [flagged[k] for k in flagged if flagged[k].code == "enrichment-row-too-long"]
        previous = self._store
        self._store, self.problems, self._stamp = loaded, problems, stamp
        self.flagged = flagged
        previous.close()
        for p in problems:  # locations and codes only: rows may hold personal data
            log.warning("enrichment row not used", table=spec.kind, location=p.location,
                        code=p.code)


class _CsvTable:
    """The rows of one enrichment CSV, by the canonical columns the file has. Raises
    EnrichmentError, naming the file and line, for a file that cannot be used at all."""

    def __init__(self, spec: TableSpec[Any], path: Path):
        self.spec, self.path = spec, path
        self.without_key: list[int] = []
        """Lines of non-blank rows without a key, once `keyed_rows` has run."""
        self.too_long: list[tuple[str | None, int, int]] = []
        """(normalised key or None, line, fields) of rows with more fields than the
        header, once `keyed_rows` has run: they are not used."""
        try:
            self._fh = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise EnrichmentError(f"{path}: cannot read the {spec.kind} table: "
                                  f"{exc.strerror or exc}") from None
        try:
            self._reader = csv.reader(self._fh)
            with self._errors():
                header = next(self._reader, None)
            if header is None:
                raise EnrichmentError(f"{path}: the {spec.kind} table is empty (no header row)")
            index = _column_index(spec, path, header)
        except BaseException:
            self._fh.close()
            raise
        self.columns = tuple(index)
        self._index = tuple(index.values())
        self.width = len(header)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def keyed_rows(self) -> Iterator[KeyedRow]:
        """(normalised key, line, values in `columns` order) of each row with a key; blank
        rows are skipped and the lines of rows without a key go to `without_key`."""
        reader, index, normalise = self._reader, self._index, self.spec.normalise_key
        key_at, width = self.columns.index(self.spec.key), max(self._index) + 1
        header = self.width
        with self._errors():
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return
                if len(row) > header and any(cell.strip() for cell in row[header:]):
                    # Cells have moved: every value after the split is in the wrong column.
                    cell = row[key_at] if key_at < len(row) else ""
                    self.too_long.append((normalise(cell) if cell.strip() else None, line, len(row)))
                    continue
                if len(row) >= width:
                    values = [row[i].strip() or None for i in index]
                else:
                    values = [(row[i].strip() or None) if i < len(row) else None for i in index]
                key = values[key_at]
                if key is None:
                    if any(cell.strip() for cell in row):
                        self.without_key.append(line)
                    continue
                yield normalise(key), line, values

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except csv.Error as exc:
            raise EnrichmentError(f"{self.path}:{self._reader.line_num}: the {self.spec.kind} "
                                  f"table is not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise EnrichmentError(f"{self.path}:{_first_line_not_utf8(self.path)}: the "
                                  f"{self.spec.kind} table is not UTF-8 text") from None


def _noting_repeats(rows: Iterator[KeyedRow], repeats: dict[str, list[int]]) -> Iterator[KeyedRow]:
    """`rows`, noting in `repeats` the lines of every key that occurs more than once."""
    first: dict[str, int] = {}
    for row in rows:
        key, line = row[0], row[1]
        seen = first.setdefault(key, line)
        if seen != line:
            repeats.setdefault(key, [seen]).append(line)
        yield row


def _first_line_not_utf8(path: Path) -> int:
    """The line the decoder stumbled on: files are decoded in large chunks for speed, so
    the line is found again by decoding line by line (only for a file that is broken)."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number  # pragma: no cover - the decoder found a problem, so a line has it


def _column_index(spec: TableSpec[Any], path: Path, header: list[str]) -> dict[str, int]:
    seen = {_header_key(h): i for i, h in reversed(list(enumerate(header)))}
    index: dict[str, int] = {}
    for col, variants in spec.columns.items():
        for name in (col, *variants):
            if name in seen:
                index[col] = seen[name]
                break
    if spec.key not in index:
        accepted = ", ".join(repr(v) for v in (spec.key, *spec.columns[spec.key]))
        raise EnrichmentError(f"{path}:1: the {spec.kind} table has no {spec.key!r} column "
                              f"(accepted headers: {accepted})")
    return index


# --------------------------------------------------------------------------- catalog


def _catalog_entry(row: Row, where: str) -> CatalogEntry:
    found: list[Finding] = []
    weight = None
    if row.get("weight_kg"):
        weight = parse_decimal(row["weight_kg"])
        if weight is None:
            found.append(error("enrichment-not-a-number", "weight_kg",
                               "the catalog's weight_kg is not a number (kilograms, e.g. 0.35)",
                               where))
    origin = row.get("country_of_origin")
    if origin:
        code = country_code(origin)
        if code is None:
            found.append(error("invalid-country", "country_of_origin",
                               "the catalog's country_of_origin is not a country "
                               "(ISO alpha-2 such as CN, DE)", where))
        origin = code
    hts = row.get("hts_code")
    return CatalogEntry(
        sku=row["sku"] or "", location=where, description=row.get("description"),
        hts_code=rules.normalise_hts(hts) if hts else None, country_of_origin=origin,
        product_url=row.get("product_url"), weight_kg=weight, findings=tuple(found))


CATALOG = TableSpec(
    kind="catalog",
    columns={
        "sku": ("variant_sku", "lineitem_sku"),
        "description": ("product_description", "title"),
        "hts_code": ("hts", "hs_code", "htsus", "tariff_code", "harmonized_code"),
        "country_of_origin": ("origin", "coo", "origin_country"),
        "product_url": ("url", "listing_url"),
        "weight_kg": ("weight",),
    },
    key="sku",
    build=_catalog_entry,
    normalise_key=lambda k: k.strip(),  # SKUs are case-sensitive in Shopify
    field="sku",
    unique=True,
)


def _name_key(name: str) -> str:
    """Product names compare without case and with runs of spaces as one."""
    return " ".join(name.split()).casefold()


CATALOG_BY_NAME = TableSpec(
    kind="catalog",
    columns={**CATALOG.columns, "name": ("lineitem_name", "product_name", "product")},
    key="name",
    build=_catalog_entry,
    normalise_key=_name_key,
    field="description",
    unique=True,
    report_without_key=False,  # rows keyed by SKU have no name, and need none
)
"""The catalog by product name and variant, as an export writes them (`Lineitem name`,
`name`: "Celadon mug - 350 ml"), for items without a SKU (`catalog_key = "sku-or-name"`)."""


# --------------------------------------------------------------------------- vendors


def _vendor_entry(row: Row, where: str) -> VendorEntry:
    found: list[Finding] = []
    address = {k: row.get(k) for k in ("line1", "line2", "city", "state_or_province", "postal_code")}
    if row.get("country"):
        code = country_code(row["country"] or "")
        if code is None:
            found.append(error("invalid-country", "seller.address.country",
                               "the vendor table's country is not a country (ISO alpha-2 such "
                               "as CN, HK, GB, DE)", where))
        address["country"] = code
    address = {k: v for k, v in address.items() if v}
    seller: dict[str, Any] = {}
    if row.get("seller_name"):
        seller["name"] = row["seller_name"]
    if address:
        seller["address"] = address
    identified = None
    if row.get("identified_merchant"):
        identified = parse_bool(row["identified_merchant"])
        if identified is None:
            found.append(error("enrichment-not-a-boolean", "identified_marketplace_merchant",
                               "the vendor table's identified_merchant must be true or false",
                               where))
    return VendorEntry(vendor=row["vendor"] or "", location=where, seller=seller or None,
                       marketplace_seller_id=row.get("marketplace_seller_id"),
                       identified_merchant=identified, findings=tuple(found))


VENDORS = TableSpec(
    kind="vendors",
    columns={
        "vendor": ("vendor_name",),
        "seller_name": ("seller", "name"),
        "line1": ("address1", "address_line1", "street"),
        "line2": ("address2", "address_line2"),
        "city": (),
        "state_or_province": ("state", "province", "region"),
        "postal_code": ("zip", "postcode", "zip_code"),
        "country": ("country_code",),
        "marketplace_seller_id": ("seller_id",),
        "identified_merchant": ("identified_marketplace_merchant",),
    },
    key="vendor",
    build=_vendor_entry,
    field="seller",
)


# --------------------------------------------------------------------------- tracking


def order_ref(name: str) -> str:
    """Order names compare without '#', case or spaces: label systems write '1001' for
    Shopify's '#1001'."""
    return name.strip().lstrip("#").strip().casefold()


def _tracking_entry(row: Row, where: str) -> TrackingEntry:
    return TrackingEntry(order=row["order"] or "", tracking_number=row.get("tracking_number") or "",
                         location=where)


TRACKING = TableSpec(
    kind="tracking",
    columns={
        "order": ("order_name", "order_number", "order_no", "order_id", "order_ref", "name",
                  "reference"),
        "tracking_number": ("tracking", "tracking_no", "tracking_code", "tracking_id",
                            "tracking_numbers", "tracking_nr"),
    },
    key="order",
    build=_tracking_entry,
    normalise_key=order_ref,
    field="tracking_number",
)


def read_table(spec: TableSpec[E], path: Path | None) -> Table[E] | None:
    """The table of `spec` at `path`, read now; None without a path. Raises
    EnrichmentError, naming the file, for a table that cannot be used at all."""
    if path is None:
        return None
    t = Table(spec, path)
    try:
        st = path.stat()
    except OSError as exc:
        raise EnrichmentError(f"{path}: cannot read the {spec.kind} table: "
                              f"{exc.strerror or exc}") from None
    t._load((st.st_mtime_ns, st.st_size))
    return t

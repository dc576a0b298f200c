"""`shopify-csv`: orders from Shopify's admin "Export orders" CSV, one raw unit per order.

Promises: the file is streamed (one order's rows in memory at a time), with its lines
ended by CRLF, LF or CR alone; columns are found
by header name; each unit's location is the physical line where its first row starts;
a file that is not an orders export is one broken unit naming the missing columns.
An export can be read from any order on (`read_span`, at a position the keys pass gave:
the byte offset and number of the order's first line), with the same units as from its top.
"""

from __future__ import annotations

import csv
from itertools import islice
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from s321.contracts import RawUnit
from s321.findings import Finding, error
from s321.hookspecs import hookimpl

from .shopify.inputs import ShopifyFileSource, broken
from .shopify.mapping import (ShopifyAddress, ShopifyLine, ShopifyMapper, ShopifyOptions,
                              ShopifyOrder, order_key)

NAME = "shopify-csv"

REQUIRED_COLUMNS = (
    "Name", "Currency", "Cancelled at", "Vendor",
    "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku",
    "Shipping Name", "Shipping Address1", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country",
)
"""Columns without which an order cannot be mapped safely (e.g. without `Cancelled at`
cancelled orders would be filed). Every export of the last years has them all.
`Lineitem requires shipping` is not among them: without it every line is filed as goods
that ship, with one warning per order, as for any source that does not give the flag."""

_ORDER_LEVEL = ("Currency", "Created at", "Financial Status")
"""Order-level columns Shopify fills on an order's first row only."""


class ShopifyCsvOptions(ShopifyOptions):
    pattern: str | list[str] = Field(default="*.csv",
                                     description="Glob(s) for a directory path.")


# --------------------------------------------------------------------------- reading


class _Lines:
    """The file's physical lines as text, for csv.reader. Lines that are not UTF-8 are
    decoded with replacement characters and their numbers kept, so that the order they
    belong to gets a finding instead of silently changed text."""

    def __init__(self, fh: IO[bytes], encoding: str = "utf-8", first: int = 1,
                 offset: int = 0, track: bool = False):
        self.bad: list[int] = []
        self.encoding = encoding
        self.first = first
        self.offsets: list[int] = []
        """With `track`: the byte offset of each line read since the last `offset_of`."""
        self._done = first
        lines = _physical_lines(fh, start=offset)
        # A generator: cheaper per line than __next__; the tracked one only for spans.
        # Neither holds this object: a cycle would keep the file's buffers until a full
        # collection, rare with s321.gctune's thresholds (a worker reads many spans).
        self._lines = _decode(_tracked(lines, offset, self.offsets) if track else lines,
                              self.bad, encoding, first)

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def __next__(self) -> str:
        return next(self._lines)

    def offset_of(self, number: int) -> int:
        """The byte offset where line `number` starts: a line read since the previous
        call, which forgets the lines before it (so memory stays that of a unit)."""
        offsets = self.offsets
        drop = number - self._done
        if drop:
            del offsets[:drop]
            self._done = number
        return offsets[0]

    def take_bad(self) -> list[int]:
        bad = self.bad[:]
        self.bad.clear()
        return bad


def _decode(lines: Iterator[bytes], bad: list[int], encoding: str, first: int) -> Iterator[str]:
    for number, raw in enumerate(lines, first):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # Shopify writes a BOM so that Excel reads UTF-8
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            bad.append(number)
            text = raw.decode(encoding, "replace")
        yield text


def _tracked(lines: Iterator[bytes], offset: int, offsets: list[int]) -> Iterator[bytes]:
    for raw in lines:
        offsets.append(offset)
        offset += len(raw)
        yield raw


def _physical_lines(fh: IO[bytes], chunk: int = 1 << 16, start: int = 0) -> Iterator[bytes]:
    """The file's lines from byte `start` (the start of a line), each with its line end.
    A file whose header row ends with a CR alone ends every row so (Excel for Mac's "CSV
    (Macintosh)", which writes a line break inside a cell as LF): it is split at each
    CR, streaming, instead of being read as one line the csv module refuses."""
    fh.seek(0)
    head = fh.read(chunk)
    fh.seek(start)
    cr = head.find(b"\r")
    lf_ends = cr < 0 or cr + 1 >= len(head) or head[cr + 1:cr + 2] == b"\n" or b"\n" in head[:cr]
    del head  # not kept while the file is read
    if lf_ends:
        yield from fh
        return
    rest = b""
    while data := fh.read(chunk):
        *lines, rest = (rest + data).split(b"\r")
        for line in lines:
            yield line + b"\r"
    if rest:
        yield rest


class _Columns:
    """Column positions by header name (case and surrounding spaces ignored)."""

    def __init__(self, header: list[str]):
        self.width = len(header)
        self._folded: dict[str, int] = {}
        for i, name in enumerate(header):
            self._folded.setdefault(name.strip().casefold(), i)
        self._exact: dict[str, int | None] = {}  # memo of position()
        self._many: dict[tuple[str, ...], tuple[int | None, Callable[[list[str]], tuple[str, ...]]]] = {}

    def position(self, name: str) -> int | None:
        try:
            return self._exact[name]
        except KeyError:
            i = self._exact[name] = self._folded.get(name.casefold())
            return i

    def missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.position(n) is None]

    def take(self, row: list[str], names: tuple[str, ...]) -> tuple[str | None, ...]:
        """The cells of several columns as the file has them, unstripped (the mapping
        cleans every value it reads); None where the file or the row has no such column.
        One call per group of columns: an order reads some 40 cells."""
        getter = self._many.get(names)
        if getter is None:
            getter = self._many[names] = self._getter(names)
        reach, cells = getter
        if reach is not None and len(row) >= reach:
            return cells(row)
        positions = [self.position(n) for n in names]  # a short row, or a column missing
        return tuple(row[i] if i is not None and i < len(row) else None for i in positions)

    def _getter(self, names: tuple[str, ...]) -> tuple[int | None, Callable[[list[str]], tuple[str, ...]]]:
        """(the row width it needs, an itemgetter of the columns); (None, ...) when the
        file lacks one of them."""
        positions = [self.position(n) for n in names]
        if None in positions or len(positions) < 2:
            return None, tuple
        return max(positions) + 1, itemgetter(*positions)  # type: ignore[type-var]


@dataclass(slots=True)
class _Group:
    """The rows of one order: consecutive rows with the same Name."""

    name: str
    file: str
    start: int
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def unit(self, cols: _Columns, payload: bool = True) -> RawUnit:
        location = f"{self.file}:{self.start}"
        if not payload:  # the duplicate-key pass: key, location and checkpoint are all it reads
            return RawUnit(order_key(self.name), location, None, (), (self.file, self.start))
        first = self.rows[0][1]
        if not any(cell and not cell.isspace() for cell in cols.take(first, _ORDER_LEVEL)):
            # Its first row is elsewhere (or lost): mapping it would invent an order.
            self.findings.append(error(
                "order-first-row-missing", "",
                "order rows without the order's first row (Currency, Created at are empty); "
                "the rows of an order must be consecutive, first row first", location))
            return RawUnit(order_key(self.name), location, None, tuple(self.findings),
                           (self.file, self.start))
        return RawUnit(order_key(self.name), location, self._order(cols, location),
                       tuple(self.findings), (self.file, self.start))

    def _order(self, cols: _Columns, location: str) -> ShopifyOrder:
        first = self.rows[0][1]
        # The neutral shapes are built with positional arguments, in their fields' order:
        # keywords cost four times as much, some 5 µs an order.
        return ShopifyOrder(
            self.name, location,
            *cols.take(first, _ORDER_COLUMNS),  # email .. customer_phone
            _address(cols, first, "Shipping"),
            _address(cols, first, "Billing"),
            [_line(cols, row, f"{self.file}:{line}") for line, row in self.rows],
        )


_ORDER_COLUMNS = ("Email", "Phone", "Currency", "Cancelled at", "Billing Name", "Billing Phone")
"""In the order of ShopifyOrder's fields email, phone, currency, cancelled_at,
customer_name, customer_phone."""
_ADDRESS_COLUMNS = {kind: tuple(f"{kind} {name}" for name in (
    "Name", "Company", "Address1", "Street", "Address2", "City", "Province", "Province Name",
    "Zip", "Country", "Phone")) for kind in ("Shipping", "Billing")}
_LINE_COLUMNS = ("Lineitem name", "Lineitem quantity", "Lineitem price", "Lineitem sku", "Vendor",
                 "Lineitem requires shipping")


def _address(cols: _Columns, row: list[str], kind: str) -> ShopifyAddress:
    (name, company, address1, street, address2, city, province, province_name, postal_code,
     country, phone) = cols.take(row, _ADDRESS_COLUMNS[kind])
    return ShopifyAddress(
        name, company,
        address1 if address1 and not address1.isspace() else street, address2,  # line1, line2
        city, province, province_name,  # city, province_code, province
        postal_code, None, country, phone,  # ..., country_code (none in an export), ...
    )


def _line(cols: _Columns, row: list[str], location: str) -> ShopifyLine:
    name, quantity, price, sku, vendor, requires_shipping = cols.take(row, _LINE_COLUMNS)
    # None for the line's currency: an export has only the order's.
    return ShopifyLine(location, name, quantity, price, None, sku, vendor, requires_shipping)


def read_export(path: Path, encoding: str = "utf-8", payload: bool = True) -> Iterator[RawUnit]:
    """Raw units (one per order) of one export file. Never raises for bad input.
    Without `payload`, the orders' units carry only their key, location and checkpoint
    (the same as with it): reading them costs the CSV parse, not the order's objects."""
    file = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        yield broken(f"{file}:1", error("input-unreadable", "",
                                        f"{file}: cannot be read: {exc.strerror or exc}"))
        return
    with fh:
        lines = _Lines(fh, encoding)
        reader = csv.reader(lines)
        top = yield from _header(reader, file)
        if top is not None:
            yield from _units(reader, lines, file, *top, payload)


Position = tuple[str, int, int]
"""Where `read_span` can start reading a unit: its file, the byte offset and the number
of the line its first row starts on."""


def read_export_positions(path: Path, encoding: str = "utf-8"
                          ) -> Iterator[tuple[RawUnit, Position | None]]:
    """The units of `read_export(path, encoding, payload=False)`, each with its
    position, or None for a unit `read_span` cannot start at (a file that cannot be
    opened or has no usable header: that unit is the whole of what `read_export` yields)."""
    file = str(path)
    try:
        fh = path.open("rb")
    except OSError:
        for unit in read_export(path, encoding, payload=False):  # says why, as read() does
            yield unit, None
        return
    with fh:
        lines = _Lines(fh, encoding, track=True)
        reader = csv.reader(lines)
        header = _header(reader, file)
        try:
            while True:
                yield next(header), None
        except StopIteration as stop:
            top = stop.value
        if top is None:
            return
        offset_of = lines.offset_of
        for unit in _units(reader, lines, file, *top, False):
            start = int(unit.location.rpartition(":")[2])
            yield unit, (file, offset_of(start), start)


def read_span(position: Position, encoding: str = "utf-8", payload: bool = True
              ) -> Iterator[RawUnit]:
    """The units `read_export` yields from the one at `position` (from
    `read_export_positions`) to the end of its file, with the same keys, locations,
    checkpoints, findings and payloads: the header is read for its columns, then the
    file is read on from the position's byte offset, its lines counted from its line."""
    file, offset, number = position
    path = Path(file)
    try:
        # Two handles: closing the header's lines (`yield from` a file) closes its file.
        with path.open("rb") as top_fh:
            header = _header(csv.reader(_Lines(top_fh, encoding)), file)
            top = None
            try:
                next(header)
            except StopIteration as stop:
                top = stop.value
        fh = path.open("rb")
    except OSError as exc:
        yield broken(f"{file}:{number}", error("input-unreadable", "", f"reading stopped: "
                                               f"{exc.strerror or exc}", f"{file}:{number}"))
        return
    if top is None:  # the file has changed since its positions were taken
        fh.close()
        yield broken(f"{file}:{number}", error(
            "input-unreadable", "", f"{file} changed while it was read: read it again",
            f"{file}:{number}"))
        return
    with fh:
        lines = _Lines(fh, encoding, first=number, offset=offset)
        yield from _units(csv.reader(lines), lines, file, *top, payload)


def _header(reader: Any, file: str) -> Generator[RawUnit, None, tuple[_Columns, list[str]] | None]:
    """Reads the header row: returns its columns and its cells folded for comparison,
    or yields the broken unit that says why the file is not an orders export (and
    returns None)."""
    try:
        header = next(reader, None)
    except (csv.Error, OSError) as exc:
        yield broken(f"{file}:1", error("not-an-orders-export", "",
                                        f"{file}: the header row cannot be read: {exc}"))
        return None
    if header is None:
        yield broken(f"{file}:1", error("not-an-orders-export", "",
                                        f"{file}: empty file, no header row"))
        return None
    cols = _Columns(header)
    missing = cols.missing(REQUIRED_COLUMNS)
    if missing and len(header) == 1 and (sep := next((c for c in ";\t|" if c in header[0]), None)):
        yield broken(f"{file}:1", error(
            "missing-column", "", f"{file}: not a Shopify orders export as Shopify writes it: "
            f"its header row is separated by {sep!r}, not by commas (a spreadsheet saved it "
            "again in its own format). Export the orders from Shopify again, or save the file "
            "as 'CSV UTF-8 (Comma delimited)' with a decimal point in prices"))
        return None
    if missing:
        names = ", ".join(repr(m) for m in missing)
        yield broken(f"{file}:1", error(
            "missing-column", "", f"{file}: not a Shopify orders export: missing column(s) "
            f"{names} (Shopify admin > Orders > Export writes them in the header row)"))
        return None
    return cols, [cell.strip().lstrip("\ufeff").casefold() for cell in header]


def _units(reader: Any, lines: _Lines, file: str, cols: _Columns, head: list[str],
           payload: bool = True) -> Iterator[RawUnit]:
    """The units of the rows after the header (or after a span's start)."""
    lines.take_bad()  # a garbled header cell we do not use changes nothing

    group: _Group | None = None
    at = cols.position("Name")
    for start, row, problems in _rows(reader, lines, cols.width, file):
        name = (row[at].strip() or None) if at < len(row) else None
        if (name is not None and name.lstrip("\ufeff").casefold() == head[at]
                and [cell.strip().lstrip("\ufeff").casefold() for cell in row] == head):
            # Two exports joined into one file: the rows after it are orders again.
            if group is not None:
                yield group.unit(cols, payload)
                group = None
            yield broken(f"{file}:{start}", error(
                "bad-csv-row", "", "this row repeats the header row (two exports joined into "
                "one file?); remove it: a file has one header row, at its top"))
            continue
        if name is None and any(cell.strip() for cell in row):
            problems = [*problems, error("row-without-order", "", "the row has no order Name",
                                         f"{file}:{start}")]
        if name is not None:
            if group is None or name != group.name:
                if group is not None:
                    yield group.unit(cols, payload)
                group = _Group(name, file, start)
            group.rows.append((start, row))
        if problems:
            # A row we cannot place most likely belongs to the order being read: mark
            # that order rather than filing it without the row.
            if group is not None:
                group.findings.extend(problems)
            else:
                yield broken(f"{file}:{start}", *problems)
    if group is not None:
        yield group.unit(cols, payload)


def _rows(reader: Any, lines: _Lines, width: int,
          file: str) -> Iterator[tuple[int, list[str], Sequence[Finding]]]:
    """(line where the row starts, its cells, what is wrong with it) for each row after
    the header. Blank lines are left out; a row that cannot be read has no cells."""
    bad = lines.bad
    first = lines.first
    while True:
        start = reader.line_num + first
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = []
            why = str(exc)
            if "field limit" in why:
                why = (f"a cell is longer than {csv.field_size_limit()} characters; most often a "
                       "quote (\") opened in a cell and never closed, so that the rows after it "
                       "read as one cell: check this row's quotes")
            problems = [error("bad-csv-row", "", f"not a valid CSV row: {why}", f"{file}:{start}")]
        except OSError as exc:
            yield start, [], [error("input-unreadable", "", f"reading stopped: "
                                    f"{exc.strerror or exc}", f"{file}:{start}")]
            return
        else:
            if len(row) == width and not bad:  # most rows: nothing to look into
                # (An order's rows start with its Name: the first cell settles it, mostly.)
                if row[0].strip() or any(cell.strip() for cell in row):
                    yield start, row, ()
                continue
            problems = []
        if bad:
            problems += [error("invalid-utf8", "", "the line is not UTF-8 text", f"{file}:{n}")
                         for n in lines.take_bad()]
        if row and row[0].strip() or any(cell.strip() for cell in row):
            if len(row) != width:
                problems.append(error("bad-csv-row", "", f"the row has {len(row)} fields, "
                                      f"the header {width}", f"{file}:{start}"))
        elif not problems:
            continue
        yield start, row, problems


# --------------------------------------------------------------------------- the source


class ShopifyCsvSource(ShopifyFileSource):
    """Reads the configured export file(s), or `paths` when given."""

    def read_file(self, path: Path) -> Iterator[RawUnit]:
        return read_export(path, self.options.encoding)

    def read_file_keys(self, path: Path) -> Iterator[RawUnit]:
        return read_export(path, self.options.encoding, payload=False)

    # Spans (s321.parallel): workers read their own share of an export.

    def read_key_positions(self, paths: Iterable[Path] | None = None
                           ) -> Iterator[tuple[RawUnit, tuple[int, str, int, int] | None]]:
        """The units of `read_keys`, each with where `read_span` can start at it: (the
        number of the file in this read, so that a file named twice is two readings,
        then its `Position`); None: the unit is the whole of what `read()` yields there,
        for a file missing or refused whole."""
        encoding = self.options.encoding
        for reading, item in enumerate(self.inputs(paths)):
            if isinstance(item, RawUnit):
                yield item, None
            else:
                for unit, at in read_export_positions(item, encoding):
                    yield unit, None if at is None else (reading, *at)

    def read_span(self, position: tuple[int, str, int, int], count: int) -> Iterator[RawUnit]:
        """The `count` units `read()` yields from the one at `position` on, the same in
        every field (the file's encoding was checked by `read_key_positions`); a file
        that ends before them has changed since, and a unit says so."""
        file, _offset, number = position[1:]
        done = 0
        last: RawUnit | None = None
        for last in islice(read_span(position[1:], self.options.encoding), count):
            yield last
            done += 1
        said = last is not None and last.payload is None and any(
            f.code == "input-unreadable" for f in last.findings)
        if done < count and not said:
            yield broken(f"{file}:{number}", error(
                "input-unreadable", "", f"{file} changed while it was read: it ends before "
                f"{count - done} of its orders; read it again", f"{file}:{number}"))


# The CSV export and the order JSON are one system: an order gets one transaction id
# whichever way it came.
ID_NAMESPACE = "shopify"


@hookimpl
def register_sources(register: Any) -> None:
    register(NAME, ShopifyCsvSource, options=ShopifyCsvOptions,
             description='Shopify admin "Export orders" CSV (one order over several rows)',
             id_namespace=ID_NAMESPACE)


@hookimpl
def register_mappers(register: Any) -> None:
    register(NAME, ShopifyMapper, options=ShopifyCsvOptions,
             description="Shopify order -> Section 321 record (shared with shopify-json)")

"""Reading Bazaarly order exports: one raw unit per order, streamed.

An order is the consecutive rows with the same `order_id`. Promises (the s321 source
contract): only one order's rows are in memory at a time; a unit's location is
FILE:LINE of its first row; what cannot be read becomes a unit with an error finding
naming FILE:LINE, never an exception.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from s321.contracts import PipelineContext, RawUnit
from s321.findings import Finding, error
from s321.inputs import input_files
from s321.paths import ConfigPath

COLUMNS = ("order_id", "buyer_name", "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_state",
           "ship_to_postal_code", "ship_to_country", "tracking_number", "item_title", "qty", "unit_price",
           "currency", "product_link", "hs_code", "origin")


class BazaarlyOptions(BaseModel):
    """The `[pipelines.NAME.source]` table. `extra="forbid"`: a mistyped key is an error."""

    model_config = ConfigDict(extra="forbid")
    path: ConfigPath = Field(description="An export file, or a folder of them.")
    pattern: str = Field(default="*.csv", description="Which files of a folder to read.")


@dataclass
class Row:
    line: int
    cells: dict[str, str]


@dataclass
class Order:
    """The mapper's payload: the rows of one order, with their line numbers."""

    file: str
    order_id: str
    line: int
    """The line of the order's first row."""
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def unit(self) -> RawUnit:
        where = f"{self.file}:{self.line}"
        # The key is the order number alone: never the file name, so that the same
        # order in tomorrow's export gets the same transaction id. An order none of
        # whose rows could be read has no payload, only its findings.
        return RawUnit(self.order_id, where, self if self.rows else None, tuple(self.findings),
                       checkpoint=where)


class BazaarlySource:
    def __init__(self, options: BazaarlyOptions, context: PipelineContext):
        self.options = options

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        roots = list(paths) if paths is not None else [self.options.path]
        for path in input_files(roots, self.options.pattern):
            yield from read_export(path)

    def ack(self, upto: Any) -> None:
        """Nothing to do: the ledger makes reading a file again harmless."""


def broken(text: str, where: str, code: str, message: str) -> RawUnit:
    """A unit that is not an order. Its key is a hash of the row's text: the same broken
    row in tomorrow's export (another file name, another line) is the same unit."""
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
    return RawUnit(f"unreadable:{digest}", where, None, (error(code, "", message, where),))


class _Lines:
    """The file's lines as csv.reader takes them, remembering the text of the row just read."""

    def __init__(self, fh: Iterator[str]):
        self._fh = fh
        self.row: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._fh)
        self.row.append(line)
        return line

    def take(self) -> str:
        text, self.row = "".join(self.row), []
        return text


def read_export(path: Path) -> Iterator[RawUnit]:
    try:
        # errors="replace": a line that is not UTF-8 still reads, and is reported below.
        fh = path.open("r", encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        yield broken(str(path.name), f"{path}:1", "unreadable-file", f"cannot open {path}: {exc.strerror}")
        return
    with fh:
        yield from _orders(_Lines(fh), str(path))


def _orders(lines: _Lines, file: str) -> Iterator[RawUnit]:
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        yield broken(lines.take(), f"{file}:1", "not-a-bazaarly-export", f"the header row cannot be read: {exc}")
        return
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        yield broken(lines.take(), f"{file}:1", "not-a-bazaarly-export",
                     f"missing column(s) {', '.join(missing)}; a Bazaarly export has {', '.join(COLUMNS)}")
        return
    lines.take()
    order: Order | None = None
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            cells, problem = [], ("bad-csv-row", f"not a valid CSV row: {exc}")
        else:
            if not any(c.strip() for c in cells):
                lines.take()
                continue
            problem = _row_problem(cells, header)
        text = lines.take()
        order_id = cells[0].strip() if cells and header[0] == "order_id" else ""
        if problem and not order_id:
            yield broken(text, f"{file}:{line}", *problem)
            continue
        if order is None or order_id != order.order_id:
            if order is not None:
                yield order.unit()
            order = Order(file, order_id, line)
        if problem:
            # A row of this order that cannot be read: the whole order is invalid, never
            # filed without it (the error names the row's line and what is wrong).
            order.findings.append(error(problem[0], "", problem[1], f"{file}:{line}"))
            continue
        order.rows.append(Row(line, {name: value.strip() for name, value in zip(header, cells)}))
    if order is not None:
        yield order.unit()


def _row_problem(cells: list[str], header: list[str]) -> tuple[str, str] | None:
    if len(cells) != len(header):
        return "bad-csv-row", f"the row has {len(cells)} fields, the header {len(header)}"
    if "\ufffd" in "".join(cells):
        return "invalid-utf8", "the row is not UTF-8 text"
    if not cells[header.index("order_id")].strip():
        return "missing-order-id", "the row has no order_id"
    return None

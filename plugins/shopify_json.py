"""`shopify-json`: orders as Shopify's Admin API gives them, one raw unit per order.

Reads a webhook body or a single order (`.json`), a REST list `{"orders": [...]}` or a
GraphQL response, and JSON Lines (`.jsonl`, `.ndjson`), all streamed: a JSONL file line
by line, a list one element at a time. Malformed JSON is a broken unit at FILE:LINE.
A GraphQL bulk operation's output is JSON Lines too: it is read twice, once to check
that each order's lines follow it, then an order with its lines at a time
(s321.plugins.shopify.bulk).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from s321.contracts import RawUnit
from s321.findings import error
from s321.hookspecs import hookimpl

from .shopify import bulk, json_orders
from .shopify.inputs import ShopifyFileSource, broken
from .shopify.mapping import ShopifyMapper, ShopifyOptions, order_key

NAME = "shopify-json"
LINE_SUFFIXES = (".jsonl", ".ndjson")


class ShopifyJsonOptions(ShopifyOptions):
    pattern: str | list[str] = Field(default=["*.json", "*.jsonl", "*.ndjson"],
                                     description="Glob(s) for a directory path.")


# --------------------------------------------------------------------------- units


def _units(doc: Any, file: str, line: int) -> Iterator[RawUnit]:
    location = f"{file}:{line}"
    for candidate in json_orders.orders_in(doc):
        order, findings = json_orders.parse(candidate, location)
        if order is None:
            yield broken(location, *findings)
        else:
            yield RawUnit(order_key(order.name), location, order, tuple(findings), (file, line))


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[RawUnit]:
    """JSON Lines: one document (usually one order) per line; a bad line is a broken
    unit and reading goes on with the next. A GraphQL bulk operation's output (an
    order's line items on lines of their own) is read order by order (`_read_bulk`)."""
    file = str(path)
    try:
        is_bulk = bulk.looks_bulk(path)
        fh = path.open("rb")
    except OSError as exc:
        yield broken(f"{file}:1", error("input-unreadable", "", f"{file}: cannot be read: "
                                        f"{exc.strerror or exc}"))
        return
    with fh:
        yield from (_read_bulk if is_bulk else _read_plain)(fh, file, encoding)


def _read_plain(fh: IO[bytes], file: str, encoding: str) -> Iterator[RawUnit]:
    for item in _documents(fh, file, encoding):
        if isinstance(item, RawUnit):
            yield item
        else:
            yield from _units(item[1], file, item[0])


def _documents(fh: IO[bytes], file: str, encoding: str) -> Iterator[tuple[int, Any] | RawUnit]:
    """(line number, JSON value) for each line with one; a broken unit for a line without."""
    for number, raw in enumerate(_lines(fh), 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        location = f"{file}:{number}"
        try:
            text = raw.decode(encoding)
            if not text.strip():
                continue
            yield number, json.loads(text)
        except UnicodeDecodeError:
            yield broken(location, error("invalid-utf8", "", "the line is not UTF-8 text"))
        except ValueError as exc:  # JSONDecodeError, or an absurdly long integer
            yield broken(location, error("malformed-json", "", f"not valid JSON: {_why(exc)}"))
        except RecursionError:
            yield broken(location, error("malformed-json", "", "JSON nested too deeply"))


def _read_bulk(fh: IO[bytes], file: str, encoding: str) -> Iterator[RawUnit]:
    """A bulk operation's output, checked to be grouped over the whole file first (an
    order must not be read before all its lines are: s321.plugins.shopify.bulk), then
    read again an order and its lines at a time. A line that cannot be read while an
    order is open leaves that order unfiled: the line may have been one of its items."""
    unreadable: list[int] = []  # lines that could not be read, met before the verdict

    def readable() -> Iterator[tuple[int, Any]]:
        for item in _documents(fh, file, encoding):
            if isinstance(item, RawUnit):
                unreadable.append(int(item.location.rpartition(":")[2]))
            else:
                yield item

    named, ungrouped = bulk.ungrouped_at(readable())
    fh.seek(0)
    if not named:  # "__parentId" was only in some text: plain JSON Lines
        yield from _read_plain(fh, file, encoding)
        return
    if ungrouped is not None:
        line, parent = ungrouped
        above = [n for n in unreadable if n < line]
        fix = (f"line {above[-1]} above could not be read, and may have been that object: "
               "correct the file or export it again" if above else
               "run the bulk query again with `groupObjects: true`")
        yield broken(f"{file}:{line}", error(
            "shopify-bulk-not-grouped", "",
            f"a GraphQL bulk operation's output whose lines are not grouped: line {line} "
            f"belongs to {parent}, which is not the object above it. An order read now "
            f"could miss lines that come later, so nothing of the file is read; {fix}"))
        return
    orders = bulk.Assembler()
    for item in _documents(fh, file, encoding):
        if isinstance(item, RawUnit):
            orders.damage(f"{item.location} could not be read")
            yield item
            continue
        done = orders.add(*item)
        if done is not None:
            yield from _bulk_order(done, file)
    done = orders.finish()
    if done is not None:
        yield from _bulk_order(done, file)


def _bulk_order(done: tuple[int, Any, list[str]], file: str) -> Iterator[RawUnit]:
    line, doc, problems = done
    if not problems:
        yield from _units(doc, file, line)
        return
    location = f"{file}:{line}"
    order, findings = json_orders.parse(doc, location)
    incomplete = error("shopify-bulk-order-incomplete", "",
                       "not all of the order's lines could be read (" + "; ".join(problems)
                       + "), so it may be missing items: not filed; correct the file or "
                       "export it again")
    if order is None:
        yield broken(location, *findings, incomplete)
    else:
        yield RawUnit(order_key(order.name), location, None, (*findings, incomplete), (file, line))


def _lines(fh: Iterable[bytes]) -> Iterator[bytes]:
    """The file's lines ended by LF, CRLF or CR alone (a classic Mac): JSON has a CR only
    as whitespace between values, never inside a string, so splitting at one is safe."""
    for raw in fh:
        if b"\r" in raw.rstrip(b"\r\n"):
            *pieces, last = raw.split(b"\r")
            yield from (piece + b"\r" for piece in pieces)
            if last:
                yield last
        else:
            yield raw


def _why(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    digits = re.search(r"value has (\d+) digits", str(exc))  # Python's int conversion limit
    if digits:
        return f"a number of {digits.group(1)} digits, more than any order field holds"
    return str(exc)


# --------------------------------------------------------------------------- documents


class _Malformed(Exception):
    def __init__(self, line: int, why: str):
        super().__init__(why)
        self.line = line
        self.why = why


_WS = re.compile(r"[ \t\r\n]*")


class _JsonText:
    """A JSON file read in chunks and decoded one value at a time, counting lines, so
    that a long list of orders never sits in memory whole."""

    CHUNK = 1 << 16

    def __init__(self, fh: IO[str]):
        self._fh = fh
        self._decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def _fill(self, size: int) -> bool:
        if self.eof:
            return False
        chunk = self._fh.read(size)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk  # drop what was consumed
        self.pos = 0
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self._advance(match.end() if match else self.pos)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill(self.CHUNK):
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            found = self.peek() or "the end of the file"
            raise _Malformed(self.line, f"expected {char!r}, found {found!r}")
        self._advance(self.pos + 1)

    def value(self) -> Any:
        """Decode the value that starts here, reading more until it is complete."""
        self.peek()
        size = self.CHUNK
        while True:
            try:
                obj, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._fill(size):
                    size *= 2  # doubling keeps a long value linear to read
                    continue
                raise _Malformed(self.line + self.buf.count("\n", self.pos, exc.pos),
                                 exc.msg) from None
            except RecursionError:
                raise _Malformed(self.line, "JSON nested too deeply") from None
            except ValueError as exc:
                raise _Malformed(self.line, _why(exc)) from None
            if end == len(self.buf) and self._fill(size):
                continue  # a number may go on in the next chunk
            self._advance(end)
            return obj


def _top_level(text: _JsonText) -> Iterator[tuple[int, Any]]:
    """(line, document) pairs of one file: list elements and `orders` elements one by
    one, anything else as one document."""
    first = text.peek()
    if first == "":
        raise _Malformed(1, "empty file")
    if first == "[":
        yield from _elements(text)
    elif first == "{":
        start = text.line
        rest: dict[str, Any] = {}
        streamed = False
        text.take("{")
        while text.peek() != "}":
            if rest or streamed:
                text.take(",")
            line = text.line
            key = text.value()
            if not isinstance(key, str):
                raise _Malformed(line, "expected a key (a string)")
            text.take(":")
            if key == "orders" and text.peek() == "[":
                yield from _elements(text)
                streamed = True
            else:
                rest[key] = text.value()
        text.take("}")
        if not streamed:
            yield start, rest
    else:
        yield text.line, text.value()
    if text.peek() != "":
        raise _Malformed(text.line, "extra data after the JSON document")


def _elements(text: _JsonText) -> Iterator[tuple[int, Any]]:
    text.take("[")
    first = True
    while text.peek() != "]":
        if not first:
            text.take(",")
            text.peek()
        first = False
        line = text.line
        yield line, text.value()
    text.take("]")


def read_document(path: Path, encoding: str = "utf-8") -> Iterator[RawUnit]:
    """A `.json` file: a single order, a webhook body, a REST list, a GraphQL response."""
    file = str(path)
    try:
        fh = path.open(encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
    except OSError as exc:
        yield broken(f"{file}:1", error("input-unreadable", "", f"{file}: cannot be read: "
                                        f"{exc.strerror or exc}"))
        return
    with fh:
        text = _JsonText(fh)
        try:
            for line, doc in _top_level(text):
                yield from _units(doc, file, line)
        except _Malformed as exc:
            yield broken(f"{file}:{exc.line}", error("malformed-json", "",
                                                     f"not valid JSON: {exc.why}"))
        except UnicodeDecodeError:
            yield broken(f"{file}:{text.line}", error("invalid-utf8", "",
                                                      "the file is not UTF-8 text"))
        except OSError as exc:
            yield broken(f"{file}:{text.line}", error("input-unreadable", "",
                                                      f"reading stopped: {exc.strerror or exc}"))


def read_file(path: Path, encoding: str = "utf-8") -> Iterator[RawUnit]:
    if path.suffix.lower() in LINE_SUFFIXES:
        return read_lines(path, encoding)
    return read_document(path, encoding)


# --------------------------------------------------------------------------- the source


class ShopifyJsonSource(ShopifyFileSource):
    """Reads the configured JSON file(s), or `paths` when given."""

    def read_file(self, path: Path) -> Iterator[RawUnit]:
        return read_file(path, self.options.encoding)  # the module's reader above


# The CSV export and the order JSON are one system: an order gets one transaction id
# whichever way it came.
ID_NAMESPACE = "shopify"


@hookimpl
def register_sources(register: Any) -> None:
    register(NAME, ShopifyJsonSource, options=ShopifyJsonOptions,
             description="Shopify Admin order JSON: webhook body, REST list, GraphQL, JSON Lines",
             id_namespace=ID_NAMESPACE)


@hookimpl
def register_mappers(register: Any) -> None:
    register(NAME, ShopifyMapper, options=ShopifyJsonOptions,
             description="Shopify order -> Section 321 record (shared with shopify-csv)")

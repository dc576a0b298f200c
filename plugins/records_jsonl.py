"""Source `records-jsonl`: consignments already in the s321 record shape, one JSON
object a line, for systems that can emit the record themselves.

Each line carries `ref` (the unit's natural key, stable across runs) and record fields
(without transaction_id). A line that is not a JSON object becomes a finding naming
FILE:LINE; the other lines still go through. So does a hostile line: nested too
deeply, a number of thousands of digits, or longer than MAX_LINE_CHARS; each becomes
a finding on its own line, never an exception, and memory stays bounded by the limit.
A file that is not text in its `encoding` (UTF-8 by default) is refused whole, naming
its first bad line: nothing of it is filed with replaced characters.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import Finding, error
from s321.hookspecs import hookimpl
from s321.inputs import check_pattern, input_files, open_regular
from s321.paths import ConfigPath

from .text_encoding import check_encoding_option, encoding_field, stream_problem


MAX_LINE_CHARS = 8 * 1024 * 1024
"""One record a line: a line longer than this is refused, unread past the limit."""
MAX_DEPTH = 32
"""A record is a few levels deep (items.0.…); deeper is not one."""
MAX_REF_CHARS = 512


def _depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` levels deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class RecordsJsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ConfigPath
    pattern: str = "*.jsonl"
    follow_symlinks: bool = Field(
        default=False, description="read files in the folder that are symlinks to elsewhere")

    encoding: str = encoding_field()
    _pattern = field_validator("pattern")(check_pattern)
    _encoding = field_validator("encoding")(check_encoding_option)


class RecordsJsonlSource:
    def __init__(self, options: RecordsJsonlOptions, context: PipelineContext):
        self.options = options

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for path in input_files(paths or [self.options.path], self.options.pattern,
                                follow_symlinks=self.options.follow_symlinks):
            yield from self._read_file(path)

    def _read_file(self, path: Path) -> Iterator[RawUnit]:
        try:
            raw = open_regular(path, "rb")
        except OSError as exc:
            yield RawUnit(f"file:{path}", f"{path}:0", None,
                          (error("unreadable", "", f"cannot open: {exc.strerror or exc}"),))
            return
        with raw:
            # The whole file is checked first: a Windows-1252 file was read with
            # replacement characters, and its names filed changed, without a word.
            problem = stream_problem(raw, path, self.options.encoding)
            if problem is not None:
                yield RawUnit(f"file:{path}", problem.location or f"{path}:1", None, (problem,))
                return
            raw.seek(0)
            encoding = "utf-8-sig" if self.options.encoding == "utf-8" else self.options.encoding
            fh = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
            lineno = 0
            while True:
                # Read with a limit: one endless line must not take all the memory.
                line = fh.readline(MAX_LINE_CHARS + 1)
                if not line:
                    break
                lineno += 1
                if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                    while (rest := fh.readline(MAX_LINE_CHARS)) and not rest.endswith("\n"):
                        pass  # the rest of the overlong line, discarded
                    yield self._bad(path, lineno, error(
                        "line-too-long", "", f"a line may hold at most {MAX_LINE_CHARS} characters; "
                        "split the record or shorten its texts"))
                    continue
                if not line.strip():
                    continue
                yield self._parse(path, lineno, line)

    def _parse(self, path: Path, lineno: int, line: str) -> RawUnit:
        where = f"{path}:{lineno}"
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            return self._bad(path, lineno, error(
                "malformed-json", "", f"not JSON: {exc.msg} at column {exc.colno}"))
        except RecursionError:
            return self._bad(path, lineno, error(
                "malformed-json", "", "nested too deeply to be a record"))
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            digits = re.search(r"value has (\d+) digits", str(exc))
            why = f"a number of {digits.group(1)} digits" if digits else str(exc)
            return self._bad(path, lineno, error("malformed-json", "", f"not usable JSON: {why}"))
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
            return self._bad(path, lineno, error(
                "missing-ref", "ref", "each line must be an object with a non-empty string `ref`"))
        if len(body["ref"]) > MAX_REF_CHARS:
            return self._bad(path, lineno, error(
                "ref-too-long", "ref", f"`ref` may hold at most {MAX_REF_CHARS} characters"))
        if _depth_over(body, MAX_DEPTH):
            return self._bad(path, lineno, error(
                "malformed-json", "", f"nested more than {MAX_DEPTH} levels deep: not a record"))
        return RawUnit(body["ref"], where, body, checkpoint=(str(path), lineno))

    @staticmethod
    def _bad(path: Path, lineno: int, finding: Finding) -> RawUnit:
        return RawUnit(f"line:{path.name}:{lineno}", f"{path}:{lineno}", None, (finding,))

    def ack(self, upto: Any) -> None:
        """Nothing to move: the file is archived by the runtime."""


class RecordsJsonlMapper:
    def __init__(self, options: RecordsJsonlOptions, context: PipelineContext):
        self.context = context

    def map(self, unit: RawUnit) -> Mapped:
        record = {k: v for k, v in unit.payload.items() if k not in ("ref", "transaction_id")}
        record.setdefault("originator_code", self.context.originator_code)
        record.setdefault("filer_type", self.context.filer_type.value)
        record.setdefault("mode_of_transport", self.context.mode_of_transport.value)
        return Mapped(record=record)


@hookimpl
def register_sources(register: Any) -> None:
    register("records-jsonl", RecordsJsonlSource, options=RecordsJsonlOptions,
             description="s321 records as JSON lines, each with a `ref`")


@hookimpl
def register_mappers(register: Any) -> None:
    register("records-jsonl", RecordsJsonlMapper, options=RecordsJsonlOptions)

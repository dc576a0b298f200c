"""Input plumbing shared by the Shopify file sources: which files to read, and how a
broken unit looks. Promises: files are read in a stable (sorted) order, and a path
that cannot be read becomes one broken unit naming it, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from s321.contracts import PipelineContext, RawUnit
from s321.findings import Finding, error
from s321.inputs import input_files as core_input_files

from ..text_encoding import encoding_problem


def input_files(paths: Iterable[Path], patterns: str | list[str]) -> Iterator[Path | RawUnit]:
    """Every file to read: a file as given, a directory's files matching `patterns`
    (sorted, not recursive). A path that does not exist yields a broken unit instead."""
    for path in core_input_files(paths, patterns):
        if path.is_file():
            yield path
        else:
            yield broken(f"{path}:1", error("input-not-found", "",
                                            f"{path}: no such file or directory"))


class ShopifyFileSource:
    """What both Shopify sources share: the files to read (the configured path, or
    `paths` when given), a broken unit for a path that is not there or not in the
    configured `encoding` (checked for the whole file first), and an `ack` with nothing
    to move, since the ledger makes reading a file again a no-op."""

    def __init__(self, options: Any, context: PipelineContext):
        self.options = options
        self.context = context
        self.acked: Any = None

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        return self._read(paths, self.read_file)

    def read_keys(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        """The units of `read()`, with the same keys, locations and checkpoints, where
        the reader can leave their payload out (`read_file_keys`): the pipeline's
        duplicate-key pass reads nothing else."""
        return self._read(paths, self.read_file_keys)

    def _read(self, paths: Iterable[Path] | None,
              read_file: Callable[[Path], Iterator[RawUnit]]) -> Iterator[RawUnit]:
        for item in self.inputs(paths):
            if isinstance(item, RawUnit):
                yield item
            else:
                yield from read_file(item)

    def inputs(self, paths: Iterable[Path] | None) -> Iterator[Path | RawUnit]:
        """The files to read, in order, each checked for its encoding first: a file, or
        the broken unit that stands for a path missing or refused whole."""
        targets = list(paths) if paths is not None else [self.options.path]
        encoding = getattr(self.options, "encoding", "utf-8")
        for item in input_files(targets, self.options.pattern):
            if isinstance(item, RawUnit):
                yield item
                continue
            try:
                problem = encoding_problem(item, encoding)
            except OSError:
                problem = None  # the reader names it
            if problem is not None:  # refused whole: never filed in part
                yield broken(problem.location or f"{item}:1", problem)
            else:
                yield item

    def read_file(self, path: Path) -> Iterator[RawUnit]:
        raise NotImplementedError

    def read_file_keys(self, path: Path) -> Iterator[RawUnit]:
        """`read_file` for the duplicate-key pass: a reader that can skip building
        payloads overrides it."""
        return self.read_file(path)

    def ack(self, upto: Any) -> None:
        self.acked = upto


def broken(location: str, *findings: Finding) -> RawUnit:
    """A unit that is not an order: its key is its location, so it stays stable between
    runs and a fixed input gets the order's own key."""
    return RawUnit(key=f"unparsed:{location}", location=location, payload=None,
                   findings=tuple(f.at(location) for f in findings))

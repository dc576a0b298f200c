"""Input plumbing shared by the Shopify file sources: which files to read, and how a
broken unit looks. Promises: files are read in a stable (sorted) order, and a path
that cannot be read becomes one broken unit naming it, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from s321.contracts import RawUnit
from s321.findings import Finding, error
from s321.inputs import input_files as core_input_files


def input_files(paths: Iterable[Path], patterns: str | list[str]) -> Iterator[Path | RawUnit]:
    """Every file to read: a file as given, a directory's files matching `patterns`
    (sorted, not recursive). A path that does not exist yields a broken unit instead."""
    for path in core_input_files(paths, patterns):
        if path.is_file():
            yield path
        else:
            yield broken(f"{path}:1", error("input-not-found", "",
                                            f"{path}: no such file or directory"))


def broken(location: str, *findings: Finding) -> RawUnit:
    """A unit that is not an order: its key is its location, so it stays stable between
    runs and a fixed input gets the order's own key."""
    return RawUnit(key=f"unparsed:{location}", location=location, payload=None,
                   findings=tuple(f.at(location) for f in findings))

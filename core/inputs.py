"""Finding a source's input files: a file, or the files of a folder matching a pattern,
in a stable (sorted) order so that runs are repeatable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


def input_files(roots: Iterable[Path], pattern: str | list[str]) -> Iterator[Path]:
    """The files to read under `roots`: a file as given, a folder's files matching the
    pattern(s), not recursive. A path that does not exist yields itself, so that the
    source opening it reports it with its own finding."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    for root in roots:
        if root.is_dir():
            found = {p for pat in patterns for p in root.glob(pat) if p.is_file()}
            yield from sorted(found)
        else:
            yield root

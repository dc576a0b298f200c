"""Finding a source's input files: a file, or the files of a folder matching a pattern,
in a stable (sorted) order so that runs are repeatable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


def input_files(override: Iterable[Path] | None, configured: Path, pattern: str) -> Iterator[Path]:
    """The files to read: `override` when given (as `s321 preview FILE` does), else the
    configured path: itself if a file, its matching files if a folder. A path that does
    not exist yields itself, so that the source reports it as unreadable."""
    roots = list(override) if override else [configured]
    for root in roots:
        if root.is_dir():
            yield from sorted(p for p in root.glob(pattern) if p.is_file())
        else:
            yield root

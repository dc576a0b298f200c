"""Finding a source's input files: a file, or the files of a folder matching a pattern,
in a stable (sorted) order so that runs are repeatable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


def input_files(override: Iterable[Path] | None, configured: Path,
                pattern: str | list[str]) -> Iterator[Path]:
    """The files to read: `override` when given (as `s321 preview FILE` does), else the
    configured path: itself if a file, its files matching the pattern(s) if a folder.
    A path that does not exist yields itself, so that the source reports it."""
    roots = list(override) if override else [configured]
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    for root in roots:
        if root.is_dir():
            found = {p for pat in patterns for p in root.glob(pat) if p.is_file()}
            yield from sorted(found)
        else:
            yield root

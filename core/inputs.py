"""Finding a source's input files: a file, or the files of a folder matching a pattern,
in a defined order (modification time, then name) so that runs are repeatable.

Promises: only regular files are read (a FIFO or a device would block a reader or
never end); a pattern never reaches outside its folder; a symlink in a folder that
points out of it is not followed unless the source's options say `follow_symlinks`.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from s321.logs import get_logger

log = get_logger(__name__)


class NotRegularFile(OSError):
    """A path that exists but is not a regular file (a FIFO, a device, a socket)."""

    def __init__(self, path: Path | str, st_mode: int):
        kind = _KINDS.get(stat.S_IFMT(st_mode), "not a regular file")
        super().__init__(f"{kind}, not a regular file")
        self.strerror = f"{kind}, not a regular file"
        self.filename = str(path)
        self.message = f"{path}: {kind}, not a regular file; s321 reads regular files only"

    def __str__(self) -> str:
        return self.message


_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def check_pattern(pattern: Any) -> Any:
    """A pydantic validator for a `pattern` option: a file-name glob, which cannot name
    another folder (no '/', '\\' or '..'). Works on a string or a list of them."""
    for pat in [pattern] if isinstance(pattern, str) else list(pattern or []):
        if not isinstance(pat, str) or not pat or "/" in pat or "\\" in pat or ".." in pat:
            raise ValueError(f"pattern {pat!r} must match file names in the folder "
                             "(like '*.jsonl'): no '/', '\\' or '..'")
    return pattern


def input_files(roots: Iterable[Path], pattern: str | list[str], *,
                follow_symlinks: bool = False) -> Iterator[Path]:
    """The files to read under `roots`: a file as given, a folder's regular files
    matching the pattern(s), not recursive. A path that does not exist yields itself,
    so that the source opening it reports it with its own finding; a named path that
    exists but is not a regular file raises NotRegularFile (reading it would block)."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    for root in roots:
        if root.is_dir():
            yield from sorted(_folder_files(root, patterns, follow_symlinks), key=run_order)
            continue
        try:
            st = root.stat()
        except OSError:
            yield root  # not there (or a dangling link): the source names it
            continue
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(root, st.st_mode)
        yield root


def run_order(path: Path) -> tuple[int, str]:
    """A folder's files are read oldest first (modification time, then name): a later
    export holding an order again is its later version, and is read after the earlier."""
    try:
        return path.stat().st_mtime_ns, path.name
    except OSError:
        return 0, path.name


def _folder_files(root: Path, patterns: list[str], follow_symlinks: bool) -> set[Path]:
    inside = root.resolve()
    found: set[Path] = set()
    for pat in patterns:
        for p in root.glob(pat):
            if p.parent != root:  # a pattern such as '../*' or 'sub/*': not this folder
                log.warning("input pattern reaches outside its folder; ignored",
                            folder=str(root), pattern=pat)
                break
            if p.is_symlink() and not follow_symlinks and p.resolve().parent != inside:
                log.warning("symlink out of the input folder not followed "
                            "(set follow_symlinks to read it)", file=str(p))
                continue
            if p.is_file():  # regular, after following a link that stays inside
                found.add(p)
    return found


def open_regular(path: Path | str, mode: str = "r", **kwargs: Any) -> IO[Any]:
    """Open `path` for reading, refusing (NotRegularFile) what is not a regular file
    once opened, so that a FIFO swapped in after a check cannot block the reader."""
    if any(c in mode for c in "wax+"):
        raise ValueError("open_regular only reads")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, st.st_mode)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return open(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise

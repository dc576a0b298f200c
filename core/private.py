"""Files and folders that hold personal data, kept private at rest: whatever s321
creates (ledgers, stores, batches, archives, state) is owner-only (0600 files, 0700
folders) whatever the umask, or shared with the group when `[files] group` says so.

Promises: a file or folder is created with its final mode (never readable by others,
not even for an instant); an existing one of ours that is looser is tightened, with a
warning naming its path; a folder that already existed and that others fill (an inbox)
is never changed: only `tighten=True` callers, for folders s321 alone writes, do that.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from s321.errors import S321Error
from s321.logs import get_logger

log = get_logger(__name__)

GroupAccess = Literal["none", "read", "write"]

_FILE_MODES: dict[str, int] = {"none": 0o600, "read": 0o640, "write": 0o660}
_DIR_MODES: dict[str, int] = {"none": 0o700, "read": 0o750, "write": 0o770}

_lock = threading.Lock()
_group: GroupAccess = "none"


class FilesSection(BaseModel):
    """`[files]` in a config: who besides the owner may use the files s321 creates."""

    model_config = ConfigDict(extra="forbid")
    group: GroupAccess = Field(
        default="none",
        description='"none": owner only (0600/0700, the default); "read": the group may '
                    'read (0640/0750); "write": the group may also write (0660/0770)')


def configure(group: GroupAccess = "none") -> None:
    """Set the group access for files and folders created from now on (process-wide:
    one process runs one configuration)."""
    global _group
    if group not in _FILE_MODES:
        raise ValueError(f"files.group must be one of {sorted(_FILE_MODES)}, not {group!r}")
    with _lock:
        _group = group


def file_mode() -> int:
    return _FILE_MODES[_group]


def dir_mode() -> int:
    return _DIR_MODES[_group]


def _tighten(path: Path, wanted: int, fd: int | None = None, warn: bool = True) -> None:
    """Remove permission bits beyond `wanted` from a file or folder of ours, saying so."""
    try:
        st = os.fstat(fd) if fd is not None else os.stat(path)
    except FileNotFoundError:
        return
    current = stat.S_IMODE(st.st_mode)
    extra = current & ~wanted & 0o777
    if not extra:
        return
    new = current & ~extra
    try:
        if fd is not None:
            os.fchmod(fd, new)
        else:
            os.chmod(path, new)
    except OSError as exc:
        log.warning("cannot make private", path=str(path), mode=oct(current), error=exc.strerror)
        return
    if warn:
        log.warning("made private: it was readable by others", path=str(path),
                    was=oct(current), now=oct(new))


def ensure_dir(path: str | Path, *, tighten: bool = False) -> Path:
    """Create `path` and its missing parents as private folders (parents that exist are
    left alone). With `tighten`, an existing `path` is made private too: only for
    folders s321 alone writes (archive, state), never for an inbox."""
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, dir_mode())
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to change
        os.chmod(folder, dir_mode())  # mkdir's mode went through the umask
    if not missing and not path.is_dir():  # never a chmod of a file named as a folder by mistake
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    if tighten and not missing:
        _tighten(path, dir_mode())
    return path


def ensure_file(path: str | Path, *, warn: bool = True, fd: int | None = None) -> None:
    """Make an existing file of ours private, warning when it was not (`warn=False`
    for files that arrive with their writer's modes, such as an input being archived);
    nothing if absent. `fd`: the file open at `path`, changed through it."""
    _tighten(Path(path), file_mode(), fd=fd, warn=warn)


def create(path: str | Path, *, exclusive: bool = False) -> int:
    """Open `path` for writing as a private file and return the descriptor: created
    with its final mode, a symlink at `path` refused (O_NOFOLLOW), an existing file
    truncated and tightened (or refused with FileExistsError when `exclusive`)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    fd = os.open(path, flags, file_mode())
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        os.fchmod(fd, file_mode())  # the mode given to open went through the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def sqlite_companions(path: str | Path) -> Iterator[Path]:
    """A SQLite file and the journal files next to it (-wal, -shm, -journal)."""
    path = Path(path)
    yield path
    for suffix in ("-wal", "-shm", "-journal"):
        yield path.with_name(path.name + suffix)


def prepare_sqlite(path: str | Path) -> None:
    """Before SQLite opens `path`: its folder exists (made private if new), the file
    exists with a private mode, and looser modes left by an older s321 are tightened.
    SQLite creates -wal and -shm with the main file's mode, so they follow it."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        os.close(create(path, exclusive=True))
    except FileExistsError:
        pass
    for companion in sqlite_companions(path.resolve()):  # SQLite writes beside the file a link names
        _refuse_planted(companion, companion.name != path.resolve().name)
        ensure_file(companion)


class NotOurs(S321Error):
    """A database file that another account owns, or a journal that is a link."""


def _refuse_planted(path: Path, journal: bool) -> None:
    """A database or journal file that another account owns can be read (and changed)
    by that account whatever its mode: it was planted, or left by s321 run as someone
    else. A journal that is a symlink sends what SQLite writes wherever it points.
    Both are refused, never used. (With `[files] group` set, the group shares the files
    by choice: other owners in it are expected.)"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if journal and stat.S_ISLNK(st.st_mode):
        raise NotOurs(f"{path}: a symbolic link where SQLite keeps its journal; remove it "
                      "(while no s321 uses this database)")
    if _group == "none" and st.st_uid != os.geteuid():
        raise NotOurs(f"{path}: owned by uid {st.st_uid}, not by this account (uid {os.geteuid()}): "
                      "that account can read and change it whatever its mode. Remove it while no s321 "
                      "uses this database if it is not s321's, or run s321 as its owner")

"""One daemon per SQLite ledger: an advisory lock (`flock`) on a file beside the ledger,
taken by `s321 run` (daemon or `--once`) and the relay for as long as they run.

The kernel releases the lock when the holder's process ends, however it ends (SIGKILL
included), so a lock is never stale; the file keeps a line naming the last holder, which
a refused process reports. Operator commands (`status`, `show`, `resend`, ...) do not
take it: they work while the daemon runs.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from s321 import private
from s321.errors import S321Error


class LedgerBusy(S321Error):
    """Another process holds the ledger."""


class LedgerLock:
    """`acquire()` or raise LedgerBusy; `release()` (or the process ending) gives it up."""

    def __init__(self, ledger_path: str | Path):
        self.ledger_path = Path(ledger_path)
        # Beside the file the path names (a symlink resolved): one lock per ledger file,
        # whatever path a config gives for it.
        real = self.ledger_path.resolve()
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None

    def acquire(self, holder: str) -> LedgerLock:
        try:
            # The ledger's folder, made here before the ledger itself: private, as
            # prepare_sqlite would make it (a folder others may write lets them plant
            # the ledger's -wal before SQLite does, and read it).
            private.ensure_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            private.ensure_file(self.path, fd=fd)  # an older one, made under a loose umask
        except OSError as exc:
            raise S321Error(f"{self.ledger_path}: cannot take the ledger's lock {self.path}: "
                            f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LedgerBusy(f"{self.ledger_path}: the ledger is in use by {who}; one daemon (or run --once)"
                             f" per ledger: stop that one first (status, show and resend work alongside it)"
                             ) from None
        except BaseException:
            os.close(fd)
            raise
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:  # who holds it, for the message of the next one refused; the lock holds without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder} (pid {os.getpid()} on {socket.gethostname()}, since {started})\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> LedgerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

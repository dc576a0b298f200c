"""Where the CLI writes: plain text when the output is a file or a pipe (scripts parse
it), colour and tables (rich) on a terminal. Errors and warnings go to stderr.

An output that cannot be written (a full disk, stdout closed by the shell) is said in
one line, `cannot write the output: reason`, never as a traceback or as a failure of
the input; a closed stderr silences errors but does not change the exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from s321.errors import S321Error

_STYLES = {"error": "bold red", "warning": "yellow", "ok": "green", "dim": "dim"}


@cache
def _console(stderr: bool) -> Console:
    # soft_wrap: a long path is never broken across lines; highlight off: only the
    # colours chosen here, never numbers or paths guessed at.
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def is_terminal(stream: str = "stdout") -> bool:
    return (sys.stderr if stream == "stderr" else sys.stdout).isatty()


def error(line: str) -> None:
    """One error line on stderr, red on a terminal."""
    _err(line, "error")


def warn(line: str) -> None:
    """One warning line on stderr, yellow on a terminal."""
    _err(line, "warning")


def _err(line: str, style: str) -> None:
    if is_terminal("stderr"):
        _console(True).print(Text(line, style=_STYLES[style]))
    else:
        print(line, file=sys.stderr)


def line(text: str, style: str | None = None) -> None:
    """One line on stdout, in `style` (error, warning, ok, dim) on a terminal."""
    if style and is_terminal():
        _console(False).print(Text(text, style=_STYLES[style]))
    else:
        print(text)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> None:
    """A table on a terminal; tab-free aligned text otherwise (the first column padded)."""
    if is_terminal():
        t = Table(*columns, title=title, title_justify="left", header_style="bold")
        for row in rows:
            t.add_row(*row)
        _console(False).print(t)
        return
    if title:
        print(title)
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


class _Output:
    """stdout as a command writes to it: a write or flush that fails is S321Error
    (main() says it and exits 2); a reader that went away stays BrokenPipeError (main()
    stops quietly). After a failure, writes fail again and what is buffered is dropped."""

    def __init__(self, stream: TextIO, failed: str | None = None):
        self._stream = stream
        self._failed = failed

    def write(self, text: str) -> int:
        if self._failed:
            raise S321Error(f"cannot write the output: {self._failed}")
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        if not self._failed:
            self._guard(self._stream.flush)

    def _guard(self, op: Callable[..., Any], *args: Any) -> Any:
        try:
            return op(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._failed = exc.strerror or str(exc)
            self._drop_buffered()
            raise S321Error(f"cannot write the output: {self._failed}") from None
        except UnicodeEncodeError as exc:  # PYTHONIOENCODING=ascii, or a terminal set to Latin-1
            self._failed = (f"its encoding, {exc.encoding}, cannot write every character of it "
                            "(names and addresses need UTF-8: set PYTHONIOENCODING=utf-8)")
            raise S321Error(f"cannot write the output: {self._failed}") from None

    def _drop_buffered(self) -> None:
        """Point the descriptor at /dev/null: the interpreter flushes stdout again at
        exit, and would print the same failure as "Exception ignored" (status 120)."""
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):  # not a file (a test's capture): nothing flushes it at exit
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)


def _hold_closed(fd: int) -> None:
    """Put /dev/null on `fd` if the shell closed it (`>&-`): else the next file opened
    (the ledger) would take that number, and a child process's output land in it."""
    try:
        os.fstat(fd)
        return  # open after all: something of this process's holds it
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_RDWR)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


@contextmanager
def guarded_output() -> Iterator[None]:
    """Around a command: stdout that cannot be written raises S321Error `cannot write
    the output: reason`, at the first write or at the flush when the command is done
    (a full disk), or at the first write when the shell closed it; a closed stderr
    becomes /dev/null, so that errors are dropped rather than crash the command."""
    saved = sys.stdout
    if sys.stderr is None:  # Python found descriptor 2 closed when it started
        _hold_closed(2)
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # for the rest of the process
    if sys.stdout is None:
        _hold_closed(1)
        out = _Output(open(os.devnull, "w", encoding="utf-8"), failed="standard output is closed")
    else:
        out = _Output(sys.stdout)
    sys.stdout = out  # type: ignore[assignment]  # a TextIO in all that commands use
    try:
        yield
        out.flush()
    finally:
        sys.stdout = saved

"""Where the CLI writes: plain text when the output is a file or a pipe (scripts parse
it), colour and tables (rich) on a terminal. Errors and warnings go to stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache

from rich.console import Console
from rich.table import Table
from rich.text import Text

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

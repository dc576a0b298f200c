"""The exit codes of every `s321` command, in one place, so that cron and CI can act
on them: the same number means the same thing whichever command returned it."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    """Done, and nothing to report."""
    FINDINGS = 1
    """The command ran, and the data has findings: invalid records (preview, run)."""
    CANNOT_RUN = 2
    """The command could not run: usage, config or an unreadable input."""
    FAILED = 3
    """A pipeline failed, a transport is unreachable, or records are still owed."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (SIGINT)."""


EPILOG = """\
exit codes (the same for every command):
  0    ok
  1    the data has findings (invalid records)
  2    the command could not run (usage, config, unreadable input)
  3    a pipeline failed, a transport is unreachable, or records are still owed
  130  interrupted (Ctrl-C)"""
"""The table printed by `s321 --help`; docs/operations.md repeats it."""

"""A child process that must not outlive the s321 process that started it.

`die_with_parent(parent)`, called first thing in the child: on Linux the kernel sends
the child SIGKILL when the parent's thread that started it ends (PR_SET_PDEATHSIG), so
a parent killed by SIGKILL or the OOM killer, which runs no clean-up of its own, leaves
no child behind holding buyers' data in memory; and the child exits at once when its
parent is gone already (it died before the setting took). Elsewhere only that check.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL when the thread of `parent` that started this process ends (Linux); exit
    now if `parent` is gone already."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(0)

"""Pages generated from the code (the plugin options reference, the contract reference):
written, or checked against what is on disk, the same way for each."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, check: bool, command: str) -> int:
    """Write `text` to `path`, or with `check` write nothing and return 1 when the page
    on disk differs (saying which `command` makes it anew); 0 otherwise."""
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `{command}`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0

"""How to fix each finding code, as docs/findings.md says it: read from that page when
the console runs from a source tree (an installed wheel has no docs/: then no hints,
and the record page links to the documentation instead)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

FINDINGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "findings.md"


@cache
def hints(path: Path = FINDINGS_DOC) -> dict[str, str]:
    """{code: how to fix it} from the tables of docs/findings.md (`| code | severity |
    what it means | how to fix it |`); empty when the page is not there."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            for code in cells[0].replace("`", "").split(","):
                out.setdefault(code.strip(), cells[-1].replace("`", ""))
    return out

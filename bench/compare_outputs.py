"""Compare a hand-written baseline's outcome lines with `s321 preview --json`'s, unit by
unit (ref): status, source location and the whole record. A baseline is only a fair
comparison while this says nothing differs. Usage:

    s321 preview -c CONFIG -p PIPELINE --json > framework.jsonl
    python bench/baseline_carrier.py x12-309 FILE --out baseline.jsonl
    python bench/compare_outputs.py framework.jsonl baseline.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def outcomes(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return {o["ref"]: o for o in map(json.loads, fh)}


def main(argv: list[str]) -> int:
    framework, baseline = outcomes(Path(argv[0])), outcomes(Path(argv[1]))
    differ = 0
    for ref in sorted(set(framework) | set(baseline)):
        a, b = framework.get(ref), baseline.get(ref)
        if a is None or b is None:
            differ += 1
            print(f"{ref}: only in {'the baseline' if a is None else 'the framework'}")
            continue
        fields = [f for f in ("status", "source") if a[f] != b[f]]
        ra, rb = a["record"] or {}, b["record"] or {}
        fields += [f"record.{k}" for k in sorted(set(ra) | set(rb)) if ra.get(k) != rb.get(k)]
        if fields:
            differ += 1
            if differ <= 10:
                print(f"{ref}: {', '.join(fields)}")
    print(f"{len(framework)} units, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The check every source that reads spans answers to (s321.pipeline: `read_key_positions`
and `read_span`; tests/plugins/test_*_spans.py): the keys pass gives `read()`'s units
with the same keys, locations and checkpoints, a unit without a position is `read()`'s
own, and the units read span by span, from any cut, are `read()`'s in every field."""

from __future__ import annotations

from typing import Any

from s321.contracts import RawUnit


def by_spans(source: Any, cuts: set[int] | None) -> tuple[list[RawUnit], list[RawUnit]]:
    """(read()'s units, the units the keys pass hands on whole plus those read span by
    span: a span starts at each unit whose index is in `cuts` (None: every unit), and
    where the keys pass broke the run of positions, and reads as many as the run holds)."""
    full = list(source.read())
    pairs = list(source.read_key_positions())
    assert [(u.key, u.location, u.checkpoint) for u, _ in pairs] == [
        (u.key, u.location, u.checkpoint) for u in full]
    got: list[RawUnit] = []
    i = 0
    while i < len(pairs):
        unit, at = pairs[i]
        if at is None:
            assert unit == full[i]
            got.append(unit)
            i += 1
            continue
        n = 1
        while (i + n < len(pairs) and pairs[i + n][1] is not None
               and pairs[i + n][1][0] == at[0] and (cuts is not None and i + n not in cuts)):
            n += 1
        got += list(source.read_span(at, n))
        i += n
    return full, got

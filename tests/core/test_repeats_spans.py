"""s321.repeats with tags (the chunk each unit goes to, when preview workers read their
own spans): the tags of every unit of a repeated key are given back, the same whether the
keys were counted in memory or spilled to disk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from s321.repeats import RepeatedKeys

units = st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv"]), st.sampled_from(["#1", "#2", "#3", "x\x1fy"]),
                           st.integers(1, 6), st.integers(0, 4)), max_size=40)


def found(rows: list[tuple[str, str, int, int]], in_memory: int
          ) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], set[int]]]:
    with RepeatedKeys(in_memory=in_memory) as keys:
        for input_, key, line, tag in rows:
            keys.add((input_, key), f"{input_}:{line}", tag)
        return keys.repeated(), keys.tags()


@settings(max_examples=200, deadline=None)
@given(units)
def test_the_tags_of_repeated_keys_in_memory_and_spilled(rows: list[tuple[str, str, int, int]]) -> None:
    places: dict[tuple[str, str], list[str]] = {}
    tags: dict[tuple[str, str], set[int]] = {}
    for input_, key, line, tag in rows:
        at = places.setdefault((input_, key), [])
        if f"{input_}:{line}" not in at:
            at.append(f"{input_}:{line}")
        tags.setdefault((input_, key), set()).add(tag)
    expected = {slot: at for slot, at in places.items() if len(at) > 1}
    expected_tags = {slot: tags[slot] for slot in expected}
    assert found(rows, in_memory=1_000) == (expected, expected_tags)
    for limit in (0, 2, 5):  # spilled at once, or part way through
        assert found(rows, in_memory=limit) == (expected, expected_tags)

"""s321.repeats: the keys that repeat in an input, the same whether they were counted in
memory or spilled to disk (memory stays flat however large the input)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from s321.repeats import RepeatedKeys

units = st.lists(st.tuples(st.sampled_from(["a.csv", "b.csv"]), st.sampled_from(["#1", "#2", "#3", "#4", "x\x1fy"]),
                           st.integers(1, 6)), max_size=40)


def repeated(rows: list[tuple[str, str, int]], in_memory: int) -> dict[tuple[str, str], list[str]]:
    with RepeatedKeys(in_memory=in_memory) as keys:
        for input_, key, line in rows:
            keys.add((input_, key), f"{input_}:{line}")
        return keys.repeated()


@settings(max_examples=200, deadline=None)
@given(units)
def test_spilled_and_in_memory_agree(rows: list[tuple[str, str, int]]) -> None:
    expected: dict[tuple[str, str], list[str]] = {}
    for input_, key, line in rows:
        places = expected.setdefault((input_, key), [])
        if f"{input_}:{line}" not in places:
            places.append(f"{input_}:{line}")
    expected = {slot: places for slot, places in expected.items() if len(places) > 1}
    assert repeated(rows, in_memory=1_000) == expected
    assert repeated(rows, in_memory=2) == expected  # past two keys, on disk


def test_past_the_limit_keys_wait_on_disk_not_in_memory() -> None:
    keys = RepeatedKeys(in_memory=1_000)
    try:
        for i in range(20_000):
            keys.add(("big.csv", f"#{i}"), f"big.csv:{i + 2}")
        keys.add(("big.csv", "#7"), "big.csv:99999")
        assert keys._db is not None and not keys._first  # spilled
        assert keys.repeated() == {("big.csv", "#7"): ["big.csv:9", "big.csv:99999"]}
    finally:
        keys.close()

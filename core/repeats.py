"""Which keys occur more than once in an input, found with memory that does not grow with
the input: up to `IN_MEMORY` distinct keys are counted in a dict, past that every key and
its location go to a private temporary SQLite database (on disk, deleted on close),
which answers the repeated ones with one grouped query.

`RepeatedKeys.add(slot, location)` for each unit, then `repeated()`: slot -> the
locations of every unit with that slot, in input order, for the slots seen at two places
or more (several units at one place, such as the broken pieces of one line, are that
place's problem, not a repeated key). With `add(slot, location, tag)` (s321.parallel
tags each unit with the number of the chunk it goes to), `tags()` then says which tags
the units of each repeated slot had.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable

IN_MEMORY = 50_000
"""Distinct keys counted in memory before spilling (a few MB); most inputs stay below."""

_CHUNK = 5_000
"""Rows written to the spill database per executemany."""


class RepeatedKeys:
    def __init__(self, in_memory: int = IN_MEMORY):
        self._limit = in_memory
        self._first: dict[Hashable, str] = {}
        self._more: dict[Hashable, list[str]] = {}
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str, int | None]] = []
        self._first_tag: dict[Hashable, int] = {}
        self._more_tags: dict[Hashable, set[int]] = {}  # slots seen again only

    def add(self, slot: tuple[str, str], location: str, tag: int | None = None) -> None:
        if self._db is not None:
            self._pending.append((_text(slot), location, tag))
            if len(self._pending) >= _CHUNK:
                self._flush()
            return
        seen = self._first.get(slot)
        if seen is None:
            self._first[slot] = location
            if tag is not None:
                self._first_tag[slot] = tag
            if len(self._first) > self._limit:
                self._spill()
            return
        if tag is not None:
            self._more_tags.setdefault(slot, {self._first_tag[slot]}).add(tag)
        if location != seen and location not in self._more.get(slot, ()):
            self._more.setdefault(slot, [seen]).append(location)

    def tags(self) -> dict[tuple[str, str], set[int]]:
        """Repeated slot -> the tags its units were added with (call after `repeated`)."""
        if self._db is None:
            return {slot: self._more_tags.get(slot, set()) for slot in self._more}  # type: ignore[misc]
        self._flush()
        found: dict[tuple[str, str], set[int]] = {}
        rows = self._db.execute(
            "SELECT DISTINCT slot, tag FROM keys WHERE tag IS NOT NULL AND slot IN"
            " (SELECT slot FROM keys GROUP BY slot HAVING COUNT(DISTINCT location) > 1)")
        for text, tag in rows:
            found.setdefault(_slot(text), set()).add(tag)
        return found

    def repeated(self) -> dict[tuple[str, str], list[str]]:
        if self._db is None:
            return dict(self._more)  # type: ignore[arg-type]
        self._flush()
        found: dict[tuple[str, str], list[str]] = {}
        rows = self._db.execute(
            "SELECT slot, location, MIN(seq) AS first FROM keys WHERE slot IN"
            " (SELECT slot FROM keys GROUP BY slot HAVING COUNT(DISTINCT location) > 1)"
            " GROUP BY slot, location ORDER BY slot, first")
        for text, location, _first in rows:
            found.setdefault(_slot(text), []).append(location)
        return found

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _spill(self) -> None:
        # "" opens a private temporary database on disk (SQLITE_TMPDIR, TMPDIR or
        # /var/tmp), removed when closed; its page cache bounds the memory it takes.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE keys (seq INTEGER PRIMARY KEY, slot TEXT NOT NULL,"
                         " location TEXT NOT NULL, tag INTEGER)")
        for slot, first in self._first.items():
            text = _text(slot)  # type: ignore[arg-type]
            self._pending.append((text, first, self._first_tag.get(slot)))
            for location in self._more.get(slot, [])[1:]:
                self._pending.append((text, location, None))
            # Its other tags, at its first place: it adds no place, only the tags.
            self._pending += [(text, first, tag) for tag in self._more_tags.get(slot, ())]
        self._first.clear()
        self._more.clear()
        self._first_tag.clear()
        self._more_tags.clear()
        self._flush()

    def _flush(self) -> None:
        if self._pending and self._db is not None:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO keys (slot, location, tag) VALUES (?, ?, ?)",
                                 self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()

    def __enter__(self) -> RepeatedKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SEP = "\x1f"


def _text(slot: tuple[str, str]) -> str:
    return f"{slot[0]}{_SEP}{slot[1]}"


def _slot(text: str) -> tuple[str, str]:
    input_, _, key = text.partition(_SEP)
    return input_, key

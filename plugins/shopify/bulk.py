"""Shopify's GraphQL bulk operation output put back together, one order at a time.

A bulk query's result is JSON Lines in which an order's line items, fulfillments and
other connections come as lines of their own, each naming its parent's id in
`__parentId` (and a line item's own children name the line item). Grouped output
(`groupObjects: true`) puts every object's children after it and before the next
top-level object; ungrouped output may put them anywhere in the file.

Promises: an order is handed on with every line that names it, or not at all. Grouping
is checked over the whole file before any order is read (`ungrouped_at`): an order read
from ungrouped output could miss lines that come later and be filed short, so such a
file is refused whole by the source. (An order whose own line appears twice is two
units with one key, which the pipeline's duplicate-key check refuses both of.) Memory
holds one order and its lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

PARENT = "__parentId"
_MARK = b'"__parentId"'
_SCAN = 64 * 1024  # a block at a time: memory stays flat whatever the file


def looks_bulk(path: Path) -> bool:
    """Whether any line of the file may name a parent (a quick byte search; the lines
    decide)."""
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(_SCAN):
            if _MARK in tail + block[:len(_MARK)] or _MARK in block:
                return True
            tail = block[-len(_MARK):]
    return False


def ungrouped_at(docs: Iterable[tuple[int, Any]]) -> tuple[bool, tuple[int, str] | None]:
    """(whether any line names a parent, the first line, with the parent it names, whose
    parent is neither the top-level object being read nor one of its children: then the
    output is not grouped)."""
    group: set[str] = set()
    named = False
    for number, doc in docs:
        parent = doc.get(PARENT) if isinstance(doc, dict) else None
        own = doc.get("id") if isinstance(doc, dict) else None
        if parent is None:
            group = {own} if isinstance(own, str) else set()
            continue
        named = True
        if not isinstance(parent, str) or parent not in group:
            return True, (number, str(parent))
        if isinstance(own, str):
            group.add(own)
    return named, None


def connection_of(child_id: Any) -> str | None:
    """The connection a child belongs to, by the type in its global id:
    gid://shopify/LineItem/1 -> "lineItems", gid://shopify/Fulfillment/2 -> "fulfillments"."""
    if not isinstance(child_id, str) or not child_id.startswith("gid://shopify/"):
        return None
    kind = child_id[len("gid://shopify/"):].split("/", 1)[0]
    if not kind.isidentifier():
        return None
    return kind[0].lower() + kind[1:] + "s"


class Assembler:
    """Grouped lines in, whole top-level objects out: each line naming a parent goes
    into its parent's connection (`{"nodes": [...]}`, as a GraphQL query nests it)."""

    def __init__(self) -> None:
        self.top: tuple[int, Any, list[str]] | None = None
        self.by_id: dict[str, dict[str, Any]] = {}

    def add(self, number: int, doc: Any) -> tuple[int, Any, list[str]] | None:
        """Take one line; the object before it, whole, when this line starts another:
        (its line, the object, problems that keep it from being whole)."""
        parent = doc.get(PARENT) if isinstance(doc, dict) else None
        if parent is None:
            done, self.top = self.top, (number, doc, [])
            own = doc.get("id") if isinstance(doc, dict) else None
            self.by_id = {own: doc} if isinstance(own, str) else {}
            return done
        holder = self.by_id.get(parent)
        if holder is None:  # a line of this object that could not be taken names it
            self.damage(f"line {number} belongs to {parent}, a line that could not be taken")
            return None
        child = {k: v for k, v in doc.items() if k != PARENT}
        name = connection_of(child.get("id"))
        if name is None:
            self.damage(f"line {number} has no Shopify id, so which list of {parent} it "
                        "belongs to cannot be told")
            return None
        connection = holder.get(name)
        if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
            connection = holder[name] = {"nodes": []}
        connection["nodes"].append(child)
        self.by_id[child["id"]] = child
        return None

    def damage(self, why: str) -> None:
        """A line that may have belonged to the object being read could not be taken."""
        if self.top is not None:
            self.top[2].append(why)

    def finish(self) -> tuple[int, Any, list[str]] | None:
        done, self.top = self.top, None
        return done

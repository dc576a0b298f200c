"""Lines of a Cargo-IMP file, read in fixed-size chunks so memory stays flat.

Any of CRLF, LF or a lone CR ends a line, mixed freely. Each line comes out decoded,
with surrounding whitespace removed and a note of what had to be repaired (undecodable
bytes, control characters, an over-long line cut short); it never raises for content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 4096
"""Cargo-IMP lines are at most 69 characters; anything far beyond that is not a
message line, and keeping all of it would let one bad file take the memory."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    text: str
    repaired: str | None = None
    """Why the text is not exactly what the file holds, or None when it is."""


def is_line_compatible(encoding: str) -> bool:
    """True for encodings in which LF and CR are the single bytes of ASCII, the only
    ones whose lines can be found before decoding (not UTF-16 or UTF-32)."""
    try:
        # str.encode refuses unknown names and text transforms such as rot13 (LookupError).
        return "\n\r/".encode(encoding) == b"\n\r/"
    except (LookupError, UnicodeError):
        return False


def read_lines(stream: BinaryIO, encoding: str = "utf-8") -> Iterator[Line]:
    number = 0
    for raw, cut in _split(stream):
        number += 1
        yield _decode(number, raw, cut, encoding)


def _split(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    pending = b""
    cut = False
    after_cr = False  # a chunk ended in CR: an LF opening the next one belongs to it
    while chunk := stream.read(CHUNK_BYTES):
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        # bytes.splitlines knows exactly CR, LF and CRLF, and does the work in C.
        for piece in chunk.splitlines(keepends=True):
            if piece.endswith((b"\n", b"\r")):
                line, more_cut = _append(pending, piece.rstrip(b"\r\n"))
                yield line, cut or more_cut
                pending, cut = b"", False
            else:
                pending, more_cut = _append(pending, piece)
                cut = cut or more_cut
    if pending or cut:
        yield pending, cut


def _append(pending: bytes, piece: bytes) -> tuple[bytes, bool]:
    room = MAX_LINE_BYTES - len(pending)
    if len(piece) > room:
        return pending + piece[:max(room, 0)], True
    return pending + piece, False


def _decode(number: int, raw: bytes, cut: bool, encoding: str) -> Line:
    notes = []
    if cut:
        notes.append(f"longer than {MAX_LINE_BYTES} bytes, cut short")
    try:
        text = raw.decode(encoding)
    except UnicodeError:
        notes.append(f"not valid {encoding}, unreadable bytes replaced")
        try:
            text = raw.decode(encoding, errors="replace")
        except UnicodeError:  # a codec without error handlers (idna): latin-1 always reads
            text = raw.decode("latin-1")
    if number == 1:
        text = text.removeprefix("\ufeff")
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        notes.append("control characters removed")
    return Line(number, text.strip(), "; ".join(notes) or None)

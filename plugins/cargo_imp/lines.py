"""Lines of a Cargo-IMP file, read in fixed-size chunks so memory stays flat.

Any of CRLF, LF or a lone CR ends a line, mixed freely. Each line comes out decoded,
with surrounding whitespace removed and a note of what had to be repaired (undecodable
bytes, control characters, an over-long line cut short); it never raises for content.
A reading can be followed chunk by chunk (`Chunks`) and started again at the chunk a
line ended in (`ChunkStart`): the same lines from there on, numbered the same.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 4096
"""Cargo-IMP lines are at most 69 characters; anything far beyond that is not a
message line, and keeping all of it would let one bad file take the memory."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NOT_PLAIN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029\ufeff]")
"""What keeps a decoded run of whole lines off the quick way: control characters (to be
removed, with a note), line breaks that str.splitlines knows and bytes.splitlines does
not, and a byte order mark (dropped from the first line only)."""


@dataclass(slots=True)
class Line:
    """One line, read-only by convention (not frozen: a frozen dataclass costs three
    times as much to make, and a house is some 16 lines a reading)."""

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


@dataclass(frozen=True, slots=True)
class ChunkStart:
    """The state of a reading at the start of one chunk: the chunk's offset in the stream,
    the lines yielded before it, the line it continues (its bytes so far, and whether it
    was cut short) and whether the chunk before ended in a CR."""

    offset: int
    number: int
    pending: bytes = b""
    cut: bool = False
    after_cr: bool = False


class Chunks:
    """Follows a reading of lines: `at` is the start of the chunk it reads now, the
    chunk the line yielded last ended in."""

    def __init__(self, start: ChunkStart | None = None) -> None:
        self.at = start or ChunkStart(0, 0)


def read_lines(stream: BinaryIO, encoding: str = "utf-8", chunks: Chunks | None = None
               ) -> Iterator[Line]:
    """The lines of `stream`; with `chunks`, from its `at` on (the stream is seeked to
    it), noting there the start of each chunk read."""
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    chunks = chunks or Chunks()
    if chunks.at.offset:
        stream.seek(chunks.at.offset)
    if utf8:
        yield from _read_utf8(stream, chunks)
        return
    number = chunks.at.number
    for raw, cut in _split(stream, chunks):
        number += 1
        yield _decode(number, raw, cut, encoding)


def _read_utf8(stream: BinaryIO, chunks: Chunks) -> Iterator[Line]:
    """`read_lines` for UTF-8, the same lines: the whole lines of each chunk are decoded
    and split in one go when they are plain (valid UTF-8, none too long, no control
    character, nothing str.splitlines takes for a line end that bytes.splitlines does
    not); anything else goes line by line as `_split` and `_decode` do. A house is some
    30 lines, and a Python call or two per line was most of reading one."""
    start = chunks.at
    number, pending, cut, after_cr = start.number, start.pending, start.cut, start.after_cr
    offset = start.offset
    while chunk := stream.read(CHUNK_BYTES):
        chunks.at = ChunkStart(offset, number, pending, cut, after_cr)
        offset += len(chunk)
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        pieces = chunk.splitlines(keepends=True)
        first, last = 0, len(pieces)
        if pieces and (pending or cut):  # the first piece ends a line begun before
            piece = pieces[0]
            if piece.endswith((b"\n", b"\r")):
                line, more_cut = _append(pending, piece.rstrip(b"\r\n"))
                number += 1
                yield _decode(number, line, cut or more_cut, "utf-8")
                pending, cut = b"", False
            else:
                pending, more_cut = _append(pending, piece)
                cut = cut or more_cut
            first = 1
        if last > first and not pieces[-1].endswith((b"\n", b"\r")):
            last -= 1  # a line the next chunk ends
        whole = pieces[first:last]
        text = None
        if whole and number > 0 and max(map(len, whole)) <= MAX_LINE_BYTES:
            try:
                text = b"".join(whole).decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and _NOT_PLAIN.search(text):
                text = None
        if text is not None:
            for line in text.splitlines():
                number += 1
                yield Line(number, line.strip())
        else:
            for piece in whole:
                number += 1
                line, more_cut = _append(b"", piece.rstrip(b"\r\n"))
                yield _decode(number, line, more_cut, "utf-8")
        if last < len(pieces) and last >= first:
            pending, more_cut = _append(pending, pieces[-1])
            cut = cut or more_cut
    if pending or cut:
        number += 1
        yield _decode(number, pending, cut, "utf-8")


def _split(stream: BinaryIO, chunks: Chunks | None = None) -> Iterator[tuple[bytes, bool]]:
    chunks = chunks or Chunks()
    start = chunks.at
    # after_cr: a chunk ended in CR, so an LF opening the next one belongs to it.
    number, pending, cut, after_cr = start.number, start.pending, start.cut, start.after_cr
    offset = start.offset
    while chunk := stream.read(CHUNK_BYTES):
        chunks.at = ChunkStart(offset, number, pending, cut, after_cr)
        offset += len(chunk)
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        # bytes.splitlines knows exactly CR, LF and CRLF, and does the work in C.
        for piece in chunk.splitlines(keepends=True):
            if piece.endswith((b"\n", b"\r")):
                line, more_cut = _append(pending, piece.rstrip(b"\r\n"))
                number += 1
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

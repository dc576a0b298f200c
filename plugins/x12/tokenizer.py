"""Generic ANSI X12 tokenizing: bytes to numbered segments, separators from each ISA.

Promises: a file is read in chunks, so memory is bounded by the longest segment, never
by the size of the file; segments are numbered from 1 at the start of the file; nothing
here raises on bad input: every problem becomes a `Finding` located at `FILE:segment N`.
Line breaks inside an interchange whose separators are none of CR and LF are not data
(X12's character sets have no CR or LF): they are dropped wherever they stand, so a
"wrapped" file (cut into lines of 80 characters, as mailboxes and mainframes deliver
them, the ISA included) reads as the same file in one line.
A tokenization knows the byte offset each segment it yielded starts at (`Cursor`), and
can be started again there (`resume`): the same segments from that one on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from s321.findings import Finding, error

ISA_LENGTH = 106
CHUNK_SIZE = 64 * 1024
MAX_SEGMENT = 64 * 1024
"""A segment longer than this is not X12 (the longest real ones are a few hundred
bytes); it is reported and skipped so that garbage cannot make the buffer grow."""

# Offsets of the element separator inside the fixed-width ISA (ISA01..ISA16).
_ISA_SEPARATORS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)
_WHITESPACE = b" \t\r\n\f\v"
_BLANKS = " \t\r\n"  # str.strip() alone would also eat \x1c-\x1f, which can be separators
_BOM = b"\xef\xbb\xbf"
_BLANK_BYTES = _BLANKS.encode("ascii")
_PADDING = _WHITESPACE + b"\x00\x1a"
"""What may follow an interchange's IEA and mean nothing: white space, the NULs of a
block-padded transfer and a DOS end-of-file mark (Ctrl-Z). Before the first IEA they
are reported, as any other bytes outside an interchange (a file of NULs is no file)."""
_TAG = re.compile(r"[A-Z0-9]{2,3}\Z")
_TAG_BYTES = re.compile(rb"[A-Z0-9]{2,3}\Z")
ENVELOPE_TAGS = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA"})
_TAGS_SEEN: set[str] = set()
"""Tags that matched _TAG once (at most 36³ + 36² of them), so a segment's tag is a set
look-up instead of a regular expression's match."""


def location(source: str, number: int) -> str:
    return f"{source}:segment {number}"


# --------------------------------------------------------------------------- segments


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str
    component: str
    segment: str
    repetition: str | None = None


@dataclass(slots=True)
class Segment:
    """One segment: its tag, its elements (stripped, element 01 first) and its number
    counted from the start of the file. Read-only by convention, not frozen: a frozen
    dataclass costs three times as much to make (0.7 against 0.2 µs), and a bill of
    lading is some 30 segments over a preview's readings."""

    tag: str
    elements: tuple[str, ...]
    number: int
    delimiters: Delimiters

    def get(self, index: int) -> str:
        """Element `index`, numbered as X12 does (1 for TAG01); '' when absent."""
        if 1 <= index <= len(self.elements):
            return self.elements[index - 1]
        return ""

    def components(self, index: int) -> list[str]:
        return [c.strip(_BLANKS) for c in self.get(index).split(self.delimiters.component)]

    def repeats(self, index: int) -> list[str]:
        value = self.get(index)
        if self.delimiters.repetition is None:
            return [value]
        return [r.strip(_BLANKS) for r in value.split(self.delimiters.repetition)]


def _decode(raw: bytes, latin1_only: bool, encoding: str = "utf-8") -> str:
    # The source checks a whole file against its `encoding` before reading it, so the
    # fallback below only serves callers that tokenize unchecked bytes.
    if encoding != "utf-8" and not latin1_only:
        return raw.decode(encoding, "replace")
    if not latin1_only:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1")


class _Buffer:
    """A window on the stream: bytes are read a chunk at a time and dropped once used."""

    def __init__(self, stream: BinaryIO, chunk_size: int, base: int = 0):
        self.stream = stream
        self.chunk_size = max(1, chunk_size)
        self.buf = bytearray()
        self.pos = 0
        self.base = base  # the stream's offset of buf[0]
        self.eof = False

    def available(self) -> int:
        return len(self.buf) - self.pos

    def fill(self) -> bool:
        """Read one more chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(self.chunk_size)
        if self.pos:
            del self.buf[: self.pos]
            self.base += self.pos
            self.pos = 0
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def ensure(self, n: int) -> bool:
        while self.available() < n:
            if not self.fill():
                return False
        return True

    def skip(self, chars: bytes) -> bool:
        """Skip any of `chars`; False when nothing else is left."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in chars:
                self.pos += 1
            if self.pos < len(self.buf):
                return True
            if not self.fill():
                return False

    def discard_through(self, needle: bytes) -> bool:
        """Drop bytes up to and including the next `needle`; False if the stream ends."""
        while True:
            at = self.buf.find(needle, self.pos)
            if at >= 0:
                self.pos = at + len(needle)
                return True
            self.pos = max(self.pos, len(self.buf) - len(needle) + 1)
            if not self.fill():
                self.pos = len(self.buf)
                return False


_HEADER_BYTES = 200
"""What is read to find an ISA's end: its 106 characters, padding gone wrong, or the
line breaks of a file wrapped at 8 characters or more."""


def _parse_isa(header: bytes) -> tuple[Delimiters, tuple[str, ...], int] | str:
    """Delimiters, elements and length (in `header`'s bytes) of an ISA at the start of
    `header`, or why not. An ISA with line breaks inside it (a wrapped file) is read
    without them, when its separators are none of CR and LF."""
    parsed = _parse_isa_line(header)
    if isinstance(parsed, str) or not _wrapped(header, parsed[2]):
        return parsed
    unwrapped, used = _unwrap_isa(header)
    again = _parse_isa_line(unwrapped)
    if isinstance(again, str) or again[2] != len(unwrapped):
        return parsed
    delims, elements, _length = again
    if any(c in "\r\n" for c in (delims.element, delims.component, delims.segment)):
        return parsed
    return delims, elements, used


def _wrapped(header: bytes, length: int) -> bool:
    """Whether the ISA read as `length` bytes of `header` has line breaks inside it, or
    a line break taken for its terminator where a separator follows the break."""
    if b"\r" in header[:length - 1] or b"\n" in header[:length - 1]:
        return True
    term = header[length - 1 : length]
    if term not in (b"\r", b"\n"):
        return False
    rest = header[length:].lstrip(b"\r\n")
    return bool(rest) and _is_separator(rest[0])


def _unwrap_isa(header: bytes) -> tuple[bytes, int]:
    """The ISA at the start of `header` without its line breaks, and how many bytes of
    `header` it took: up to the 16th element separator, ISA16, then the terminator (a
    line break, unless a separator follows it)."""
    es = header[3]
    out = bytearray()
    seen = i = 0
    while i < len(header) and seen < 16:
        byte = header[i]
        i += 1
        if byte in (10, 13):
            continue
        out.append(byte)
        seen += byte == es and len(out) > 3
    while i < len(header) and header[i] in (10, 13):
        i += 1
    out += header[i : i + 1]  # ISA16
    i += 1
    j = i
    while j < len(header) and header[j] in (10, 13):
        j += 1
    if i < j < len(header) and _is_separator(header[j]):
        i = j  # the breaks were wrapping: the separator after them ends the ISA
    out += header[i : i + 1]
    return bytes(out), i + 1


def _parse_isa_line(header: bytes) -> tuple[Delimiters, tuple[str, ...], int] | str:
    """`_parse_isa` for an ISA as the standard writes it, without line breaks inside.

    The standard fixes the ISA at 106 characters; a header padded wrongly is still
    read when its 16 elements can be found, since its separators are unambiguous."""
    es = header[3:4]
    if len(header) >= ISA_LENGTH and all(header[i : i + 1] == es for i in _ISA_SEPARATORS):
        length = ISA_LENGTH
    else:
        seps = [i for i in range(3, min(len(header), _HEADER_BYTES)) if header[i : i + 1] == es]
        if len(seps) < 16 or seps[15] + 2 >= len(header):
            return "the ISA header is cut short or has fewer than 16 elements"
        length = seps[15] + 3
    body = header[: length - 1]
    cs = body[-1:]
    term = header[length - 1 : length]
    elements = tuple(
        e.strip(_BLANKS) for e in body.decode("latin-1").split(es.decode("latin-1"))[1:]
    )
    for name, sep in (
        ("element separator", es),
        ("component separator (ISA16)", cs),
        ("segment terminator", term),
    ):
        if not sep or sep.isalnum() or sep == b" ":
            return f"the ISA declares {sep.decode('latin-1')!r} as its {name}, which cannot be one"
    if len({es, cs, term}) < 3:
        return "the ISA uses the same character for two different separators"
    version = elements[11] if len(elements) > 11 else ""
    isa11 = elements[10][:1] if len(elements) > 10 else ""
    repetition = None
    # ISA11 is the repetition separator from 00402 on; before that it is the
    # standards identifier ("U").
    if (
        version >= "00402"
        and isa11
        and not isa11.isalnum()
        and isa11.encode("latin-1") not in (es, cs, term)
    ):
        repetition = isa11
    delims = Delimiters(
        es.decode("latin-1"), cs.decode("latin-1"), term.decode("latin-1"), repetition
    )
    return delims, elements, length


def segments(
    stream: BinaryIO, source: str, chunk_size: int = CHUNK_SIZE, envelope_only: bool = False,
    encoding: str = "utf-8", cursor: Cursor | None = None,
    elements_of: frozenset[str] | None = None,
) -> Iterator[Segment | Finding]:
    """Tokenize `stream` into segments, yielding a `Finding` for bytes that are not X12.

    `source` names the input in finding locations. Whitespace (CR, LF, spaces) after a
    segment terminator is ignored; so is a UTF-8 byte order mark at the start. With
    `envelope_only`, segments other than ISA/GS/ST/SE/GE/IEA come without elements
    (same tags, numbers and findings, for a cheaper first pass); with `elements_of`,
    those with other tags than these and the envelope's. A `cursor` follows where each
    segment starts."""
    if envelope_only or elements_of is not None:
        elements_of = ENVELOPE_TAGS | (elements_of or frozenset())
    tok = _Tokenizer(stream, source, chunk_size, elements_of, encoding)
    if cursor is not None:
        cursor._tokenizer = tok
    return tok.run()


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a tokenization can be started again at a segment: the segment's byte offset
    in the stream, the number of the segment before it, and the separators in force."""

    offset: int
    number: int
    delimiters: Delimiters


class Cursor:
    """Where the segment a tokenization yielded last starts (`mark(segment)`), for a
    reader that wants to come back to it; given to `segments` to follow that
    tokenization."""

    def __init__(self) -> None:
        self._tokenizer: _Tokenizer | None = None

    def mark(self, segment: Segment) -> Mark:
        """The mark of `segment`, the one the tokenization yielded last."""
        tok = self._tokenizer
        assert tok is not None and segment.number == tok.number
        return Mark(tok.at, segment.number - 1, segment.delimiters)


def resume(stream: BinaryIO, source: str, mark: Mark, chunk_size: int = CHUNK_SIZE,
           encoding: str = "utf-8") -> Iterator[Segment | Finding]:
    """The items `segments` yields from the segment at `mark` on, for the same stream
    read from its start: numbers, separators and findings the same (`stream` is
    seeked to the mark's offset)."""
    stream.seek(mark.offset)
    tok = _Tokenizer(stream, source, chunk_size, None, encoding, base=mark.offset)
    tok.number = mark.number
    tok.use(mark.delimiters)
    return tok.run(resumed=True)


class _Tokenizer:
    """The state of one tokenization: the buffer, the segment count and the separators
    of the interchange being read (None between interchanges)."""

    def __init__(self, stream: BinaryIO, source: str, chunk_size: int,
                 elements_of: frozenset[str] | None, encoding: str = "utf-8", base: int = 0):
        self.buf = _Buffer(stream, chunk_size, base)
        self.encoding = encoding
        self.source = source
        # The tags whose segments are split into elements (None: every tag's).
        self.elements_of = (None if elements_of is None
                            else frozenset(t.encode("ascii") for t in elements_of))
        self.number = 0
        self.at = 0  # the byte offset of the segment yielded last
        self.delims: Delimiters | None = None
        self.term = self.es = b""
        self.strip = _WHITESPACE
        self.latin1_only = False
        self.unwrap = False  # CR and LF are no separator here: drop them inside segments
        self.after_iea = False  # an interchange has ended: padding after it means nothing

    def use(self, delims: Delimiters) -> None:
        """Read on with an interchange's separators."""
        self.delims = delims
        self.term, self.es = delims.segment.encode("latin-1"), delims.element.encode("latin-1")
        self.strip = bytes(
            b for b in _WHITESPACE if chr(b) not in (delims.element, delims.component)
        )
        seps = delims.element + delims.component + delims.segment + (delims.repetition or "")
        self.latin1_only = any(ord(c) > 0x7F for c in seps)
        self.unwrap = "\r" not in seps and "\n" not in seps

    def run(self, resumed: bool = False) -> Iterator[Segment | Finding]:
        buf = self.buf
        try:
            if not resumed and buf.ensure(3) and buf.buf.startswith(_BOM, buf.pos):
                buf.pos += 3
            while buf.skip(self.strip if self.delims else _PADDING if self.after_iea else _WHITESPACE):
                if (
                    buf.ensure(4)
                    and buf.buf.startswith(b"ISA", buf.pos)
                    and _is_separator(buf.buf[buf.pos + 3])
                    # A bare "ISA" segment inside an interchange is one, as in _body
                    # (between interchanges the last one's terminator means nothing).
                    and (self.delims is None or buf.buf[buf.pos + 3 : buf.pos + 4] != self.term)
                ):
                    yield self._header()
                elif self.delims is None:
                    skipped = _skip_to_isa(buf)
                    yield error(
                        "x12-not-x12",
                        "ISA",
                        f"{skipped} bytes that belong to no interchange were "
                        "skipped (expected an ISA header)",
                        location(self.source, self.number + 1),
                    )
                else:
                    yield from self._body()
        except OSError as exc:
            yield error(
                "x12-read-error",
                "",
                f"the file could not be read: {exc.strerror or exc}",
                location(self.source, self.number + 1),
            )

    def _header(self) -> Segment | Finding:
        buf = self.buf
        buf.ensure(_HEADER_BYTES)
        parsed = _parse_isa(bytes(buf.buf[buf.pos : buf.pos + _HEADER_BYTES]))
        self.number += 1
        if isinstance(parsed, str):
            self.delims = None
            buf.pos += 3  # look for the next ISA from here on
            return error(
                "x12-isa-invalid",
                "ISA",
                f"interchange header unusable: {parsed}",
                location(self.source, self.number),
            )
        delims, elements, length = parsed
        self.use(delims)
        self.at = buf.base + buf.pos
        buf.pos += length
        return Segment("ISA", elements, self.number, delims)

    def _body(self) -> Iterator[Segment | Finding]:
        """The whole segments buffered, split in one go (cheap per segment); returns
        where the byte-level path takes over: at an ISA, after an IEA, at the end of
        what is buffered."""
        buf, term = self.buf, self.term
        data = bytes(buf.buf[buf.pos :])
        parts = data.split(term)
        if len(parts) == 1:  # no terminator buffered
            if len(data) > MAX_SEGMENT:
                yield self._overlong()
                buf.discard_through(term)
            elif not buf.fill():
                self.at = buf.base + buf.pos
                buf.pos = len(buf.buf)
                item = self._segment(data)  # the last segment may lack its terminator
                if item is not None:
                    yield item
            return
        step, end = len(term), 0
        origin = buf.base + buf.pos
        for part in parts[:-1]:
            here, end = end, end + len(part) + step
            raw = part.lstrip(self.strip)
            if raw.startswith(b"ISA") and len(raw) > 3 and _is_separator(raw[3]):
                buf.pos += here + len(part) - len(raw)
                return
            self.at = origin + here + len(part) - len(raw)
            item = self._overlong() if len(part) > MAX_SEGMENT else self._segment(raw)
            if item is not None:
                yield item
            if self.delims is None:  # after an IEA only an ISA may follow
                buf.pos += end
                return
        buf.pos += end

    def _overlong(self) -> Finding:
        self.number += 1
        return error(
            "x12-segment-too-long",
            "",
            f"no segment terminator {self.term.decode('latin-1')!r} "
            f"within {MAX_SEGMENT} bytes; skipped to the next one",
            location(self.source, self.number),
        )

    def _segment(self, raw: bytes) -> Segment | Finding | None:
        raw = raw.rstrip(self.strip)
        if not raw:
            return None
        if self.unwrap and (10 in raw or 13 in raw):  # LF, CR (an int: memchr, 10x faster)
            raw = raw.replace(b"\r", b"").replace(b"\n", b"")
        self.number += 1
        if self.elements_of is not None:
            cut = raw.find(self.es, 0, 4)
            tag_bytes = (raw[:cut] if cut >= 0 else raw[:4]).strip(_BLANK_BYTES)
            if tag_bytes not in self.elements_of:
                if _TAG_BYTES.match(tag_bytes):
                    return Segment(tag_bytes.decode("ascii"), (), self.number, self.delims)  # type: ignore[arg-type]
                return _bad_segment(self.source, self.number)
        assert self.delims is not None
        parts = _decode(raw, self.latin1_only, self.encoding).split(self.delims.element)
        tag = parts[0].strip(_BLANKS)
        if tag not in _TAGS_SEEN:
            if not _TAG.match(tag):
                return _bad_segment(self.source, self.number)
            _TAGS_SEEN.add(tag)
        seg = Segment(tag, tuple([p.strip(_BLANKS) for p in parts[1:]]), self.number, self.delims)
        if tag == "IEA":
            self.delims = None  # the next interchange may use other separators
            self.after_iea = True
        return seg


def _bad_segment(source: str, number: int) -> Finding:
    return error(
        "x12-bad-segment",
        "",
        "this is not a segment: it does not start with a 2 or 3 character segment id",
        location(source, number),
    )


def _is_separator(byte: int) -> bool:
    return not (chr(byte).isalnum() or byte in _WHITESPACE)


def _skip_to_isa(buf: _Buffer) -> int:
    """Drop bytes until the next `ISA` that could start a header; the count dropped."""
    dropped = 0
    start = buf.pos + 1  # the current position is known not to start a usable header
    while True:
        at = buf.buf.find(b"ISA", start)
        while at >= 0 and at + 3 < len(buf.buf) and not _is_separator(buf.buf[at + 3]):
            at = buf.buf.find(b"ISA", at + 1)
        if at >= 0 and at + 3 < len(buf.buf):
            dropped += at - buf.pos
            buf.pos = at
            return dropped
        keep = max(buf.pos, len(buf.buf) - 3)  # an ISA may straddle two chunks
        dropped += keep - buf.pos
        buf.pos = keep
        if not buf.fill():
            dropped += buf.available()
            buf.pos = len(buf.buf)
            return dropped
        start = buf.pos

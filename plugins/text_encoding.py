"""The text encoding of a file-based source's input, checked for the whole file before
any unit of it is read, so that a file in the wrong encoding is refused whole instead of
being filed in part (only its lines with non-ASCII characters would fail).

Promises: the check streams the file in chunks (memory does not grow with the file);
it never guesses a charset: the file is decoded with the encoding the source's options
name (`encoding`, UTF-8 by default) and the first byte that does not decode is reported
with its line and how to save the file again.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field

from s321.findings import Finding, error

CHUNK = 1 << 16  # small: the check must not show in a streaming reader's peak memory
BOM = b"\xef\xbb\xbf"


def line_compatible(encoding: str) -> bool:
    """True for encodings that write LF, CR and the ASCII punctuation of our formats as
    their single ASCII bytes (utf-8, latin-1, cp1252...; not utf-16): the only ones in
    which lines and separators can be found before decoding."""
    try:
        codecs.getincrementaldecoder(encoding)
        return "\n\r/,*~{}\":".encode(encoding) == b"\n\r/,*~{}\":"
    except (LookupError, UnicodeError, TypeError):
        return False


def check_encoding_option(value: str) -> str:
    """A pydantic validator for an `encoding` source option."""
    if not line_compatible(value):
        raise ValueError(f"{value!r} is not an encoding s321 can read line by line: use utf-8 "
                         "(the default), cp1252 (Windows, Excel) or latin-1")
    return codecs.lookup(value).name


def encoding_problem(path: Path, encoding: str = "utf-8", code: str = "invalid-encoding",
                     field: str = "") -> Finding | None:
    """An error naming `path`'s first line that is not `encoding` text, or None when the
    whole file decodes. An OSError is left to the reader, which reports it its own way."""
    with path.open("rb") as fh:
        return stream_problem(fh, path, encoding, code, field)


def stream_problem(fh: BinaryIO, path: Path, encoding: str = "utf-8",
                   code: str = "invalid-encoding", field: str = "") -> Finding | None:
    """`encoding_problem` on a file the reader has opened already (in binary, at its
    start); it is read to the end, so the reader seeks back before it reads."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    line = 1
    first = True
    while chunk := fh.read(CHUNK):
        if first and chunk.startswith(BOM) and codecs.lookup(encoding).name == "utf-8":
            chunk = chunk[len(BOM):]
        first = False
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return _finding(path, line + exc.object.count(b"\n", 0, exc.start),
                            exc.object[exc.start], encoding, code, field)
        line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return _finding(path, line, exc.object[exc.start], encoding, code, field)
    return None


def _finding(path: Path, line: int, byte: int, encoding: str, code: str, field: str) -> Finding:
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        how = ("Save it again as UTF-8 (Excel: Save As > 'CSV UTF-8 (Comma delimited)'; "
               "a text editor: Save with Encoding > UTF-8), or, if it is written in another "
               "encoding on purpose, name it in the source's options: encoding = \"cp1252\"")
    else:
        how = (f"Save it again as {name}, or name the encoding it is written in with the "
               f"source's `encoding` option (utf-8 is the default)")
    return error(code, field, f"{path} is not {name} text: line {line} holds the byte "
                 f"0x{byte:02X}, which {name} cannot decode; nothing of the file is filed. "
                 f"{how}", f"{path}:{line}")


def encoding_field(default: str = "utf-8") -> Any:
    """The `encoding` option's pydantic Field, the same for every file-based source."""
    return Field(default=default, description="Text encoding of the files (utf-8 by default; "
                 "cp1252 for a Windows/Excel export, latin-1). A file that does not decode "
                 "in it is refused whole, naming the line: nothing of it is filed.")

"""ANSI X12 support shared by the X12 source plugins (309 today; 856 and 214 next).

`tokenizer` turns a file into numbered segments and checks its envelopes; each
transaction set plugin maps the segments of the sets that passed.
"""

from .tokenizer import (
    Delimiters,
    EnvelopeChecker,
    Problem,
    Segment,
    SetHeader,
    location,
    read_sets,
    scan,
    segments,
)

__all__ = [
    "Delimiters",
    "EnvelopeChecker",
    "Problem",
    "Segment",
    "SetHeader",
    "location",
    "read_sets",
    "scan",
    "segments",
]

"""ANSI X12 support shared by the X12 source plugins (309 today; 856 and 214 next).

`tokenizer` turns a file into numbered segments, `envelope` checks their envelopes and
hands out the sets that passed; `manifest309` maps the segments of a 309 to bills.
"""

from .envelope import EnvelopeChecker, Problem, SetHeader, read_sets, scan
from .tokenizer import Delimiters, Segment, location, segments

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

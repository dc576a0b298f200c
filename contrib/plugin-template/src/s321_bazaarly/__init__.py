"""s321 plugin for Bazaarly, a made-up marketplace: its order export (CSV, one row per
line item) becomes Section 321 records, a small validator checks its listing links, and
a transport files batches to an HTTP receiver (one POST a batch, the ack in the answer).

The entry point (`[project.entry-points.s321] bazaarly = "s321_bazaarly"`) points here;
these four hooks are all s321 calls. docs/plugins.md in s321 explains each.
"""

from __future__ import annotations

from typing import Any

from s321.hookspecs import hookimpl

from .mapping import BazaarlyMapper
from .rules import ListingLinks
from .source import BazaarlyOptions, BazaarlySource
from .transport import BazaarlyHttpOptions, BazaarlyHttpTransport

SOURCE = "bazaarly-csv"


@hookimpl
def register_sources(register: Any) -> None:
    register(SOURCE, BazaarlySource, options=BazaarlyOptions,
             description="Bazaarly order export (CSV, one row per line item)")


@hookimpl
def register_mappers(register: Any) -> None:
    # Same name as the source: a pipeline reading `bazaarly-csv` uses it by default.
    register(SOURCE, BazaarlyMapper, options=BazaarlyOptions)


@hookimpl
def register_validators(register: Any) -> None:
    register("bazaarly-listing-links", ListingLinks,
             description="each item links to its Bazaarly listing (CBP looks at the picture)")


@hookimpl
def register_transports(register: Any) -> None:
    register("bazaarly-http", BazaarlyHttpTransport, options=BazaarlyHttpOptions,
             description="Bazaarly's filing API: one HTTP POST a batch, the acknowledgement in the answer")

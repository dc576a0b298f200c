"""Validator `bazaarly-listing-links`: every item links to its Bazaarly listing.

CBP asks marketplaces for a link to the listing with its picture; a link elsewhere (a
search page, another shop) is a warning on that item's `product_url`, so the seller
fixes the listing data without holding the parcel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from s321.contracts import PipelineContext
from s321.findings import Finding, warning
from s321.record import Consignment

LISTING_HOST = "bazaarly.example"


class ListingLinks:
    def __init__(self, options: Any, context: PipelineContext):
        pass

    def validate(self, consignment: Consignment) -> Iterator[Finding]:
        for i, item in enumerate(consignment.items):
            if item.product_url and not is_listing(item.product_url):
                yield warning("not-a-bazaarly-listing", f"items.{i}.product_url",
                              f"the link should be the item's listing, https://{LISTING_HOST}/l/...")


def is_listing(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and parts.hostname == LISTING_HOST and parts.path.startswith("/l/")

"""Enrichment tables any source can use: a product catalog (by SKU), a vendor table (by
vendor name) and a tracking table (by order), read from CSV files the pipeline names.

Each table is read once (and again only when its file changes); a bad row never stops
a run: its problems become findings naming `FILE:LINE`, attached to every consignment
that uses the row. A missing file is a config-time error (`EnrichmentOptions`).

`tables` reads the CSV files, `store` keeps their rows (in memory, or in a temporary
SQLite database for a large table, so that memory does not grow with the file),
`options` is the options mixin, `lookup` answers a source's questions, `values` holds
the converters the source mappings share.
"""

from .lookup import Enrichment, load
from .options import EnrichmentOptions, TablePath
from .tables import (
    CATALOG,
    CATALOG_BY_NAME,
    TRACKING,
    VENDORS,
    CatalogEntry,
    EnrichmentError,
    Table,
    TableSpec,
    TrackingEntry,
    VendorEntry,
    order_ref,
)
from .values import clean, country_code, parse_bool, parse_decimal

__all__ = [
    "CATALOG",
    "CATALOG_BY_NAME",
    "TRACKING",
    "VENDORS",
    "CatalogEntry",
    "Enrichment",
    "EnrichmentError",
    "EnrichmentOptions",
    "Table",
    "TablePath",
    "TableSpec",
    "TrackingEntry",
    "VendorEntry",
    "clean",
    "country_code",
    "load",
    "order_ref",
    "parse_bool",
    "parse_decimal",
]

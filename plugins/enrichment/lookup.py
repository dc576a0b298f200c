"""Look-ups in a pipeline's enrichment tables: catalog rows for items, the seller of a
vendor, the tracking number of an order.

Promises: any table may be absent; a look-up that finds nothing falls back to the
pipeline defaults or returns None, and the row's problems come back as findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from s321.contracts import PipelineDefaults
from s321.findings import Finding, warning

from .options import EnrichmentOptions
from .tables import (
    CATALOG,
    CATALOG_BY_NAME,
    TRACKING,
    VENDORS,
    CatalogEntry,
    Table,
    TrackingEntry,
    VendorEntry,
    read_table,
)


@dataclass
class Enrichment:
    """The tables of one pipeline; any of them may be absent."""

    catalog: Table[CatalogEntry] | None = None
    vendors: Table[VendorEntry] | None = None
    tracking: Table[TrackingEntry] | None = None
    catalog_by_name: Table[CatalogEntry] | None = None
    """The catalog by product name and variant, for items without a SKU (`catalog_key`)."""

    def tables(self) -> Iterator[Table[Any]]:
        return (t for t in (self.catalog, self.vendors, self.tracking, self.catalog_by_name)
                if t is not None)

    def refresh(self) -> None:
        for table in self.tables():
            table.refresh()

    @property
    def problems(self) -> list[Finding]:
        return [p for t in self.tables() for p in t.problems]

    # ------------------------------------------------------------------ look-ups

    def apply_catalog(self, item: dict[str, Any], at: str, name: str | None = None) -> list[Finding]:
        """Fill `item` (record fields of one Item at path `at`) from its SKU's catalog row
        (or, for an item without a SKU, the row of its product `name` and variant when the
        catalog is keyed so): the catalog wins where it has a value, since it is curated
        for customs. Findings name the catalog row; a SKU not in the catalog is a warning;
        a key whose rows are not used (repeated, or cut into too many fields) an error."""
        if self.catalog is None:
            return []
        sku = item.get("sku")
        table, key = self.catalog, sku
        if not sku and self.catalog_by_name is not None and name:
            table, key = self.catalog_by_name, name
        flagged = table.flag(key)
        if flagged is not None:
            return [flagged.model_copy(update={"field": f"{at}.{flagged.field}"})]
        entry = table.get(key)
        if entry is None:
            if table is self.catalog_by_name:
                what = "the item has no SKU, and its name is not in the catalog's name column"
            elif not sku:
                what = "the item has no SKU"
            else:
                what = "its SKU is not in the catalog"
            return [warning("not-in-catalog", f"{at}.sku", f"no catalog row: {what} "
                            f"({self.catalog.path})")]
        for name in ("description", "hts_code", "country_of_origin", "product_url", "weight_kg"):
            value = getattr(entry, name)
            if value is not None:
                item[name] = value
        return [f.model_copy(update={"field": f"{at}.{f.field}"}) for f in entry.findings]

    def seller_fields(self, vendors: Iterable[str | None],
                      defaults: PipelineDefaults) -> tuple[dict[str, Any], list[Finding]]:
        """seller, marketplace_seller_id and identified_marketplace_merchant for goods of
        `vendors` (in item order): from the first vendor with a row, else the pipeline
        defaults; a field the row leaves blank falls back to the default too."""
        names = list(dict.fromkeys(v.strip() for v in vendors if v and v.strip()))
        found_rows = [self.vendors.get(n) if self.vendors else None for n in names]
        rows = [e for e in found_rows if e]
        entry = rows[0] if rows else None
        found: list[Finding] = list(entry.findings) if entry else []
        if self.vendors is not None:
            found += [f for f in (self.vendors.flag(n) for n in names) if f is not None]
        # Vendors without a row all stand for the default seller.
        sellers = {e.location if e else "default" for e in found_rows}
        if len(sellers) > 1:
            found.append(warning("several-sellers", "seller",
                                 f"the goods come from {len(sellers)} different sellers; the "
                                 f"seller of the first vendor in the vendor table is filed"))
        seller = entry.seller if entry and entry.seller else (
            defaults.seller.model_dump(exclude_none=True) if defaults.seller else None)
        fields: dict[str, Any] = {
            "seller": seller,
            "marketplace_seller_id": (entry.marketplace_seller_id if entry else None)
            or defaults.marketplace_seller_id,
            "identified_marketplace_merchant": (
                entry.identified_merchant if entry and entry.identified_merchant is not None
                else defaults.identified_marketplace_merchant),
        }
        return fields, found

    def tracking_number(self, order: str | None) -> str | None:
        entry = self.tracking.get(order) if self.tracking else None
        return entry.tracking_number if entry and entry.tracking_number else None

    def tracking_problem(self, order: str | None) -> Finding | None:
        """The error for an order whose tracking row is not used (cut into too many fields)."""
        return self.tracking.flag(order) if self.tracking else None


def load(options: EnrichmentOptions) -> Enrichment:
    """Read the tables named by `options` (each once). Raises EnrichmentError, naming
    the file, for a table that cannot be used at all."""
    by_name = getattr(options, "catalog_key", "sku") == "sku-or-name"
    return Enrichment(catalog=read_table(CATALOG, options.catalog),
                      vendors=read_table(VENDORS, options.vendors),
                      tracking=read_table(TRACKING, options.tracking),
                      catalog_by_name=read_table(CATALOG_BY_NAME, options.catalog) if by_name else None)

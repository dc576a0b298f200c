"""Options of the enrichment tables: the mixin a source's options model inherits.

Promises: a table path is relative to the config file and must exist when the pipeline
starts; a missing file is a config-time error, never a failure mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from s321.paths import ConfigPath


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: no such file (an enrichment table must exist when the "
                         f"pipeline starts)")
    return path


TablePath = Annotated[ConfigPath, AfterValidator(_existing_file)]
"""A path to an enrichment CSV: relative to the config file, and it must exist."""


class EnrichmentOptions(BaseModel):
    """Options mixin for sources that take enrichment tables."""

    model_config = ConfigDict(extra="forbid")

    catalog: TablePath | None = Field(
        default=None, description="CSV by SKU: sku, hts_code, country_of_origin, product_url, "
        "weight_kg, optional description.")
    vendors: TablePath | None = Field(
        default=None, description="CSV by vendor: vendor, seller_name, line1, line2, city, "
        "state_or_province, postal_code, country, marketplace_seller_id, identified_merchant.")
    catalog_key: Literal["sku", "sku-or-name"] = Field(
        default="sku", description="How items find their catalog row: by SKU only, or "
        "(sku-or-name) by SKU and, for an item whose SKU is blank, by product name and variant "
        "as the export writes them (Lineitem name), in the catalog's `name` column.")
    tracking: TablePath | None = Field(
        default=None, description="CSV by order: order, tracking_number (label-system exports "
        "with headers such as 'Order Name' and 'Tracking Number' are accepted).")

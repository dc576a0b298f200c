"""Builders of test records and configs: valid by default, changed by keyword."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

from s321.record import Consignment

US_BUYER = {
    "name": "Ada Quartermaine",
    "address": {"line1": "12 Elmwood Ave", "city": "Springfield", "state_or_province": "IL",
                "postal_code": "62701", "country": "US"},
    "email": "ada.quartermaine@example.com",
    "phone": "+1 217 555 0142",
}
CN_SELLER = {
    "name": "Shenzhen Brightwave Trading Co",
    "address": {"line1": "88 Keji Road", "city": "Shenzhen", "postal_code": "518057", "country": "CN"},
}
ITEM = {
    "description": "Stainless steel vacuum water bottle, 750 ml, matte black",
    "quantity": 2,
    "listed_price": "19.99",
    "currency": "USD",
    "product_url": "https://shop.example.com/products/bottle-750",
    "sku": "BTL-750-BLK",
    "hts_code": "9617000000",
    "country_of_origin": "CN",
    "weight_kg": "0.42",
}


def marketplace_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "originator_code": "MKT001",
        "filer_type": "online_marketplace",
        "mode_of_transport": "air",
        "tracking_number": "1Z999AA10123456784",
        "seller": copy.deepcopy(CN_SELLER),
        "marketplace_seller_id": "S-1001",
        "identified_marketplace_merchant": True,
        "ultimate_deliver_to": copy.deepcopy(US_BUYER),
        "customer": copy.deepcopy(US_BUYER),
        "items": [copy.deepcopy(ITEM)],
    }
    fields.update(changes)
    return fields


def carrier_fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "originator_code": "CAR001",
        "filer_type": "carrier",
        "mode_of_transport": "truck",
        "house_bill_number": "HB-1001",
        "consignment_originator": copy.deepcopy(CN_SELLER),
        "known_carrier_customer": True,
        "ultimate_deliver_to": copy.deepcopy(US_BUYER),
        "items": [copy.deepcopy(ITEM)],
    }
    fields.update(changes)
    return fields


def consignment(fields: dict[str, Any], txid: str = "T-TEST") -> Consignment:
    return Consignment.model_validate({"transaction_id": txid, **fields})


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_config(folder: Path, body: str, name: str = "s321.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def jsonl_pipeline_config(folder: Path, inbox: Path | str, outbox: Path | str, extra: str = "",
                          filer_type: str = "online_marketplace", source: str | None = None,
                          transport: str | None = None) -> Path:
    """A one-pipeline config; `source`/`transport` replace the body of those tables."""
    source = source or f'plugin = "records-jsonl"\npath = "{inbox}"'
    transport = transport or f'plugin = "file"\ndirectory = "{outbox}"'
    return write_config(folder, f"""
        [currency_rates]
        EUR = "1.08"
        CAD = "0.73"

        [pipelines.shop]
        originator_code = "MKT001"
        filer_type = "{filer_type}"
        mode_of_transport = "air"
        profile = "pilot-2019"
        {extra}

        [pipelines.shop.source]
{source}

        [pipelines.shop.transport]
{transport}
    """)

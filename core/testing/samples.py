"""Sample consignments for plugin tests: valid under `pilot-2019` as they are, so a
receiver that reviews them (the sandbox, the memory receiver) accepts them.

The people and companies are made up; `.example` hosts can never be real ones.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from s321 import ids
from s321.contracts import Batch
from s321.record import Consignment

ORIGINATOR = "TEST001"
PROFILE = "pilot-2019"

_BUYER: dict[str, Any] = {
    "name": "Imogen Vasquez-Thorne",
    "address": {"line1": "2207 Larkspur Lane", "city": "Tucson", "state_or_province": "AZ",
                "postal_code": "85719", "country": "US"},
    "email": "imogen.vt@example.org",
}
_SELLER: dict[str, Any] = {
    "name": "Ningbo Harbourlight Homeware Co",
    "address": {"line1": "17 Tiantong South Road", "city": "Ningbo", "postal_code": "315100",
                "country": "CN"},
}
_ITEM: dict[str, Any] = {
    "description": "Bamboo cutting board with juice groove, 40 x 28 cm",
    "quantity": 1,
    "listed_price": "23.50",
    "currency": "USD",
    "product_url": "https://market.example/listing/bamboo-board-40",
    "sku": "HB-BOARD-40",
    "hts_code": "4419900000",
    "country_of_origin": "CN",
    "weight_kg": "1.10",
}


def marketplace_record(n: int = 1, **changes: Any) -> dict[str, Any]:
    """Record fields (no transaction id) of a valid online-marketplace consignment.
    `n` varies the tracking number, so each n is another parcel."""
    fields: dict[str, Any] = {
        "originator_code": ORIGINATOR,
        "filer_type": "online_marketplace",
        "mode_of_transport": "air",
        "tracking_number": f"LX{n:09d}CN",
        "seller": copy.deepcopy(_SELLER),
        "marketplace_seller_id": "HL-2231",
        "identified_marketplace_merchant": True,
        "ultimate_deliver_to": copy.deepcopy(_BUYER),
        "customer": copy.deepcopy(_BUYER),
        "items": [copy.deepcopy(_ITEM)],
    }
    fields.update(changes)
    return fields


def carrier_record(n: int = 1, **changes: Any) -> dict[str, Any]:
    """Record fields of a valid carrier consignment (truck: no security scan needed)."""
    fields: dict[str, Any] = {
        "originator_code": ORIGINATOR,
        "filer_type": "carrier",
        "mode_of_transport": "truck",
        "house_bill_number": f"HB{n:07d}",
        "consignment_originator": copy.deepcopy(_SELLER),
        "known_carrier_customer": True,
        "ultimate_deliver_to": copy.deepcopy(_BUYER),
        "items": [copy.deepcopy(_ITEM)],
    }
    fields.update(changes)
    return fields


def consignment(fields: dict[str, Any], key: str = "sample-1") -> Consignment:
    """A Consignment with the transaction id the runtime would give unit `key`."""
    txid = ids.transaction_id(ORIGINATOR, "s321-testing", key)
    return Consignment.model_validate({"transaction_id": txid, **fields})


def sample_batch(size: int = 3, start: int = 1) -> Batch:
    """A batch of `size` valid marketplace consignments, numbered from `start`."""
    records = [consignment(marketplace_record(n), key=f"sample-{n}") for n in range(start, start + size)]
    return Batch(batch_id=ids.batch_id(), originator_code=ORIGINATOR, profile=PROFILE,
                 sent_at=datetime.now(UTC), records=records)


def records_jsonl(count: int, start: int = 1) -> bytes:
    """`count` valid marketplace records as `records-jsonl` input (one per line, each
    with its `ref`)."""
    lines = (json.dumps({"ref": f"order-{n}", **marketplace_record(n)}) for n in range(start, start + count))
    return "".join(line + "\n" for line in lines).encode("utf-8")

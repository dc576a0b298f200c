"""The names people use for a record (order name, bills, tracking number), as the ledger
indexes them and `s321 show REF` looks them up: one normal form (`ref_key`)."""

from __future__ import annotations

from s321.record import Consignment


def ref_key(text: str) -> str:
    """A reference as it is indexed and looked up: trimmed, upper case, without a leading
    `#` (an order is `#1001` in one export and `1001` in another)."""
    return text.strip().lstrip("#").strip().upper()


def unprefixed(unit_ref: str) -> str:
    """A unit's key without its source's prefix (`shopify:#1001` -> `#1001`): what people
    call it. A key without one is itself."""
    prefix, sep, rest = unit_ref.partition(":")
    if sep and rest and prefix.replace("-", "").replace("_", "").isalnum():
        return rest
    return unit_ref


def references(unit_ref: str, record: Consignment | None) -> set[str]:
    """The names people use for a record, as `ref_key`s: its unit's key in the source
    without the source's prefix (`#1001` of `shopify:#1001`; `find` strips a prefix
    given too), its master and house bill and its tracking number."""
    keys = {ref_key(unprefixed(unit_ref))}
    if record is not None:
        for value in (record.master_bill_number, record.house_bill_number, record.tracking_number):
            if value:
                keys.add(ref_key(value))
    keys.discard("")
    return keys

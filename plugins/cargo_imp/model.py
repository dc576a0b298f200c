"""What one FHL house waybill holds once its lines are read: the payload the source
hands to the mapper. Plain values, already normalised (upper-case codes, weights in kg,
money as Decimal); nothing here refers to the file it came from except `location`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(slots=True)
class PartyLines:
    """An SHP or CNE block: name, street lines, place and the country line."""

    name: str | None = None
    street: list[str] = field(default_factory=list)
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    email: str | None = None
    account: str | None = None


@dataclass(slots=True)
class Charges:
    """The CVD line: currency, how charges are paid, and the declared values."""

    currency: str | None = None
    payment: str | None = None
    """Charge code and prepaid/collect indicators as written (e.g. "PP", "CC")."""
    carriage_value: str | None = None
    customs_value: Decimal | None = None
    no_customs_value: bool = False
    """NCV: the shipper declared no value for customs."""
    insurance_value: str | None = None


@dataclass(frozen=True, slots=True)
class CustomsInfo:
    """One OCI entry: country / information id / customs information id / value."""

    country: str
    information: str
    customs_information: str
    value: str


@dataclass(slots=True)
class House:
    """One HBS and the TXT, HTS, OCI, SHP, CNE and CVD lines that follow it."""

    number: str | None
    location: str
    master: str | None = None
    version: str | None = None
    origin: str | None = None
    destination: str | None = None
    pieces: int | None = None
    weight_kg: Decimal | None = None
    slac: int | None = None
    nature_of_goods: str | None = None
    special_handling: list[str] = field(default_factory=list)
    free_text: list[str] = field(default_factory=list)
    """One entry per TXT line, its continuation lines already joined to it."""
    hts_codes: list[str] = field(default_factory=list)
    customs_info: list[CustomsInfo] = field(default_factory=list)
    shipper: PartyLines | None = None
    consignee: PartyLines | None = None
    charges: Charges | None = None

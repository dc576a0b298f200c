"""What one FHL house waybill holds once its lines are read: the payload the source
hands to the mapper. Plain values, already normalised (upper-case codes, weights in kg,
money as Decimal); nothing here refers to the file it came from except `location`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
    """One OCI entry: country / information id / customs information id / value.

    The value of an SN entry (the name of the person who issued the security status)
    is left empty: it is personal data that no record field needs."""

    country: str
    information: str
    customs_information: str
    value: str


@dataclass(frozen=True, slots=True)
class SecurityDeclaration:
    """The consignment security declaration (e-CSD) read from OCI security entries.

    Codes stay as the sender wrote them; what they mean for the record is the mapper's
    business. The screener's name (SN) is never kept: it is personal data."""

    scope: str
    """"house" when the house's own OCI lines gave it, "master" when OCI lines between
    the FHL/MBI lines and the first HBS did (they apply to every house of the master)."""
    status: str | None = None
    """SPX, SCO, SHR or NSC."""
    methods: tuple[str, ...] = ()
    """Screening method codes (SM) in the order given, e.g. ("XRY", "EDD")."""
    exemptions: tuple[str, ...] = ()
    """Screening exemption codes (L), e.g. ("DIPL",)."""
    issuer: str | None = None
    """Category and identifier of the entity that issued the status, e.g. "RA 00012-01"."""
    screened_at: datetime | None = None
    """SD, local time of the place of screening: Cargo-IMP carries no time zone."""

    @property
    def decides(self) -> bool:
        """True when it says whether the consignment was secured: a status, a screening
        method or an exemption. An entity line with only its expiry date does not."""
        return bool(self.status or self.methods or self.exemptions)


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
    master_customs_info: tuple[CustomsInfo, ...] = ()
    """OCI entries written for the whole master (before its first HBS)."""
    security: SecurityDeclaration | None = None
    """From the house's own OCI lines when they decide, else from the master's."""
    shipper: PartyLines | None = None
    consignee: PartyLines | None = None
    charges: Charges | None = None

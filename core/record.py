"""The Section 321 record: Consignment, Party, Address, Item, SecurityScan.

Field names follow the data dictionary of DESIGN.md section 4 and are a public
contract: JSON output, the wire format and finding paths all use them. The models
check types only; which elements a filer must send is the business of regime
profiles (`s321.profiles`) and the rules (`s321.rules`), which report findings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Action(StrEnum):
    ADD = "add"
    REPLACE = "replace"
    DELETE = "delete"


class FilerType(StrEnum):
    CARRIER = "carrier"
    ONLINE_MARKETPLACE = "online_marketplace"
    FREIGHT_FORWARDER = "freight_forwarder"
    CUSTOMS_BROKER = "customs_broker"


class ModeOfTransport(StrEnum):
    AIR = "air"
    TRUCK = "truck"
    RAIL = "rail"
    OCEAN = "ocean"
    MAIL = "mail"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Address(_Model):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state_or_province: str | None = None
    postal_code: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2")


class Party(_Model):
    name: str | None = None
    address: Address | None = None
    phone: str | None = None
    email: str | None = None


class SecurityScan(_Model):
    performed: bool
    method: str | None = None
    reference: str | None = None
    scanned_at: datetime | None = None
    source: Literal["configuration"] | None = Field(
        default=None, description='"configuration" when the pipeline\'s `defaults.security_scan` '
        "stated it for every consignment without a scan of its own; absent when the input carried it.")

    def stated_by_configuration(self) -> SecurityScan:
        """This scan as a pipeline's `defaults.security_scan`: a statement to CBP that
        every consignment was screened, so it must say performed, how (method) and under
        what (reference), and no time (that is each consignment's own). Returned marked
        `source = "configuration"`; raises ValueError saying what is missing."""
        problems = []
        if not self.performed:
            problems.append("performed must be true (a default states that everything was screened)")
        if not self.method:
            problems.append("method is required (e.g. \"x-ray\")")
        if not self.reference:
            problems.append("reference is required (e.g. the regulated agent or screening program id)")
        if self.scanned_at is not None:
            problems.append("scanned_at cannot be a default (each consignment has its own time)")
        if self.source is not None:
            problems.append("source is set by s321, not in the config")
        if problems:
            raise ValueError("a default security scan: " + "; ".join(problems))
        return self.model_copy(update={"source": "configuration"})


class Item(_Model):
    description: str | None = Field(
        default=None, description="The enhanced product description, as the listing says."
    )
    quantity: int | None = None
    listed_price: Decimal | None = Field(default=None, description="Per unit.")
    line_value: Decimal | None = Field(
        default=None, description="The declared value of the whole line, in the line's currency: "
        "when a source declares one (X12 N10-06, FHL CVD) it is the truth, not price x quantity.")
    currency: str | None = Field(default=None, description="ISO 4217")
    product_url: str | None = None
    sku: str | None = None
    hts_code: str | None = Field(default=None, description="6, 8 or 10 digits (a profile may require more)")
    country_of_origin: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    weight_kg: Decimal | None = None


class Consignment(_Model):
    transaction_id: str = Field(description="Stable idempotency key, set by the framework.")
    action: Action = Action.ADD
    version: int | None = Field(
        default=None,
        description="Set by the framework's ledger: rises with each version of a consignment"
                    " (gaps allowed); receivers apply a higher one, answer an equal one duplicate"
                    " and a lower one superseded.",
    )
    originator_code: str | None = None
    filer_type: FilerType | None = None
    mode_of_transport: ModeOfTransport | None = None
    master_bill_number: str | None = None
    house_bill_number: str | None = None
    tracking_number: str | None = None
    consignment_originator: Party | None = None
    known_carrier_customer: bool | None = None
    ultimate_deliver_to: Party | None = None
    security_scan: SecurityScan | None = None
    seller: Party | None = None
    marketplace_seller_id: str | None = None
    identified_marketplace_merchant: bool | None = None
    customer: Party | None = None
    exemption_claimant: Party | None = Field(
        default=None, description="The person claiming the exemption (nprm-2025 regimes)."
    )
    port_of_entry: str | None = None
    conveyance: str | None = None
    items: list[Item] = Field(default_factory=list)
    total_value_usd: Decimal | None = Field(
        default=None, description="Derived: the sum of each item's declared line_value (else listed price"
                                  " x quantity) per currency, converted to USD once and rounded once to"
                                  " cents (ROUND_HALF_UP)."
    )


PERSONAL_FIELDS = frozenset(
    {"name", "line1", "line2", "city", "state_or_province", "postal_code", "phone", "email"}
)
"""Party and Address fields that hold personal data: never logged."""

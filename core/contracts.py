"""The data plane: small protocols that sources, mappers, validators, serializers and
transports implement. They are called directly, in batches, never through pluggy per
consignment.

Delivery promise (the part a transport author must honour): a record handed to
`Transport.send` counts as filed only when an acknowledgement for its transaction id
comes back. Until then the runtime may send it again with the same transaction id, so
a transport must never invent an acknowledgement, and the receiver answers a repeated
`add` it already accepted as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, SerializerFunctionWrapHandler,
                      model_serializer)

from s321.findings import Finding
from s321.record import Consignment, FilerType, ModeOfTransport, Party, SecurityScan


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class RawUnit:
    """One unit of input as a source read it: an order, a bill, a house waybill.

    `key` is the unit's natural key in its source system (an order name, a bill
    number); with the pipeline's originator code and the source name it makes the
    transaction id, so it must not change from one run to the next. `findings`
    carries what the parser found wrong; a unit whose parse failed has `payload`
    None and at least one error finding.
    """

    key: str
    """The unit's natural key in its system (see the class)."""
    location: str
    """`FILE:LINE` or `FILE:segment N` of the unit's start."""
    payload: Any
    """What the mapper gets; None when the unit could not be read."""
    findings: tuple[Finding, ...] = ()
    """What the parser found wrong; at least one error when `payload` is None."""
    checkpoint: Any = None
    """Handed back to `Source.ack(upto)` once the unit is stored."""


@runtime_checkable
class Source(Protocol):
    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        """Yield raw units, streaming: memory must not grow with the input.

        `paths` overrides the configured input (as `s321 preview FILE` does).
        Never raises for bad input: a broken unit is yielded with findings.
        """
        ...

    def ack(self, upto: Any) -> None:
        """Called once every unit up to checkpoint `upto` is durably stored."""
        ...


# --------------------------------------------------------------------------- mappers


@dataclass(slots=True)
class Mapped:
    """What a mapper made of one raw unit: record fields, or the reason to skip it."""

    record: dict[str, Any] | None = None
    """Record fields (a dict), without what the framework sets."""
    findings: list[Finding] = field(default_factory=list)
    """Findings on record fields (`items.0.quantity`)."""
    skipped: str | None = None
    """Why the unit is not a Section 321 consignment (it is then neither valid nor invalid)."""
    hints: dict[str, str] = field(default_factory=dict)
    """Where a person supplies a field in this source: record path (`items.*.x` for
    every item) -> text, e.g. "add the order to the tracking table (`source.tracking`)".
    Validation adds it to the message of any finding on that field or below it."""
    locations: dict[str, str] = field(default_factory=dict)
    """Where a part of the record was read, when not at the unit's location: record path
    (`items.0`) -> `FILE:LINE` or segment. A finding on that path or below it names this
    location (an item's finding names the item's own row, not the order's first)."""


@dataclass(frozen=True)
class PipelineContext:
    """What every component of one pipeline may know about it."""

    pipeline: str
    """The pipeline's name (`[pipelines.NAME]`)."""
    originator_code: str
    """The filer's CBP-assigned code; every record of the pipeline carries it."""
    filer_type: FilerType
    """`carrier`, `online_marketplace`, `freight_forwarder` or `customs_broker`."""
    mode_of_transport: ModeOfTransport
    """`air`, `truck`, `rail`, `ocean` or `mail`."""
    profile: str
    """The regime profile the records are validated under (`pilot-2019`)."""
    source: str
    """The source plugin's name (`bazaarly-csv`)."""
    defaults: PipelineDefaults
    """Values the source does not carry (`[pipelines.NAME.defaults]`)."""
    base_dir: Path = Path(".")
    """The config file's folder: relative paths are relative to it."""
    id_namespace: str = ""
    """Shared by sources that read one system in several shapes; else empty."""

    @property
    def ids(self) -> str:
        """What transaction ids are scoped by: the source's id namespace (shared by
        sources that read the same system in different shapes), else its name."""
        return self.id_namespace or self.source


class PipelineDefaults(BaseModel):
    """Values a source does not carry, set per pipeline in the config."""

    model_config = ConfigDict(extra="forbid")

    seller: Party | None = None
    """The seller, for an export that does not name it (marketplaces)."""
    consignment_originator: Party | None = None
    """The shipper, for a feed that does not name it (carriers)."""
    marketplace_seller_id: str | None = None
    """The seller's id on the marketplace."""
    identified_marketplace_merchant: bool | None = None
    """Whether the seller is identified to the marketplace."""
    known_carrier_customer: bool | None = None
    """Whether the shipper is a known customer of the carrier."""
    exemption_claimant: Party | None = None
    """Who claims the exemption (nprm-2025 regimes)."""
    currency: str | None = None
    """ISO 4217 currency of prices that come without one."""
    country_of_origin: str | None = None
    """ISO 3166 alpha-2 origin of items that come without one."""
    security_scan: Annotated[SecurityScan, AfterValidator(SecurityScan.stated_by_configuration)] | None = Field(
        default=None, description="For an air carrier that screens everything at origin: the scan stated "
        "for every consignment whose input carries none; needs method and reference, and is filed "
        "with source = configuration.")


class Mapper(Protocol):
    def map(self, unit: RawUnit) -> Mapped:
        """Raw unit -> record fields (without transaction_id), or a skip reason, or
        findings saying why it is not a consignment. Never raises for bad input."""
        ...


class Validator(Protocol):
    def validate(self, consignment: Consignment) -> Iterable[Finding]:
        """Findings about one consignment; `field` must be a dotted path into it."""
        ...


# --------------------------------------------------------------------------- batches


class Batch(BaseModel):
    """The envelope that goes on the wire: s321/1 in docs/wire-format.md."""

    batch_id: str
    """Unique id of this batch; an ack names it. A resend goes in a new batch."""
    originator_code: str
    """The CBP-assigned code of the filer the batch is filed for."""
    profile: str
    """The regime profile the records were validated under (`pilot-2019`)."""
    sent_at: datetime
    """When the batch left (UTC)."""
    records: list[Consignment]
    """The records, in order; each keeps its `transaction_id` and `version`."""

    def records_json(self) -> list[str] | None:
        """Each record as `model_dump_json(exclude_none=True)` would write it, when the
        batch already holds that text (a `StoredBatch` whose `records` nobody read):
        a serializer may splice it instead of encoding models. None otherwise."""
        return None


class StoredBatch(Batch):
    """A batch of records kept as the JSON text the ledger stores: `records` is decoded
    on first access, so a transport that only encodes the batch never builds a model.

    Reading `records` (or dumping, comparing, printing the batch) decodes them once;
    from then on the models are the batch, changed or not, and `records_json()` is None.
    Only a batch held in another model's `Batch` field is dumped without decoding: pass
    `batch.records` first there.
    """

    _records_json: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def of(cls, batch_id: str, originator_code: str, profile: str, sent_at: datetime,
           records_json: list[str]) -> StoredBatch:
        """`records_json`: each record's `model_dump_json(exclude_none=True)`, trusted
        as such (it is the ledger's own text), in batch order."""
        batch = cls.model_construct(_fields_set=set(cls.model_fields), batch_id=batch_id,
                                    originator_code=originator_code, profile=profile, sent_at=sent_at)
        batch._records_json = records_json
        return batch

    def records_json(self) -> list[str] | None:
        return None if "records" in self.__dict__ else self._records_json

    def __getattr__(self, name: str) -> Any:
        # Python calls this only for a name not found otherwise: `records` before decoding.
        if name == "records":
            return self._decoded_records()
        return super().__getattr__(name)  # type: ignore[misc]

    def _decoded_records(self) -> list[Consignment]:
        records = self.__dict__.get("records")
        if records is None:
            records = [Consignment.model_validate_json(text) for text in self._records_json]
            self.__dict__["records"] = records
        return records

    # pydantic reads the instance dict directly: these decode the records first.

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> Any:
        self._decoded_records()
        return handler(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in Batch.model_fields)

    def __repr_args__(self) -> Any:
        self._decoded_records()
        return super().__repr_args__()

    def __iter__(self) -> Any:
        self._decoded_records()
        return super().__iter__()


class AckStatus(StrEnum):
    ACCEPTED = "accepted"
    """The receiver took the record: this version is on file."""
    REJECTED = "rejected"
    """The receiver did not apply the record; `errors` say why (`duplicate`: this version is on file
    already; `superseded`: a later one is)."""


class AckError(BaseModel):
    code: str
    """Kebab-case code: `duplicate`, `superseded`, `unknown-transaction`, or the receiver's own."""
    message: str
    """What the receiver says is wrong, for a person."""
    field: str | None = None
    """Dotted path of the record field it is about, when there is one."""


class RecordAck(BaseModel):
    transaction_id: str
    """The record this is about."""
    status: AckStatus
    """`accepted` or `rejected`."""
    version: int | None = None
    """The version of the record this answers (the record's `version`, echoed). None from a
    receiver that does not know versions: the ledger then matches the ack by batch."""
    # A factory, not `= []`: pydantic deep-copies a mutable default on every instance,
    # which tripled the cost of an acknowledgement (one per record).
    errors: list[AckError] = Field(default_factory=list)
    """Why it was rejected (empty when accepted)."""


class RecordEvent(BaseModel):
    """Later news about a record from the receiver (an entry on file, a release, a hold):
    a line of its history, never a change of its state."""

    transaction_id: str
    """The record this is about."""
    event: str
    """Kebab-case code, e.g. `ace-1c` for ACE disposition 1C."""
    detail: str
    """What happened, for a person (no personal data)."""


class Ack(BaseModel):
    """CBP's answer to a batch: per transaction id, accepted or rejected."""

    batch_id: str
    """The batch this answers."""
    received_at: datetime
    """When the receiver took the batch."""
    results: list[RecordAck]
    """One entry per record the receiver answers about; a record not named is not answered
    yet. Empty for an answer that decides nothing (an ACE 997 that accepts the syntax)."""
    events: list[RecordEvent] | None = None
    """News that changes no state (an ACE 350): written into each named record's history.
    None (not an empty list) when there is none, so `s321/1` acks keep their bytes."""


class Receipt(BaseModel):
    """The receiver took the batch for processing; acks follow later."""

    batch_id: str
    """The batch handed over."""
    accepted_for_processing: bool = True
    """False when the receiver took the bytes but will not process them."""
    detail: str | None = None
    """Free text for logs (no personal data, no secrets)."""


class Serializer(Protocol):
    name: str
    content_type: str

    def encode_batch(self, batch: Batch) -> bytes: ...
    def decode_batch(self, data: bytes) -> Batch: ...
    def encode_ack(self, ack: Ack) -> bytes: ...
    def decode_ack(self, data: bytes) -> Ack: ...


# --------------------------------------------------------------------------- transports


@dataclass(frozen=True)
class Capabilities:
    max_batch: int = 500
    """Records a batch may hold at most; the runtime never sends more."""
    window: int = 1
    """Batches the runtime sends before it reads acks (`acks()` must hold all their acks)."""
    acknowledges: bool = True
    """False for a transport whose receiver never answers (records end `delivered`)."""
    acks_survive_reconnect: bool = False
    """True when acks wait for the sender whatever happens to the link (files in an
    outbound folder): then a reconnect does not make the runtime resend."""


class Transport(Protocol):
    capabilities: Capabilities

    def connect(self) -> None:
        """Open the link. Idempotent. Raises RetriableError or FatalError."""
        ...

    def send(self, batch: Batch) -> Receipt:
        """Hand one batch to the receiver. Raises RetriableError or FatalError."""
        ...

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        """Acknowledgements that arrived, waiting up to `timeout` seconds for one."""
        ...

    def close(self) -> None:
        """Close the link. Idempotent."""
        ...


def usd(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"))

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
    location: str
    payload: Any
    findings: tuple[Finding, ...] = ()
    checkpoint: Any = None


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
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None
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
    originator_code: str
    filer_type: FilerType
    mode_of_transport: ModeOfTransport
    profile: str
    source: str
    defaults: PipelineDefaults
    base_dir: Path = Path(".")
    id_namespace: str = ""

    @property
    def ids(self) -> str:
        """What transaction ids are scoped by: the source's id namespace (shared by
        sources that read the same system in different shapes), else its name."""
        return self.id_namespace or self.source


class PipelineDefaults(BaseModel):
    """Values a source does not carry, set per pipeline in the config."""

    model_config = ConfigDict(extra="forbid")

    seller: Party | None = None
    consignment_originator: Party | None = None
    marketplace_seller_id: str | None = None
    identified_marketplace_merchant: bool | None = None
    known_carrier_customer: bool | None = None
    exemption_claimant: Party | None = None
    currency: str | None = None
    country_of_origin: str | None = None
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
    originator_code: str
    profile: str
    sent_at: datetime
    records: list[Consignment]

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
    REJECTED = "rejected"


class AckError(BaseModel):
    code: str
    message: str
    field: str | None = None


class RecordAck(BaseModel):
    transaction_id: str
    status: AckStatus
    version: int | None = None
    """The version of the record this answers (the record's `version`, echoed). None from a
    receiver that does not know versions: the ledger then matches the ack by batch."""
    # A factory, not `= []`: pydantic deep-copies a mutable default on every instance,
    # which tripled the cost of an acknowledgement (one per record).
    errors: list[AckError] = Field(default_factory=list)


class Ack(BaseModel):
    """CBP's answer to a batch: per transaction id, accepted or rejected."""

    batch_id: str
    received_at: datetime
    results: list[RecordAck]


class Receipt(BaseModel):
    """The receiver took the batch for processing; acks follow later."""

    batch_id: str
    accepted_for_processing: bool = True
    detail: str | None = None


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
    window: int = 1
    acknowledges: bool = True
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

"""Every first-party plugin passes the conformance suites of `s321.testing`, exactly
as a third-party plugin would: sources, transports, and an example validator.

The inputs of n units are made from the bundled samples (contrib/samples/), so they
stay in step with what the sources really read."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.contracts import Ack, AckStatus, Batch, Receipt, RecordAck
from s321.errors import FatalError, RetriableError
from s321.findings import Finding, warning
from s321.hookspecs import hookimpl
from s321.plugins.wire_s321 import S321Json
from s321.record import Consignment
from s321.sandbox import Sandbox, ensure_dev_certs
from s321.testing import Endpoint, ErrorCase, SourceConformance, TransportConformance, ValidatorConformance
from s321.testing.p2p_receiver import P2PReceiver
from s321.testing.receiver_checks import drive
from s321.testing.samples import marketplace_record, records_jsonl, sample_batch
from s321.testing.scripted import Play, Script

SAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "samples"
SHOP = SAMPLES / "shop"


def shopify_csv(n: int) -> bytes:
    """The export's header, then n one-row orders (the first sample order, renamed)."""
    text = (SHOP / "orders_export.csv").read_text(encoding="utf-8-sig")
    header, first = list(csv.reader(io.StringIO(text)))[:2]
    name = header.index("Name")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for i in range(n):
        row = list(first)
        row[name] = f"#{20000 + i}"
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def shopify_jsonl(n: int) -> bytes:
    """n orders as JSON lines (the first sample order, renamed)."""
    order = json.loads((SHOP / "orders.jsonl").read_text(encoding="utf-8").splitlines()[0])
    lines = []
    for i in range(n):
        order.update(id=7000000000000 + i, name=f"#{30000 + i}", order_number=30000 + i)
        lines.append(json.dumps(order))
    return ("\n".join(lines) + "\n").encode("utf-8")


_ISA = ("ISA|00|          |00|          |ZZ|TJXPEDI        |ZZ|CBPACE         |250314|1517|^|00501|"
        "000002002|0|P|:~\n")


def x12_309(n: int, per_set: int = 10) -> bytes:
    """One interchange of 309 transaction sets, `per_set` bills each, n bills in all."""
    sets = []
    for s, first in enumerate(range(0, n, per_set), start=1):
        bills = range(first, min(first + per_set, n))
        body = [f"ST|309|{s:04d}", f"M10|TJXP|J|MX|3HSDJAPR5FN123987|INTERNATIONAL LT|TJXP{s:05d}||{len(bills)}|O",
                f"P4|2506|20250314|{len(bills)}"]
        for i, b in enumerate(bills, start=1):
            body += [f"LX|{i}", f"M11|TJXP{77000000 + b}|57035|1|PCS|0.5|K",
                     "N1|SH|Yiwu Haoyun Trading Co Ltd", "N3|No 58 Chouzhou North Rd", "N4|Yiwu|ZJ|322000|CHN",
                     "N1|CN|Renee Dubois", "N3|55 Water St", "N4|New York|NY|10041|US",
                     "N10|1|BAMBOO CUTTING BOARD, 40 X 30 CM||A|4419.90.9100|23|K|0.5"]
        body.append(f"SE|{len(body) + 1}|{s:04d}")
        sets.append(body)
    segments = ["GS|AQ|TJXPEDI|CBPACE|20250314|1517|2002|X|005010",
                *(seg for body in sets for seg in body),
                f"GE|{len(sets)}|2002", "IEA|1|000002002"]
    return (_ISA + "".join(seg + "~\n" for seg in segments)).encode("latin-1")


def _awb(serial: int) -> str:
    """An air waybill number whose 8th digit is its check digit (the 7 before, mod 7)."""
    return f"{serial:07d}{serial % 7}"


def fhl(n: int, per_message: int = 5) -> bytes:
    """FHL/4 messages of `per_message` houses each, n houses in all."""
    out = []
    for m, first in enumerate(range(0, n, per_message)):
        houses = range(first, min(first + per_message, n))
        out += ["FHL/4", f"MBI/160-{_awb(5823000 + m)}HKGLAX/T{len(houses)}K{len(houses)}.0"]
        for h in houses:
            out += [f"HBS/HK{7700000 + h}/HKGLAX/1/K1.0/1/EARBUDS",
                    "TXT/WIRELESS BLUETOOTH EARBUDS WITH CHARGING CASE",
                    "HTS/851830",
                    "SHP/Shenzhen Luxing Electronics Co Ltd", "/Building 4 Bantian Industrial Park",
                    "/SHENZHEN/GD", "/CN/518129",
                    "CNE/Jose Alvarez", "/1420 West Sunset Boulevard Apt 5", "/LOS ANGELES/CA", "/US/90026",
                    "CVD/USD//PP/NVD/45.90/XXX"]
        out.append("")
    return "\n".join(out).encode("utf-8")



SHOP_DEFAULTS: dict[str, Any] = {
    "marketplace_seller_id": "NWG-HOUSE",
    "identified_marketplace_merchant": True,
    "seller": {"name": "Northwind Goods Ltd", "address": {
        "line1": "1200 Waterfront Road", "city": "Vancouver", "state_or_province": "BC",
        "postal_code": "V6B 1A1", "country": "CA"}},
}
SHOP_TABLES = {"catalog": str(SHOP / "catalog.csv"), "vendors": str(SHOP / "vendors.csv"),
               "tracking": str(SHOP / "tracking.csv")}
CARRIER_DEFAULTS: dict[str, Any] = {"known_carrier_customer": True}


# --------------------------------------------------------------------------- sources


class TestRecordsJsonl(SourceConformance):
    # The input is records already: each must come out as it went in.
    expected_records = {f"order-{n}": {**marketplace_record(n), "action": "add"} for n in (1, 2, 3)}
    # Follow-up (issue 17): units that cannot be read are keyed by file name and line here.
    stable_broken_keys = False
    source_name = "records-jsonl"
    sample_inputs = [records_jsonl(3), b'{"ref": "ok", "items": []}\nnot json\n{"no": "ref"}\n']
    input_suffix = ".jsonl"

    def make_input(self, n: int) -> bytes:
        return records_jsonl(n)


class TestShopifyCsv(SourceConformance):
    source_name = "shopify-csv"
    options = SHOP_TABLES
    pipeline = {"defaults": SHOP_DEFAULTS}
    sample_inputs = [SHOP / "orders_export.csv"]
    input_suffix = ".csv"

    def make_input(self, n: int) -> bytes:
        return shopify_csv(n)


class TestShopifyJson(SourceConformance):
    # Follow-up (issue 17): units that cannot be read are keyed by file name and line here.
    stable_broken_keys = False
    source_name = "shopify-json"
    options = SHOP_TABLES
    pipeline = {"defaults": SHOP_DEFAULTS}
    sample_inputs = [SHOP / "orders.jsonl", SHOP / "order-webhook.json",
                     SHOP / "order-graphql.json"]
    input_suffix = ".jsonl"

    def make_input(self, n: int) -> bytes:
        return shopify_jsonl(n)


class TestX12309(SourceConformance):
    # Follow-up (issue 17): units that cannot be read are keyed by file name and line here.
    stable_broken_keys = False
    source_name = "x12-309"
    pipeline = {"filer_type": "carrier", "mode_of_transport": "truck", "defaults": CARRIER_DEFAULTS}
    sample_inputs = [SAMPLES / "x12-309" / "manifest-004010.edi",
                     SAMPLES / "x12-309" / "manifest-005010.edi"]
    input_suffix = ".edi"
    memory_units = 300  # n bills must fill the tokenizer's 64 KiB read buffer already

    def make_input(self, n: int) -> bytes:
        return x12_309(n)


class TestCargoImpFhl(SourceConformance):
    # Follow-up (issue 17): units that cannot be read are keyed by file name and line here.
    stable_broken_keys = False
    source_name = "cargo-imp-fhl"
    pipeline = {"filer_type": "carrier", "mode_of_transport": "air", "defaults": CARRIER_DEFAULTS}
    sample_inputs = [SAMPLES / "cargo-imp-fhl" / "houses.txt"]
    input_suffix = ".txt"

    def make_input(self, n: int) -> bytes:
        return fhl(n)


# --------------------------------------------------------------------------- transports
#
# sftp-drop and broker-relay: subclass TransportConformance the same way, with an
# `endpoint` fixture that starts the real server (sshd on loopback, the relay) and
# `error_cases` for an unreachable server (retriable) and a refused key (fatal).


class TestFileTransport(TransportConformance):
    transport_name = "file"

    @pytest.fixture
    def endpoint(self, tmp_path: Path) -> Iterator[Endpoint]:
        outbox = tmp_path / "outbox"
        yield Endpoint({"directory": str(outbox)}, accepted=lambda: _filed_in(outbox))

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the outbox's parent should be")
        return [ErrorCase({"directory": str(blocker / "outbox")}, why="outbox under a file")]


def _filed_in(outbox: Path) -> Counter[str]:
    wire = S321Json()
    filed: Counter[str] = Counter()
    for path in outbox.glob("*.json"):
        filed.update(r.transaction_id for r in wire.decode_batch(path.read_bytes()).records)
    return filed


PASSPHRASE = "conformance-Passphrase-7Q2v"
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "connect_timeout": 5.0,
        "reconnect_attempts": 1}


class TestP2PSocketTransport(TransportConformance):
    transport_name = "p2p-socket"

    @pytest.fixture
    def scripted_receiver(self, tmp_path: Path) -> Iterator[P2PReceiver]:
        # The sandbox reviews batches as CBP would; this one answers as the suite says.
        with P2PReceiver(tmp_path / "scripted") as receiver:
            yield receiver

    @pytest.fixture
    def endpoint(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
        with Sandbox(tmp_path / "sandbox").start() as sandbox:
            # The client key encrypted, so that a passphrase (a Secret option) is in play.
            plain = sandbox.client_key.read_bytes()
            key = serialization.load_pem_private_key(plain, password=None)
            locked = tmp_path / "client-locked.key"
            locked.write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(PASSPHRASE.encode())))
            monkeypatch.setenv("S321_TEST_KEY_PASSPHRASE", PASSPHRASE)
            options = sandbox.transport_options(
                key={"file": str(locked)}, key_passphrase={"env": "S321_TEST_KEY_PASSPHRASE"}, **FAST)
            yield Endpoint(options, accepted=sandbox.store.accepted_counts,
                           secrets=[plain.decode().splitlines()[1]])

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        other_ca = ensure_dev_certs(tmp_path / "other-ca").ca
        return [
            ErrorCase({**endpoint.options, "port": _closed_port()}, RetriableError, "nobody listening"),
            ErrorCase({**endpoint.options, "ca": str(other_ca)}, FatalError, "server certificate not trusted"),
        ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The scripted receiver is what lets the checks see a wrong link transport: each of these
# is p2p-socket with one fault, and the check about that fault must fail on it.


class _ReceiptIsAckP2P(P2PSocketTransport):
    """Takes the RECEIPT for "all accepted", without waiting for the ACK."""

    invented: list[Ack]

    def send(self, batch: Batch) -> Receipt:
        receipt = super().send(batch)
        self.invented = [*getattr(self, "invented", []), Ack(
            batch_id=batch.batch_id, received_at=datetime.now(UTC), results=[
                RecordAck(transaction_id=r.transaction_id, version=r.version, status=AckStatus.ACCEPTED)
                for r in batch.records])]
        return receipt

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        super().acks(0.0)  # what the receiver said is read, and ignored
        out, self.invented = getattr(self, "invented", []), []
        return out


class _LinkLossIsFatalP2P(P2PSocketTransport):
    """Gives up on the first lost link, as if the receiver had refused it for good."""

    def _link_failed(self, exc: BaseException) -> None:
        super()._link_failed(exc)
        raise FatalError(f"link lost: {self._last_error}")


class _RefusalRetriedP2P(P2PSocketTransport):
    """Tries again whatever the receiver said, a refused certificate included."""

    def connect(self) -> None:
        try:
            super().connect()
        except FatalError as exc:
            raise RetriableError(str(exc)) from exc


class _WrongP2P:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        for name, transport in (("receipt-is-ack", _ReceiptIsAckP2P), ("link-loss-fatal", _LinkLossIsFatalP2P),
                                ("refusal-retried", _RefusalRetriedP2P)):
            register(name, transport, options=P2POptions)


@pytest.mark.parametrize(("transport", "check", "says"), [
    ("receipt-is-ack", "test_rejections_are_reported_as_the_receiver_said", "report exactly what the receiver said"),
    ("receipt-is-ack", "test_a_partial_answer_is_reported_as_partial", "never invent an acknowledgement"),
    ("link-loss-fatal", "test_a_dropped_connection_is_retriable", "it must be RetriableError"),
    ("link-loss-fatal", "test_a_busy_receiver_is_retriable", "it must be RetriableError"),
    ("refusal-retried", "test_a_refused_credential_is_fatal", "it must be FatalError"),
])
def test_the_scripted_p2p_receiver_catches_a_wrong_link_transport(tmp_path: Path, transport: str, check: str,
                                                                  says: str) -> None:
    suite = type("WrongP2PSuite", (TestP2PSocketTransport,),
                 {"transport_name": transport, "plugin_module": _WrongP2P(), "plugin_name": "wrong-p2p"})()
    with P2PReceiver(tmp_path / "scripted") as receiver, pytest.raises(AssertionError) as caught:
        getattr(suite, check)(receiver, tmp_path)
    assert says in str(caught.value)


def test_the_scripted_p2p_receiver_holds_a_drop_for_the_batch_on_every_link(tmp_path: Path) -> None:
    # p2p-socket rides out one lost link by sending the batch again: the receiver drops it
    # again, and the transport gives up retriable, having reported nothing.
    with P2PReceiver(tmp_path / "scripted") as receiver:
        transport = P2PSocketTransport(P2POptions.model_validate(receiver.options), None, S321Json())
        receiver.play(Script(Play.DROP))
        batch = sample_batch(2, start=71)
        driven = drive(transport, batch, wait=5.0)
        assert isinstance(driven.error, RetriableError) and not driven.acks
        arrivals = [b.batch_id for b in receiver.received]
        assert arrivals == [batch.batch_id] * 2, arrivals  # first link, then the one reconnect allowed
        assert not receiver.answered and not receiver.accepted


# --------------------------------------------------------------------------- validators


VAGUE = frozenset({"gift", "gifts", "goods", "sample", "samples", "parts", "merchandise", "item", "items"})


class VagueDescriptions:
    """An example broker rule: a description CBP cannot classify ("gift", "goods")
    is a warning on that item, so the client fixes its listing data."""

    def __init__(self, options: Any, context: Any):
        pass

    def validate(self, consignment: Consignment) -> list[Finding]:
        return [warning("vague-description", f"items.{i}.description",
                        f"{item.description!r} does not say what the goods are; CBP asks for the "
                        f"listing's own description (material, use, size)")
                for i, item in enumerate(consignment.items)
                if item.description and item.description.strip().lower() in VAGUE]


class _ExamplePlugin:
    @hookimpl
    def register_validators(self, register: Any) -> None:
        register("vague-descriptions", VagueDescriptions, description="warn on vague item descriptions")


class TestVagueDescriptionsValidator(ValidatorConformance):
    plugin_module = _ExamplePlugin()
    plugin_name = "example-validator"
    validator_name = "vague-descriptions"
    sample_records = [marketplace_record(7, items=[
        {"description": "Gift", "quantity": 1, "listed_price": "5.00", "currency": "USD",
         "product_url": "https://market.example/listing/7"},
        {"description": "Linen tea towel, 50 x 70 cm", "quantity": 2, "listed_price": "6.00",
         "currency": "USD", "product_url": "https://market.example/listing/8"}])]

    def test_it_warns_on_the_vague_item_only(self, tmp_path: Path) -> None:
        [finding] = self.validator(tmp_path).validate(self.records()[0])
        assert (finding.code, finding.field, finding.severity) == ("vague-description", "items.0.description",
                                                                   "warning")

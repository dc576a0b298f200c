"""Every first-party plugin passes the conformance suites of `s321.testing`, exactly
as a third-party plugin would: sources, transports, and an example validator.

The inputs of n units are made from the bundled samples (contrib/samples/), so they
stay in step with what the sources really read."""

from __future__ import annotations

import csv
import io
import json
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
from ports import free_port

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


def _party(name: str, line1: str, city: str, state: str | None, postal: str | None, country: str,
           line2: str | None = None, **contact: str) -> dict[str, Any]:
    """A party as `s321 preview --json` prints it (what is absent is left out)."""
    address = {"line1": line1, "line2": line2, "city": city, "state_or_province": state,
               "postal_code": postal, "country": country}
    return {"name": name, "address": {k: v for k, v in address.items() if v is not None}, **contact}


# What the harness's pipeline sets on every record (pipeline_config: TEST001, a
# marketplace by air unless the class's `pipeline` says otherwise), not the input.
MARKETPLACE = {"action": "add", "originator_code": "TEST001", "filer_type": "online_marketplace",
               "mode_of_transport": "air"}
LUMEN_CERAMICS = {  # vendors.csv line 2, the seller of vendor "Lumen Ceramics"
    "seller": _party("Jingdezhen Lumen Ceramics Co., Ltd.", "No. 18 Taoyang Road", "Jingdezhen", "Jiangxi",
                     "333000", "CN", line2="Zhushan District"),
    "marketplace_seller_id": "NWG-S-0001", "identified_marketplace_merchant": True}


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
    # Checked by hand against contrib/samples/shop (line numbers of each file).
    expected_records = {
        # orders_export.csv line 2 (#1001, one row). Shipping Name/Address1/Address2/City/
        # Zip ('02138, the quote an Excel guard)/Province/Country/Phone -> ultimate_deliver_to;
        # the Billing columns (the same) and Email -> customer; Lineitem quantity 2, price
        # 24.00, sku LC-MUG-350-CEL, Currency USD; catalog.csv line 2 (that sku) gives
        # description, hts_code, country_of_origin, product_url, weight_kg; Vendor "Lumen
        # Ceramics" -> vendors.csv line 2; tracking.csv line 2 ("1001", no '#') the number.
        "shopify:#1001": {
            **MARKETPLACE, **LUMEN_CERAMICS, "tracking_number": "YT2503000000700000",
            "ultimate_deliver_to": _party("José Müller", "41 Brattle Street", "Cambridge", "MA", "02138", "US",
                                          line2="Apt 3", phone="+1 617-555-0141"),
            "customer": _party("José Müller", "41 Brattle Street", "Cambridge", "MA", "02138", "US",
                               line2="Apt 3", phone="+1 617-555-0141", email="jose.jose@example.com"),
            "items": [{"description": "Stoneware coffee mug, celadon glaze, 350 ml", "quantity": 2,
                       "listed_price": "24.00", "currency": "USD",
                       "product_url": "https://northwind-goods.example.com/products/celadon-stoneware-mug-350",
                       "sku": "LC-MUG-350-CEL", "hts_code": "6912004400", "country_of_origin": "CN",
                       "weight_kg": "0.38"}]},
        # orders_export.csv lines 3-5 (#1002, three rows: the later rows carry only their
        # line item). Parties from line 3 as above; items in row order: HT-OOLONG-100 x1 at
        # 21.00 (catalog.csv line 5), HT-GAIWAN-4 x1 at 48.00 (catalog.csv line 7: no
        # description there, so the listing's own name), HT-JASMINE-50 x2 at 16.00 (line 6);
        # Vendor "Harbour Tea House" -> vendors.csv line 3 (no postal code there);
        # tracking.csv line 3.
        "shopify:#1002": {
            **MARKETPLACE, "tracking_number": "LX000700037HK",
            "seller": _party("Harbour Tea House Limited", "Unit 1203, 12/F, Kowloon Bay Trade Centre",
                             "Kowloon Bay", "Kowloon", None, "HK", line2="8 Wang Kwong Road"),
            "marketplace_seller_id": "NWG-S-0002", "identified_marketplace_merchant": True,
            "ultimate_deliver_to": _party("Zoë Lindqvist", "1820 NW Everett St", "Portland", "OR", "97209", "US",
                                          phone="+1 503-555-0178"),
            "customer": _party("Zoë Lindqvist", "1820 NW Everett St", "Portland", "OR", "97209", "US",
                               phone="+1 503-555-0178", email="zoe.zoe@example.com"),
            "items": [
                {"description": "Oolong tea (partly fermented), loose leaf, 100 g tin", "quantity": 1,
                 "listed_price": "21.00", "currency": "USD",
                 "product_url": "https://northwind-goods.example.com/products/tieguanyin-oolong-tea",
                 "sku": "HT-OOLONG-100", "hts_code": "0902300010", "country_of_origin": "CN", "weight_kg": "0.16"},
                {"description": "Porcelain Gaiwan Tea Set - 4 pieces", "quantity": 1, "listed_price": "48.00",
                 "currency": "USD",
                 "product_url": "https://northwind-goods.example.com/products/porcelain-gaiwan-tea-set",
                 "sku": "HT-GAIWAN-4", "hts_code": "6911101000", "country_of_origin": "CN", "weight_kg": "0.64"},
                {"description": "Green tea scented with jasmine, rolled pearls, 50 g", "quantity": 2,
                 "listed_price": "16.00", "currency": "USD",
                 "product_url": "https://northwind-goods.example.com/products/jasmine-green-tea-pearls",
                 "sku": "HT-JASMINE-50", "hts_code": "0902101015", "country_of_origin": "CN",
                 "weight_kg": "0.08"}]},
    }
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
    # Checked by hand against contrib/samples/shop/orders.jsonl line 4 (#1038): its
    # shipping_address (name, address1, address2, city, zip, province_code,
    # country_code, phone) -> ultimate_deliver_to; billing_address (the same) and
    # email -> customer; line_items: LC-MUG-350-CEL x1 at 24.00 and LC-BOWL-15-IND x2
    # at 18.50, currency USD, each completed from catalog.csv lines 2 and 3 (description,
    # hts_code, country_of_origin, product_url, weight_kg); vendor "Lumen Ceramics" ->
    # vendors.csv line 2; no fulfillments, so the number is tracking.csv line 35.
    expected_records = {
        "shopify:#1038": {
            **MARKETPLACE, **LUMEN_CERAMICS, "tracking_number": "YT2503000000945618",
            "ultimate_deliver_to": _party("Lily Chen", "1618 Bellevue Ave", "Seattle", "WA", "98122", "US",
                                          line2="Apt 304", phone="+1 206-555-0144"),
            "customer": _party("Lily Chen", "1618 Bellevue Ave", "Seattle", "WA", "98122", "US",
                               line2="Apt 304", phone="+1 206-555-0144", email="lily.lily@example.com"),
            "items": [
                {"description": "Stoneware coffee mug, celadon glaze, 350 ml", "quantity": 1,
                 "listed_price": "24.00", "currency": "USD",
                 "product_url": "https://northwind-goods.example.com/products/celadon-stoneware-mug-350",
                 "sku": "LC-MUG-350-CEL", "hts_code": "6912004400", "country_of_origin": "CN",
                 "weight_kg": "0.38"},
                {"description": "Porcelain rice bowl, hand-painted indigo, 15 cm", "quantity": 2,
                 "listed_price": "18.50", "currency": "USD",
                 "product_url": "https://northwind-goods.example.com/products/indigo-porcelain-rice-bowl",
                 "sku": "LC-BOWL-15-IND", "hts_code": "6911101000", "country_of_origin": "CN",
                 "weight_kg": "0.29"}]},
    }
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
    # Checked by hand against contrib/samples/x12-309/manifest-004010.edi (one segment a
    # line; line numbers): M10-04 (line 4) the conveyance, P4-01 (line 5) the port of
    # entry, for every bill of the set; per bill M11-01 the house and M11-11 the master
    # bill, N1*SH/N3/N4 the consignment originator, N1*CN/N3/N4 (and PER) whom it is
    # delivered to, one item per N10 with its N10** continuation lines joined to the
    # description: N10-01 quantity, N10-05 HTS (dots dropped), N10-06 the line's value in
    # US dollars (listed_price = value / quantity), N10-08 kilograms. Carrier and truck
    # come from the class's pipeline, known_carrier_customer from its defaults.
    expected_records = {
        # lines 6-17 (LX*1): PER (line 14) gives phone and e-mail; two N10 items.
        "309:MXLT25031401": {
            "action": "add", "originator_code": "TEST001", "filer_type": "carrier", "mode_of_transport": "truck",
            "master_bill_number": "MXLT0314M01", "house_bill_number": "MXLT25031401",
            "consignment_originator": _party("Textiles del Norte SA de CV", "Av. Constitución 2050 Pte",
                                             "Monterrey", "NL", "64000", "MX"),
            "known_carrier_customer": True,
            "ultimate_deliver_to": _party("José Ángel Hernández", "4712 San Bernardo Ave", "Laredo", "TX", "78041",
                                          "US", line2="Apt 3", phone="9565550142", email="jah@example.com"),
            "port_of_entry": "2304", "conveyance": "3AKJHHDR5KSKE1234",
            "items": [
                {"description": "WOMENS COTTON BLOUSE, EMBROIDERED FLORAL NECKLINE, SIZE M, WHITE", "quantity": 2,
                 "listed_price": "29.00", "line_value": "58", "currency": "USD", "hts_code": "6206303011",
                 "weight_kg": "0.300"},  # N10-08 weighs the line: 0.6 kg for 2
                {"description": "LEATHER BELT, HAND TOOLED, BROWN, 34 IN", "quantity": 1, "listed_price": "36.00",
                 "line_value": "36", "currency": "USD", "hts_code": "4203300000", "weight_kg": "0.300"}]},
        # lines 18-28 (LX*2): N9*2I (line 20) the tracking number; no PER; one item.
        "309:MXLT25031402": {
            "action": "add", "originator_code": "TEST001", "filer_type": "carrier", "mode_of_transport": "truck",
            "master_bill_number": "MXLT0314M01", "house_bill_number": "MXLT25031402",
            "tracking_number": "1Z9X81W40398765432",
            "consignment_originator": _party("Textiles del Norte SA de CV", "Av. Constitución 2050 Pte",
                                             "Monterrey", "NL", "64000", "MX"),
            "known_carrier_customer": True,
            "ultimate_deliver_to": _party("Zoë Nakamura-Brandt", "1180 Howard St", "San Francisco", "CA", "94103",
                                          "US"),
            "port_of_entry": "2304", "conveyance": "3AKJHHDR5KSKE1234",
            "items": [{"description": "TALAVERA CERAMIC MUG, HAND PAINTED, 12 OZ BLUE AND WHITE PATTERN, SET PIECE",
                       "quantity": 4, "listed_price": "16.00", "line_value": "64", "currency": "USD",
                       "hts_code": "6912004810", "weight_kg": "0.500"}]},  # 2 kg for 4
    }
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
    # Checked by hand against contrib/samples/cargo-imp-fhl/houses.txt (line numbers):
    # MBI (line 4) the master bill for every house under it, and the OCI lines 5-10 its
    # security scan (ISS/RA/00231-01 the reference, SM/XRY x-ray, SD/28OCT251410 the
    # time); per house HBS the house bill, its pieces the quantity and its weight (K
    # kilograms, L pounds), TXT (and its / continuation) the description, HTS the code
    # (dots dropped), CVD the currency and customs value (listed_price = value /
    # quantity), SHP the consignment originator, CNE whom it is delivered to (TE the
    # phone). Carrier and air come from the class's pipeline.
    expected_records = {
        # lines 11-23: SHP and CNE in the /-continued layout.
        "fhl:160-58231401/HK7731001": {
            "action": "add", "originator_code": "TEST001", "filer_type": "carrier", "mode_of_transport": "air",
            "master_bill_number": "160-58231401", "house_bill_number": "HK7731001",
            "consignment_originator": _party("Shenzhen Lǜxīng Electronics Co Ltd",
                                             "Building 4 Bantian Industrial Park", "SHENZHEN", "GD", "518129", "CN",
                                             phone="8675528841234"),
            "known_carrier_customer": True,
            "ultimate_deliver_to": _party("José Álvarez", "1420 West Sunset Boulevard Apt 5", "LOS ANGELES", "CA",
                                          "90026", "US", phone="13235550142"),
            "security_scan": {"performed": True, "method": "x-ray", "reference": "RA 00231-01",
                              "scanned_at": "2025-10-28T14:10:00"},
            "items": [{"description": "WIRELESS BLUETOOTH EARBUDS WITH CHARGING CASE AND USB-C CABLE RETAIL PACKED",
                       "quantity": 2, "listed_price": "22.95", "line_value": "45.90", "currency": "USD",
                       "hts_code": "851830", "weight_kg": "1.400"}]},
        # lines 45-58: SHP/ and CNE/ in the NAM/ADR/LOC layout; L3.5 is 3.5 lb = 1.588 kg;
        # CVD in HKD; no OCI of its own, so the master's scan.
        "fhl:160-58231401/HK7731003": {
            "action": "add", "originator_code": "TEST001", "filer_type": "carrier", "mode_of_transport": "air",
            "master_bill_number": "160-58231401", "house_bill_number": "HK7731003",
            "consignment_originator": _party("Guangzhou Tiānyuán Ceramics Trading", "88 Huangpu Avenue West",
                                             "GUANGZHOU", "GD", "510620", "CN"),
            "known_carrier_customer": True,
            "ultimate_deliver_to": _party("Siobhán O'Connor", "55 Beacon Street", "BOSTON", "MA", "02108", "US",
                                          phone="16175550110"),
            "security_scan": {"performed": True, "method": "x-ray", "reference": "RA 00231-01",
                              "scanned_at": "2025-10-28T14:10:00"},
            "items": [{"description": "HAND PAINTED PORCELAIN TEAPOT WITH 4 CUPS", "quantity": 1,
                       "listed_price": "1450.00", "line_value": "1450.00", "currency": "HKD", "hts_code": "691110",
                       "weight_kg": "1.588"}]},
    }
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
    return free_port()  # nobody listens there, and no one else is handed it


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


def test_no_first_party_suite_skips_a_check() -> None:
    # A skipped check protects nobody: every source suite here compares records, and
    # every transport suite that gets acknowledgements has a scripted receiver.
    suites = [v for v in globals().values() if isinstance(v, type) and v.__name__.startswith("Test")]
    sources = [s for s in suites if issubclass(s, SourceConformance)]
    transports = [s for s in suites if issubclass(s, TransportConformance)]
    assert len(sources) == 5 and len(transports) == 2
    assert [s.__name__ for s in sources if not s.expected_records] == []
    assert [s.__name__ for s in transports if s.scripted_receiver_missing] == []

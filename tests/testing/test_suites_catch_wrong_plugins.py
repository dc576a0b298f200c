"""The conformance suites fail wrong plugins: each plugin here breaks one rule, and
the check about that rule must fail on it (and say so), before it reaches a pipeline.

The suites are subclassed without the `Test` prefix, so pytest does not collect them
here; each test calls one check directly.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from s321.contracts import Ack, Batch, Mapped, PipelineContext, RawUnit, Receipt
from s321.findings import Finding, error
from s321.hookspecs import hookimpl
from s321.logs import get_logger
from s321.paths import ConfigPath
from s321.record import Consignment
from s321.secrets import Secret
from s321.testing import (
    Endpoint,
    ErrorCase,
    MemoryReceiver,
    MemoryTransport,
    SourceConformance,
    TransportConformance,
    ValidatorConformance,
)
from s321.testing.samples import marketplace_record

FAILED = (AssertionError, pytest.fail.Exception)
log = get_logger(__name__)


# --------------------------------------------------------------------------- sources
#
# One line, one unit: "KEY,DESCRIPTION,PRICE". Each subclass breaks one rule.


class LineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ConfigPath
    pattern: str = "*.txt"


class LineSource:
    def __init__(self, options: LineOptions, context: PipelineContext):
        self.options = options

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for path in paths or [self.options.path]:
            with path.open("rb") as fh:
                for number, raw in enumerate(fh, 1):
                    yield self.unit(path, number, raw)

    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        where = f"{path}:{number}"
        parts = raw.decode("utf-8", "replace").strip().split(",")
        if len(parts) != 3 or not parts[0]:
            return RawUnit(f"bad:{hashlib.sha256(raw).hexdigest()[:16]}", where, None,
                           (error("bad-line", "", "expected KEY,DESCRIPTION,PRICE"),))
        return RawUnit(parts[0], where, parts)

    def ack(self, upto: Any) -> None:
        pass


class LineMapper:
    def __init__(self, options: Any, context: PipelineContext):
        pass

    def map(self, unit: RawUnit) -> Mapped:
        key, description, price = unit.payload
        try:
            Decimal(price)
        except ArithmeticError:
            return Mapped(findings=[error("bad-price", "items.0.listed_price", "not a number")])
        return Mapped(record=marketplace_record(items=[{
            "description": description, "quantity": 1, "listed_price": price, "currency": "USD",
            "product_url": f"https://market.example/{key}"}]))


class CrashingSource(LineSource):
    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        raw.decode("utf-8")  # raises on bytes that are not UTF-8
        return super().unit(path, number, raw)


class NowhereSource(LineSource):
    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        unit = super().unit(path, number, raw)
        return RawUnit(unit.key, path.name, unit.payload, unit.findings)  # no line number


class SilentSource(LineSource):
    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        unit = super().unit(path, number, raw)
        return RawUnit(unit.key, unit.location, unit.payload)  # broken, and does not say why


class SlurpingSource(LineSource):
    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for path in paths or [self.options.path]:
            lines = path.read_bytes().splitlines(keepends=True)  # the whole file, at once
            units = [self.unit(path, n, raw) for n, raw in enumerate(lines, 1)]
            yield from units


class ClockKeySource(LineSource):
    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        unit = super().unit(path, number, raw)
        return RawUnit(uuid.uuid4().hex, unit.location, unit.payload, unit.findings)


class FileKeySource(LineSource):
    def unit(self, path: Path, number: int, raw: bytes) -> RawUnit:
        unit = super().unit(path, number, raw)
        return RawUnit(f"{path.name}:{number}", unit.location, unit.payload, unit.findings)


class RaisingMapper(LineMapper):
    def map(self, unit: RawUnit) -> Mapped:
        Decimal(unit.payload[2])  # raises on a price that is not a number
        return super().map(unit)


class LaxOptions(LineOptions):
    model_config = ConfigDict(extra="ignore")


# Orders over several lines: "ORDER,DESCRIPTION,PRICE,QTY", consecutive lines of one
# order are its items (as in a shop's export). Each subclass breaks one rule.


ORDER_KEY = re.compile(r"[A-Za-z0-9-]+")


class OrderSource(LineSource):
    split_bad_rows = False
    drop_bad_rows = False

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for path in paths or [self.options.path]:
            order: dict[str, Any] | None = None
            with path.open("rb") as fh:
                for number, raw in enumerate(fh, 1):
                    where = self.where(path, number)
                    text = raw.decode("utf-8", "replace")
                    parts = text.rstrip("\r\n").split(",")
                    key = parts[0].strip() if ORDER_KEY.fullmatch(parts[0].strip()) else ""
                    bad = len(parts) != 4 or "\ufffd" in text or not key
                    if bad and self.drop_bad_rows:
                        continue
                    if bad and (not key or self.split_bad_rows):
                        yield self.broken(path, number, raw, where)
                        continue
                    if order is None or order["key"] != key:
                        if order is not None:
                            yield self.unit(order)
                        order = {"key": key, "where": where, "rows": [], "findings": []}
                    if bad:  # a row of this order: the order is invalid as a whole
                        order["findings"].append(error("bad-line", "", "expected ORDER,DESCRIPTION,PRICE,QTY", where))
                        continue
                    order["rows"].append(parts[1:])
            if order is not None:
                yield self.unit(order)

    def where(self, path: Path, number: int) -> str:
        return f"{path}:{number}"

    def broken(self, path: Path, number: int, raw: bytes, where: str) -> RawUnit:
        return RawUnit(f"unreadable:{hashlib.sha256(raw).hexdigest()[:16]}", where, None,
                       (error("bad-line", "", "expected ORDER,DESCRIPTION,PRICE,QTY", where),))

    def unit(self, order: dict[str, Any]) -> RawUnit:
        payload = (order["key"], order["rows"]) if order["rows"] else None
        return RawUnit(order["key"], order["where"], payload, tuple(order["findings"]))


class OrderMapper(LineMapper):
    def map(self, unit: RawUnit) -> Mapped:
        items, findings = [], []
        order, rows = unit.payload
        for i, (description, price, qty) in enumerate(rows):
            quantity = int(qty) if qty.isascii() and qty.isdigit() and len(qty) < 7 else None
            if quantity is None:
                findings.append(error("bad-quantity", f"items.{i}.quantity", f"{qty!r} is not a whole number"))
            amount = self.price(price)
            if amount is None:
                findings.append(error("bad-price", f"items.{i}.listed_price", f"{price!r} is not an amount"))
            items.append({"description": description, "quantity": quantity, "listed_price": amount,
                          "currency": "USD", "product_url": f"https://market.example/{order}/{i}"})
        return Mapped(record=self.record(order, items), findings=findings)

    def price(self, text: str) -> Decimal | None:
        try:
            value = Decimal(text)
        except ArithmeticError:
            return None
        return value if value.is_finite() and abs(value) < 10**6 else None

    def record(self, order: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return marketplace_record(tracking_number=f"TN-{order}", items=items)


class DroppingOrderSource(OrderSource):
    """A row it cannot read is skipped, and nobody hears of it."""

    drop_bad_rows = True


class SplittingOrderSource(OrderSource):
    """A broken row of an order becomes a unit of its own; the order is filed without it."""

    split_bad_rows = True


class OffByOneOrderSource(OrderSource):
    def where(self, path: Path, number: int) -> str:
        return f"{path}:{number + 1}"  # counted from the line after


class CounterKeyOrderSource(OrderSource):
    """Keys its units by their position in the file."""

    def read(self, paths: Iterable[Path] | None = None) -> Iterator[RawUnit]:
        for n, unit in enumerate(super().read(paths), 1):
            yield RawUnit(f"unit-{n}", unit.location, unit.payload, unit.findings)


class FileLineKeyOrderSource(OrderSource):
    """Keys a row it cannot read by file and line, as the template once did."""

    def broken(self, path: Path, number: int, raw: bytes, where: str) -> RawUnit:
        unit = super().broken(path, number, raw, where)
        return RawUnit(f"unreadable:{path.name}:{number}", unit.location, None, unit.findings)


class CellRaisingMapper(OrderMapper):
    def map(self, unit: RawUnit) -> Mapped:
        for _, _, qty in unit.payload[1]:
            if qty.isdigit():
                int(qty)  # "²".isdigit() is True, and int("²") raises
        return super().map(unit)


class WrongPathMapper(OrderMapper):
    def map(self, unit: RawUnit) -> Mapped:
        mapped = super().map(unit)
        mapped.findings = [Finding(**{**f.model_dump(), "field": f.field.replace("quantity", "qty")})
                           for f in mapped.findings]
        return mapped


class TotallingMapper(OrderMapper):
    def record(self, order: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        total = sum((i["listed_price"] or 0) * (i["quantity"] or 0) for i in items)
        return {**super().record(order, items), "total_value_usd": str(total)}


class InventingMapper(OrderMapper):
    def record(self, order: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        for item in items:
            item["country_of_origin"] = "CN"  # "most of it is", but the input does not say
        return super().record(order, items)


SOURCES: dict[str, tuple[type, type, type]] = {
    "good-lines": (LineSource, LineMapper, LineOptions),
    "crashing-lines": (CrashingSource, LineMapper, LineOptions),
    "nowhere-lines": (NowhereSource, LineMapper, LineOptions),
    "silent-lines": (SilentSource, LineMapper, LineOptions),
    "slurping-lines": (SlurpingSource, LineMapper, LineOptions),
    "clock-key-lines": (ClockKeySource, LineMapper, LineOptions),
    "file-key-lines": (FileKeySource, LineMapper, LineOptions),
    "raising-mapper-lines": (LineSource, RaisingMapper, LineOptions),
    "lax-lines": (LineSource, LineMapper, LaxOptions),
    "good-orders": (OrderSource, OrderMapper, LineOptions),
    "dropping-orders": (DroppingOrderSource, OrderMapper, LineOptions),
    "splitting-orders": (SplittingOrderSource, OrderMapper, LineOptions),
    "off-by-one-orders": (OffByOneOrderSource, OrderMapper, LineOptions),
    "counter-key-orders": (CounterKeyOrderSource, OrderMapper, LineOptions),
    "file-line-key-orders": (FileLineKeyOrderSource, OrderMapper, LineOptions),
    "cell-raising-orders": (OrderSource, CellRaisingMapper, LineOptions),
    "wrong-path-orders": (OrderSource, WrongPathMapper, LineOptions),
    "totalling-orders": (OrderSource, TotallingMapper, LineOptions),
    "inventing-orders": (OrderSource, InventingMapper, LineOptions),
}


class WrongPlugins:
    @hookimpl
    def register_sources(self, register: Any) -> None:
        for name, (source, _, options) in SOURCES.items():
            register(name, source, options=options)

    @hookimpl
    def register_mappers(self, register: Any) -> None:
        for name, (_, mapper, options) in SOURCES.items():
            register(name, mapper, options=options)

    @hookimpl
    def register_transports(self, register: Any) -> None:
        for name, transport in TRANSPORTS.items():
            register(name, transport, options=transport.options_model)

    @hookimpl
    def register_validators(self, register: Any) -> None:
        for name, validator in VALIDATORS.items():
            register(name, validator)


def lines(n: int) -> bytes:
    return "".join(f"K{i},Stoneware mug {i},{i % 40 + 1}.50\n" for i in range(n)).encode()


class LineSuite(SourceConformance):
    plugin_module = WrongPlugins()
    plugin_name = "wrong-plugins"
    sample_inputs = [lines(5), b"K9,Mug,not-a-price\nbroken\n"]
    memory_units = 500

    def make_input(self, n: int) -> bytes:
        return lines(n)


def suite(source: str) -> SourceConformance:
    return type(f"Suite_{source}", (LineSuite,), {"source_name": source})()


def test_the_good_line_source_passes_every_check(tmp_path: Path) -> None:
    s = suite("good-lines")
    for check in ("test_it_is_registered_with_a_mapper_and_strict_options", "test_sample_inputs_make_consignments",
                  "test_findings_carry_locations", "test_arbitrary_bytes_never_crash_it", "test_memory_stays_flat",
                  "test_reading_twice_gives_the_same_transaction_ids", "test_a_pipeline_files_its_sample_inputs"):
        getattr(s, check)(tmp_path / check)


@pytest.mark.parametrize(("source", "check", "says"), [
    ("crashing-lines", "test_arbitrary_bytes_never_crash_it", "read() raised UnicodeDecodeError"),
    ("raising-mapper-lines", "test_arbitrary_bytes_never_crash_it", "the mapper raised"),
    ("nowhere-lines", "test_findings_carry_locations", "FILE:LINE"),
    ("silent-lines", "test_findings_carry_locations", "no payload and no error finding"),
    ("slurping-lines", "test_memory_stays_flat", "must stream"),
    ("clock-key-lines", "test_reading_twice_gives_the_same_transaction_ids", "other transaction ids"),
    ("file-key-lines", "test_reading_twice_gives_the_same_transaction_ids", "another file name"),
    ("lax-lines", "test_it_is_registered_with_a_mapper_and_strict_options", "reject unknown keys"),
])
def test_a_wrong_source_fails_the_check_about_its_fault(tmp_path: Path, source: str, check: str,
                                                         says: str) -> None:
    with pytest.raises(FAILED) as caught:
        getattr(suite(source), check)(tmp_path)
    assert says in str(caught.value)


def orders(n: int) -> bytes:
    return "".join(f"O{i},Stoneware mug {i},{i % 40 + 1}.50,{i % 3 + 1}\n" * (1 + i % 2) for i in range(n)).encode()


ORDERS_SAMPLE = (b"O1,Linen tea towel,6.00,2\nO2,Enamel mug,9.50,1\nO2,Mug lid,2.25,1\n"
                 b"O3,Bamboo board,23.50,three\nO4,Beeswax wrap,7.00,3\nO4,Wrap clip,1.50,4\n")


def expected_orders() -> dict[str, dict[str, Any]]:
    """What the good mapper makes of ORDERS_SAMPLE: the author's expectation."""
    suite = order_suite("good-orders")
    folder = Path(tempfile.mkdtemp())
    path = suite._samples(folder)[0]
    out = {o.ref: o.record.model_dump(mode="json", exclude_none=True)
           for o in suite.harness(folder / "run").processor().process([path]) if o.record is not None}
    shutil.rmtree(folder)
    return out


class OrderSuite(SourceConformance):
    plugin_module = WrongPlugins()
    plugin_name = "wrong-plugins"
    sample_inputs = [ORDERS_SAMPLE]
    memory_units = 500

    def make_input(self, n: int) -> bytes:
        return orders(n)


def order_suite(source: str, **attributes: Any) -> SourceConformance:
    return type(f"Suite_{source}", (OrderSuite,), {"source_name": source, **attributes})()


ORDER_CHECKS = ("test_it_is_registered_with_a_mapper_and_strict_options", "test_sample_inputs_make_consignments",
                "test_findings_carry_locations", "test_arbitrary_bytes_never_crash_it", "test_memory_stays_flat",
                "test_reading_twice_gives_the_same_transaction_ids", "test_a_pipeline_files_its_sample_inputs",
                "test_keys_do_not_shift_when_a_unit_goes", "test_a_damaged_line_is_reported_where_it_is",
                "test_one_bad_cell_never_crashes_the_mapper", "test_sample_records_are_as_expected")


def test_every_source_check_is_run_on_the_good_order_source() -> None:
    assert set(ORDER_CHECKS) == {n for n in dir(SourceConformance) if n.startswith("test_")}


@pytest.mark.parametrize("check", ORDER_CHECKS)
def test_the_good_order_source_passes_every_check(tmp_path: Path, check: str) -> None:
    getattr(order_suite("good-orders", expected_records=expected_orders()), check)(tmp_path)


@pytest.mark.parametrize(("source", "check", "says"), [
    ("dropping-orders", "test_a_damaged_line_is_reported_where_it_is", "never dropped"),
    ("splitting-orders", "test_a_damaged_line_is_reported_where_it_is", "invalid as a whole"),
    ("off-by-one-orders", "test_a_damaged_line_is_reported_where_it_is", "never a line off"),
    ("counter-key-orders", "test_keys_do_not_shift_when_a_unit_goes", "never from a counter"),
    ("file-line-key-orders", "test_a_damaged_line_is_reported_where_it_is", "never by the file's name and line"),
    # Whole-file fuzzing rarely puts "²" in a quantity cell; this check tries it in every cell.
    ("cell-raising-orders", "test_one_bad_cell_never_crashes_the_mapper", "the mapper raised ValueError"),
    ("wrong-path-orders", "test_findings_carry_locations", "not a field of the record"),
    ("totalling-orders", "test_sample_inputs_make_consignments", "the framework sets it"),
    ("inventing-orders", "test_sample_records_are_as_expected", "items"),
])
def test_a_wrong_order_source_or_mapper_fails_the_check_about_its_fault(tmp_path: Path, source: str, check: str,
                                                                         says: str) -> None:
    with pytest.raises(FAILED) as caught:
        getattr(order_suite(source, expected_records=expected_orders()), check)(tmp_path)
    assert says in str(caught.value)


def test_a_source_suite_without_make_input_says_what_to_write(tmp_path: Path) -> None:
    bare = type("Bare", (SourceConformance,), {"plugin_module": WrongPlugins(), "source_name": "good-lines",
                                                "sample_inputs": [lines(2)]})()
    with pytest.raises(pytest.fail.Exception, match="define `make_input"):
        bare.test_memory_stays_flat(tmp_path)


def test_a_suite_for_a_plugin_that_is_not_there_says_how_to_make_it_known(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="Set `plugin_module`"):
        suite("no-such-source").test_sample_inputs_make_consignments(tmp_path)


# --------------------------------------------------------------------------- transports
#
# Transports to an in-memory receiver, found by name through their options.

RECEIVERS: dict[str, MemoryReceiver] = {}


class ReceiverOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receiver: str
    password: Secret | None = None


class GoodTransport(MemoryTransport):
    options_model: type[BaseModel] = ReceiverOptions

    def __init__(self, options: Any, context: Any, serializer: Any):
        super().__init__(RECEIVERS[options.receiver], serializer)
        self.options = options


class LeakyTransport(GoodTransport):
    def connect(self) -> None:
        log.debug("connecting", password=self.options.password.get_secret_value())
        super().connect()


class PlainPasswordOptions(ReceiverOptions):
    password: str | None = None  # type: ignore[assignment]


class PlainPasswordTransport(GoodTransport):
    options_model = PlainPasswordOptions


class RawErrorTransport(GoodTransport):
    def connect(self) -> None:
        if self.options.receiver == "down":
            raise ConnectionRefusedError(111, "Connection refused")  # not classified
        super().connect()


class ForgetfulTransport(GoodTransport):
    """Skips records it sent before: a tempting optimisation that breaks the promise."""

    seen: set[str] = set()

    def send(self, batch: Batch) -> Receipt:
        fresh = [r for r in batch.records if r.transaction_id not in self.seen]
        self.seen.update(r.transaction_id for r in fresh)
        return super().send(batch.model_copy(update={"records": fresh}))


class TouchyTransport(GoodTransport):
    def close(self) -> None:
        if not self.connected:
            raise RuntimeError("not open")
        super().close()


class OneWayTransport(GoodTransport):
    """Says it acknowledges, but its acks never come."""

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        return []


TRANSPORTS: dict[str, type[GoodTransport]] = {
    "good-memory": GoodTransport, "leaky-memory": LeakyTransport,
    "plain-password-memory": PlainPasswordTransport, "raw-error-memory": RawErrorTransport,
    "forgetful-memory": ForgetfulTransport, "touchy-memory": TouchyTransport, "one-way-memory": OneWayTransport,
}


class MemorySuite(TransportConformance):
    plugin_module = WrongPlugins()
    plugin_name = "wrong-plugins"
    ack_wait = 1.0
    ack_timeout = 0.3

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        return [ErrorCase({**endpoint.options, "receiver": "down"}, why="receiver down")]


def memory_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Endpoint:
    name = str(tmp_path)
    RECEIVERS[name] = receiver = MemoryReceiver()
    RECEIVERS["down"] = MemoryReceiver()
    monkeypatch.setenv("MEMORY_PASSWORD", "hunter2-memory-secret")
    ForgetfulTransport.seen = set()
    return Endpoint({"receiver": name, "password": {"env": "MEMORY_PASSWORD"}},
                    accepted=lambda: receiver.accepted)


def transport_suite(name: str) -> TransportConformance:
    return type(f"Suite_{name}", (MemorySuite,), {"transport_name": name})()


def test_the_good_memory_transport_passes_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = transport_suite("good-memory")
    endpoint = memory_endpoint(tmp_path, monkeypatch)
    s.test_it_is_registered_with_strict_options(endpoint, tmp_path / "1")
    s.test_connect_and_close_are_idempotent(endpoint, tmp_path / "2")
    s.test_records_whose_acks_are_lost_are_sent_again_and_accepted_once(endpoint, tmp_path / "3")
    s.test_a_send_that_failed_after_delivery_is_filed_once(memory_endpoint(tmp_path / "4", monkeypatch),
                                                           tmp_path / "4")
    s.test_secrets_never_reach_the_logs(endpoint, tmp_path / "5", monkeypatch)
    s.test_a_pipeline_files_through_it(memory_endpoint(tmp_path / "6", monkeypatch), tmp_path / "6")


def test_an_error_that_is_not_classified_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = transport_suite("raw-error-memory")
    with pytest.raises(FAILED, match="only RetriableError or FatalError"):
        s.test_errors_are_classified_retriable_or_fatal(memory_endpoint(tmp_path, monkeypatch), tmp_path,
                                                        monkeypatch)


@pytest.mark.parametrize(("transport", "check", "says"), [
    ("leaky-memory", "test_secrets_never_reach_the_logs", "secret option value was logged"),
    ("plain-password-memory", "test_secrets_never_reach_the_logs", "looks like a secret"),
    ("forgetful-memory", "test_records_whose_acks_are_lost_are_sent_again_and_accepted_once", "ledger states"),
    ("one-way-memory", "test_connect_and_close_are_idempotent", "no acknowledgement"),
    ("touchy-memory", "test_connect_and_close_are_idempotent", "not open"),
])
def test_a_wrong_transport_fails_the_check_about_its_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            transport: str, check: str, says: str) -> None:
    s = transport_suite(transport)
    endpoint = memory_endpoint(tmp_path, monkeypatch)
    if transport == "plain-password-memory":
        endpoint.options["password"] = "hunter2-written-in-the-config"  # what a plain str invites
    method = getattr(s, check)
    args = (endpoint, tmp_path, monkeypatch) if "monkeypatch" in method.__code__.co_varnames else (endpoint, tmp_path)
    with pytest.raises((*FAILED, RuntimeError)) as caught:
        method(*args)
    assert says in str(caught.value)


# --------------------------------------------------------------------------- validators


class WrongPathValidator:
    def __init__(self, options: Any, context: Any):
        pass

    def validate(self, c: Consignment) -> list[Finding]:
        return [error("price-too-low", "items[0].price", "too cheap")] if c.items else []


class IndexPastTheEnd(WrongPathValidator):
    def validate(self, c: Consignment) -> list[Finding]:
        return [error("no-second-item", f"items.{len(c.items)}.description", "add one")]


class BadCodeValidator(WrongPathValidator):
    def validate(self, c: Consignment) -> list[Finding]:
        return [error("Seller Missing!", "seller", "who sells?")]


class CrashingValidator(WrongPathValidator):
    def validate(self, c: Consignment) -> list[Finding]:
        if c.seller.name.lower().startswith("x"):  # type: ignore[union-attr]  # no seller: AttributeError
            return [error("seller-x", "seller.name", "x")]
        return []


class MutatingValidator(WrongPathValidator):
    def validate(self, c: Consignment) -> list[Finding]:
        for item in c.items:
            item.description = (item.description or "").upper()
        return []


class GoodValidator(WrongPathValidator):
    def validate(self, c: Consignment) -> list[Finding]:
        return [error("seller-unknown", "seller.name", "no seller name") for _ in [1]
                if c.seller is None or not c.seller.name]


VALIDATORS: dict[str, type] = {
    "good-rules": GoodValidator, "wrong-path-rules": WrongPathValidator, "past-the-end-rules": IndexPastTheEnd,
    "bad-code-rules": BadCodeValidator, "crashing-rules": CrashingValidator, "mutating-rules": MutatingValidator,
}


def validator_suite(name: str) -> ValidatorConformance:
    return type(f"Suite_{name}", (ValidatorConformance,), {
        "plugin_module": WrongPlugins(), "plugin_name": "wrong-plugins", "validator_name": name})()


def test_the_good_validator_passes_every_check(tmp_path: Path) -> None:
    s = validator_suite("good-rules")
    for check in ("test_it_is_registered_and_needs_no_options", "test_findings_are_well_formed_and_point_at_real_fields",
                  "test_any_record_shape_never_crashes_it", "test_it_neither_changes_the_record_nor_its_mind",
                  "test_a_pipeline_runs_it"):
        getattr(s, check)(tmp_path / check)


@pytest.mark.parametrize(("validator", "check", "says"), [
    ("wrong-path-rules", "test_findings_are_well_formed_and_point_at_real_fields", "has no field 'items[0]'"),
    ("past-the-end-rules", "test_findings_are_well_formed_and_point_at_real_fields", "there is no index 1"),
    ("bad-code-rules", "test_findings_are_well_formed_and_point_at_real_fields", "not kebab-case"),
    ("crashing-rules", "test_any_record_shape_never_crashes_it", "validate() raised AttributeError"),
    ("crashing-rules", "test_a_pipeline_runs_it", "raised inside a pipeline"),
    ("mutating-rules", "test_it_neither_changes_the_record_nor_its_mind", "changed the record"),
])
def test_a_wrong_validator_fails_the_check_about_its_fault(tmp_path: Path, validator: str, check: str,
                                                            says: str) -> None:
    with pytest.raises(FAILED) as caught:
        getattr(validator_suite(validator), check)(tmp_path)
    assert says in str(caught.value)

"""`s321 sandbox`: answers like CBP (duplicates, unknown transactions, profile checks),
survives bad clients, serves many at once, misbehaves on request, keeps what it
accepted in SQLite, and runs from the command line. Real TLS on loopback, no mocks."""

from __future__ import annotations

import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from builders import carrier_fields, consignment
from s321 import ids
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.adapters.p2p_socket.link import client_context
from s321.contracts import Ack, AckStatus, Batch, RecordAck
from s321.errors import RetriableError
from s321.framing import HEADER, FrameStream, FrameType, encode, parse_json
from s321.plugins.wire_s321 import S321Json
from s321.record import Action, Consignment
from s321.sandbox import Faults, Sandbox, SandboxStore, ensure_dev_certs
from s321.sandbox import cli as sandbox_cli

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "connect_timeout": 5.0}


def carrier(txid: str, action: Action = Action.ADD, **changes: object) -> Consignment:
    record = consignment(carrier_fields(**changes), txid=txid)
    record.action = action
    return record


def batch(*records: Consignment, profile: str = "pilot-2019") -> Batch:
    return Batch(batch_id=ids.batch_id(), originator_code="CAR001", profile=profile,
                 sent_at=datetime.now(UTC), records=list(records))


def transport_to(sb: Sandbox, **overrides: object) -> P2PSocketTransport:
    options = P2POptions.model_validate(sb.transport_options(**{**FAST, **overrides}))
    return P2PSocketTransport(options, None, S321Json())


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox").start() as sb:
        yield sb


@pytest.fixture
def file_batches(sandbox: Sandbox) -> Iterator[Callable[..., list[RecordAck]]]:
    """Send batches over one transport and return each batch's results."""
    transport = transport_to(sandbox)

    def send(*records: Consignment, profile: str = "pilot-2019") -> list[RecordAck]:
        sent = batch(*records, profile=profile)
        transport.send(sent)
        return wait_ack(transport, sent.batch_id).results

    yield send
    transport.close()


def wait_ack(transport: P2PSocketTransport, batch_id: str, timeout: float = 10.0) -> Ack:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ack in transport.acks(timeout=0.5):
            if ack.batch_id == batch_id:
                return ack
    raise AssertionError(f"no ACK for {batch_id}")


def codes(result: RecordAck) -> list[str]:
    return [e.code for e in result.errors]


def raw_stream(sb: Sandbox, context: ssl.SSLContext | None = None) -> FrameStream:
    context = context or client_context(sb.ca_path, sb.client_cert, sb.client_key)
    sock = socket.create_connection((sb.host, sb.port), timeout=5)
    return FrameStream(context.wrap_socket(sock, server_hostname=sb.host))


def refusal(stream: FrameStream) -> str:
    """The code of the ERROR frame the sandbox answers with; then it must close."""
    frame = stream.read(5)
    assert frame is not None and frame.type is FrameType.ERROR, frame
    with pytest.raises((EOFError, ConnectionError)):
        stream.read(5)
    return str(parse_json(frame)["code"])


# --------------------------------------------------------------------------- like CBP


def test_replace_and_delete_need_a_filed_transaction(sandbox: Sandbox, file_batches) -> None:
    [unknown_replace, unknown_delete] = file_batches(carrier("T9", Action.REPLACE),
                                                     carrier("T8", Action.DELETE))
    assert codes(unknown_replace) == codes(unknown_delete) == ["unknown-transaction"]
    assert [r.status for r in file_batches(carrier("T1"))] == [AckStatus.ACCEPTED]
    [replaced] = file_batches(carrier("T1", Action.REPLACE, house_bill_number="HB-2002"))
    assert replaced.status is AckStatus.ACCEPTED
    [deleted] = file_batches(carrier("T1", Action.DELETE))
    assert deleted.status is AckStatus.ACCEPTED
    [after_delete, add_again] = file_batches(carrier("T1", Action.REPLACE), carrier("T1"))
    assert codes(after_delete) == ["unknown-transaction"]
    assert codes(add_again) == ["duplicate"]
    assert sandbox.store.accepted_counts() == {"T1": 3}  # add, replace, delete
    versions = sandbox.store.accepted_records("T1")
    assert [v["action"] for v in versions] == ["add", "replace", "delete"]
    assert versions[1]["house_bill_number"] == "HB-2002"


def test_the_same_add_twice_in_one_batch_is_accepted_once(sandbox: Sandbox, file_batches) -> None:
    first, second = file_batches(carrier("T1"), carrier("T1"))
    assert first.status is AckStatus.ACCEPTED and codes(second) == ["duplicate"]
    assert sandbox.store.accepted_counts() == {"T1": 1}


def test_one_batch_sees_its_own_earlier_records(sandbox: Sandbox, file_batches) -> None:
    # The store writes a batch at its end: what the batch accepted must count already.
    results = file_batches(carrier("T1"), carrier("T1", Action.REPLACE, house_bill_number="HB-2"),
                           carrier("T1", Action.DELETE), carrier("T1", Action.REPLACE))
    assert [codes(r) for r in results] == [[], [], [], ["unknown-transaction"]]
    assert [v["action"] for v in sandbox.store.accepted_records("T1")] == ["add", "replace", "delete"]
    [later] = file_batches(carrier("T1", Action.REPLACE))
    assert codes(later) == ["unknown-transaction"]  # the delete was stored
    assert sandbox.store.rejection_counts() == {"unknown-transaction": 2}


def test_a_review_that_fails_stores_nothing_of_its_batch(tmp_path: Path) -> None:
    store = SandboxStore(tmp_path / "sandbox.sqlite")
    try:
        with pytest.raises(RuntimeError), store.session() as session:
            session.accept(carrier("T1"), "B1")
            session.reject("T2", "B1", ["duplicate"])
            raise RuntimeError("the review failed half-way")
        assert store.accepted_counts() == {} and store.rejection_counts() == {}
        with store.session() as session:
            session.prefetch(["T1"])
            assert session.state("T1") is None
    finally:
        store.close()


def test_records_are_checked_against_their_profile_with_the_sandbox_rates(tmp_path: Path) -> None:
    in_cad = carrier_fields()
    in_cad["items"][0]["currency"] = "CAD"
    with Sandbox(tmp_path / "cad", rates={"CAD": Decimal("0.73")}).start() as knows_cad, \
            Sandbox(tmp_path / "usd").start() as usd_only:
        for sb, expected in ((knows_cad, []), (usd_only, ["unknown-currency-rate"])):
            transport = transport_to(sb)
            try:
                sent = batch(consignment(in_cad, txid="T-CAD"))
                transport.send(sent)
                assert codes(wait_ack(transport, sent.batch_id).results[0]) == expected
                other = batch(carrier("T-X"), profile="pilot-1999")
                transport.send(other)
                assert codes(wait_ack(transport, other.batch_id).results[0]) == ["unknown-profile"]
            finally:
                transport.close()


# --------------------------------------------------------------------------- bad clients


@pytest.mark.parametrize("first_frames, code", [
    ([(FrameType.HELLO, b"not json")], "malformed-frame"),
    ([(FrameType.BATCH, b"{}")], "unexpected-frame"),
    ([(FrameType.HELLO, b'{"versions": ["s321/0", "x/2"]}')], "version-refused"),
    ([(FrameType.HELLO, b'{"versions": ["s321/1"]}'), (FrameType.BATCH, b'{"format": "s321/1"}')],
     "malformed-batch"),
    ([(FrameType.HELLO, b'{"versions": ["s321/1"]}'), (FrameType.WELCOME, b"{}")],
     "unexpected-frame"),
])
def test_a_bad_client_gets_an_error_frame_and_the_server_keeps_serving(
        sandbox: Sandbox, first_frames: list[tuple[FrameType, bytes]], code: str) -> None:
    stream = raw_stream(sandbox)
    try:
        for i, (ftype, body) in enumerate(first_frames):
            stream.write(ftype, body)
            if ftype is FrameType.HELLO and i < len(first_frames) - 1:
                assert stream.read(5).type is FrameType.WELCOME
        assert refusal(stream) == code
    finally:
        stream.close()
    transport = transport_to(sandbox)
    try:
        assert "agreed" in transport.probe()
    finally:
        transport.close()


def test_an_unknown_frame_type_is_refused(sandbox: Sandbox) -> None:
    stream = raw_stream(sandbox)
    try:
        stream.sock.sendall(HEADER.pack(0, 0x55))
        assert refusal(stream) == "malformed-frame"
    finally:
        stream.close()


# --------------------------------------------------------------------------- many clients


def test_many_clients_at_once_and_a_stalled_one_holds_nobody_up(sandbox: Sandbox) -> None:
    stalled_tcp = socket.create_connection((sandbox.host, sandbox.port))  # never starts TLS
    stalled_frame = raw_stream(sandbox)
    stalled_frame.sock.sendall(encode(FrameType.HELLO, b'{"versions":["s321/1"]}')[:3])
    failures: list[BaseException] = []

    def client(n: int) -> None:
        transport = transport_to(sandbox, window=2)
        try:
            sent = [batch(carrier(f"T{n}-{i}"), carrier(f"T{n}-{i}b")) for i in range(2)]
            for b in sent:
                transport.send(b)
            for b in sent:
                wait_ack(transport, b.batch_id)
        except BaseException as exc:
            failures.append(exc)
        finally:
            transport.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        stalled_tcp.close()
        stalled_frame.close()
    assert failures == []
    counts = sandbox.store.accepted_counts()
    assert len(counts) == 8 * 4 and set(counts.values()) == {1}


# --------------------------------------------------------------------------- faults


def test_seeded_rejections_repeat_run_after_run(tmp_path: Path) -> None:
    rejected_runs = []
    for run in range(2):
        faults = Faults(reject_fraction=0.5, seed=7)
        with Sandbox(tmp_path / f"run{run}", faults=faults).start() as sb:
            transport = transport_to(sb)
            try:
                sent = batch(*[carrier(f"T{i}") for i in range(20)])
                transport.send(sent)
                results = wait_ack(transport, sent.batch_id).results
            finally:
                transport.close()
        rejected = {r.transaction_id for r in results if r.status is AckStatus.REJECTED}
        assert all(codes(r) == ["injected-rejection"] for r in results
                   if r.status is AckStatus.REJECTED)
        rejected_runs.append(rejected)
    assert 0 < len(rejected_runs[0]) < 20
    assert rejected_runs[0] == rejected_runs[1]


def test_delayed_acks_leave_the_window_open_for_more_batches(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "slow", faults=Faults(ack_delay=0.6)).start() as sb:
        transport = transport_to(sb, window=2)
        try:
            one, two = batch(carrier("T1")), batch(carrier("T2"))
            assert transport.send(one).accepted_for_processing
            assert transport.send(two).accepted_for_processing  # before any ACK
            assert transport.acks(timeout=0) == []
            assert set(transport.in_flight) == {one.batch_id, two.batch_id}
            assert wait_ack(transport, one.batch_id).results[0].status is AckStatus.ACCEPTED
        finally:
            transport.close()


def test_refused_connections_are_retriable_until_the_sandbox_takes_them(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "refusing", faults=Faults(refuse_for=0.6)).start() as sb:
        transport = transport_to(sb)
        try:
            with pytest.raises(RetriableError):
                transport.connect()
            time.sleep(0.7)
            transport.connect()
            sent = batch(carrier("T1"))
            transport.send(sent)
            assert wait_ack(transport, sent.batch_id).results[0].status is AckStatus.ACCEPTED
        finally:
            transport.close()


def test_faults_reject_impossible_settings() -> None:
    for bad in ({"reject_fraction": 1.5}, {"ack_delay": -1}, {"drop_after_frames": 0}):
        with pytest.raises(ValueError):
            Faults(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- store and certs


def test_the_store_is_a_wal_sqlite_file_that_outlives_the_sandbox(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "s").start() as sb:
        assert sb.store.journal_mode() == "wal"
        transport = transport_to(sb)
        try:
            sent = batch(carrier("T1"), carrier("T2"))
            transport.send(sent)
            wait_ack(transport, sent.batch_id)
        finally:
            transport.close()
    store = SandboxStore(tmp_path / "s" / "sandbox.sqlite")
    try:
        assert store.accepted_counts() == {"T1": 1, "T2": 1}
        assert store.accepted_records("T1")[0]["house_bill_number"] == "HB-1001"
    finally:
        store.close()


def test_a_store_file_made_with_other_settings_still_serves(tmp_path: Path) -> None:
    # New files get larger pages and more tables; a file an older sandbox made still works.
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE consignments (transaction_id TEXT PRIMARY KEY, state TEXT NOT NULL "
               "CHECK (state IN ('active', 'deleted')), updated_at TEXT NOT NULL)")
    db.execute("INSERT INTO consignments VALUES ('T0', 'active', '2020-01-01T00:00:00+00:00')")
    db.commit()
    db.close()
    store = SandboxStore(path)
    try:
        with store.session() as session:
            session.prefetch(["T0", "T1"])
            assert session.state("T0") == "active" and session.state("T1") is None
            session.accept(carrier("T1"), "B1")
        assert store.accepted_counts() == {"T1": 1}
    finally:
        store.close()


def test_acceptances_are_indexed_by_their_consignments_row_and_an_older_store_is_keyed_once(
        tmp_path: Path) -> None:
    """Acceptances are found by their consignment's integer key (numbered as consignments
    arrive, so a batch of new ones adds its index entries at the end), not by transaction
    id (a hash: a random index page each); a store whose acceptances were indexed by
    transaction id gets the key on opening, and what it held is found as before."""
    path = tmp_path / "old.sqlite"
    store = SandboxStore(path)
    try:
        with store.session() as session:
            session.accept(carrier("T1"), "B1")
            session.accept(carrier("T2"), "B1")
        with store.session() as session:
            session.accept(carrier("T1").model_copy(update={"action": Action.REPLACE}), "B2")
    finally:
        store.close()
    db = sqlite3.connect(path)  # as a store made before: no key, an index by transaction id
    db.execute("DROP INDEX acceptances_by_consignment")
    db.execute("ALTER TABLE acceptances DROP COLUMN consignment")
    db.execute("CREATE INDEX acceptances_by_transaction ON acceptances (transaction_id)")
    db.commit()
    db.close()
    store = SandboxStore(path)
    try:
        assert [r["action"] for r in store.accepted_records("T1")] == ["add", "replace"]
        assert {t: s for t, (s, _v, _h) in store.held().items()} == {"T1": "active", "T2": "active"}
        with store.session() as session:
            session.accept(carrier("T3"), "B3")
        assert store.accepted_counts() == {"T1": 2, "T2": 1, "T3": 1}
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                         " AND tbl_name='acceptances'")} == {"acceptances_by_consignment"}
        assert db.execute("SELECT COUNT(*) FROM acceptances WHERE consignment IS NULL").fetchone()[0] == 0
        plan = " ".join(r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT record FROM acceptances WHERE consignment ="
            " (SELECT rowid FROM consignments WHERE transaction_id = 'T1')"))
        assert "acceptances_by_consignment" in plan
    finally:
        db.close()


def test_dev_certs_are_made_once_with_private_keys_for_the_owner_only(tmp_path: Path) -> None:
    certs = ensure_dev_certs(tmp_path / "certs")
    assert certs.exist()
    first = certs.client_cert.read_bytes()
    assert ensure_dev_certs(tmp_path / "certs").client_cert.read_bytes() == first
    for key in (certs.server_key, certs.client_key):
        assert key.stat().st_mode & 0o077 == 0


# --------------------------------------------------------------------------- command line


def test_sandbox_command_serves_then_report_counts(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    port_file, db, certs = tmp_path / "port", tmp_path / "sandbox.sqlite", tmp_path / "certs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s321.sandbox.cli", "sandbox", "--port", "0",
         "--port-file", str(port_file), "--certs-dir", str(certs), "--db", str(db),
         "--rates", "CAD=0.73"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = []
        while not (lines and lines[-1].startswith("listening on ")):
            line = proc.stdout.readline()
            assert line, f"sandbox exited early: {lines}"
            lines.append(line.strip())
        port = int(port_file.read_text())
        assert lines[-1] == f"listening on 127.0.0.1:{port}"
        assert f"client key: {(certs / 'client.key').resolve()}" in lines
        options = P2POptions.model_validate({
            "host": "127.0.0.1", "port": port, "ca": str(certs / "ca.pem"),
            "cert": {"file": str(certs / "client.pem")}, "key": {"file": str(certs / "client.key")},
            **FAST})
        transport = P2PSocketTransport(options, None, S321Json())
        try:
            for _ in range(2):  # the second time, a duplicate
                sent = batch(carrier("T1"), carrier("T2"))
                transport.send(sent)
                wait_ack(transport, sent.batch_id)
        finally:
            transport.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert sandbox_cli.main(["sandbox", "report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "T1  accepted 1" in out and "T2  accepted 1" in out
    assert "2 consignments, 2 acceptances" in out and "rejected duplicate: 2" in out


def test_report_of_a_missing_db_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_cli.main(["sandbox", "report", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_rates_option_reads_inline_pairs_or_a_config_file(tmp_path: Path) -> None:
    assert sandbox_cli.parse_rates("CAD=0.73, eur=1.08") == {
        "USD": Decimal(1), "CAD": Decimal("0.73"), "EUR": Decimal("1.08")}
    config = tmp_path / "s321.toml"
    config.write_text('[currency_rates]\nGBP = "1.27"\n', encoding="utf-8")
    assert sandbox_cli.parse_rates(str(config))["GBP"] == Decimal("1.27")
    with pytest.raises(ValueError, match="ISO 4217"):
        sandbox_cli.parse_rates("XXQ=1")

# --------------------------------------------------------------------------- versions
# An idempotent receiver of versions: a higher version is applied, the same one again is
# a duplicate, a lower one is superseded, an add of content it holds is a repeat; every
# answer names the version it is about.


def versioned(txid: str, version: int | None, action: Action = Action.ADD, **changes: object) -> Consignment:
    record = consignment(carrier_fields(**changes), txid=txid)
    record.action, record.version = action, version
    return record


def answer(results):  # noqa: ANN001, ANN201
    [result] = results
    return result.status, [e.code for e in result.errors], result.version


def test_versions_are_applied_once_in_order(sandbox, file_batches) -> None:
    accepted, rejected = AckStatus.ACCEPTED, AckStatus.REJECTED
    assert answer(file_batches(versioned("T1", 10))) == (accepted, [], 10)
    assert answer(file_batches(versioned("T1", 10))) == (rejected, ["duplicate"], 10)
    assert answer(file_batches(versioned("T1", 20, Action.REPLACE, house_bill_number="HB-2"))) == (accepted, [], 20)
    # A replace on the wire when its sender died, sent again: not applied twice.
    assert answer(file_batches(versioned("T1", 20, Action.REPLACE, house_bill_number="HB-2"))) == (
        rejected, ["duplicate"], 20)
    # The older version arriving late cannot undo the newer one.
    assert answer(file_batches(versioned("T1", 10, Action.REPLACE))) == (rejected, ["superseded"], 10)
    # An add of the content held, under a version of a rebuilt ledger: a repeat.
    assert answer(file_batches(versioned("T1", 99, house_bill_number="HB-2"))) == (rejected, ["duplicate"], 99)
    # An add of other content under a higher version: applied (the sender knows no better).
    assert answer(file_batches(versioned("T1", 120, house_bill_number="HB-3"))) == (accepted, [], 120)
    assert answer(file_batches(versioned("T9", 5, Action.REPLACE))) == (rejected, ["unknown-transaction"], 5)
    assert [(a, v) for t, a, v, _ in sandbox.store.acceptances()] == [("add", 10), ("replace", 20), ("add", 120)]
    state, version, _ = sandbox.store.held()["T1"]
    assert (state, version) == ("active", 120)
    assert sandbox.store.accepted_records("T1")[-1]["house_bill_number"] == "HB-3"


def test_records_without_versions_keep_the_old_rules(sandbox, file_batches) -> None:
    assert answer(file_batches(versioned("T2", None))) == (AckStatus.ACCEPTED, [], None)
    assert answer(file_batches(versioned("T2", None))) == (AckStatus.REJECTED, ["duplicate"], None)
    assert answer(file_batches(versioned("T2", None, Action.REPLACE)))[0] is AckStatus.ACCEPTED

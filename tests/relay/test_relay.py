"""The broker relay over real ZeroMQ sockets on loopback, with CURVE keys made in tmp:
clients are real `broker-relay` transports and s321 pipelines, the upstream is the
in-process sandbox over mutual TLS (or the `file` transport), and the relay runs
in-process or as a process that is killed with batches in flight. No mocks."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zmq.auth
from builders import carrier_fields, consignment, marketplace_fields
from pydantic import ValidationError
from s321 import app, ids
from s321 import config as s321_config
from s321.adapters import broker_relay, p2p_socket
from s321.adapters.broker_relay import BrokerRelayTransport, RelayClientOptions
from s321.contracts import Ack, AckStatus, Batch, PipelineContext, PipelineDefaults, RecordAck
from s321.errors import ConfigError, FatalError, RetriableError
from s321.hookspecs import hookimpl
from s321.ledger import Ledger
from s321.plugins.wire_s321 import S321Json
from s321.record import Action, Consignment, FilerType, ModeOfTransport
from s321.registry import Registry
from s321.relay import cli as relay_cli
from s321.relay import config as relay_config
from s321.relay import keys
from s321.relay.server import RelayServer
from s321.sandbox import Faults, Sandbox, ensure_dev_certs
from s321.testing import samples
from s321.testing.receiver_checks import loopback_connections
from s321.testing.relay_receiver import RelayReceiver
from s321.testing.scripted import Play, Script
from s321.testing.transports import Endpoint, ErrorCase, TransportConformance
from ports import free_port

# --------------------------------------------------------------------------- helpers

CLIENT_TIMEOUTS = {"connect_timeout": 3, "receipt_timeout": 3, "reconnect_interval": 0.1,
                   "reconnect_interval_max": 0.5}


@dataclass(frozen=True)
class Keyring:
    folder: Path

    def public(self, name: str) -> Path:
        return self.folder / f"{name}{keys.PUBLIC_SUFFIX}"

    def secret(self, name: str) -> Path:
        return self.folder / f"{name}{keys.SECRET_SUFFIX}"


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("relay", "alice", "bob", "carol", "mallory", "conformance"):
        keys.generate(name, folder)
    return Keyring(folder)


def cli(*argv: str) -> int:
    """The relay's commands as the `s321` parser gets them from `configure()`."""
    parser = argparse.ArgumentParser(prog="s321")
    relay_cli.configure(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def plugins() -> Registry:
    """The installed plugins, plus the transports this test needs until the entry
    points list them."""
    registry = app.load_registry()
    for module, name in ((p2p_socket, "p2p-socket"), (broker_relay, "broker-relay")):
        if not registry.has("transport", name):
            registry.add_plugin(module, name)
    return registry




def sandbox_upstream(sb: Sandbox, port: int | None = None) -> str:
    return f"""
        plugin = "p2p-socket"
        host = "127.0.0.1"
        port = {port or sb.port}
        ca = "{sb.ca_path}"
        cert = {{file = "{sb.client_cert}"}}
        key = {{file = "{sb.client_key}"}}
        backoff_initial = 0.05
        backoff_max = 0.2
        read_timeout = 5
        connect_timeout = 5
        """


def write_relay_toml(folder: Path, keyring: Keyring, port: int | str, upstream: str,
                     extra_clients: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = textwrap.dedent(f"""
        [relay]
        bind = "tcp://127.0.0.1:{port}"
        secret_key = {{file = "{keyring.secret('relay')}"}}
        redeliver_seconds = 2
        poll_interval = 0.05

        [ledger]
        path = "relay.sqlite"

        [upstreams.cbp]
        {textwrap.dedent(upstream).strip()}

        [clients.alice]
        public_key = "{keyring.public('alice')}"
        originator_codes = ["MKT001"]
        upstream = "cbp"
        [clients.alice.retry]
        initial = 0.1
        maximum = 0.5
        ack_timeout = 20

        [clients.bob]
        public_key = "{keyring.public('bob')}"
        originator_codes = ["CAR001", "CAR002"]
        upstream = "cbp"
        [clients.bob.retry]
        initial = 0.1
        maximum = 0.5
        ack_timeout = 20
        """)
    path = folder / "relay.toml"
    path.write_text(body + textwrap.dedent(extra_clients), encoding="utf-8")
    return path


def start_relay(path: Path) -> RelayServer:
    registry = plugins()
    return RelayServer(relay_config.load(path, registry), registry).start()


def context(pipeline: str = "default", code: str = "MKT001") -> PipelineContext:
    return PipelineContext(pipeline=pipeline, originator_code=code,
                           filer_type=FilerType.ONLINE_MARKETPLACE,
                           mode_of_transport=ModeOfTransport.AIR, profile="pilot-2019",
                           source="test", defaults=PipelineDefaults())


def client(keyring: Keyring, name: str, endpoint: str, session: str = "default",
           **overrides: Any) -> BrokerRelayTransport:
    options = RelayClientOptions.model_validate({
        "endpoint": endpoint, "server_key": str(keyring.public("relay")),
        "secret_key": {"file": str(keyring.secret(name))}, **CLIENT_TIMEOUTS, **overrides})
    return BrokerRelayTransport(options, context(session), S321Json())


@pytest.fixture
def clients() -> Iterator[Callable[..., BrokerRelayTransport]]:
    made: list[BrokerRelayTransport] = []

    def make(*args: Any, **kwargs: Any) -> BrokerRelayTransport:
        made.append(client(*args, **kwargs))
        return made[-1]

    yield make
    for transport in made:
        transport.close()


def market(ref: str, **changes: Any) -> Consignment:
    return consignment(marketplace_fields(**changes), txid=ids.transaction_id("MKT001", "test", ref))


def batch(*records: Consignment, code: str = "MKT001") -> Batch:
    return Batch(batch_id=ids.batch_id(), originator_code=code, profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=list(records))


def wait_ack(transport: BrokerRelayTransport, batch_id: str, timeout: float = 15.0) -> Ack:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ack in transport.acks(timeout=0.5):
            if ack.batch_id == batch_id:
                return ack
    raise AssertionError(f"no ack for {batch_id} within {timeout} s")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def relay_ledger(path: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of the relay's ledger file, read as another process would."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(query).fetchall()
    except sqlite3.OperationalError:
        return []  # not made yet
    finally:
        db.close()


def relay_states(path: Path) -> dict[str, int]:
    return dict(relay_ledger(path, "SELECT state, COUNT(*) FROM consignments GROUP BY state"))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox").start() as sb:
        yield sb


@pytest.fixture
def relay(tmp_path: Path, keyring: Keyring, sandbox: Sandbox) -> Iterator[RelayServer]:
    path = write_relay_toml(tmp_path / "relay", keyring, "*", sandbox_upstream(sandbox))
    server = start_relay(path)
    yield server
    server.stop()


# --------------------------------------------------------------------------- client pipelines


def write_client(folder: Path, keyring: Keyring, name: str, port: int, fields: Callable[..., dict[str, Any]],
                 code: str, filer_type: str, refs: list[str]) -> Path:
    """An s321 config whose one pipeline reads records-jsonl and sends via broker-relay."""
    inbox = folder / "inbox"
    inbox.mkdir(parents=True)
    lines = [json.dumps({"ref": ref, **fields(originator_code=code, house_bill_number=f"HB-{ref}",
                                              tracking_number=f"1Z{ref}")})
             for ref in refs]
    (inbox / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "s321.toml"
    path.write_text(textwrap.dedent(f"""
        [ledger]
        path = "ledger.sqlite"

        [pipelines.{name}]
        originator_code = "{code}"
        filer_type = "{filer_type}"
        mode_of_transport = "air"
        batch_size = 2

        [pipelines.{name}.retry]
        initial = 0.1
        maximum = 0.5
        ack_timeout = 15

        [pipelines.{name}.source]
        plugin = "records-jsonl"
        path = "inbox"

        [pipelines.{name}.transport]
        plugin = "broker-relay"
        endpoint = "tcp://127.0.0.1:{port}"
        server_key = "{keyring.public('relay')}"
        secret_key = {{file = "{keyring.secret(name)}"}}
        connect_timeout = 2
        receipt_timeout = 2
        reconnect_interval = 0.1
        reconnect_interval_max = 0.5
        """), encoding="utf-8")
    return path


def run_clients(configs: list[Path], during: Callable[[], None] | None = None) -> dict[Path, Any]:
    """`s321 run --once` for each client config, side by side; `during` runs meanwhile."""
    registry = plugins()
    results: dict[Path, Any] = {}

    def one(path: Path) -> None:
        loaded = s321_config.load(path, registry)
        results[path] = app.run_once(registry, loaded)[0]

    threads = [threading.Thread(target=one, args=(p,)) for p in configs]
    for t in threads:
        t.start()
    if during is not None:
        during()
    for t in threads:
        t.join(90)
    return results


def ledger_states(config_path: Path) -> dict[str, int]:
    ledger = Ledger(config_path.parent / "ledger.sqlite")
    try:
        return ledger.counts()
    finally:
        ledger.close()


# --------------------------------------------------------------------------- keys and config


def test_keys_generate_writes_a_pair_with_the_secret_owner_only(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("keys", "generate", "shop", "--dir", str(tmp_path / "k")) == 0
    public_file, secret_file = tmp_path / "k" / "shop.key", tmp_path / "k" / "shop.key_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(secret_file)  # ZeroMQ's own tools read them
    assert zmq.auth.load_certificate(public_file) == (public, None)
    out = capsys.readouterr().out
    assert public.decode() in out and secret is not None and secret.decode() not in out
    # Not overwritten by accident.
    assert cli("keys", "generate", "shop", "--dir", str(tmp_path / "k")) == 2
    assert "--force" in capsys.readouterr().err


def test_relay_toml_errors_name_file_path_and_what_is_valid(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(textwrap.dedent(f"""
        [relay]
        bind = "tcp://127.0.0.1:5999"
        secret_key = {{file = "{keyring.secret('relay')}"}}
        colour = "blue"

        [upstreams.cbp]
        plugin = "p2p-socket"
        port = 4321

        [clients.alice]
        public_key = "not a key"
        originator_codes = ["MKT001"]
        upstream = "cpb"

        [clients.bob]
        public_key = "{keyring.public('bob')}"
        originator_codes = ["CAR001"]
        [clients.bob.upstream]
        plugin = "carrier-pigeon"
        """), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        relay_config.load(path, plugins())
    text = "\n".join(exc.value.lines)
    assert f"{path}: relay.colour: unknown key; valid keys: bind, " in text
    assert f"{path}: clients.alice.public_key: neither a Z85 key nor a readable key file" in text
    # The schema is right: now the references are resolved.
    path.write_text(path.read_text().replace('colour = "blue"\n', "").replace(
        "not a key", str(keyring.public("alice"))), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        relay_config.load(path, plugins())
    text = "\n".join(exc.value.lines)
    assert f"{path}: upstreams.cbp.host: required, but missing" in text
    assert f"{path}: clients.alice.upstream: unknown upstream 'cpb'; did you mean 'cbp'?" in text
    assert f"{path}: clients.bob.upstream.plugin: unknown transport 'carrier-pigeon'" in text
    # A secret key is never a literal.
    path.write_text(path.read_text().replace(f'{{file = "{keyring.secret("relay")}"}}',
                                             '"literal"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="relay.secret_key: a secret must be a reference"):
        relay_config.load(path, plugins())


def test_a_secret_key_is_a_reference_and_is_never_shown(relay: RelayServer, keyring: Keyring,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = zmq.auth.load_certificate(keyring.secret("alice"))[1].decode()
    base = {"endpoint": relay.endpoint, "server_key": str(keyring.public("relay")), **CLIENT_TIMEOUTS}
    with pytest.raises(ValidationError, match="a secret must be a reference"):
        RelayClientOptions.model_validate({**base, "secret_key": secret})
    garbage = tmp_path / "garbage.key_secret"
    garbage.write_text("hunter2-not-a-key\n")
    with pytest.raises(ValidationError, match="not a CURVE secret key") as exc:
        RelayClientOptions.model_validate({**base, "secret_key": {"file": str(garbage)}})
    assert "hunter2" not in str(exc.value)
    # A bare Z85 key in a variable works as well as the key file.
    monkeypatch.setenv("S321_TEST_RELAY_KEY", secret)
    options = RelayClientOptions.model_validate({**base, "secret_key": {"env": "S321_TEST_RELAY_KEY"}})
    assert secret not in repr(options) and secret not in options.model_dump_json()
    transport = BrokerRelayTransport(options, context("shop"), S321Json())
    assert "client alice" in transport.probe()


def test_relay_check_validates_without_listening(tmp_path: Path, keyring: Keyring, sandbox: Sandbox,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write_relay_toml(tmp_path / "relay", keyring, free_port(), sandbox_upstream(sandbox))
    assert relay_cli.serve(path, plugins(), check_only=True) == 0
    assert "ok (2 clients: alice, bob)" in capsys.readouterr().out


def test_the_example_relay_toml_loads_once_its_keys_exist(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "config").mkdir()
    example = tmp_path / "config" / "relay.toml"
    example.write_text((repo / "config" / "relay.example.toml").read_text(encoding="utf-8"))
    for name in ("relay", "shopco", "fastfreight"):  # the steps its header gives
        keys.generate(name, tmp_path / ".s321-relay" / "keys")
    ensure_dev_certs(tmp_path / ".s321-sandbox" / "certs")
    loaded = relay_config.load(example, plugins())
    assert sorted(loaded.clients) == ["fastfreight", "shopco"]
    assert loaded.clients["shopco"].upstream.name == "cbp-sandbox"


# --------------------------------------------------------------------------- keys at the door


def test_an_unknown_client_key_is_refused_as_fatal(relay: RelayServer, keyring: Keyring,
                                                   clients: Callable[..., BrokerRelayTransport]) -> None:
    mallory = clients(keyring, "mallory", relay.endpoint)
    with pytest.raises(FatalError, match="refused this client's key .*relay.toml"):
        mallory.connect()
    with pytest.raises(FatalError):
        mallory.send(batch(market("m-1")))
    assert relay_states(relay.config.ledger.path) == {}


def test_a_wrong_relay_key_is_retriable_and_says_which_key(relay: RelayServer, keyring: Keyring,
                                                           clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", relay.endpoint, server_key=str(keyring.public("bob")),
                    connect_timeout=1)
    with pytest.raises(RetriableError, match="is server_key the relay's public key"):
        alice.connect()


def test_a_relay_that_is_not_there_is_retriable(keyring: Keyring,
                                                clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", f"tcp://127.0.0.1:{free_port()}", connect_timeout=0.5)
    with pytest.raises(RetriableError, match="not reachable"):
        alice.send(batch(market("a-1")))


def test_a_probe_reports_the_relays_terms_and_sends_nothing(relay: RelayServer, keyring: Keyring,
                                                            clients: Callable[..., BrokerRelayTransport]) -> None:
    message = clients(keyring, "bob", relay.endpoint).probe()
    assert "client bob, originator codes CAR001, CAR002" in message
    assert relay_states(relay.config.ledger.path) == {}


# --------------------------------------------------------------------------- what a client may send


def test_an_originator_code_the_client_does_not_own_is_refused(relay: RelayServer, keyring: Keyring,
                                                               sandbox: Sandbox,
                                                               clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", relay.endpoint)
    theirs = consignment(carrier_fields(), txid="T-BOBS")
    with pytest.raises(FatalError, match="originator-refused: originator code 'CAR001' is not one "
                                         "client alice may file for"):
        alice.send(batch(theirs, code="CAR001"))
    # Smuggled inside an envelope of its own code: refused all the same.
    with pytest.raises(FatalError, match="'CAR001'"):
        alice.send(batch(market("a-1"), theirs))
    # Nor can a client open lanes without end under profiles nobody knows.
    odd = batch(market("a-1")).model_copy(update={"profile": "pilot-1999"})
    with pytest.raises(FatalError, match="profile-refused: profile 'pilot-1999' is not known"):
        alice.send(odd)
    assert relay_states(relay.config.ledger.path) == {}
    assert sandbox.store.accepted_counts() == {}


def test_per_client_limits_batch_size_and_batches_in_flight(tmp_path: Path, keyring: Keyring,
                                                            sandbox: Sandbox,
                                                            clients: Callable[..., BrokerRelayTransport]) -> None:
    # Carol's upstream is not there: what she sent stays in flight at the relay.
    carol_upstream = textwrap.indent(textwrap.dedent(sandbox_upstream(sandbox, port=free_port())), "    ")
    path = write_relay_toml(tmp_path / "relay", keyring, "*", sandbox_upstream(sandbox), f"""
        [clients.carol]
        public_key = "{keyring.public('carol')}"
        originator_codes = ["MKT009"]
        max_in_flight = 1
        max_batch = 2
        [clients.carol.upstream]
        {carol_upstream.strip()}
        """)
    with start_relay(path) as server:
        carol = clients(keyring, "carol", server.endpoint)
        carol.connect()
        assert (carol.capabilities.max_batch, carol.capabilities.window) == (2, 1)
        records = [consignment(marketplace_fields(originator_code="MKT009"), txid=f"T-C{i}")
                   for i in range(3)]
        with pytest.raises(FatalError, match="batch-too-large: .* holds 3 records; client carol may "
                                             "send at most 2"):
            carol.send(batch(*records, code="MKT009"))
        carol.send(batch(records[0], code="MKT009"))
        with pytest.raises(RetriableError, match="busy: client carol has 1 batches in flight"):
            carol.send(batch(records[1], code="MKT009"))
        # Sending the same record again is not one more batch: it replaces the first.
        carol.send(batch(records[0], code="MKT009"))
        # Alice is not held up by Carol's full window nor by her missing upstream.
        alice = clients(keyring, "alice", server.endpoint)
        first = batch(market("a-1"))
        alice.send(first)
        assert wait_ack(alice, first.batch_id).results[0].status is AckStatus.ACCEPTED


def test_an_upstream_without_acknowledgements_makes_a_client_without_them(
        tmp_path: Path, keyring: Keyring, sandbox: Sandbox) -> None:
    # Any registered transport can be an upstream: here `file`, which never acknowledges.
    outbox = tmp_path / "outbox"
    port = free_port()
    path = write_relay_toml(tmp_path / "relay", keyring, port, sandbox_upstream(sandbox), f"""
        [clients.carol]
        public_key = "{keyring.public('carol')}"
        originator_codes = ["MKT009"]
        max_in_flight = 1
        [clients.carol.upstream]
        plugin = "file"
        directory = "{outbox}"
        """)
    carol = write_client(tmp_path / "carol", keyring, "carol", port, marketplace_fields, "MKT009",
                         "online_marketplace", ["c1", "c2", "c3"])
    with start_relay(path):
        summary = run_clients([carol])[carol]
    assert summary.error is None, summary.error
    assert (summary.counts["sent"], summary.counts["accepted"]) == (3, 0)
    assert ledger_states(carol) == {"delivered": 3}  # final: no answer will come (issue 15)
    filed = [r["transaction_id"] for f in outbox.glob("*.json")
             for r in json.loads(f.read_text())["records"]]
    assert len(filed) == 3 and len(set(filed)) == 3


# --------------------------------------------------------------------------- acks find their way


def test_acks_for_an_offline_client_wait_until_it_reconnects(tmp_path: Path, keyring: Keyring,
                                                             clients: Callable[..., BrokerRelayTransport]) -> None:
    with Sandbox(tmp_path / "slow", faults=Faults(ack_delay=1.0)).start() as slow:
        path = write_relay_toml(tmp_path / "relay", keyring, "*", sandbox_upstream(slow))
        with start_relay(path) as server:
            alice = clients(keyring, "alice", server.endpoint, session="shop")
            sent = batch(market("a-1"), market("a-2"))
            alice.send(sent)
            alice.close()  # offline before CBP answers
            wait_for(lambda: server.routes.undelivered("alice") == 2, what="the acks at the relay")
            again = clients(keyring, "alice", server.endpoint, session="shop")
            again.connect()
            ack = wait_ack(again, sent.batch_id)
            assert {r.status for r in ack.results} == {AckStatus.ACCEPTED}
            # Confirmed: the relay lets go of them.
            wait_for(lambda: server.routes.undelivered("alice") == 0, what="the confirmation")
        assert set(slow.store.accepted_counts().values()) == {1}


def test_records_the_relay_already_has_are_answered_not_forwarded_again(
        relay: RelayServer, keyring: Keyring, sandbox: Sandbox,
        clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", relay.endpoint)
    records = [market("a-1"), market("a-2")]
    first = batch(*records)
    alice.send(first)
    assert {r.status for r in wait_ack(alice, first.batch_id).results} == {AckStatus.ACCEPTED}
    # The client lost that ack and sends the same records again, under a new batch id.
    second = batch(*records)
    receipt = alice.send(second)
    assert "2 answered" in (receipt.detail or "")
    ack = wait_ack(alice, second.batch_id)
    assert {r.status for r in ack.results} == {AckStatus.ACCEPTED}
    assert sandbox.store.accepted_counts() == {r.transaction_id: 1 for r in records}
    assert sandbox.store.rejection_counts() == {}  # not even a duplicate reached CBP


def test_a_replace_and_a_delete_are_forwarded_once_each(relay: RelayServer, keyring: Keyring,
                                                        sandbox: Sandbox,
                                                        clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", relay.endpoint)

    def file(record: Consignment, action: Action) -> RecordAck:
        record = record.model_copy(update={"action": action})
        sent = batch(record)
        alice.send(sent)
        return wait_ack(alice, sent.batch_id).results[0]

    original = market("a-1")
    changed = market("a-1", marketplace_seller_id="S-2002")
    assert file(original, Action.ADD).status is AckStatus.ACCEPTED
    assert file(changed, Action.REPLACE).status is AckStatus.ACCEPTED
    assert file(changed, Action.DELETE).status is AckStatus.ACCEPTED
    assert file(changed, Action.DELETE).status is AckStatus.ACCEPTED  # answered by the relay
    filed = sandbox.store.accepted_records(original.transaction_id)
    assert [r["action"] for r in filed] == ["add", "replace", "delete"]
    assert filed[1]["marketplace_seller_id"] == "S-2002"
    # A delete of something this relay never filed is not guessed at.
    never = file(market("a-9"), Action.DELETE)
    assert never.status is AckStatus.REJECTED and never.errors[0].code == "unknown-transaction"
    assert market("a-9").transaction_id not in sandbox.store.accepted_counts()


def test_versions_pass_through_the_relay_and_an_older_one_is_superseded(
        relay: RelayServer, keyring: Keyring, sandbox: Sandbox,
        clients: Callable[..., BrokerRelayTransport]) -> None:
    alice = clients(keyring, "alice", relay.endpoint)

    def file(record: Consignment, action: Action, version: int) -> RecordAck:
        sent = batch(record.model_copy(update={"action": action, "version": version}))
        alice.send(sent)
        [result] = wait_ack(alice, sent.batch_id).results
        assert result.version == version  # every answer names the version it is about
        return result

    first, second = market("v-1"), market("v-1", marketplace_seller_id="S-2002")
    txid = first.transaction_id
    assert file(first, Action.ADD, 100).status is AckStatus.ACCEPTED
    assert file(second, Action.REPLACE, 205).status is AckStatus.ACCEPTED
    # The client's version 100 arrives again late (a resend after its crash): not applied.
    late = file(first, Action.ADD, 100)
    assert (late.status, [e.code for e in late.errors]) == (AckStatus.REJECTED, ["superseded"])
    # Version 205 again: the relay's own answer, nothing forwarded.
    assert file(second, Action.REPLACE, 205).status is AckStatus.ACCEPTED
    assert [(a, v) for t, a, v, _ in sandbox.store.acceptances() if t == txid] == [("add", 100), ("replace", 205)]
    assert sandbox.store.accepted_records(txid)[-1]["marketplace_seller_id"] == "S-2002"


# --------------------------------------------------------------------------- end to end


def test_two_clients_through_one_relay_each_get_their_own_acks(
        tmp_path: Path, keyring: Keyring, sandbox: Sandbox, relay: RelayServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    port = int(relay.endpoint.rsplit(":", 1)[1])
    alice = write_client(tmp_path / "alice", keyring, "alice", port, marketplace_fields, "MKT001",
                         "online_marketplace", [f"a{i}" for i in range(5)])
    bob = write_client(tmp_path / "bob", keyring, "bob", port, carrier_fields, "CAR001",
                       "carrier", [f"b{i}" for i in range(4)])
    results = run_clients([alice, bob])
    for path, n in ((alice, 5), (bob, 4)):
        summary = results[path]
        assert summary.error is None, summary.error
        assert (summary.counts["sent"], summary.counts["accepted"]) == (n, n)
        assert ledger_states(path) == {"accepted": n}
    counts = sandbox.store.accepted_counts()
    assert len(counts) == 9 and set(counts.values()) == {1}
    # The broker sees each client's lane. (Confirmations may still be on their way:
    # a client closes with ZMQ_LINGER 0, and an unconfirmed ack is only sent again.)
    capsys.readouterr()
    assert relay_cli.status(relay.loaded.path, registry=plugins()) == 0
    out = capsys.readouterr().out
    assert "relay:alice/MKT001/pilot-2019  accepted         5" in out
    assert "relay:bob/CAR001/pilot-2019  accepted         4" in out
    assert "client alice: " in out and "client bob: " in out


RELAY_MAIN = """
import sys
from s321 import app, logs
from s321.adapters import p2p_socket
from s321.relay import cli

logs.configure(level="info")
registry = app.load_registry(sys.argv[1])
if not registry.has("transport", "p2p-socket"):
    registry.add_plugin(p2p_socket, "p2p-socket")
sys.exit(cli.serve(sys.argv[1], registry))
"""


def spawn_relay(path: Path, log: Path) -> subprocess.Popen[str]:
    """The relay in a process of its own (as `s321 relay -c` runs it), ready to serve."""
    proc = subprocess.Popen([sys.executable, "-c", RELAY_MAIN, str(path)], stdout=subprocess.PIPE,
                            stderr=log.open("a"), text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc
    raise AssertionError(f"the relay did not start: {log.read_text()[-2000:]}")


def test_a_relay_killed_with_batches_in_flight_files_each_consignment_once(
        tmp_path: Path, keyring: Keyring) -> None:
    with Sandbox(tmp_path / "sandbox", faults=Faults(ack_delay=0.8)).start() as sb:
        port = free_port()
        path = write_relay_toml(tmp_path / "relay", keyring, port, sandbox_upstream(sb))
        ledger_file = path.parent / "relay.sqlite"
        log = tmp_path / "relay.log"
        alice = write_client(tmp_path / "alice", keyring, "alice", port, marketplace_fields, "MKT001",
                             "online_marketplace", [f"a{i}" for i in range(8)])
        bob = write_client(tmp_path / "bob", keyring, "bob", port, carrier_fields, "CAR001",
                           "carrier", [f"b{i}" for i in range(6)])
        path.write_text(path.read_text().replace(  # a window of 2 batches of 2 for alice
            'originator_codes = ["MKT001"]', 'originator_codes = ["MKT001"]\nmax_in_flight = 2'))
        first = spawn_relay(path, log)
        restarted: list[subprocess.Popen[str]] = []

        def in_flight_at_cbp() -> bool:
            sent = {r[0] for r in relay_ledger(ledger_file, "SELECT transaction_id FROM "
                                                            "consignments WHERE state = 'sent'")}
            return bool(sent & set(sb.store.accepted_counts()))

        def kill_and_restart() -> None:
            # Killed while CBP has accepted records of the relay and owes their ack,
            # and the clients still have batches to send.
            wait_for(in_flight_at_cbp, timeout=20, what="records accepted and not acknowledged")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            time.sleep(0.3)
            restarted.append(spawn_relay(path, log))

        try:
            results = run_clients([alice, bob], during=kill_and_restart)
        finally:
            for proc in [first, *restarted]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
        assert first.returncode == -signal.SIGKILL
        assert [p.returncode for p in restarted] == [0]  # SIGTERM: a clean stop
        for config_path, n in ((alice, 8), (bob, 6)):
            assert results[config_path].error is None, results[config_path].error
            assert ledger_states(config_path) == {"accepted": n}
        counts = sb.store.accepted_counts()
        assert len(counts) == 14
        assert set(counts.values()) == {1}, "a consignment was accepted more than once"
        assert relay_states(ledger_file) == {"accepted": 14}
        # The relay sent again what CBP had accepted before the kill: answered as a
        # duplicate, which counts as filed once.
        assert sb.store.rejection_counts().get("duplicate", 0) > 0


# --------------------------------------------------------------------------- the conformance kit


class TestBrokerRelayConformance(TransportConformance):
    """The checks every transport passes, through a relay to the sandbox."""

    transport_name = "broker-relay"
    plugin_module = broker_relay
    plugin_name = "broker-relay"

    @pytest.fixture
    def endpoint(self, tmp_path: Path, keyring: Keyring, sandbox: Sandbox) -> Iterator[Endpoint]:
        path = write_relay_toml(tmp_path / "relay", keyring, "*", sandbox_upstream(sandbox), f"""
            [clients.conformance]
            public_key = "{keyring.public('conformance')}"
            originator_codes = ["{samples.ORIGINATOR}"]
            upstream = "cbp"
            [clients.conformance.retry]
            initial = 0.05
            maximum = 0.2
            """)
        with start_relay(path) as server:
            assert server.endpoint is not None
            options = {"endpoint": server.endpoint, "server_key": str(keyring.public("relay")),
                       "secret_key": {"file": str(keyring.secret("conformance"))}, **CLIENT_TIMEOUTS}
            secret = zmq.auth.load_certificate(keyring.secret("conformance"))[1]
            assert secret is not None
            # The relay's own count: this process also holds the relay's upstream link to
            # the sandbox, which is not the transport's to close.
            port = int(server.endpoint.rsplit(":", 1)[1])
            yield Endpoint(options, accepted=sandbox.store.accepted_counts, secrets=[secret.decode()],
                           connections=lambda: loopback_connections(port))

    @pytest.fixture
    def scripted_receiver(self, tmp_path: Path) -> Iterator[RelayReceiver]:
        # The relay forwards to CBP and answers what CBP said; this one answers as the suite says.
        with RelayReceiver(tmp_path / "scripted") as receiver:
            yield receiver

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        keyring = Keyring(Path(endpoint.options["server_key"]).parent)
        quick = {**endpoint.options, "connect_timeout": 0.5}
        return [
            ErrorCase({**quick, "endpoint": f"tcp://127.0.0.1:{free_port()}"}, RetriableError,
                      "nobody listening"),
            ErrorCase({**quick, "secret_key": {"file": str(keyring.secret("mallory"))}}, FatalError,
                      "a key the relay does not list"),
            ErrorCase({**quick, "server_key": str(keyring.public("bob"))}, RetriableError,
                      "the wrong relay key: CURVE says nothing"),
        ]


# The scripted receiver is what lets the checks see a wrong relay client: each of these is
# broker-relay with one fault, and the check about that fault must fail on it.


class _ReceiptIsAckRelay(BrokerRelayTransport):
    """Takes the relay's RECEIPT for "all accepted", without waiting for the ACK."""

    invented: list[Ack]

    def send(self, batch: Batch) -> Any:
        receipt = super().send(batch)
        self.invented = [*getattr(self, "invented", []), Ack(
            batch_id=batch.batch_id, received_at=datetime.now(UTC), results=[
                RecordAck(transaction_id=r.transaction_id, version=r.version, status=AckStatus.ACCEPTED)
                for r in batch.records])]
        return receipt

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        super().acks(0.0)  # what the relay said is read, and ignored
        out, self.invented = getattr(self, "invented", []), []
        return out


class _SilentOnGarbageRelay(BrokerRelayTransport):
    """Drops a message it cannot read without a word: the batch just waits."""

    def _drain(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._handle(frames)
            except ValueError:
                pass


class _BusyIsFatalRelay(BrokerRelayTransport):
    """Gives up for good whenever the relay did not take a batch."""

    def send(self, batch: Batch) -> Any:
        try:
            return super().send(batch)
        except RetriableError as exc:
            raise FatalError(str(exc)) from exc


class _WrongRelays:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        for name, transport in (("receipt-is-ack", _ReceiptIsAckRelay),
                                ("silent-on-garbage", _SilentOnGarbageRelay),
                                ("busy-is-fatal", _BusyIsFatalRelay)):
            register(name, transport, options=RelayClientOptions)


@pytest.mark.parametrize(("transport", "check", "says"), [
    ("receipt-is-ack", "test_rejections_are_reported_as_the_receiver_said", "report exactly what the receiver said"),
    ("receipt-is-ack", "test_a_partial_answer_is_reported_as_partial", "never invent an acknowledgement"),
    ("silent-on-garbage", "test_a_malformed_answer_is_an_error_not_an_ack", "neither raised nor reported"),
    ("busy-is-fatal", "test_a_busy_receiver_is_retriable", "it must be RetriableError"),
    ("busy-is-fatal", "test_a_dropped_connection_is_retriable", "it must be RetriableError"),
])
def test_the_scripted_relay_catches_a_wrong_relay_client(tmp_path: Path, transport: str, check: str,
                                                         says: str) -> None:
    suite = type("WrongRelaySuite", (TestBrokerRelayConformance,),
                 {"transport_name": transport, "plugin_module": _WrongRelays(), "plugin_name": "wrong-relay"})()
    with RelayReceiver(tmp_path / "scripted") as receiver, pytest.raises(AssertionError) as caught:
        getattr(suite, check)(receiver, tmp_path)
    assert says in str(caught.value)


def test_the_scripted_relay_counts_connections_and_drops_them_all(tmp_path: Path) -> None:
    with RelayReceiver(tmp_path / "scripted") as receiver:
        transport = BrokerRelayTransport(RelayClientOptions.model_validate(receiver.options), None,
                                         S321Json())
        transport.connect()
        deadline = time.monotonic() + 5
        while receiver.connections() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.connections() == 1
        receiver.play(Script(Play.DROP))
        with pytest.raises(RetriableError, match="no receipt"):
            transport.send(samples.sample_batch(1, start=81))
        # The socket was bound anew on the same port: the client is back, with its HELLO.
        transport.send(samples.sample_batch(1, start=82))
        assert [b.records[0].transaction_id for b in receiver.received] == [
            samples.sample_batch(1, start=n).records[0].transaction_id for n in (81, 82)]
        transport.close()
        deadline = time.monotonic() + 5
        while receiver.connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.connections() == 0


class _NoCloseRelay(BrokerRelayTransport):
    """close() does nothing: the DEALER and its connection stay open."""

    left_open: list[BrokerRelayTransport] = []

    def close(self) -> None:
        _NoCloseRelay.left_open.append(self)


class _NoCloseRelays:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        register("no-close", _NoCloseRelay, options=RelayClientOptions)


def test_the_close_check_sees_a_relay_client_that_keeps_its_connection(tmp_path: Path) -> None:
    # What the relay's own connection count (Endpoint.connections) is for: broker-relay
    # closes its link, and one that does not is caught, whatever else the process holds.
    suite = type("NoCloseSuite", (TestBrokerRelayConformance,),
                 {"transport_name": "no-close", "plugin_module": _NoCloseRelays(), "plugin_name": "no-close"})()
    with RelayReceiver(tmp_path / "scripted") as receiver:
        endpoint = Endpoint(receiver.options, connections=receiver.connections)
        try:
            with pytest.raises(AssertionError, match="close\\(\\) must close the link"):
                suite.test_close_releases_the_connection(endpoint, tmp_path)
        finally:
            for transport in _NoCloseRelay.left_open:
                BrokerRelayTransport.close(transport)
            _NoCloseRelay.left_open.clear()
    # And the real one passes against the same count.
    with RelayReceiver(tmp_path / "again") as receiver:
        TestBrokerRelayConformance().test_close_releases_the_connection(
            Endpoint(receiver.options, connections=receiver.connections), tmp_path / "real")

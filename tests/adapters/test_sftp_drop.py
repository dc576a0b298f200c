"""Transport `sftp-drop` against a real OpenSSH server (tests/sshd.py) and the drop
sandbox: atomic uploads, acknowledgements picked up, pinned host keys, refused user
keys, an outage mid-transfer that loses and doubles nothing, one connection reused."""

from __future__ import annotations

import argparse
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from builders import consignment, jsonl_pipeline_config, marketplace_fields, write_jsonl
from s321 import app, config, registry
from s321.adapters import sftp_drop
from s321.adapters.sftp_drop import HostKeyRefused, SftpDropTransport, SftpOptions, fingerprint
from s321.adapters.sftp_drop.hostkeys import HostKeyPin, read_known_hosts
from s321.adapters.sftp_drop.transport import BadResponse
from s321.backoff import Backoff, retry
from s321.contracts import Ack, AckStatus, Batch, Receipt, RecordAck
from s321.errors import FatalError, RetriableError, classify
from s321.hookspecs import hookimpl
from s321.plugins.wire_s321 import S321Json
from s321.registry import Registry
from s321.sandbox.drop import DropSandbox, add_drop_arguments, start_drop
from s321.sandbox.review import Reviewer
from s321.sandbox.store import SandboxStore
from s321.testing.scripted import Play, Script
from s321.testing.sftp_receiver import QUICK_OPTIONS, SftpDropReceiver
from s321.testing.transports import Endpoint, ErrorCase, TransportConformance
from sshd import KeyPair, SshServer, free_port, sshd_missing

WIRE = S321Json()


@pytest.fixture
def server(ssh_server: SshServer) -> SshServer:
    return ssh_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SandboxStore]:
    db = SandboxStore(tmp_path / "sandbox.sqlite")
    yield db
    db.close()


@pytest.fixture
def sandbox(server: SshServer, store: SandboxStore) -> DropSandbox:
    """The drop sandbox on the folder sshd serves; tests run it once or start it."""
    return DropSandbox.in_folder(server.root, Reviewer(store), poll_interval=0.05)


def options(server: SshServer, **changes: object) -> SftpOptions:
    fields: dict[str, object] = {
        "host": "127.0.0.1", "port": server.port, "username": server.user,
        "key": str(server.user_key.private), "known_hosts": str(server.known_hosts()),
        "connect_timeout": 5, "op_timeout": 5, "poll_interval": 0.05, "settle_time": 0,
    }
    fields.update(changes)
    return SftpOptions.model_validate(fields)


def transport(server: SshServer, **changes: object) -> SftpDropTransport:
    return SftpDropTransport(options(server, **changes), None, WIRE)


def batch(batch_id: str, n: int = 3, first: int = 0) -> Batch:
    records = [consignment(marketplace_fields(), txid=f"T{batch_id}-{i}") for i in range(first, first + n)]
    return Batch(batch_id=batch_id, originator_code="MKT001", profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=records)


def collect(t: SftpDropTransport, want: int, timeout: float = 10.0) -> list[Ack]:
    acks: list[Ack] = []
    deadline = time.monotonic() + timeout
    while len(acks) < want and time.monotonic() < deadline:
        acks += t.acks(timeout=0.5)
    return acks


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def size_of(path: Path) -> int | None:
    """Size of a file another process may rename away at any moment."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def accepted_sessions(server: SshServer) -> int:
    return server.log.read_text().count("Accepted publickey")


# --------------------------------------------------------------------------- uploads


def test_a_batch_appears_under_its_final_name_only_when_complete(server: SshServer) -> None:
    # Unpipelined, a large batch takes long enough to watch it grow under its temporary name.
    big = batch("Bbig", n=400)
    body = WIRE.encode_batch(big)
    inbound = server.root / "inbound"
    seen_partial: list[int] = []
    seen_final: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            size = size_of(inbound / ".Bbig.json.part")
            if size is not None:
                seen_partial.append(size)
            try:
                seen_final.append(len((inbound / "Bbig.json").read_bytes()))
            except FileNotFoundError:
                pass
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t = transport(server, pipelined=False)
    try:
        receipt = t.send(big)
    finally:
        done.set()
        watcher.join()
        t.close()
    assert receipt.batch_id == "Bbig"
    assert files(inbound) == ["Bbig.json"]  # the temporary name is gone
    assert WIRE.decode_batch((inbound / "Bbig.json").read_bytes()) == big
    assert any(0 < size < len(body) for size in seen_partial), "never saw the upload in progress"
    assert all(size == len(body) for size in seen_final), "a partial file was visible under the final name"


def test_one_connection_carries_every_batch(server: SshServer, sandbox: DropSandbox) -> None:
    t = transport(server)
    try:
        for i in range(5):
            t.send(batch(f"B{i}"))
        sandbox.run_once()
        assert len(collect(t, 5)) == 5
    finally:
        t.close()
    assert t.connections == 1
    assert accepted_sessions(server) == 1
    assert files(server.root / "inbound" / "processed") == [f"B{i}.json" for i in range(5)]


def test_a_batch_already_on_the_server_is_not_uploaded_again(server: SshServer) -> None:
    # A crash after the rename but before the ledger noted `sent`: the batch goes again.
    b = batch("Bagain")
    first = transport(server)
    first.send(b)
    first.close()
    final = server.root / "inbound" / "Bagain.json"
    written = final.stat().st_mtime_ns
    time.sleep(0.01)
    again = transport(server)
    try:
        receipt = again.send(b)
    finally:
        again.close()
    assert "already on the server" in (receipt.detail or "")
    assert final.stat().st_mtime_ns == written
    assert files(server.root / "inbound") == ["Bagain.json"]


def test_only_batch_ids_name_remote_files(server: SshServer) -> None:
    t = transport(server)
    try:
        with pytest.raises(FatalError, match="cannot name a remote file"):
            t.send(batch("../../etc/evil"))
    finally:
        t.close()
    assert files(server.root / "inbound") == []


# --------------------------------------------------------------------------- responses


def test_acks_from_the_drop_sandbox_resolve_every_record(server: SshServer, sandbox: DropSandbox) -> None:
    t = transport(server)
    sent = [batch("Bok1"), batch("Bok2", first=10)]
    with sandbox:
        try:
            for b in sent:
                t.send(b)
            acks = collect(t, 2)
        finally:
            t.close()
    assert sorted(a.batch_id for a in acks) == ["Bok1", "Bok2"]
    results = {r.transaction_id: r.status for a in acks for r in a.results}
    assert results == {rec.transaction_id: AckStatus.ACCEPTED for b in sent for rec in b.records}
    outbound = server.root / "outbound"
    assert files(outbound) == []  # read once, then archived
    assert files(outbound / "archive") == ["Bok1.ack.json", "Bok2.ack.json"]


def test_acks_can_be_deleted_after_reading(server: SshServer, sandbox: DropSandbox) -> None:
    t = transport(server, after_read="delete")
    try:
        t.send(batch("Bdel"))
        sandbox.run_once()
        assert [a.batch_id for a in collect(t, 1)] == ["Bdel"]
    finally:
        t.close()
    assert not (server.root / "outbound" / "archive").exists()
    assert files(server.root / "outbound") == []


def test_a_resent_batch_is_answered_as_duplicates_and_filed_once(
        server: SshServer, sandbox: DropSandbox, store: SandboxStore) -> None:
    b = batch("Bdup")
    t = transport(server)
    try:
        t.send(b)
        sandbox.run_once()
        t.send(b)  # the sandbox took the first file away: this one does go up again
        sandbox.run_once()
        acks = collect(t, 2)
    finally:
        t.close()
    codes = sorted({e.code for a in acks for r in a.results for e in r.errors})
    assert codes == ["duplicate"]
    # Neither answer overwrote the other on the server.
    assert files(server.root / "outbound" / "archive") == ["Bdup.1.ack.json", "Bdup.ack.json"]
    assert store.accepted_counts() == {r.transaction_id: 1 for r in b.records}


def test_a_response_that_does_not_parse_is_moved_aside_and_reported(
        server: SshServer, sandbox: DropSandbox) -> None:
    outbound = server.root / "outbound"
    (outbound / "garbage.ack.json").write_bytes(b"\x00 not an acknowledgement")
    (outbound / ".still-writing.part").write_bytes(b"{")
    t = transport(server)
    try:
        t.send(batch("Bgood"))
        sandbox.run_once()
        acks = collect(t, 1)
    finally:
        t.close()
    assert [a.batch_id for a in acks] == ["Bgood"]
    assert [(r.name, r.moved_to) for r in t.bad_responses] == [
        ("garbage.ack.json", "outbound/rejected/garbage.ack.json")]
    assert "not UTF-8 JSON" in t.bad_responses[0].reason
    assert (outbound / "rejected" / "garbage.ack.json").read_bytes() == b"\x00 not an acknowledgement"
    assert (outbound / ".still-writing.part").exists()  # temporary names are not responses


def test_a_response_still_being_written_gets_time_to_settle(server: SshServer) -> None:
    outbound = server.root / "outbound"
    half = WIRE.encode_ack(Ack(batch_id="Bslow", received_at=datetime.now(UTC), results=[]))
    (outbound / "Bslow.ack.json").write_bytes(half[:10])
    t = transport(server, settle_time=30)
    try:
        assert t.acks(timeout=0) == []
        (outbound / "Bslow.ack.json").write_bytes(half)  # the server finished writing it
        assert [a.batch_id for a in t.acks(timeout=0)] == ["Bslow"]
    finally:
        t.close()
    assert t.bad_responses == []


def test_the_drop_sandbox_reads_only_complete_batches(tmp_path: Path, store: SandboxStore) -> None:
    drop = DropSandbox.in_folder(tmp_path / "drop", Reviewer(store))
    inbound = tmp_path / "drop" / "inbound"
    (inbound / ".Bhalf.json.part").write_bytes(WIRE.encode_batch(batch("Bhalf"))[:50])
    (inbound / "notes.txt").write_text("not a batch")
    (inbound / "Bwhole.json").write_bytes(WIRE.encode_batch(batch("Bwhole")))
    assert drop.run_once() == 2
    assert files(inbound) == [".Bhalf.json.part"]
    assert files(inbound / "rejected") == ["notes.txt"] and drop.rejected_files == ["notes.txt"]
    assert files(inbound / "processed") == ["Bwhole.json"]
    assert files(tmp_path / "drop" / "outbound") == ["Bwhole.ack.json"]
    assert dict(drop.received) == {"Bwhole": 1}


def test_sandbox_drop_flag_serves_a_folder_in_the_background(tmp_path: Path, store: SandboxStore) -> None:
    parser = argparse.ArgumentParser()
    add_drop_arguments(parser)
    assert start_drop(parser.parse_args([]), Reviewer(store)) is None
    drop = start_drop(parser.parse_args(["--drop", str(tmp_path / "drop"), "--drop-poll", "0.02"]),
                      Reviewer(store))
    assert drop is not None
    try:
        (tmp_path / "drop" / "inbound" / "Bflag.json").write_bytes(WIRE.encode_batch(batch("Bflag")))
        ack = tmp_path / "drop" / "outbound" / "Bflag.ack.json"
        deadline = time.monotonic() + 5
        while not ack.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        drop.stop()
    assert WIRE.decode_ack(ack.read_bytes()).batch_id == "Bflag"


# --------------------------------------------------------------------------- host keys and auth


def test_the_pinned_fingerprint_is_what_ssh_keygen_prints(server: SshServer) -> None:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen not installed")
    printed = subprocess.run([keygen, "-lf", f"{server.host_key.private}.pub"], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert fingerprint(server.host_key.blob) == printed
    t = transport(server, known_hosts=None, host_key_fingerprint=printed)
    assert printed in t.probe()


def test_a_changed_host_key_is_refused_naming_the_key_seen(server: SshServer, tmp_path: Path) -> None:
    other = KeyPair.generate(tmp_path / "old_host_key")
    known = server.known_hosts(tmp_path / "known_hosts", f"[127.0.0.1]:{server.port} {other.public_line}")
    t = transport(server, known_hosts=str(known))
    with pytest.raises(HostKeyRefused) as refused:
        t.connect()
    message = str(refused.value)
    assert isinstance(refused.value, FatalError)
    assert "CHANGED" in message and fingerprint(server.host_key.blob) in message
    assert fingerprint(other.blob) in message
    # Refused before any credential left the client.
    assert "publickey" not in server.log.read_text()


def test_an_unknown_host_key_is_refused(server: SshServer, tmp_path: Path) -> None:
    known = server.known_hosts(tmp_path / "known_hosts",
                               f"[127.0.0.1]:{server.port + 1} {server.host_key.public_line}")
    with pytest.raises(HostKeyRefused, match="UNKNOWN") as refused:
        transport(server, known_hosts=str(known)).connect()
    assert fingerprint(server.host_key.blob) in str(refused.value)


def test_a_wrong_fingerprint_pin_is_refused(server: SshServer, tmp_path: Path) -> None:
    other = KeyPair.generate(tmp_path / "other")
    with pytest.raises(HostKeyRefused, match="MISMATCH") as refused:
        transport(server, known_hosts=None, host_key_fingerprint=fingerprint(other.blob)).probe()
    assert fingerprint(server.host_key.blob) in str(refused.value)


def test_a_revoked_host_key_is_refused_even_when_also_listed(server: SshServer, tmp_path: Path) -> None:
    line = f"[127.0.0.1]:{server.port} {server.host_key.public_line}"
    known = server.known_hosts(tmp_path / "known_hosts", f"{line}\n@revoked * {server.host_key.public_line}")
    with pytest.raises(HostKeyRefused, match="REVOKED"):
        transport(server, known_hosts=str(known)).connect()


def test_hashed_known_hosts_entries_are_understood(server: SshServer, tmp_path: Path) -> None:
    hashed = paramiko.HostKeys.hash_host(f"[127.0.0.1]:{server.port}")
    known = server.known_hosts(tmp_path / "known_hosts", f"{hashed} {server.host_key.public_line}")
    assert "verified" in transport(server, known_hosts=str(known)).probe()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("|@#,![]*?: \t\n=+/AaZz019-")) | st.characters(),
                    max_size=300))
def test_any_known_hosts_text_is_read_without_crashing(tmp_path: Path, text: str) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(text, encoding="utf-8", errors="replace")
    read_known_hosts(path)
    with pytest.raises(HostKeyRefused):
        HostKeyPin("127.0.0.1", 2222, known_hosts=path).verify(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36)


def test_a_wrong_user_key_is_refused(server: SshServer, tmp_path: Path) -> None:
    stranger = KeyPair.generate(tmp_path / "id_stranger")
    with pytest.raises(FatalError, match="authentication failed") as refused:
        transport(server, key=str(stranger.private)).connect()
    assert fingerprint(stranger.blob) in str(refused.value)


def test_an_rsa_key_with_a_passphrase_authenticates(server: SshServer, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rsa_key = KeyPair.generate(tmp_path / "id_rsa", kind="rsa", passphrase=b"open sesame")
    server.authorized_keys.write_text(rsa_key.public_line + "\n")
    monkeypatch.setenv("SFTP_KEY_PASSPHRASE", "open sesame")
    t = transport(server, key=str(rsa_key.private), key_passphrase={"env": "SFTP_KEY_PASSPHRASE"})
    assert "authenticated by publickey" in t.probe()
    with pytest.raises(FatalError, match="is encrypted: set key_passphrase"):
        transport(server, key=str(rsa_key.private)).connect()
    monkeypatch.setenv("SFTP_KEY_PASSPHRASE", "wrong")
    with pytest.raises(FatalError, match="wrong key_passphrase"):
        transport(server, key=str(rsa_key.private), key_passphrase={"env": "SFTP_KEY_PASSPHRASE"}).connect()


def test_probe_sends_nothing_and_reports_missing_folders(server: SshServer) -> None:
    assert "folders 'inbound' and 'outbound' present" in transport(server).probe()
    assert files(server.root / "inbound") == []
    with pytest.raises(FatalError, match="'nowhere' \\(inbound_dir\\) does not exist"):
        transport(server, inbound_dir="nowhere").probe()


# --------------------------------------------------------------------------- through the runtime


def test_run_once_files_every_record_through_sftp(server: SshServer, sandbox: DropSandbox,
                                                   store: SandboxStore, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [{"ref": f"A-{i}", **marketplace_fields()} for i in range(7)])
    server.known_hosts(tmp_path / "known_hosts")
    cfg = jsonl_pipeline_config(tmp_path, inbox, "unused", extra="batch_size = 3", transport=f"""
        plugin = "sftp-drop"
        host = "127.0.0.1"
        port = {server.port}
        username = "{server.user}"
        key = "{server.user_key.private}"
        known_hosts = "known_hosts"
        poll_interval = 0.05
    """)
    plugins = registry.load()
    if not plugins.has("transport", "sftp-drop"):  # until the entry point is declared
        plugins.add_plugin(sftp_drop, "sftp-drop")
    loaded = config.load(cfg, plugins)
    assert [ok for _, (ok, _) in app.probe_transports(loaded)] == [True]
    with sandbox:
        [summary] = app.run_once(plugins, loaded)
    assert summary.error is None
    assert (summary.counts["sent"], summary.counts["accepted"]) == (7, 7)
    assert sorted(store.accepted_counts().values()) == [1] * 7
    assert len(files(server.root / "outbound" / "archive")) == 3  # 3 + 3 + 1 records


# --------------------------------------------------------------------------- outages


def test_an_outage_mid_transfer_loses_and_doubles_nothing(
        server: SshServer, sandbox: DropSandbox, store: SandboxStore) -> None:
    # Unpipelined uploads of large batches are slow enough to kill the server during one.
    sent = [batch(f"Bout{i}", n=300) for i in range(3)]
    inbound = server.root / "inbound"
    outage_done = threading.Event()

    def outage() -> None:
        part = inbound / ".Bout1.json.part"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (size_of(part) or 0) > 0:
            time.sleep(0.0005)
        server.stop(hard=True)  # the listener and the session: a real outage
        time.sleep(0.5)
        server.start()
        outage_done.set()

    killer = threading.Thread(target=outage)
    killer.start()
    t = transport(server, pipelined=False, reconnect_attempts=2)
    failures: list[str] = []
    try:
        for b in sent:
            def attempt(b: Batch = b) -> object:
                try:
                    return t.send(b)
                except RetriableError as exc:
                    failures.append(str(exc))
                    raise
            retry(attempt, attempts=40, backoff=Backoff(initial=0.05, maximum=0.3))
        killer.join()
        assert outage_done.is_set()
        assert failures, "the outage did not interrupt the upload"
        # The killer saw Bout1 under way; on a busy machine the server can die only once
        # Bout1 is whole and Bout2 is being written. Either way the message names it.
        assert re.search(r"upload of Bout[12]\.json: ", failures[0]), failures
        assert sorted(p.name for p in inbound.iterdir() if p.is_file()) == [
            "Bout0.json", "Bout1.json", "Bout2.json"]  # no .part left over
        sandbox.run_once()
        acks = collect(t, 3)
    finally:
        killer.join()
        t.close()
    assert sorted(a.batch_id for a in acks) == ["Bout0", "Bout1", "Bout2"]
    assert dict(sandbox.received) == {"Bout0": 1, "Bout1": 1, "Bout2": 1}
    assert store.accepted_counts() == {r.transaction_id: 1 for b in sent for r in b.records}
    assert t.connections == 2


def test_a_server_that_is_not_there_is_retriable(tmp_path: Path) -> None:
    opts = SftpOptions(host="127.0.0.1", port=free_port(), username="nobody",
                       password={"env": "PATH"}, host_key_fingerprint="SHA256:" + "A" * 43,
                       connect_timeout=2, reconnect_attempts=1)
    with pytest.raises(RetriableError, match="127.0.0.1"):
        SftpDropTransport(opts, None, WIRE).connect()


# --------------------------------------------------------------------------- classification and options


def _host_key(tmp_path: Path, name: str) -> paramiko.PKey:
    return paramiko.PKey.from_path(KeyPair.generate(tmp_path / name).private)


@pytest.mark.parametrize("make,kind", [
    (lambda tmp: paramiko.AuthenticationException("no"), FatalError),
    (lambda tmp: paramiko.BadHostKeyException("h", _host_key(tmp, "a"), _host_key(tmp, "b")), FatalError),
    (lambda tmp: paramiko.IncompatiblePeer("no common kex"), FatalError),
    (lambda tmp: paramiko.SSHException("Error reading SSH protocol banner"), RetriableError),
    (lambda tmp: paramiko.SSHException("Server connection dropped: "), RetriableError),
    (lambda tmp: EOFError(), RetriableError),
    (lambda tmp: ConnectionResetError(104, "reset"), RetriableError),
])
def test_ssh_errors_are_classified_like_every_transport_error(tmp_path: Path, make, kind: type) -> None:  # type: ignore[no-untyped-def]
    assert type(classify(make(tmp_path))) is kind


@pytest.mark.parametrize("changes,message", [
    ({"known_hosts": None}, "exactly one of known_hosts or host_key_fingerprint"),
    ({"host_key_fingerprint": "SHA256:" + "A" * 43}, "exactly one of known_hosts"),
    ({"known_hosts": None, "host_key_fingerprint": "MD5:aa:bb"}, "ssh-keygen -lf"),
    ({"key": None}, "set key"),
    ({"password": "hunter2"}, "must be a reference"),
    ({"inbound_dir": "../elsewhere"}, "'..'"),
    ({"agent": True}, "Extra inputs are not permitted"),
])
def test_options_refuse_what_could_only_fail_later(tmp_path: Path, changes: dict[str, object],
                                                   message: str) -> None:
    fields: dict[str, object] = {"host": "sftp.example.com", "username": "s321",
                                 "key": "id_ed25519", "known_hosts": "known_hosts"}
    fields.update(changes)
    with pytest.raises(ValidationError, match=message):
        SftpOptions.model_validate({k: v for k, v in fields.items() if v is not None},
                                   context={"base_dir": tmp_path})


def test_the_plugin_registers_sftp_drop_with_its_options() -> None:
    registry = Registry()
    info = registry.add_plugin(sftp_drop, "sftp-drop")
    assert info.status == "loaded", info.error
    component = registry.get("transport", "sftp-drop")
    assert component.options is SftpOptions and component.factory is SftpDropTransport


# --------------------------------------------------------------------------- the shared suite


class TestSftpDropConformance(TransportConformance):
    """The checks every transport passes, against the real sshd and the drop sandbox,
    with a passphrase-protected RSA key so that a secret is in play."""

    transport_name = "sftp-drop"
    plugin_module = sftp_drop
    plugin_name = "sftp-drop"
    ack_timeout = 3.0  # acks are files the transport polls for

    @pytest.fixture
    def endpoint(self, server: SshServer, store: SandboxStore, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
        rsa_key = KeyPair.generate(tmp_path / "id_rsa", kind="rsa", passphrase=b"conformance pass")
        server.authorized_keys.write_text(rsa_key.public_line + "\n")
        monkeypatch.setenv("SFTP_CONFORMANCE_PASSPHRASE", "conformance pass")
        drop = DropSandbox.in_folder(server.root, Reviewer(store), poll_interval=0.05).start()
        try:
            yield Endpoint(
                {"host": "127.0.0.1", "port": server.port, "username": server.user,
                 "key": str(rsa_key.private), "key_passphrase": {"env": "SFTP_CONFORMANCE_PASSPHRASE"},
                 "known_hosts": str(server.known_hosts()), "connect_timeout": 5, "op_timeout": 5,
                 "poll_interval": 0.05, "settle_time": 0},
                accepted=store.accepted_counts,
                secrets=[rsa_key.private.read_text()])
        finally:
            drop.stop()

    @pytest.fixture
    def scripted_receiver(self, tmp_path: Path) -> Iterator[SftpDropReceiver]:
        # The drop sandbox reviews batches as CBP would; this receiver, on an sshd of its
        # own, answers as the suite says.
        missing = sshd_missing()
        if missing:
            pytest.skip(missing)
        with SshServer(tmp_path / "scripted-sshd") as scripted:
            options = {"host": "127.0.0.1", "port": scripted.port, "username": scripted.user,
                       "key": str(scripted.user_key.private), "known_hosts": str(scripted.known_hosts())}
            with SftpDropReceiver(scripted.root, options, scripted) as receiver:
                yield receiver

    def error_cases(self, endpoint: Endpoint, tmp_path: Path) -> list[ErrorCase]:
        stranger = KeyPair.generate(tmp_path / "stranger")
        quick = {**endpoint.options, "connect_timeout": 1, "reconnect_attempts": 1}
        return [
            ErrorCase({**quick, "port": free_port()}, RetriableError, "nobody listening"),
            ErrorCase({**quick, "key": str(stranger.private), "key_passphrase": None}, FatalError,
                      "a user key the server does not authorise"),
            ErrorCase({**quick, "known_hosts": None, "host_key_fingerprint": "SHA256:" + "A" * 43},
                      FatalError, "a host key other than the pinned one"),
        ]


# The scripted receiver is what lets the checks see a wrong drop transport: each of these
# is sftp-drop with one fault, and the check about that fault must fail on it.


class _GarbageIsAckSftp(SftpDropTransport):
    """Takes a response it cannot parse for "all accepted" (the file is named after the batch)."""

    def send(self, batch: Batch) -> Receipt:
        self.sent_batches = {**getattr(self, "sent_batches", {}), batch.batch_id: batch}
        return super().send(batch)

    def _read(self, sftp: paramiko.SFTPClient, entry: paramiko.SFTPAttributes) -> Ack | None:
        ack = super()._read(sftp, entry)
        sent = getattr(self, "sent_batches", {}).get(entry.filename.split(".")[0])
        if ack is None and sent is not None:
            return Ack(batch_id=sent.batch_id, received_at=datetime.now(UTC), results=[
                RecordAck(transaction_id=r.transaction_id, version=r.version, status=AckStatus.ACCEPTED)
                for r in sent.records])
        return ack


class _QuietlySetAsideSftp(SftpDropTransport):
    """Moves a response it cannot parse aside without a word: the batch just waits."""

    def _set_aside(self, sftp: paramiko.SFTPClient, name: str, reason: str) -> None:
        self.bad_responses.append(BadResponse(name, reason, self._move(sftp, name, "rejected")))


class _OutageIsFatalSftp(SftpDropTransport):
    """Gives up for good when the server cannot be reached."""

    def _live(self):  # type: ignore[no-untyped-def]
        try:
            return super()._live()
        except RetriableError as exc:
            raise FatalError(str(exc)) from exc

    def _failed(self, exc: BaseException, doing: str) -> FatalError:
        return FatalError(str(super()._failed(exc, doing)))


class _WrongSftp:
    @hookimpl
    def register_transports(self, register: Any) -> None:
        for name, wrong in (("garbage-is-ack", _GarbageIsAckSftp), ("quietly-set-aside", _QuietlySetAsideSftp),
                            ("outage-is-fatal", _OutageIsFatalSftp)):
            register(name, wrong, options=SftpOptions)


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[SftpDropReceiver]:
    missing = sshd_missing()
    if missing:
        pytest.skip(missing)
    with SshServer(tmp_path / "scripted-sshd") as srv:
        with SftpDropReceiver(srv.root, {
                "host": "127.0.0.1", "port": srv.port, "username": srv.user,
                "key": str(srv.user_key.private), "known_hosts": str(srv.known_hosts())}, srv) as receiver:
            yield receiver


@pytest.mark.parametrize(("wrong", "check", "says"), [
    ("garbage-is-ack", "test_a_malformed_answer_is_an_error_not_an_ack", "never invent an acknowledgement"),
    ("quietly-set-aside", "test_a_malformed_answer_is_an_error_not_an_ack", "neither raised nor reported"),
    ("outage-is-fatal", "test_a_dropped_connection_is_retriable", "it must be RetriableError"),
    ("outage-is-fatal", "test_a_busy_receiver_is_retriable", "it must be RetriableError"),
])
def test_the_scripted_drop_receiver_catches_a_wrong_drop_transport(
        scripted: SftpDropReceiver, tmp_path: Path, wrong: str, check: str, says: str) -> None:
    suite = type("WrongSftpSuite", (TestSftpDropConformance,),
                 {"transport_name": wrong, "plugin_module": _WrongSftp(), "plugin_name": "wrong-sftp"})()
    with pytest.raises(AssertionError) as caught:
        getattr(suite, check)(scripted, tmp_path / "suite")
    assert says in str(caught.value)


def test_the_scripted_drop_receiver_leaves_the_server_as_it_was_given(tmp_path: Path) -> None:
    missing = sshd_missing()
    if missing:
        pytest.skip(missing)
    with SshServer(tmp_path / "sshd") as srv:
        keys_before = srv.authorized_keys.read_text()
        opts = options(srv, **QUICK_OPTIONS)
        with SftpDropReceiver(srv.root, opts.model_dump(mode="json", exclude_none=True), srv) as receiver:
            receiver.play(Script(Play.REFUSE_CREDENTIAL))
            with pytest.raises(FatalError, match="authentication failed"):
                SftpDropTransport(opts, None, WIRE).connect()
            assert srv.authorized_keys.read_text() == ""  # sshd's own check refuses the key
            srv.authorized_keys.write_text(keys_before)
            t = SftpDropTransport(opts, None, WIRE)
            receiver.play(Script(Play.DROP))
            t.send(batch("Bdrop"))
            with pytest.raises(RetriableError):  # the session ends, and nobody answers again
                collect(t, 1, timeout=5)
            t.close()
            assert [b.batch_id for b in receiver.received] == ["Bdrop"] and not receiver.answered
        # Stopped, the receiver brought the server back.
        t = SftpDropTransport(opts, None, WIRE)
        try:
            t.connect()
        finally:
            t.close()
        assert srv.authorized_keys.read_text() == keys_before


# --------------------------------------------------------------------------- hostile servers


def _swap_after_listing(t: SftpDropTransport, action) -> None:  # type: ignore[no-untyped-def]
    """Run `action` right after the transport's next listing of the outbound folder:
    what a server (or whoever writes its folder) can do between listing and reading."""
    sftp = t._live().sftp
    listdir_attr = sftp.listdir_attr

    def listing(path: str):  # type: ignore[no-untyped-def]
        entries = listdir_attr(path)
        action(entries)
        return entries

    sftp.listdir_attr = listing  # type: ignore[method-assign]


def test_a_response_swapped_for_a_larger_file_after_listing_is_read_to_the_cap_only(
        server: SshServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from s321.adapters.sftp_drop import transport as sftp_transport

    cap = 64 * 1024
    monkeypatch.setattr(sftp_transport, "MAX_ACK_BYTES", cap)
    outbound = server.root / "outbound"
    small = WIRE.encode_ack(Ack(batch_id="Bswap", received_at=datetime.now(UTC), results=[]))
    (outbound / "Bswap.ack.json").write_bytes(small)
    # A valid acknowledgement of 4 caps: read whole, it would be taken.
    big = server.folder / "big.json"
    big.write_bytes(small.rstrip() + b" " * (4 * cap) + b"\n")
    reads: list[int] = []
    real_read = paramiko.SFTPFile.read

    def counting_read(self, size=None):  # type: ignore[no-untyped-def]
        data = real_read(self, size)
        reads.append(len(data))
        return data

    monkeypatch.setattr(paramiko.SFTPFile, "read", counting_read)
    t = transport(server)
    try:
        def swap(_entries) -> None:  # type: ignore[no-untyped-def]
            (outbound / "Bswap.ack.json").unlink()
            (outbound / "Bswap.ack.json").symlink_to(big)

        _swap_after_listing(t, swap)
        assert t.acks(timeout=0) == []
    finally:
        t.close()
    assert sum(reads) <= cap + 1
    assert [(r.name, r.reason) for r in t.bad_responses] == [
        ("Bswap.ack.json", f"larger than {cap} bytes")]


def test_listed_names_that_are_not_plain_file_names_are_ignored(server: SshServer) -> None:
    # Only files of this test's own folder are named: the sftp server runs as this
    # user, and a transport that regressed would read and move what the names say.
    outbound = server.root / "outbound"
    elsewhere = server.root / "inbound" / "x.ack.json"
    canary = server.folder / "canary.ack.json"
    for path in (elsewhere, canary):
        path.write_bytes(WIRE.encode_ack(Ack(batch_id="Bout", received_at=datetime.now(UTC),
                                                results=[])))
    t = transport(server)
    try:
        def hostile(entries) -> None:  # type: ignore[no-untyped-def]
            for name in ("../inbound/x.ack.json", str(canary), "sub/../../x.ack.json", ".."):
                attrs = paramiko.SFTPAttributes()
                attrs.filename, attrs.st_mode, attrs.st_size = name, 0o100644, 10
                entries.append(attrs)

        _swap_after_listing(t, hostile)
        assert t.acks(timeout=0) == []
    finally:
        t.close()
    assert elsewhere.exists() and canary.exists()  # neither read as an ack nor moved
    assert t.bad_responses == []
    assert not (outbound / "archive").exists() and not (outbound / "rejected").exists()


@pytest.fixture
def permissive_server(tmp_path: Path) -> Iterator[SshServer]:
    """An sshd whose sftp server runs with umask 000 (`internal-sftp -u`: sshd itself
    forces at least 022), so a file or folder it creates without an explicit mode is
    readable and writable by everyone."""
    missing = sshd_missing()
    if missing:
        pytest.skip(missing)
    srv = SshServer(tmp_path / "open-sshd")
    subsystem = f"Subsystem sftp internal-sftp -d {srv.root}"
    srv.config.write_text(srv.config.read_text().replace(subsystem, f"{subsystem} -u 000"))
    srv.start()
    yield srv
    srv.stop()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_uploaded_batches_are_owner_only_whatever_the_servers_umask(permissive_server: SshServer) -> None:
    t = transport(permissive_server)
    try:
        t.send(batch("Bmode"))
    finally:
        t.close()
    assert mode_of(permissive_server.root / "inbound" / "Bmode.json") == 0o600


def _modes_seen_before_first_use(part: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The server-side mode of `part` when s321 first chmods or writes the file it
    opened: what the OPEN request made it, before any fix-up."""
    seen: list[int] = []
    for name in ("chmod", "write"):
        real = getattr(paramiko.SFTPFile, name)

        def first_look(self, *args, _real=real):  # type: ignore[no-untyped-def]
            if not seen:
                seen.append(mode_of(part))
            return _real(self, *args)

        monkeypatch.setattr(paramiko.SFTPFile, name, first_look)
    return seen


def test_a_batch_file_is_created_owner_only_not_made_so_afterwards(
        permissive_server: SshServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another account that opens the file between its creation and a chmod keeps its
    # descriptor after the chmod, and reads the whole batch: 0600 must come with OPEN.
    seen = _modes_seen_before_first_use(permissive_server.root / "inbound" / ".Bborn.json.part",
                                        monkeypatch)
    t = transport(permissive_server)
    try:
        t.send(batch("Bborn"))
    finally:
        t.close()
    assert [oct(m) for m in seen] == [oct(0o600)]
    assert mode_of(permissive_server.root / "inbound" / "Bborn.json") == 0o600


def test_a_server_that_refuses_the_mode_on_open_still_gets_an_owner_only_batch(
        permissive_server: SshServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenSSH honours the mode; a server that answers an OPEN carrying attributes with
    # a failure is simulated here, since none can be run.
    from paramiko.sftp import CMD_OPEN

    t = transport(permissive_server)
    sftp = t._live().sftp
    real_request = sftp._request
    refused: list[bytes] = []

    def request(kind, *args):  # type: ignore[no-untyped-def]
        if kind == CMD_OPEN and args[-1].st_mode is not None:
            refused.append(args[0])
            raise OSError("Failure")
        return real_request(kind, *args)

    monkeypatch.setattr(sftp, "_request", request)
    try:
        t.send(batch("Bplain"))
    finally:
        t.close()
    assert len(refused) == 1
    assert mode_of(permissive_server.root / "inbound" / "Bplain.json") == 0o600


def test_folders_made_on_the_server_are_owner_only(permissive_server: SshServer) -> None:
    outbound = permissive_server.root / "outbound"
    (outbound / "Bdir.ack.json").write_bytes(
        WIRE.encode_ack(Ack(batch_id="Bdir", received_at=datetime.now(UTC), results=[])))
    (outbound / "garbage.ack.json").write_bytes(b"\x00 not an acknowledgement")
    t = transport(permissive_server)
    try:
        assert [a.batch_id for a in t.acks(timeout=0)] == ["Bdir"]
    finally:
        t.close()
    assert files(outbound / "archive") == ["Bdir.ack.json"]
    assert files(outbound / "rejected") == ["garbage.ack.json"]
    assert mode_of(outbound / "archive") == 0o700
    assert mode_of(outbound / "rejected") == 0o700


def test_paramiko_is_loaded_only_when_a_link_is_opened() -> None:
    """Every `s321` command loads the installed plugins; paramiko and what it loads
    (about 0.08 s of each command's start) come in only with a first SFTP link, so
    `s321 check` of a shop's config does not pay for them."""
    import sys

    code = ("import sys\n"
            "from s321 import app\n"
            "registry = app.load_registry(None)\n"
            "assert registry.has('transport', 'sftp-drop'), registry.names('transport')\n"
            "print('paramiko' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

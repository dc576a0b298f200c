"""Two relays on one PostgreSQL ledger serve one broker's clients (issue 18): real relay
processes over ZeroMQ CURVE, real client pipelines, the sandbox over mutual TLS as CBP,
a real PostgreSQL server (tests/pgserver.py). Each relay takes batches from the clients
connected to it; records are forwarded by whichever relay claims them; a relay killed
with batches on the wire has them taken over by the other one after its lease, and the
answers reach each client through the relay it is connected to. No mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from builders import carrier_fields, marketplace_fields
from ports import free_port
from s321.sandbox import Faults, Sandbox
from relay.test_relay import (Keyring, batch, client, keyring, ledger_states, market, plugins, run_clients,
                              sandbox_upstream, spawn_relay, start_relay, wait_ack, wait_for, write_client,
                              write_relay_toml)
from s321.contracts import AckStatus
from s321.relay import config as relay_config
from s321.relay.server import status_report

__all__ = ["keyring"]  # the fixture, shared with the relay's other tests


def relay_on(url: str, folder: Path, keyring: Keyring, port: int, sb: Sandbox) -> Path:
    """A relay.toml whose ledger is the PostgreSQL database at `url` (lease of 2 s)."""
    path = write_relay_toml(folder, keyring, port, sandbox_upstream(sb))
    text = path.read_text().replace('path = "relay.sqlite"', f'url = "{url}"\nlease_seconds = 2')
    path.write_text(text.replace('originator_codes = ["MKT001"]', 'originator_codes = ["MKT001"]\nmax_in_flight = 2'))
    return path


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def owner_pid(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None


def test_two_relays_on_one_postgresql_ledger_forward_every_version_once(
        tmp_path: Path, keyring: Keyring, pg_url: str) -> None:
    with Sandbox(tmp_path / "sandbox", faults=Faults(ack_delay=0.8)).start() as sb:
        port_a, port_b = free_port(), free_port()
        relay_a = relay_on(pg_url, tmp_path / "relay-a", keyring, port_a, sb)
        relay_b = relay_on(pg_url, tmp_path / "relay-b", keyring, port_b, sb)
        log = tmp_path / "relays.log"
        # alice sends to both relays (two pipelines, two sessions), bob to the second.
        alice_a = write_client(tmp_path / "alice-a", keyring, "alice", port_a, marketplace_fields, "MKT001",
                               "online_marketplace", [f"a{i}" for i in range(8)])
        alice_b = write_client(tmp_path / "alice-b", keyring, "alice", port_b, marketplace_fields, "MKT001",
                               "online_marketplace", [f"b{i}" for i in range(6)])
        alice_b.write_text(alice_b.read_text().replace("[pipelines.alice", "[pipelines.alice_b"))
        bob = write_client(tmp_path / "bob", keyring, "bob", port_b, carrier_fields, "CAR001", "carrier",
                           [f"c{i}" for i in range(6)])
        first_a = spawn_relay(relay_a, log)
        second = spawn_relay(relay_b, log)
        restarted: list[subprocess.Popen[str]] = []

        def on_the_wire_of(pid: int) -> set[str]:
            return {r[0] for r in rows(pg_url, "SELECT transaction_id, lease_owner FROM consignments"
                                               " WHERE state = 'sent'") if owner_pid(r[1]) == pid}

        def kill_a_and_restart_it_later() -> None:
            # Killed while CBP has accepted records relay A forwarded and owes their
            # ack: relay B takes them over once A's lease runs out, and their answers
            # wait in the shared outbox until alice's pipeline is back on relay A.
            wait_for(lambda: bool(on_the_wire_of(first_a.pid) & set(sb.store.accepted_counts())), timeout=30,
                     what="records relay A forwarded, accepted and not acknowledged")
            first_a.send_signal(signal.SIGKILL)
            first_a.wait(10)
            wait_for(lambda: not on_the_wire_of(first_a.pid), timeout=30, what="relay B taking over A's batches")
            restarted.append(spawn_relay(relay_a, log))

        try:
            results = run_clients([alice_a, alice_b, bob], during=kill_a_and_restart_it_later)
            # A second export with changed content for some records, to both relays:
            # each new version is forwarded once, as a replace.
            for config, refs in ((alice_a, ["a0", "a1", "a2"]), (alice_b, ["b0", "b1"])):
                lines = [json.dumps({"ref": ref, **marketplace_fields(
                    originator_code="MKT001", house_bill_number=f"HB-{ref}", tracking_number=f"1Z{ref}",
                    marketplace_seller_id=f"SELLER-{ref}-2")}) for ref in refs]
                (config.parent / "inbox" / "records-2.jsonl").write_text("\n".join(lines) + "\n")
            again = run_clients([alice_a, alice_b])
        finally:
            for proc in [first_a, second, *restarted]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
        assert first_a.returncode == -signal.SIGKILL
        assert [p.returncode for p in (second, *restarted)] == [0, 0], log.read_text()[-3000:]
        for config in (alice_a, alice_b, bob):
            assert results[config].error is None, results[config].error
        for config in (alice_a, alice_b):
            assert again[config].error is None, again[config].error
        for config, n in ((alice_a, 8), (alice_b, 6), (bob, 6)):
            assert ledger_states(config) == {"accepted": n}
        # Every version reached CBP once: 20 consignments, 5 of them in two versions,
        # the second a replace.
        counts = sb.store.accepted_counts()
        assert len(counts) == 20
        assert sorted(counts.values()) == [1] * 15 + [2] * 5
        accepted = sb.store.acceptances()
        versions = [(txid, version) for txid, _, version, _ in accepted]
        assert len(set(versions)) == len(versions), "a version was accepted twice"
        assert sorted(a for _, a, _, _ in accepted) == ["add"] * 20 + ["replace"] * 5
        # The relays' shared ledger agrees, and relay B took over what A had on the wire.
        assert dict(rows(pg_url, "SELECT state, COUNT(*) FROM consignments GROUP BY state")) == {"accepted": 20}
        takeovers = rows(pg_url, "SELECT detail FROM history WHERE detail LIKE '%taken over from%'")
        assert takeovers and all(f":{first_a.pid}:" in d for (d,) in takeovers), takeovers
        assert sorted(r[0] for r in rows(pg_url, "SELECT lane FROM relay_lanes")) == [
            "relay:alice/MKT001/pilot-2019", "relay:bob/CAR001/pilot-2019"]
        # `s321 relay --status` of either relay reads the shared ledger.
        report = status_report(relay_config.load(relay_b, plugins()))
        assert {(r["pipeline"], r["state"], r["count"]) for r in report if "pipeline" in r} == {
            ("relay:alice/MKT001/pilot-2019", "accepted", 14), ("relay:bob/CAR001/pilot-2019", "accepted", 6)}
        assert {r["client"] for r in report if "client" in r} == {"alice", "bob"}


def test_a_relay_keeps_serving_across_a_database_restart(tmp_path: Path, keyring: Keyring, pg_server: Any,
                                                         pg_url: str) -> None:
    with Sandbox(tmp_path / "sandbox", faults=Faults(ack_delay=0.5)).start() as sb:
        path = relay_on(pg_url, tmp_path / "relay", keyring, free_port(), sb)
        with start_relay(path) as server:
            assert server.endpoint is not None
            alice = client(keyring, "alice", server.endpoint, session="shop")
            try:
                first = batch(market("r-1"), market("r-2"))
                alice.send(first)
                pg_server.stop()  # CBP's answer comes while the database is down
                try:
                    # Longer than the ledger's pool waits for a connection (15 s): the
                    # upstream and the router both get LedgerUnavailable, and go on.
                    time.sleep(17)
                    assert server._thread is not None and server._thread.is_alive()
                finally:
                    pg_server.start()
                ack = wait_ack(alice, first.batch_id, timeout=60)
                assert {r.status for r in ack.results} == {AckStatus.ACCEPTED}
                second = batch(market("r-3"))
                alice.send(second)
                assert {r.status for r in wait_ack(alice, second.batch_id, timeout=30).results} == {
                    AckStatus.ACCEPTED}
                assert all(u.is_alive() for u in server.upstreams.values())
            finally:
                alice.close()
        assert sorted(sb.store.accepted_counts().values()) == [1, 1, 1]


def test_s321_relay_runs_on_a_postgresql_url_and_never_shows_its_password(tmp_path: Path, keyring: Keyring,
                                                                          pg_url: str) -> None:
    path = write_relay_toml(tmp_path / "relay", keyring, free_port(), 'plugin = "file"\ndirectory = "out"')
    secret_url = pg_url.replace("s321@", "s321:hunter2-secret@")  # the test server trusts local users
    path.write_text(path.read_text().replace('path = "relay.sqlite"', f'url = "{secret_url}"'))
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "relay", "-c", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("listening on "):
                break
        ledger_line = [line for line in lines if line.startswith("ledger: ")]
        assert ledger_line and ledger_line[0].startswith("ledger: postgresql://s321:***@"), lines
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "hunter2" not in "".join(lines) + out + err and "Traceback" not in err
    assert rows(pg_url, "SELECT to_regclass('relay_outbox') IS NOT NULL") == [(True,)]

"""A world for crash tests: an inbox of records-jsonl files, a daemon (`s321 run`) and a
sandbox (`s321 sandbox`) as real processes on loopback mutual TLS, a SQLite ledger.

The world remembers what its inputs say: every consignment's final content is the one
in the last file that holds it (files are read in name order, so each is named with a
rising sequence and given a strictly later mtime). `assert_every_version_once` checks
the receiver and the ledger against that, record by record.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from builders import marketplace_fields, write_config, write_jsonl
from s321 import ids
from s321.ledger import Ledger
from s321.record import Consignment
from s321.sandbox.certs import DevCerts, ensure_dev_certs
from s321.sandbox.store import SandboxStore
from s321.states import State
from ports import free_port

ORIGINATOR = "CRASH01"
PIPELINE = "crash"
SOURCE = "records-jsonl"
DERIVED = frozenset({"transaction_id", "action", "version", "total_value_usd"})
"""Fields the framework sets: not what an input says."""




def marker(record: dict[str, Any]) -> str | None:
    """The revision mark a changed re-export carries (None in a first export)."""
    return ((record.get("ultimate_deliver_to") or {}).get("address") or {}).get("line2")


def transport_p2p(port: int, certs: DevCerts, ack_timeout: float = 2.0) -> str:
    """The body of a p2p-socket transport table for the sandbox on `port`."""
    return f"""
            plugin = "p2p-socket"
            host = "127.0.0.1"
            port = {port}
            ca = "{certs.ca}"
            cert = {{ file = "{certs.client_cert}" }}
            key = {{ file = "{certs.client_key}" }}
            connect_timeout = 2
            ack_timeout = {ack_timeout}
            window = 3
    """


class World:
    """The input, the config, a sandbox process and daemon processes, in one folder.

    `transport` replaces the body of the pipeline's transport table (default: the
    world's sandbox over p2p-socket, `port`); the sandbox answers `ack_delay` late.
    """

    def __init__(self, tmp: Path, ack_delay: float = 0.0, batch_size: int = 15,
                 transport: str | None = None):
        self.tmp = tmp
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        self.ledger_path = tmp / "ledger.sqlite"
        self.port = free_port()
        self.http_port = free_port()
        self.certs = ensure_dev_certs(tmp / "certs")
        self.sandbox_db = tmp / "sandbox.sqlite"
        self.daemon_log = tmp / "daemon.log"
        self.ack_delay = ack_delay
        # Acks come `ack_delay` late: a shorter timeout would drop every link before its ack.
        ack_timeout = max(2.0, 2 * ack_delay + 1)
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.sandbox_kills = 0
        self.refs: list[str] = []
        self.expected: dict[str, dict[str, Any]] = {}  # ref -> its fields in the last file
        self.revisions: Counter[str] = Counter()
        self._seq = 0
        self._mtime_ns = 0
        self.config = write_config(tmp, f"""
            [ledger]
            path = "{self.ledger_path}"

            [daemon]
            http = "127.0.0.1:{self.http_port}"
            rescan_seconds = 0.2
            poll_interval = 0.05
            shutdown_timeout = 1

            [pipelines.{PIPELINE}]
            originator_code = "{ORIGINATOR}"
            filer_type = "online_marketplace"
            mode_of_transport = "air"
            batch_size = {batch_size}
            settle_seconds = 0
            archive_dir = "{tmp / 'archive'}"

            [pipelines.{PIPELINE}.retry]
            initial = 0.05
            maximum = 0.5
            ack_timeout = {ack_timeout + 1}
            max_elapsed = 3600

            [pipelines.{PIPELINE}.source]
            plugin = "{SOURCE}"
            path = "{self.inbox}"

            [pipelines.{PIPELINE}.transport]
            {transport or transport_p2p(self.port, self.certs, ack_timeout)}
        """)

    # ------------------------------------------------------------------ inputs

    def _drop(self, name: str, records: list[dict[str, Any]]) -> Path:
        """A file written under a temporary name, given a strictly later mtime than
        the one before, then renamed into the inbox: it sorts after every earlier one."""
        self._seq += 1
        final = self.inbox / f"{self._seq:05d}-{name}.jsonl"
        tmpname = self.inbox / f".{final.name}.tmp"
        write_jsonl(tmpname, records)
        self._mtime_ns = max(time.time_ns(), self._mtime_ns + 1_000_000)
        os.utime(tmpname, ns=(self._mtime_ns, self._mtime_ns))
        tmpname.rename(final)
        return final

    def record_fields(self, ref: str) -> dict[str, Any]:
        fields = marketplace_fields(originator_code=ORIGINATOR, tracking_number=f"1Z{ref}")
        revision = self.revisions[ref]
        if revision:
            fields["ultimate_deliver_to"]["address"]["line2"] = f"rev {revision}"
        return {"ref": ref, **fields}

    def add_input(self, name: str, count: int) -> list[str]:
        """A file of `count` consignments never seen before."""
        start = len(self.refs)
        refs = [f"{name}-{i}" for i in range(start, start + count)]
        self.refs += refs
        return self._export(name, refs)

    def change_input(self, name: str, refs: list[str]) -> list[str]:
        """A re-export of existing consignments, each with a new revision mark."""
        for ref in refs:
            assert ref in self.expected, ref
            self.revisions[ref] += 1
        return self._export(name, refs)

    def _export(self, name: str, refs: list[str]) -> list[str]:
        records = [self.record_fields(ref) for ref in refs]
        for record in records:
            self.expected[record["ref"]] = copy.deepcopy(record)
        self._drop(name, records)
        return refs

    def txid(self, ref: str) -> str:
        return ids.transaction_id(ORIGINATOR, SOURCE, ref)

    def expected_ids(self) -> set[str]:
        return {self.txid(r) for r in self.refs}

    # ------------------------------------------------------------------ processes

    def start_sandbox(self, wait: bool = True) -> None:
        """Start `s321 sandbox`; with `wait`, return once it accepts connections."""
        args = [sys.executable, "-m", "s321.cli", "sandbox", "--port", str(self.port),
                "--certs-dir", str(self.tmp / "certs"), "--db", str(self.sandbox_db)]
        if self.ack_delay:
            args += ["--ack-delay", str(self.ack_delay)]
        log = self.tmp / "sandbox.log"
        with log.open("ab") as err:
            self.sandbox = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        if not wait:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.sandbox.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the sandbox did not start: {log.read_text(errors='replace')[-2000:]}")

    def stop_sandbox(self) -> None:
        """SIGKILL: acknowledgements it still owes are lost."""
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox.wait()
            self.sandbox = None

    def kill_sandbox(self) -> None:
        self.stop_sandbox()
        self.sandbox_kills += 1

    def restart_sandbox(self) -> None:
        self.kill_sandbox()
        self.start_sandbox()

    def daemon(self, wait_up: bool = False) -> subprocess.Popen[bytes]:
        """Start `s321 run`; its log goes to daemon.log (a pipe nobody reads would fill
        up and block it)."""
        with self.daemon_log.open("ab") as err:
            proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(self.config)],
                                    stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
        if wait_up:  # a daemon still importing has nothing to shut down cleanly yet
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1).close()
                    return proc
                except OSError:
                    if proc.poll() is not None:
                        raise AssertionError(f"the daemon exited: {self.log_tail()}")
                    time.sleep(0.05)
            raise AssertionError("the daemon did not come up")
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM, and the daemon must shut down cleanly."""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, self.log_tail()

    def log_tail(self) -> str:
        return self.daemon_log.read_text(errors="replace")[-2000:] if self.daemon_log.exists() else ""

    def settle(self, timeout: float = 60.0) -> None:
        """Run the daemon until the ledger says everything is accepted, then stop it.
        Records left `sent` by a killed run are resent by this one and come back as
        duplicates, which the ledger resolves as accepted."""
        proc = self.daemon(wait_up=True)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not self.settled():
                time.sleep(0.2)
        finally:
            self.stop(proc)

    def settled(self) -> bool:
        """Every input file read and every consignment accepted."""
        return not self.unread() and self.ledger_states() == {State.ACCEPTED: len(self.refs)}

    def unread(self) -> list[Path]:
        """Input files the ledger has not recorded as read. (A file read by a daemon
        killed before it could archive it is archived by the next scan.)"""
        files = [p for p in self.inbox.iterdir() if not p.name.startswith(".")]
        if not files or not self.ledger_path.exists():
            return files
        ledger = Ledger(self.ledger_path)
        try:
            unread = []
            for p in files:
                try:
                    st = p.stat()
                except FileNotFoundError:  # archived meanwhile: read
                    continue
                if not ledger.input_seen(PIPELINE, str(p), st.st_size, st.st_mtime_ns):
                    unread.append(p)
            return unread
        finally:
            ledger.close()

    # ------------------------------------------------------------------ what the world holds

    def store(self) -> SandboxStore:
        return SandboxStore(self.sandbox_db)

    def accepted(self) -> dict[str, int]:
        if not self.sandbox_db.exists():
            return {}
        store = self.store()
        try:
            return store.accepted_counts()
        finally:
            store.close()

    def ledger_snapshot(self) -> tuple[Any, ...]:
        """Every row's state, batch and version: changes whenever the daemon does anything."""
        if not self.ledger_path.exists():
            return ()
        db = sqlite3.connect(self.ledger_path, timeout=10)
        try:
            return tuple(db.execute("SELECT transaction_id, state, batch_id, version FROM consignments ORDER BY 1"))
        except sqlite3.OperationalError:
            return ()
        finally:
            db.close()

    def ledger_query(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the ledger file as it is now (empty while it does not exist)."""
        return read_only(self.ledger_path, sql)

    def sandbox_query(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the sandbox's store as it is now, beside the running sandbox."""
        return read_only(self.sandbox_db, sql)

    def ledger_states(self) -> dict[str, int]:
        if not self.ledger_path.exists():
            return {}
        ledger = Ledger(self.ledger_path)
        try:
            return ledger.counts(PIPELINE)
        finally:
            ledger.close()

    def expected_record(self, ref: str) -> dict[str, Any]:
        """The final input of `ref` as the record it files, without derived fields."""
        fields = {k: v for k, v in self.expected[ref].items() if k != "ref"}
        record = Consignment.model_validate({"transaction_id": self.txid(ref), **fields})
        return _content(record.model_dump(mode="json", exclude_none=True))

    # ------------------------------------------------------------------ assertions

    def assert_exactly_once(self) -> None:
        """Adds only: every consignment accepted once, and the ledger says accepted."""
        expected = self.expected_ids()
        accepted = self.accepted()
        missing = expected - set(accepted)
        twice = {t: n for t, n in accepted.items() if n != 1}
        assert not missing, f"{len(missing)} consignments never accepted"
        assert not twice, f"accepted more than once: {twice}"
        assert set(accepted) == expected
        assert self.ledger_states() == {State.ACCEPTED: len(expected)}

    def assert_every_version_once(self, ledgers: Iterable[Path] = ()) -> None:
        """For every consignment of the input: the receiver's last accepted record is
        its final version (revision mark and whole content); no (transaction id,
        version) was accepted twice; accepted versions rise per transaction id; and
        the ledger, and each of `ledgers` (a relay's), agrees with the receiver
        (state, version, content hash)."""
        store = self.store()
        try:
            acceptances = store.acceptances()
            held = store.held()
            last = {self.txid(ref): store.accepted_records(self.txid(ref))[-1:] for ref in self.refs}
        finally:
            store.close()
        expected = self.expected_ids()
        assert set(held) == expected, (f"never accepted: {len(expected - set(held))}, "
                                       f"not in the input: {len(set(held) - expected)}")
        unversioned = [(t, a) for t, a, v, _ in acceptances if v is None]
        assert not unversioned, f"accepted without a version: {unversioned[:5]}"
        twice = {k: n for k, n in Counter((t, v) for t, _, v, _ in acceptances).items() if n > 1}
        assert not twice, f"{len(twice)} versions accepted more than once: {sorted(twice.items())[:5]}"
        seen: dict[str, int] = {}
        for txid, _, version, _ in acceptances:
            assert version is not None
            assert version > seen.get(txid, -1), f"{txid}: version {version} accepted after {seen[txid]}"
            seen[txid] = version
        stale = []
        for ref in self.refs:
            txid = self.txid(ref)
            got = _content(last[txid][0])
            want = self.expected_record(ref)
            if marker(got) != marker(want) or got != want:
                stale.append((ref, marker(want), marker(got)))
        assert not stale, (f"{len(stale)} consignments whose final version the receiver does not hold "
                           f"(ref, want, got): {stale[:10]}")
        for path in (self.ledger_path, *ledgers):
            self.assert_ledger_agrees(path, held)
        assert self.ledger_states() == {State.ACCEPTED: len(expected)}

    def ledger_rows(self, path: Path) -> dict[str, dict[str, Any] | None]:
        """Every expected consignment's row in the ledger at `path` (None where missing)."""
        ledger = Ledger(path)
        try:
            return {txid: ledger.get(txid) for txid in self.expected_ids()}
        finally:
            ledger.close()

    def assert_ledger_agrees(self, path: Path, held: dict[str, tuple[str, int | None, str | None]]) -> None:
        """Every consignment's row in the ledger at `path` says what the receiver holds:
        accepted, at the receiver's version, with its content hash (accepted and current)."""
        rows = self.ledger_rows(path)
        disagree = []
        for txid, row in sorted(rows.items()):
            state, version, digest = held[txid]
            if row is None:
                disagree.append((txid, "no ledger row"))
                continue
            mine = (row["state"], row["accepted_version"], row["accepted_hash"], row["content_hash"])
            theirs = (State.ACCEPTED.value, version, digest, digest)
            if state != "active" or mine != theirs:
                disagree.append((txid, f"ledger {mine} receiver {state} {theirs}"))
        assert not disagree, f"{len(disagree)} rows of {path.name} disagree with the receiver: {disagree[:5]}"


def read_only(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of an SQLite file read as another process would, opened read-only: empty
    while the file or its tables are not made yet."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in DERIVED}

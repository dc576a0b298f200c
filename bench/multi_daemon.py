"""Daemons on a shared PostgreSQL ledger, measured side by side with one on SQLite.

In one run, on the same input (records-jsonl files dropped into an inbox) and a fresh
`s321 sandbox` process each time, over p2p-socket (mutual TLS):

- `sqlite x1`: one daemon (`s321 run`) on a SQLite ledger;
- `postgresql x1`: one daemon on a PostgreSQL ledger;
- `postgresql x2`: two daemons sharing that ledger and the inbox;

each until every record is acknowledged: records per second end to end, and the CPU
per record of every process (each daemon, the sandbox, and the PostgreSQL server with
all its backends). Then the takeover: two daemons on PostgreSQL, the sandbox holding
its acks back; one daemon is SIGKILLed while it holds batches on the wire, and the time
until the other has taken every one of them over (about `lease_seconds`) is measured.

A throw-away PostgreSQL server is started (tests/pgserver.py) unless `--pg-url` names
one (a database the script may fill; give an empty one). Speed is never asserted by
tests; the table goes to docs/performance.md.

    python bench/multi_daemon.py [--records 20000] [--files 40] [--lease 5] [--quick]
                                 [--pg-url postgresql://USER@HOST:PORT/DB]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # pgserver.py, ports.py: the tests' own helpers

from ports import free_port  # noqa: E402

PIPELINE = "shop"
BATCH = 500
WINDOW = 4


# --------------------------------------------------------------------------- input


def record(n: int) -> dict[str, Any]:
    """One valid marketplace consignment (pilot-2019), told apart by its number."""
    buyer = {"name": f"Buyer {n}", "address": {"line1": f"{n % 9000 + 1} Elm St", "city": "Springfield",
                                                "state_or_province": "IL", "postal_code": "62701",
                                                "country": "US"}}
    return {
        "ref": f"#{n}",
        "originator_code": "NWG321", "filer_type": "online_marketplace", "mode_of_transport": "air",
        "tracking_number": f"1ZB{n:012d}",
        "seller": {"name": "Shenzhen Brightwave Trading Co",
                   "address": {"line1": "88 Keji Road", "city": "Shenzhen", "postal_code": "518057",
                               "country": "CN"}},
        "marketplace_seller_id": "S-1001", "identified_marketplace_merchant": True,
        "ultimate_deliver_to": buyer, "customer": buyer,
        "items": [{"description": "Stainless steel vacuum water bottle, 750 ml, matte black",
                   "quantity": 1 + n % 3, "listed_price": "19.99", "currency": "USD",
                   "product_url": "https://shop.example.com/products/bottle-750", "sku": "BTL-750-BLK",
                   "hts_code": "9617000000", "country_of_origin": "CN", "weight_kg": "0.42"}],
    }


def write_inputs(folder: Path, records: int, files: int) -> list[Path]:
    """`records` consignments in `files` JSON Lines files (made once per size)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-records // files)
    paths = []
    for f in range(files):
        path = folder / f"orders-{f:04d}.jsonl"
        first = f * per_file
        count = max(0, min(per_file, records - first))
        if count and not path.exists():
            with path.open("w", encoding="utf-8") as out:
                for n in range(first, first + count):
                    out.write(json.dumps(record(n)) + "\n")
        if count:
            paths.append(path)
    return paths


def drop(paths: list[Path], inbox: Path) -> None:
    """Into the inbox under a temporary name, then renamed: each appears whole."""
    inbox.mkdir(parents=True, exist_ok=True)
    for path in paths:
        tmp = inbox / f".{path.name}.tmp"
        shutil.copyfile(path, tmp)
        tmp.rename(inbox / path.name)


# --------------------------------------------------------------------------- processes


def cpu_of(pid: int, with_children: bool = True) -> float:
    """CPU seconds of a live process (and of its children reaped so far)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(postmaster: int | None) -> float:
    """The PostgreSQL server's CPU seconds: the postmaster, its live backends and those
    that ended (reaped by the postmaster). None when the server is not ours to see."""
    if postmaster is None:
        return 0.0
    total = cpu_of(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += cpu_of(int(stat.parent.name), with_children=False)
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass
class Sandbox:
    proc: subprocess.Popen[bytes]
    port: int
    certs: Path

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def start_sandbox(folder: Path, log: Path, ack_delay: float = 0.0) -> Sandbox:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port_file = folder / "port"
    args = [sys.executable, "-m", "s321.cli", "sandbox", "--port", str(free_port()), "--port-file", str(port_file),
            "--certs-dir", str(folder / "certs"), "--db", str(folder / "sandbox.sqlite")]
    if ack_delay:
        args += ["--ack-delay", str(ack_delay)]
    with log.open("ab") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox did not start; see {log}")
        time.sleep(0.05)
    return Sandbox(proc, int(port_file.read_text()), folder / "certs")


def write_config(path: Path, inbox: Path, ledger: str, sandbox: Sandbox, http: int, lease: float) -> Path:
    path.write_text(f"""\
[ledger]
{ledger}
lease_seconds = {lease}

[daemon]
http = "127.0.0.1:{http}"
rescan_seconds = 0.2
poll_interval = 0.05
shutdown_timeout = 5

[pipelines.{PIPELINE}]
originator_code = "NWG321"
filer_type = "online_marketplace"
mode_of_transport = "air"
batch_size = {BATCH}
settle_seconds = 0
archive_dir = "{inbox.parent / 'archive'}"

[pipelines.{PIPELINE}.retry]
ack_timeout = 600

[pipelines.{PIPELINE}.source]
plugin = "records-jsonl"
path = "{inbox}"

[pipelines.{PIPELINE}.transport]
plugin = "p2p-socket"
host = "127.0.0.1"
port = {sandbox.port}
ca = "{sandbox.certs / 'ca.pem'}"
cert = {{ file = "{sandbox.certs / 'client.pem'}" }}
key = {{ file = "{sandbox.certs / 'client.key'}" }}
window = {WINDOW}
""", encoding="utf-8")
    return path


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    http: int
    identity: str = ""

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("a daemon exited as it started; see the log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=1) as r:
                    text = r.read().decode()
                for line in text.splitlines():
                    if 'daemon="' in line:
                        self.identity = line.split('daemon="', 1)[1].split('"', 1)[0]
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("a daemon did not come up")

    def cpu(self) -> float:
        return cpu_of(self.proc.pid)

    def stop(self) -> float:
        """SIGTERM; its CPU seconds in all (wait4)."""
        self.proc.send_signal(signal.SIGTERM)
        _pid, _status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        return usage.ru_utime + usage.ru_stime


def start_daemon(config: Path, http: int, log: Path) -> Daemon:
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    return Daemon(proc, http)


# --------------------------------------------------------------------------- the ledger


def wait_accepted(where: str, total: int) -> None:
    """Until the ledger at `where` has `total` records accepted (one connection, a
    count every 0.1 s: little beside the daemons' own work)."""
    from s321.ledger_open import open_ledger

    ledger = open_ledger(where)
    try:
        while ledger.counts(PIPELINE).get("accepted", 0) < total:
            time.sleep(0.1)
    finally:
        ledger.close()


@dataclass
class Postgres:
    """The server the PostgreSQL runs use: our own throw-away one, or `--pg-url`'s."""

    url: str | None = None
    server: Any = None
    used: list[str] = field(default_factory=list)

    def new_database(self) -> str:
        if self.server is not None:
            url = self.server.create_database()
            self.used.append(url)
            return url
        import psycopg

        assert self.url is not None
        with psycopg.connect(self.url, autocommit=True) as conn:  # an empty database each run
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return self.url

    def postmaster(self) -> int | None:
        return self.server.postmaster_pid() if self.server is not None else None


# --------------------------------------------------------------------------- runs


def throughput(name: str, daemons: int, backend: str, inputs: list[Path], total: int, work: Path,
               pg: Postgres, lease: float) -> dict[str, Any]:
    """`daemons` daemons on a fresh ledger until every record is acknowledged."""
    folder = work / name.replace(" ", "-")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "run.log"
    sandbox = start_sandbox(folder / "sandbox", log)
    if backend == "sqlite":
        where = str(folder / "ledger.sqlite")
        ledger_line = f'path = "{where}"'
    else:
        where = pg.new_database()
        ledger_line = f'url = "{where}"'
    inbox = folder / "inbox"
    inbox.mkdir()
    procs = []
    for i in range(daemons):
        http = free_port()
        config = write_config(folder / f"daemon{i}.toml", inbox, ledger_line, sandbox, http, lease)
        procs.append(start_daemon(config, http, log))
    for d in procs:
        d.wait_up()
    cpu0 = [d.cpu() for d in procs]
    sandbox0, server0 = sandbox.cpu(), server_cpu(pg.postmaster()) if backend != "sqlite" else 0.0
    t0 = time.perf_counter()
    drop(inputs, inbox)
    wait_accepted(where, total)
    elapsed = time.perf_counter() - t0
    server = server_cpu(pg.postmaster()) - server0 if backend != "sqlite" else None
    sandbox_cpu = sandbox.cpu() - sandbox0
    daemon_cpu = [d.cpu() - c for d, c in zip(procs, cpu0)]
    for d in procs:
        d.stop()
    sandbox.stop()
    per = 1e6 / total
    return {"run": name, "records": total, "seconds": round(elapsed, 2),
            "records_per_second": round(total / elapsed),
            "cpu_us_per_record": {**{f"daemon{i}": round(c * per, 1) for i, c in enumerate(daemon_cpu)},
                                  "sandbox": round(sandbox_cpu * per, 1),
                                  **({"postgresql": round(server * per, 1)} if server is not None else {})}}


def takeover(inputs: list[Path], work: Path, pg: Postgres, lease: float) -> dict[str, Any]:
    """SIGKILL a daemon holding batches on the wire; time until the other holds them all."""
    import psycopg

    folder = work / "takeover"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = folder / "run.log"
    # Acks a little late, so that a daemon has batches on the wire most of the time; the
    # survivor's own window frees as quickly, as with a receiver that answers normally.
    sandbox = start_sandbox(folder / "sandbox", log, ack_delay=min(0.5, lease / 4))
    url = pg.new_database()
    inbox = folder / "inbox"
    inbox.mkdir()
    daemons = []
    for i in range(2):
        http = free_port()
        config = write_config(folder / f"daemon{i}.toml", inbox, f'url = "{url}"', sandbox, http, lease)
        daemons.append(start_daemon(config, http, log))
    for d in daemons:
        d.wait_up()
    drop(inputs, inbox)

    def held_by(owner: str) -> int:
        with psycopg.connect(url) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM consignments WHERE state = 'sent' AND lease_owner = %s",
                                    (owner,)).fetchone()[0])

    victim, survivor = daemons
    deadline = time.monotonic() + 120
    while (held := held_by(victim.identity)) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the first daemon never held a batch on the wire")
        time.sleep(0.02)
    victim.proc.kill()
    killed = time.perf_counter()
    victim.proc.wait()
    while held_by(victim.identity):
        time.sleep(0.02)
    taken = time.perf_counter() - killed
    survivor.stop()
    sandbox.stop()
    return {"run": "takeover", "lease_seconds": lease, "records_held": held,
            "seconds_to_takeover": round(taken, 2)}


# --------------------------------------------------------------------------- report


def table(results: list[dict[str, Any]], take: dict[str, Any] | None) -> str:
    lines = ["| run | records | seconds | records/s | CPU µs/record (each process) |",
             "|---|---:|---:|---:|---|"]
    for r in results:
        cpu = ", ".join(f"{k} {v:g}" for k, v in r["cpu_us_per_record"].items())
        lines.append(f"| {r['run']} | {r['records']} | {r['seconds']} | {r['records_per_second']} | {cpu} |")
    if take is not None:
        lines.append("")
        lines.append(f"Takeover: a daemon SIGKILLed holding {take['records_held']} records on the wire; the other "
                     f"held them all {take['seconds_to_takeover']} s later (lease_seconds = {take['lease_seconds']:g}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=40, help="input files the records are spread over")
    parser.add_argument("--lease", type=float, default=5.0, help="lease_seconds of the PostgreSQL runs")
    parser.add_argument("--pg-url", help="an existing, empty PostgreSQL database (default: start a server)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 600 records in 12 files, lease 2 s")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "s321-bench-multi")
    parser.add_argument("--out", type=Path, default=BENCH / "multi_daemon.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.files, args.lease = 600, 12, 2.0
    inputs = write_inputs(args.work / f"input-{args.records}-{args.files}", args.records, args.files)
    pg = Postgres(url=args.pg_url)
    if pg.url is None:
        from pgserver import PgServer, pg_missing

        reason = pg_missing()
        if reason:
            print(f"cannot start PostgreSQL: {reason}; give --pg-url", file=sys.stderr)
            return 2
        pg.server = PgServer().start()
    try:
        results = [throughput("sqlite x1", 1, "sqlite", inputs, args.records, args.work, pg, args.lease),
                   throughput("postgresql x1", 1, "postgresql", inputs, args.records, args.work, pg, args.lease),
                   throughput("postgresql x2", 2, "postgresql", inputs, args.records, args.work, pg, args.lease)]
        take = takeover(inputs, args.work, pg, args.lease)
    finally:
        if pg.server is not None:
            pg.server.close()
    print(table(results, take))
    args.out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "records": args.records, "files": args.files, "batch_size": BATCH, "window": WINDOW,
        "runs": results, "takeover": take}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

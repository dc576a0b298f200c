"""`make demo`: the bundled samples end to end, through the real CLI.

Starts `s321 sandbox` on a free loopback port (with fault injection so that CBP-side
rejections show up), runs three pipelines (Shopify export, X12 309, Cargo-IMP FHL)
through preview and `run --once` over `p2p-socket`, shows the ledger and the sandbox's
record, then runs again to show that nothing is sent twice. Where OpenSSH's sshd is
installed, a truck carrier then files a trip as an ACE truck eManifest (X12 309) over
`sftp-drop` to the sandbox's drop folder, and ACE's 997 and 355 come back. State lives in build/demo,
which each run starts afresh (ledger, sandbox, inboxes), so that every `make demo` tells
the same story from the beginning (`S321_DEMO_DIR` puts it elsewhere). It ends with the
web console's address and demo logins (`s321 console -c build/demo/s321.toml` serves it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("S321_DEMO_DIR") or ROOT / "build" / "demo")
MARKER = ".s321-demo"  # in every folder the demo made, so that it deletes only its own
SAMPLES = {"shop": "shop/orders_export.csv", "truck": "x12-309", "air": "cargo-imp-fhl/houses.txt"}


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def s321(*args: str, check: bool = False) -> int:
    print(f"$ s321 {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "s321.cli", *args], cwd=ROOT).returncode
    if check and code not in (0, 1):
        raise SystemExit(f"demo: `s321 {' '.join(args)}` failed with exit code {code}")
    return code


def report(*args: str, keep: int = 4) -> None:
    """Run a command whose output is one line per consignment; show the head and tail."""
    print(f"$ s321 {' '.join(args)}", flush=True)
    out = subprocess.run([sys.executable, "-m", "s321.cli", *args], cwd=ROOT, capture_output=True,
                         text=True).stdout.splitlines()
    if len(out) > 2 * keep + 1:
        out = out[:keep] + [f"... ({len(out) - 2 * keep} more lines)"] + out[-keep:]
    print("\n".join(out), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill_inboxes() -> None:
    for pipeline, sample in SAMPLES.items():
        inbox = WORK / "inbox" / pipeline
        inbox.mkdir(parents=True, exist_ok=True)
        source = ROOT / "contrib" / "samples" / sample
        files = sorted(source.glob("*")) if source.is_dir() else [source]
        for f in files:
            shutil.copy(f, inbox / f.name)  # a new file each time, as a new export would be


def fresh_start() -> None:
    """Forget the previous run: its ledger would make this one send nothing, and its
    sandbox would remember what it accepted. Only build/demo, which the demo owns."""
    if WORK.exists() and any(WORK.iterdir()):
        if not (WORK / MARKER).exists() and WORK != ROOT / "build" / "demo":
            raise SystemExit(f"demo: refusing to delete {WORK}: the demo did not make it")
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / MARKER).touch()


def start_sandbox(port: int, drop: Path | None = None) -> subprocess.Popen[bytes]:
    port_file = WORK / "sandbox.port"
    port_file.unlink(missing_ok=True)
    log = (WORK / "sandbox.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "s321.cli", "sandbox", "--port", str(port), "--port-file", str(port_file),
         "--certs-dir", str(WORK / "certs"), "--db", str(WORK / "sandbox.sqlite"),
         "--rates", "CAD=0.73,EUR=1.08,GBP=1.27,HKD=0.128,CNY=0.138",
         # Fault injection: CBP turns down about one record in eight, for the demo's sake.
         "--reject-fraction", "0.12", "--seed", "321",
         *(["--drop", str(drop), "--drop-poll", "0.1"] if drop is not None else [])],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: the sandbox did not start; see {WORK / 'sandbox.log'}")
        time.sleep(0.1)
    return proc


def start_sftp() -> Any:
    """A throw-away OpenSSH sshd serving the sandbox's drop folder (the test suite's own
    launcher, tests/sshd.py), or None where sshd is not installed."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sshd import SshServer, sshd_missing  # noqa: PLC0415 (the demo's only use of the tests' helpers)

    missing = sshd_missing()
    if missing:
        print(f"(the ACE truck step needs an SFTP server: {missing})")
        return None
    try:
        return SshServer(WORK / "sshd").start()
    except Exception as exc:  # the other steps go on without it
        print(f"(the ACE truck step is skipped: sshd did not start: {exc})")
        return None


def ace_truck(sftp: Any) -> None:
    """A truck carrier's trip, filed as an ACE truck 309 over sftp-drop: config/ace-truck.toml
    with the demo's paths, the bundled trip with an estimated arrival three hours ahead."""
    folder = WORK / "ace-truck"
    trips = folder / "trips"
    trips.mkdir(parents=True, exist_ok=True)
    arrival = datetime.now().astimezone() + timedelta(hours=3)
    trip = (ROOT / "contrib" / "samples" / "ace-truck" / "trip.toml").read_text(encoding="utf-8")
    trip = re.sub(r"(?m)^estimated_arrival = .*$", f"estimated_arrival = {arrival.isoformat(timespec='seconds')}",
                  trip)
    trip_path = trips / "NWTK2612070001.toml"
    with os.fdopen(os.open(trip_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(trip)  # crew data: owner-only
    text = (ROOT / "config" / "ace-truck.toml").read_text(encoding="utf-8")
    text = text.replace("../contrib", str(ROOT / "contrib")).replace("../build/ace-truck", str(folder))
    text = text[:text.index("[pipelines.truck.transport]")] + "\n".join([
        "[pipelines.truck.transport]", 'plugin = "sftp-drop"', 'host = "127.0.0.1"', f"port = {sftp.port}",
        f'username = "{sftp.user}"', f'key = "{sftp.user_key.private}"', f'known_hosts = "{sftp.known_hosts()}"',
        "poll_interval = 0.1", "settle_time = 0", "window = 1", ""])
    config = folder / "s321.toml"
    config.write_text(text, encoding="utf-8")
    cfg = str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config)
    banner("ACE truck: the trip file, checked before anything is sent")
    s321("ace", "check-trip", str(trips))
    banner("ACE truck: a carrier's Shopify orders filed as one 309 trip over sftp-drop")
    s321("run", "-c", cfg, "--once", check=True)
    processed = sorted((sftp.root / "inbound" / "processed").glob("*"))
    if processed:
        banner("the 309 on the server (crew segments shown redacted)")
        for line in processed[0].read_text(encoding="ascii").splitlines()[:16]:
            print("[crew segment redacted]~" if line[:4] in ("NM1*", "DMG*", "DMA*", "REF*") else line)
        print("...")
    for answer in sorted(sftp.root.glob("outbound/**/*.355.x12"))[:1]:
        banner("ACE's answer: the 355 (accepted, or rejected with CBP's codes)")
        print(answer.read_text(encoding="ascii"), end="")
    banner("ACE truck: the list for the driver and the broker, with each shipment's state")
    s321("ace", "manifest-list", str(trip_path), "-c", cfg)


CONSOLE_LISTEN = "127.0.0.1:9322"
CONSOLE_USERS = {"broker": ("admin", None, "demo-broker"), "northwind": ("viewer", ["NWG321"], "demo-northwind")}
"""Demo logins: name -> (role, originator codes it may see, password). Demo only."""


def add_console(config: Path) -> None:
    """Append `[console]` and its demo users to the demo's config, each password hashed
    by `s321 console hash-password` as an operator would."""
    lines = [f'\n[console]\nlisten = "{CONSOLE_LISTEN}"\naudit_log = "{WORK}/console-audit.log"\n']
    for name, (role, scope, password) in CONSOLE_USERS.items():
        hashed = subprocess.run([sys.executable, "-m", "s321.cli", "console", "hash-password"], input=password + "\n",
                                capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
        lines.append(f'\n[console.users.{name}]\nrole = "{role}"\npassword_hash = "{hashed}"\n')
        if scope:
            lines.append("originator_codes = [" + ", ".join(f'"{c}"' for c in scope) + "]\n")
    with config.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def check_console(cfg: str) -> bool:
    """Start `s321 console` briefly and fetch its login page: the address printed works."""
    host, port = CONSOLE_LISTEN.rsplit(":", 1)
    proc = subprocess.Popen([sys.executable, "-m", "s321.cli", "console", "-c", cfg], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://{CONSOLE_LISTEN}/login", timeout=2) as page:
                    return page.status == 200
            except OSError:
                time.sleep(0.2)
        return False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    fresh_start()
    port = free_port()
    sftp = start_sftp()
    banner("the CBP sandbox, on a free loopback port, with mutual TLS")
    sandbox = start_sandbox(port, sftp.root if sftp is not None else None)
    print(f"sandbox listening on 127.0.0.1:{port} (log: {WORK / 'sandbox.log'})")
    try:
        config = WORK / "s321.toml"
        template = (ROOT / "contrib" / "demo" / "s321.toml.in").read_text(encoding="utf-8")
        config.write_text(template.format(root=ROOT, work=WORK, port=port), encoding="utf-8")
        add_console(config)
        fill_inboxes()
        cfg = str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config)

        banner("plugins loaded through the s321 entry points")
        s321("plugins")
        banner("the config, and each transport reachable (no data sent)")
        s321("check", "-c", cfg, "--connect", check=True)
        for pipeline in SAMPLES:
            banner(f"preview of pipeline {pipeline}: what each unit became")
            s321("preview", "-c", cfg, "-p", pipeline, check=True)
        banner("run --once: ingest into the ledger, transmit, collect acknowledgements")
        s321("run", "-c", cfg, "--once", check=True)
        banner("the ledger")
        s321("status", "-c", cfg)
        banner("run --once again, with the same input: nothing is sent twice")
        fill_inboxes()
        s321("run", "-c", cfg, "--once", check=True)
        banner("what the sandbox accepted, and how often")
        report("sandbox", "report", "--db", str(WORK / "sandbox.sqlite"))
        if sftp is not None:
            ace_truck(sftp)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if sftp is not None:
            sftp.stop()
    banner("the web console over the ledger (docs/console.md)")
    cfg = str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config)
    works = check_console(cfg)
    print(f"s321 console serves http://{CONSOLE_LISTEN}/" + ("" if works else
          f" (it did not answer here: is {CONSOLE_LISTEN} in use?)"))
    for name, (role, scope, password) in CONSOLE_USERS.items():
        print(f"  log in as {name} / {password}  ({role}" + (f", sees only {', '.join(scope)})" if scope else ")"))
    print(f"  leave it running with:  .venv/bin/s321 console -c {cfg}")
    print(f"\nDone. State is in {WORK}; the next `make demo` starts afresh.")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

"""A throw-away PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries
run by an unprivileged user (PostgreSQL refuses root) in a temporary folder, on a loopback
port from tests/ports.py and a unix socket in that folder, trust authentication, fsync on.

It can be stopped, started, restarted and SIGKILLed (`kill`: the postmaster and its
backends at once, as a machine that dies would leave it); what was committed before a
kill is there after `start`, because the server runs with fsync and synchronous_commit on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ports import free_port

SUPERUSER = "s321"


def pg_bin_dir() -> Path | None:
    """The newest installed /usr/lib/postgresql/<version>/bin that has initdb, or None."""
    found = [d / "bin" for d in Path("/usr/lib/postgresql").glob("*") if (d / "bin" / "initdb").exists()]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _run_as() -> str | None:
    """The unprivileged user the server runs as when we are root; None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def pg_missing() -> str | None:
    """Why a real PostgreSQL server cannot run here, or None."""
    if pg_bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and _run_as() is None:
        return "running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as"
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        return "setpriv is missing (util-linux)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


class PgServer:
    """One PostgreSQL cluster in a temporary folder; `start()` it, `url_for(db)` to connect."""

    def __init__(self, port: int | None = None, *, max_connections: int = 200) -> None:
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError(pg_missing() or "PostgreSQL is not installed")
        self.bindir = bindir
        self.user = _run_as()
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="s321-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.socket_dir = self.folder
        self._process: subprocess.Popen | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)
        self._pg(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-instructions",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(max_connections),
            "shared_buffers": "'32MB'",
            # Durability is under test: a kill must not lose what was committed.
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pgserver.py\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    # -- running the binaries as the unprivileged user ------------------------------------

    def _as_user(self, command: list[str]) -> list[str]:
        """The command run as the unprivileged user: setpriv execs it (no process between)."""
        if self.user is None:
            return command
        entry = pwd.getpwnam(self.user)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
                "--reset-env", *command]

    def _pg(self, tool: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        command = self._as_user([str(self.bindir / tool), *args])
        result = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}\n"
                f"{self.log.read_text() if self.log.exists() else ''}"
            )
        return result

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> PgServer:
        """Start the postmaster as our own child (so a SIGKILLed one is reaped at once, and
        the next start does not take its zombie for a live server) and wait until it answers."""
        if self.postmaster_pid() is not None:
            return self
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self._as_user([str(self.bindir / "postgres"), "-D", str(self.data)]),
                cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def stop(self, timeout: float = 60) -> None:
        """Fast shutdown (SIGINT: sessions ended, a shutdown checkpoint written)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        self._wait_gone([pid], timeout)

    def restart(self, timeout: float = 60) -> PgServer:
        self.stop(timeout)
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once (no shutdown checkpoint)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        family = [pid, *_descendants(pid)]
        for member in family:
            try:
                os.kill(member, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(family, 30)

    def _wait_gone(self, pids: list[int], timeout: float) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(m) for m in pids):
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the server (fast; SIGKILL if it hangs) and remove its folder."""
        try:
            self.stop(timeout=20)
        except Exception:  # noqa: BLE001 - tearing down: kill below
            pass
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, or None when it is not running."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not answer on port {self.port}:\n{self.log.read_text()}")
                time.sleep(0.1)

    # -- databases --------------------------------------------------------------------------

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found

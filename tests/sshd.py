"""A throw-away OpenSSH server for tests and benchmarks: `/usr/sbin/sshd` on a loopback
port with its own config, host key and authorized user key, serving SFTP from a folder.

`SshServer.start()` returns once the server answers with its banner; `stop()` ends the
listener *and* every session process it forked (a real outage, not just no new
logins); `start()` again brings it back on the same port with the same host key.
"""

from __future__ import annotations

import base64
import getpass
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from ports import free_port

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it


def sshd_missing() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if not SSHD.exists():
        return f"OpenSSH server not installed ({SSHD} missing; apt-get install openssh-server)"
    return None


@dataclass
class KeyPair:
    private: Path
    public_line: str  # "ssh-ed25519 AAAA..." as in authorized_keys / known_hosts
    blob: bytes

    @classmethod
    def generate(cls, path: Path, kind: str = "ed25519", passphrase: bytes | None = None) -> KeyPair:
        key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                      else serialization.NoEncryption())
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.OpenSSH, encryption))
        path.chmod(0o600)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode("ascii")
        path.with_name(path.name + ".pub").write_text(line + "\n")
        return cls(path, line, base64.b64decode(line.split()[1]))




@dataclass
class SshServer:
    folder: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root = self.folder / "drop"  # what the SFTP client sees as its start folder
        for sub in ("inbound", "outbound"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.host_key = KeyPair.generate(self.folder / "ssh_host_ed25519_key")
        self.user_key = KeyPair.generate(self.folder / "id_ed25519")
        self.authorized_keys = self.folder / "authorized_keys"
        self.authorized_keys.write_text(self.user_key.public_line + "\n")
        self.log = self.folder / "sshd.log"
        self.config = self.folder / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key.private}",
            f"PidFile {self.folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            f"Subsystem sftp internal-sftp -d {self.root}",
            "LogLevel VERBOSE",
            "",
        ]))

    # ------------------------------------------------------------------ for clients

    def known_hosts(self, path: Path | None = None, line: str | None = None) -> Path:
        """A known_hosts file pinning this server's key (or `line` instead)."""
        path = path or self.folder / "known_hosts"
        path.write_text((line or f"[127.0.0.1]:{self.port} {self.host_key.public_line}") + "\n")
        return path

    # ------------------------------------------------------------------ life cycle

    def start(self, timeout: float = 10.0) -> SshServer:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}:\n{self.log.read_text()}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not answer on port {self.port}:\n{self.log.read_text()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self, hard: bool = False) -> None:
        """Stop the listener and every session it serves (SIGKILL with `hard`)."""
        if self.process is None:
            return
        sig = signal.SIGKILL if hard else signal.SIGTERM
        listener = self.process.pid
        # Session processes call setsid(), so a process-group kill would miss them;
        # they are found as descendants while the listener is still their parent, and get
        # SIGKILL either way (one forked a moment ago may still have the listener's
        # SIGTERM handler, which only sets a flag; its client sees the same cut).
        _signal(listener, signal.SIGSTOP)
        for pid in _descendants(listener):
            _signal(pid, signal.SIGKILL)
        _signal(listener, sig)
        _signal(listener, signal.SIGCONT)  # to act on a SIGTERM
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        # A listener woken by a new connection just before it was stopped accepts it and
        # forks it a session before it acts on the signal: a session no list had, which
        # would serve on after the "outage". Whatever still holds a connection on the
        # server's port is such a session.
        for _ in range(50):
            held = _serving(self.port)
            if not held:
                break
            for pid in held:
                for one in [pid, *_descendants(pid)]:
                    _signal(one, signal.SIGKILL)
            time.sleep(0.01)

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _serving(port: int) -> list[int]:
    """sshd processes holding a TCP socket whose local port is `port`."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "comm").read_text().strip() != "sshd":
                continue
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: parse after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found

"""A scripted receiver for transport `sftp-drop` (and other file-drop transports): a
real SFTP server (OpenSSH `sshd`, started by the test) serves a drop folder, and this
receiver is the far side of it, the one that takes each complete batch file out of
`inbound/` and leaves its acknowledgement file in `outbound/`, as the suite scripts.

It is the wire half of `s321.testing.scripted` for a file drop; the file names and the
ack format are docs/transports-sftp.md's ("On the server"). What an answer says comes
from the base class. Promises: only complete files are read (dot-names are left
alone), an ack appears under its final name only whole (written as a dot-name, then
renamed), a held answer never blocks the next batch, and the server it was given is
serving again (with its keys as they were) when the receiver stops.

Where the protocol has no way to say something, the server does it: the credential is
checked by sshd, so REFUSE_CREDENTIAL empties its authorized_keys; a dropped
connection is sshd stopping (sessions and listener); "busy" is what sshd says past its
MaxStartups, a connection closed before the SSH banner.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from s321.plugins.wire_s321 import S321Json
from s321.testing.scripted import Play, Script, ScriptedReceiver

ACK_SUFFIX = ".ack.json"
PROCESSED = "processed"
REJECTED = "rejected"

MALFORMED_ACK = b'{"format": "s321/1", "batch_id": '
"""What MALFORMED leaves in `outbound/`: the start of an acknowledgement, cut short."""

QUICK_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2.0, "op_timeout": 2.0, "poll_interval": 0.05, "settle_time": 0,
    "reconnect_attempts": 2,
}
"""`sftp-drop` options that keep the suite's checks short: acks looked for every 50 ms,
a response that does not parse set aside at once, a server that is down given up on
after two attempts."""

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class SftpServer(Protocol):
    """What the receiver needs of the server (tests/sshd.py's `SshServer` is one)."""

    port: int
    authorized_keys: Path

    def start(self) -> Any:
        """Serve again (same port, same host key)."""

    def stop(self) -> None:
        """Stop serving: the listener and every session."""


class SftpDropReceiver(ScriptedReceiver):
    """`with SftpDropReceiver(root, options, server) as receiver:` answers the batch
    files dropped in `root/inbound` with ack files in `root/outbound`; `options` is the
    `sftp-drop` table that reaches `server` (QUICK_OPTIONS are added under it).

    How each play travels: ACCEPT, REJECT, PARTIAL: `BATCH_ID.ack.json` at once; LATE:
    the same `delay` seconds later; MALFORMED: `BATCH_ID.ack.json` that is not an
    acknowledgement; DROP: the server stops, and stays down until the receiver stops;
    REFUSE_CREDENTIAL: authorized_keys emptied as soon as the script is queued (sshd
    reads it at each login), until the receiver stops; TIMEOUT: the batch is taken and
    never answered; BUSY: the server stops, and for `retry_after` seconds its port
    closes each connection before the banner, then it serves again.
    """

    def __init__(self, root: str | Path, options: dict[str, Any], server: SftpServer, *,
                 inbound: str = "inbound", outbound: str = "outbound", poll_interval: float = 0.05):
        super().__init__()
        self.server = server
        self.inbound, self.outbound = Path(root) / inbound, Path(root) / outbound
        self.options: dict[str, Any] = {**QUICK_OPTIONS, **options,
                                        "inbound_dir": inbound, "outbound_dir": outbound}
        self.poll_interval = poll_interval
        self.wire = S321Json()
        for folder in (self.inbound / PROCESSED, self.inbound / REJECTED, self.outbound):
            folder.mkdir(parents=True, exist_ok=True)
        self._keys_kept: str | None = None  # authorized_keys as it was before a refusal
        self._down = False  # the server was stopped by a DROP or a BUSY
        self._busy_until = 0.0
        self._busy: socket.socket | None = None
        self._scheduled: list[tuple[float, str, bytes]] = []  # LATE answers: (when, name, body)
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="sftp-drop-receiver", daemon=True)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> SftpDropReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Release held answers, stop watching, and leave the server as it was given."""
        self.release()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._end_busy()
        with self._guard:
            kept, self._keys_kept = self._keys_kept, None
        if kept is not None:
            self.server.authorized_keys.write_text(kept)
        if self._down:
            self._down = False
            self.server.start()

    def play(self, *scripts: Script) -> None:
        super().play(*scripts)
        # sshd checks the key, at the login right after this: refuse it now, not at the
        # next look at the folder, which could come after that login.
        self._refuse_if_scripted()

    # ------------------------------------------------------------------ the loop

    def _serve(self) -> None:
        while not self.released.is_set():
            self._refuse_if_scripted()
            now = time.monotonic()
            with self._guard:
                due = [s for s in self._scheduled if s[0] <= now]
                self._scheduled = [s for s in self._scheduled if s[0] > now]
            for _, name, body in due:
                self._write_ack(name, body)
            if self._busy is not None:
                self._refuse_waiting()
                if now >= self._busy_until:
                    self._end_busy()
                    self.server.start()
                    self._down = False
            for path in self._waiting():
                try:
                    self._take(path)
                except OSError:
                    continue  # taken away meanwhile: the next pass sees what is there
            self.released.wait(self.poll_interval)

    def _waiting(self) -> list[Path]:
        """Complete batch files in `inbound/`, oldest first (dot-names are uploads)."""
        found = []
        with os.scandir(self.inbound) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
                except FileNotFoundError:
                    continue
        return [path for *_, path in sorted(found)]

    def _take(self, path: Path) -> None:
        try:
            batch = self.wire.decode_batch(path.read_bytes())
            if not _SAFE_ID.fullmatch(batch.batch_id):
                raise ValueError("batch_id: letters, digits, '-' and '_' only")
        except Exception:  # not a batch: set aside, as a real receiver would, unanswered
            os.replace(path, self.inbound / REJECTED / path.name)
            return
        os.replace(path, self.inbound / PROCESSED / path.name)
        script = self.script_for_batch()
        ack = self.answer(batch, script)
        name = self._ack_name(batch.batch_id)
        if script.play is Play.MALFORMED:
            self._write_ack(name, MALFORMED_ACK)
        elif script.play is Play.DROP:
            self._down = True
            self.server.stop()
        elif script.play is Play.BUSY:
            self._down = True
            self.server.stop()
            self._start_busy(script.retry_after)
        elif ack is not None and script.play is Play.LATE:
            with self._guard:
                self._scheduled.append((time.monotonic() + script.delay, name, self.wire.encode_ack(ack)))
        elif ack is not None:
            self._write_ack(name, self.wire.encode_ack(ack))
        # TIMEOUT: taken, never answered.

    # ------------------------------------------------------------------ answers

    def _ack_name(self, batch_id: str) -> str:
        """`BATCH_ID.ack.json`, numbered while an earlier answer is still unread."""
        name, n = f"{batch_id}{ACK_SUFFIX}", 0
        while (self.outbound / name).exists():
            n += 1
            name = f"{batch_id}.{n}{ACK_SUFFIX}"
        return name

    def _write_ack(self, name: str, body: bytes) -> None:
        part = self.outbound / f".{name}.part"
        part.write_bytes(body)
        os.replace(part, self.outbound / name)

    # ------------------------------------------------------------------ the server's part

    def _refuse_if_scripted(self) -> None:
        if self.script_for_credential() is None:
            return
        with self._guard:
            if self._keys_kept is None:
                self._keys_kept = self.server.authorized_keys.read_text()
            self.server.authorized_keys.write_text("")

    def _start_busy(self, seconds: int) -> None:
        """Hold the server's port and close each connection at once, as sshd does past
        MaxStartups (the client sees no banner)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                listener.bind(("127.0.0.1", self.server.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    listener.close()
                    return  # the port stays closed: still not served, still retriable
                time.sleep(0.02)
        listener.listen(16)
        listener.setblocking(False)
        self._busy, self._busy_until = listener, time.monotonic() + seconds

    def _refuse_waiting(self) -> None:
        assert self._busy is not None
        while True:
            try:
                conn, _ = self._busy.accept()
            except (BlockingIOError, OSError):
                return
            conn.close()

    def _end_busy(self) -> None:
        busy, self._busy = self._busy, None
        if busy is not None:
            busy.close()


__all__ = ["MALFORMED_ACK", "QUICK_OPTIONS", "SftpDropReceiver", "SftpServer"]

"""The sandbox on a drop folder (what an SFTP server serves): batch files renamed into
`inbound/` are reviewed like batches over the socket, and answered with
acknowledgement files in `outbound/`.

Only complete files are read: names starting with "." (`.B1.json.part` while it is
uploaded) are left alone. An ack appears under its final name only when complete
(written as a dot-name, then renamed). A batch file is moved to `inbound/processed/`
after its ack is written, so a crash in between reviews it again and answers its
records as duplicates: nothing is accepted twice. A file that is not a batch goes to
`inbound/rejected/`, logged by name. An ACE truck 309 (a file that starts with an
X12 ISA) is answered by the ACE desk (core/sandbox/ace.py) with `NAME.997.x12` and
`NAME.355.x12` instead.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

from s321 import private
from s321.contracts import Serializer
from s321.logs import get_logger
from s321.plugins.wire_s321 import S321Json
from s321.sandbox.ace import AceDesk, is_x12
from s321.sandbox.review import Reviewer

log = get_logger(__name__)

PROCESSED = "processed"
REJECTED = "rejected"
ACK_SUFFIX = ".ack.json"
ACE_SUFFIX = ".x12"
# Ack names are made from batch ids only if this tame: never a path from the peer.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class DropSandbox:
    def __init__(self, inbound: Path, outbound: Path, reviewer: Reviewer,
                 serializer: Serializer | None = None, poll_interval: float = 0.2):
        self.inbound = Path(inbound)
        self.outbound = Path(outbound)
        self.reviewer = reviewer
        self.serializer = serializer or S321Json()
        self.poll_interval = poll_interval
        self.faults = reviewer.faults
        self.ace = AceDesk(reviewer.store, reviewer.faults)  # ACE truck 309s dropped beside s321/1 batches
        self.received: Counter[str] = Counter()  # batch id -> times a file held it
        self.rejected_files: list[str] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        for folder in (self.inbound / PROCESSED, self.inbound / REJECTED, self.outbound):
            private.ensure_dir(folder)  # processed/ keeps whole batches

    @classmethod
    def in_folder(cls, folder: Path, reviewer: Reviewer, poll_interval: float = 0.2) -> DropSandbox:
        """The layout `s321 sandbox --drop DIR` serves: DIR/inbound and DIR/outbound."""
        return cls(Path(folder) / "inbound", Path(folder) / "outbound", reviewer,
                   poll_interval=poll_interval)

    # ------------------------------------------------------------------ one pass

    def run_once(self) -> int:
        """Handle every complete batch file now in `inbound/`, oldest first; how many."""
        handled = 0
        for path in self._waiting():
            try:
                self._handle(path)
            except OSError as exc:  # a file that vanished or cannot be moved: next pass
                log.warning("drop file not handled", file=path.name, error=exc.strerror)
                continue
            handled += 1
        return handled

    def _waiting(self) -> list[Path]:
        files = []
        with os.scandir(self.inbound) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    files.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
                except FileNotFoundError:  # taken away since it was listed
                    continue
        return [path for *_, path in sorted(files)]

    def _handle(self, path: Path) -> None:
        body = path.read_bytes()
        if is_x12(body):
            self._handle_ace(path, body)
            return
        try:
            batch = self.serializer.decode_batch(body)
            if not _SAFE_ID.fullmatch(batch.batch_id):
                raise ValueError("batch_id: letters, digits, '-' and '_' only")
        except Exception as exc:  # whatever the serializer raises: the file is not a batch
            os.replace(path, self.inbound / REJECTED / path.name)
            self.rejected_files.append(path.name)
            log.error("drop file is not a batch; moved aside", file=path.name, error=str(exc))
            return
        self.received[batch.batch_id] += 1
        ack = self.reviewer.review(batch)
        self._write_ack(self._ack_name(batch.batch_id), self.serializer.encode_ack(ack))
        os.replace(path, self.inbound / PROCESSED / path.name)
        log.info("drop batch answered", batch_id=batch.batch_id, records=len(batch.records))

    def _handle_ace(self, path: Path, body: bytes) -> None:
        """An ACE truck 309: its 997 and (unless the 997 refuses it) its 355, as
        `NAME.997.x12` and `NAME.355.x12` (numbered like acks when answered again)."""
        answered = self.ace.answer(body, path.name)
        stem = path.stem if _SAFE_ID.fullmatch(path.stem) else "transmission"
        for i, (kind, answer) in enumerate(answered.files):
            if i and self.faults is not None and self.faults.faults.ack_delay:
                time.sleep(self.faults.faults.ack_delay)  # the 355 comes later than the 997
            self._write_ack(self._ack_name(stem, f".{kind}{ACE_SUFFIX}"), answer)
        os.replace(path, self.inbound / PROCESSED / path.name)
        self.received[answered.transmission.interchange_control or path.name] += 1

    def _ack_name(self, batch_id: str, suffix: str = ACK_SUFFIX) -> str:
        """`BATCH_ID.ack.json`, numbered when a batch sent again is answered again
        before the client read the first answer: no ack overwrites another."""
        name, n = f"{batch_id}{suffix}", 0
        while (self.outbound / name).exists():
            n += 1
            name = f"{batch_id}.{n}{suffix}"
        return name

    def _write_ack(self, name: str, body: bytes) -> None:
        final = self.outbound / name
        part = self.outbound / f".{name}.part"
        with os.fdopen(private.create(part), "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, final)

    # ------------------------------------------------------------------ background

    def start(self) -> DropSandbox:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="s321-sandbox-drop", daemon=True)
        self._thread.start()
        log.info("sandbox serving drop folder", inbound=str(self.inbound), outbound=str(self.outbound))
        return self

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # keep serving: a test or demo wants the next batch answered
                log.exception("drop pass failed")
            self._stopping.wait(self.poll_interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> DropSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- CLI wiring


def add_drop_arguments(parser: argparse.ArgumentParser) -> None:
    """`--drop DIR` for `s321 sandbox`: also serve DIR/inbound -> DIR/outbound."""
    parser.add_argument("--drop", type=Path, metavar="DIR",
                        help="also answer batch files dropped in DIR/inbound with "
                             "acknowledgement files in DIR/outbound (the folder an SFTP "
                             "server serves); an ACE truck 309 gets a 997 and a 355")
    parser.add_argument("--drop-poll", type=float, default=0.5, metavar="SECONDS",
                        help="how often the drop folder is looked at (default 0.5)")


def start_drop(args: argparse.Namespace, reviewer: Reviewer) -> DropSandbox | None:
    """Start serving `--drop DIR` if it was given; the caller stops it."""
    if getattr(args, "drop", None) is None:
        return None
    return DropSandbox.in_folder(args.drop, reviewer, poll_interval=args.drop_poll).start()

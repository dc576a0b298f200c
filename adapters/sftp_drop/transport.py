"""Transport `sftp-drop`: batches are dropped as files into the server's inbound folder,
acknowledgements are collected from its outbound folder.

A batch appears under its final name (`BATCH_ID.json`) only complete: it is written as
`.BATCH_ID.json.part` and renamed. A batch already there under its final name (a crash
between upload and bookkeeping) is not uploaded again. An acknowledgement file is
archived or deleted only after it was read and parsed; one that cannot be parsed is
moved to `rejected/` and listed in `bad_responses`, never lost.

What the server says is not trusted: a listed name is used only if it is a plain file
name (no '/', no '..'), and a response is read to at most MAX_ACK_BYTES + 1 bytes
whatever size the listing gave, so a file swapped for a larger one is refused unread
past the cap. Uploaded batches are created owner-only (s321.private): the mode rides
in the OPEN request itself, and folders made on the server are owner-only too.
"""

from __future__ import annotations

import posixpath
import re
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s321 import private
from s321.adapters.sftp_drop.hostkeys import HostKeyPin
from s321.adapters.sftp_drop.options import SftpOptions
from s321.backoff import Backoff, retry
from s321.contracts import Ack, Batch, Capabilities, PipelineContext, Receipt, Serializer
from s321.errors import FatalError, TransportError, classify
from s321.logs import get_logger

if TYPE_CHECKING:  # paramiko (and what it loads) is imported when a link is opened:
    # every s321 command loads this plugin, and most never open an SFTP link.
    import paramiko

    from s321.adapters.sftp_drop.session import SftpSession

log = get_logger(__name__)

PART_SUFFIX = ".part"
ARCHIVE = "archive"
REJECTED = "rejected"
# A remote name is made from a batch id only, and only if the id is this tame: the
# name must never carry anything that came from input data or could leave the folder.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# A name the server lists is used in paths only if it cannot leave the folder.
_PLAIN_NAME = re.compile(r"^(?!\.\.?$)[^/\\\x00]{1,255}$")
# Acknowledgements are small; a bigger file is not one and is moved aside unread,
# so that memory stays flat whatever lands in the folder.
MAX_ACK_BYTES = 16 * 1024 * 1024
MAX_ACKS_PER_POLL = 256
# Below this a file is one or two read requests: a prefetch thread would cost more.
_PREFETCH_FROM = 64 * 1024
_RECONNECT = Backoff(initial=0.25, maximum=5.0)


@dataclass(frozen=True)
class BadResponse:
    """A file in the outbound folder that is not an acknowledgement."""

    name: str
    reason: str
    moved_to: str


def batch_file_name(batch_id: str) -> str:
    if not _SAFE_ID.fullmatch(batch_id):
        raise FatalError(f"batch id {batch_id!r} cannot name a remote file "
                         f"(letters, digits, '-' and '_' only)")
    return f"{batch_id}.json"


def part_name(final_name: str) -> str:
    return f".{final_name}{PART_SUFFIX}"


class SftpDropTransport:
    def __init__(self, options: SftpOptions, context: PipelineContext | None, serializer: Serializer):
        self.options = options
        self.serializer = serializer
        # Acks wait in the outbound folder whatever happens to the connection.
        self.capabilities = Capabilities(max_batch=options.max_batch, window=options.window,
                                         acks_survive_reconnect=True)
        self.bad_responses: list[BadResponse] = []
        self.connections = 0  # sessions opened so far: reuse is observable
        self._session: SftpSession | None = None
        self._posix_rename = True  # until the server says it does not know it
        self._made_folders: set[str] = set()
        self._unparsable: dict[str, float] = {}  # outbound file -> when it first failed to parse
        self._odd_names: set[str] = set()  # listed names refused (each warned about once)

    # ------------------------------------------------------------------ link

    def connect(self) -> None:
        self._live()

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # closing a dead link must not hide why it died
                log.debug("sftp close failed", where=self.options.where)

    def probe(self) -> str:
        """Connect, verify the host key, authenticate, check both folders, close:
        what `s321 check --connect` reports. Sends nothing."""
        session = self._open()
        try:
            return (f"sftp {self.options.where}: host key {session.host_key} verified, "
                    f"authenticated by {session.auth}, folders {self.options.inbound_dir!r} "
                    f"and {self.options.outbound_dir!r} present")
        finally:
            session.close()

    def _live(self) -> SftpSession:
        """The open session, or a new one: reconnecting with backoff, since a server
        that just restarted usually answers within a few seconds."""
        if self._session is not None and self._session.alive():
            return self._session
        self.close()
        self._session = retry(self._open, attempts=self.options.reconnect_attempts, backoff=_RECONNECT)
        return self._session

    def _open(self) -> SftpSession:
        from s321.adapters.sftp_drop.session import load_user_key, open_session

        o = self.options
        pin = HostKeyPin(o.host, o.port, o.known_hosts, o.host_key_fingerprint)
        session = open_session(o, pin, load_user_key(o))
        self.connections += 1
        try:
            for folder, option in ((o.inbound_dir, "inbound_dir"), (o.outbound_dir, "outbound_dir")):
                if not _is_dir(session.sftp, folder):
                    raise FatalError(f"sftp {o.where}: remote folder {folder!r} ({option}) "
                                     f"does not exist")
        except BaseException:
            session.close()
            raise
        log.info("sftp connected", where=o.where, host_key=session.host_key, auth=session.auth)
        return session

    def _failed(self, exc: BaseException, doing: str) -> TransportError:
        """The error to raise; a session that an error left unusable is dropped so the
        next call reconnects instead of failing on a dead link."""
        if self._session is not None and (_is_connection_failure(exc) or not self._session.alive()):
            self.close()
        err = classify(exc)
        return type(err)(f"sftp {self.options.where}: {doing}: {err}")

    # ------------------------------------------------------------------ batches

    def send(self, batch: Batch) -> Receipt:
        final_name = batch_file_name(batch.batch_id)
        body = self.serializer.encode_batch(batch)
        session = self._live()
        final = posixpath.join(self.options.inbound_dir, final_name)
        part = posixpath.join(self.options.inbound_dir, part_name(final_name))
        try:
            present = _size(session.sftp, final)
            if present == len(body):
                log.info("batch already on the server", where=self.options.where, batch_id=batch.batch_id)
                return Receipt(batch_id=batch.batch_id, detail=f"{final} (already on the server)")
            if present is not None:
                log.warning("replacing a batch file of another size", batch_id=batch.batch_id,
                            size_there=present, size_now=len(body))
            with _create_private(session.sftp, part) as fh:
                # Again, for servers that ignore the mode given on OPEN.
                fh.chmod(private.file_mode())
                fh.set_pipelined(self.options.pipelined)
                fh.write(body)
            # close() above collected every pipelined write reply: a write that failed
            # has raised by now, so only a complete file is renamed into place.
            self._rename(session.sftp, part, final)
        except Exception as exc:
            raise self._failed(exc, f"upload of {final_name}") from exc
        return Receipt(batch_id=batch.batch_id, detail=final)

    def _rename(self, sftp: paramiko.SFTPClient, source: str, target: str) -> None:
        """Atomic replace where the server offers posix-rename@openssh.com; plain SFTP
        rename (which refuses an existing target) where it does not."""
        if self._posix_rename:
            try:
                sftp.posix_rename(source, target)
                return
            except OSError as exc:
                if exc.errno is not None or "unsupported" not in str(exc).lower():
                    raise
                self._posix_rename = False
                log.info("server has no posix-rename; using plain rename", where=self.options.where)
        if _size(sftp, target) is not None:
            sftp.remove(target)  # plain SFTP rename refuses an existing target
        sftp.rename(source, target)

    # ------------------------------------------------------------------ acknowledgements

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            found = self._poll()
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            time.sleep(min(self.options.poll_interval, remaining))

    def _poll(self) -> list[Ack]:
        session = self._live()
        outbound = self.options.outbound_dir
        found: list[Ack] = []
        try:
            entries = [e for e in session.sftp.listdir_attr(outbound)
                       if stat.S_ISREG(e.st_mode or 0) and not e.filename.startswith(".")
                       and self._plain_name(e.filename)]
            entries.sort(key=lambda e: (e.st_mtime or 0, e.filename))
            listed = {e.filename for e in entries}
            self._unparsable = {n: t for n, t in self._unparsable.items() if n in listed}
            for entry in entries[:MAX_ACKS_PER_POLL]:
                ack = self._read(session.sftp, entry)
                if ack is None:
                    continue
                # Held before the file is archived: if archiving fails the ack is still
                # handed over, and read again next time (a repeated ack is harmless,
                # a lost one would leave records `sent` until resent).
                found.append(ack)
                self._consume(session.sftp, entry.filename)
        except Exception as exc:
            err = self._failed(exc, f"poll of {outbound!r}")
            if not found:
                raise err from exc
            log.warning("sftp poll interrupted", where=self.options.where, error=str(err))
        return found

    def _plain_name(self, name: str) -> bool:
        """Whether a listed name names a file in the outbound folder itself."""
        if _PLAIN_NAME.match(name):
            return True
        if name not in self._odd_names and len(self._odd_names) < 1000:
            self._odd_names.add(name)
            log.warning("sftp server listed a name that is not a plain file name; ignored",
                        where=self.options.where, name=repr(name[:80]))
        return False

    def _read(self, sftp: paramiko.SFTPClient, entry: paramiko.SFTPAttributes) -> Ack | None:
        """The acknowledgement in one outbound file, or None: a file that is not one is
        set aside (after `settle_time`, in case the server was still writing it)."""
        name, size = entry.filename, entry.st_size or 0
        if size > MAX_ACK_BYTES:
            self._set_aside(sftp, name, f"larger than {MAX_ACK_BYTES} bytes")
            return None
        with sftp.open(posixpath.join(self.options.outbound_dir, name), "rb") as fh:
            if size > _PREFETCH_FROM:
                fh.prefetch(size)
            # The listing's size is only what the server said then: read one byte past
            # the cap at most, so that a file swapped since cannot be read whole.
            body = fh.read(MAX_ACK_BYTES + 1)
        if len(body) > MAX_ACK_BYTES:
            self._set_aside(sftp, name, f"larger than {MAX_ACK_BYTES} bytes")
            return None
        try:
            ack = self.serializer.decode_ack(body)
        except Exception as exc:  # any serializer's parse error: the file is not an ack
            first = self._unparsable.setdefault(name, time.monotonic())
            if time.monotonic() - first >= self.options.settle_time:
                del self._unparsable[name]
                self._set_aside(sftp, name, f"{type(exc).__name__}: {exc}")
            return None
        self._unparsable.pop(name, None)
        return ack

    def _consume(self, sftp: paramiko.SFTPClient, name: str) -> None:
        if self.options.after_read == "delete":
            sftp.remove(posixpath.join(self.options.outbound_dir, name))
        else:
            self._move(sftp, name, ARCHIVE)

    def _set_aside(self, sftp: paramiko.SFTPClient, name: str, reason: str) -> None:
        moved_to = self._move(sftp, name, REJECTED)
        self.bad_responses.append(BadResponse(name, reason, moved_to))
        log.error("sftp response is not an acknowledgement; moved aside", where=self.options.where,
                  file=name, moved_to=moved_to, reason=reason)

    def _move(self, sftp: paramiko.SFTPClient, name: str, folder: str) -> str:
        """Move outbound/NAME into outbound/FOLDER/, creating FOLDER on first use. An
        earlier file of the same name there is kept: the new one gets a suffix."""
        target_dir = posixpath.join(self.options.outbound_dir, folder)
        if target_dir not in self._made_folders:
            if not _is_dir(sftp, target_dir):
                sftp.mkdir(target_dir, mode=private.dir_mode())
            self._made_folders.add(target_dir)
        target = posixpath.join(target_dir, name)
        if _size(sftp, target) is not None:
            target = f"{target}.{time.time_ns()}"
        self._rename(sftp, posixpath.join(self.options.outbound_dir, name), target)
        return target


def _create_private(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
    """`sftp.open(path, "wb")`, with the file created owner-only by the OPEN request.

    The batch holds personal data, and a chmod after opening comes a round trip late:
    another account that opened the file in between keeps its descriptor and reads the
    batch. SFTP's OPEN carries attributes, which OpenSSH passes to open(2); paramiko's
    `open` sends none, so the request is made here, through paramiko internals. Where
    those are missing, or the server refuses the attributes, this is a plain open (and
    the caller's chmod the only protection)."""
    try:
        from paramiko.sftp import (CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_TRUNC,
                                   SFTP_FLAG_WRITE)
        from paramiko.sftp_attr import SFTPAttributes
        from paramiko.sftp_file import SFTPFile

        request, remote_path = sftp._request, sftp._adjust_cwd(path)
    except (ImportError, AttributeError) as exc:
        log.debug("paramiko cannot send a mode with OPEN; chmod after open only", error=repr(exc))
        return sftp.open(path, "wb")
    attributes = SFTPAttributes()
    attributes.st_mode = private.file_mode()
    try:
        kind, reply = request(CMD_OPEN, remote_path,
                              SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC, attributes)
    except OSError as exc:
        # A status without an errno is a plain "failure" or "unsupported"; a missing
        # folder, a permission or a dead link would fail a plain open just the same.
        if exc.errno is not None or _is_connection_failure(exc):
            raise
        log.debug("sftp server refused a mode with OPEN; chmod after open only", error=str(exc))
        return sftp.open(path, "wb")
    if kind != CMD_HANDLE:
        raise OSError(f"sftp server answered OPEN of {path} with message type {kind}, not a handle")
    return SFTPFile(sftp, reply.get_binary(), "wb")


def _size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    """Size of a remote file, or None where there is none."""
    try:
        size = sftp.stat(path).st_size
    except FileNotFoundError:
        return None
    return -1 if size is None else int(size)  # there, size not told: never "the same size"


def _is_dir(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        return stat.S_ISDIR(sftp.stat(path).st_mode or 0)
    except FileNotFoundError:
        return False


def _is_connection_failure(exc: BaseException) -> bool:
    """session.is_connection_failure, for a transport that has a session (so paramiko
    is loaded already)."""
    from s321.adapters.sftp_drop.session import is_connection_failure

    return is_connection_failure(exc)

"""The sandbox server: a TLS listener with one thread per client connection, so a slow
or silent client never holds up another; and `Sandbox`, the same in-process on a
free loopback port with dev certificates, for tests and demos.

It keeps serving when peers hold connections open: a connection must finish TLS and
HELLO within `handshake_timeout` (3 s); at most `max_handshakes` may be handshaking
at once and at most `max_per_peer` connections come from one address; when all
`max_connections` slots are taken, a newcomer takes the slot of the oldest connection
still handshaking, else of the longest-idle authenticated one (told `unavailable`).
"""

from __future__ import annotations

import errno
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from s321.contracts import Serializer
from s321.framing import DEFAULT_MAX_FRAME
from s321.logs import get_logger
from s321.plugins.wire_s321 import S321Json
from s321.sandbox.certs import DevCerts, ensure_dev_certs, server_context
from s321.sandbox.connection import Connection, Identities, Settings, close_gently
from s321.sandbox.faults import Faults, FaultState
from s321.sandbox.review import Reviewer
from s321.sandbox.store import SandboxStore

log = get_logger(__name__)


def _reset(sock: socket.socket) -> None:
    """Close so the peer sees a reset (a refused connection), not an orderly close."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked reading `sock` (in a TLS handshake): shut the socket down
    at the OS level, leaving the TLS object to the thread that owns it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass


@dataclass(eq=False)
class _Slot:
    """One accepted connection, from accept until its thread ends or it is evicted."""

    ip: str
    sock: socket.socket
    started: float = field(default_factory=time.monotonic)
    connection: Connection | None = None  # set once TLS is up: authenticated
    finished: bool = False  # its socket may be closed: never touch it again


class SandboxServer:
    def __init__(self, context: ssl.SSLContext, reviewer: Reviewer, faults: FaultState, *,
                 host: str = "127.0.0.1", port: int = 0, max_frame: int = DEFAULT_MAX_FRAME,
                 idle_timeout: float = 300.0, handshake_timeout: float = 3.0,
                 max_connections: int = 256, max_per_peer: int = 32, max_handshakes: int = 64,
                 serializers: Mapping[str, Serializer] | None = None,
                 identities: Identities | None = None):
        if context.verify_mode is not ssl.CERT_REQUIRED:
            raise ValueError("the sandbox server requires client certificates")
        self.context = context
        self.reviewer = reviewer
        self.faults = faults
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.max_handshakes = min(max_handshakes, max_connections)
        json = S321Json()
        self.settings = Settings(serializers=serializers or {json.name: json}, max_frame=max_frame,
                                 idle_timeout=idle_timeout, handshake_timeout=handshake_timeout,
                                 identities=identities)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._clients: set[threading.Thread] = set()
        self._clients_lock = threading.Lock()
        self._slots: set[_Slot] = set()  # under _clients_lock
        self._per_ip: Counter[str] = Counter()
        self.evictions = 0

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # create_server sets SO_REUSEADDR: a restarted sandbox gets its port back at once.
        try:
            listener = socket.create_server((self.host, self.port), family=family, backlog=128)
        except OverflowError:  # raised as bind() raises every other address it refuses
            raise OSError(errno.EINVAL, "the port must be 0-65535") from None
        listener.settimeout(0.2)  # the accept loop looks at the stop flag between waits
        self._listener = listener
        self.port = listener.getsockname()[1]
        self.faults.started()
        self._acceptor = threading.Thread(target=self._accept_loop, name="s321-sandbox-accept",
                                          daemon=True)
        self._acceptor.start()
        log.info("sandbox listening", host=self.host, port=self.port)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes a waiting accept() on Linux
            except OSError:
                pass
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        if self._listener is not None:
            self._listener.close()
        with self._clients_lock:
            clients = list(self._clients)
        for thread in clients:
            thread.join(timeout)
        log.info("sandbox stopped", port=self.port)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                raw, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.warning("accept failed", error=type(exc).__name__)
                self._stopping.wait(0.1)  # e.g. out of file descriptors: do not spin
                continue
            if self.faults.refusing():
                _reset(raw)
                continue
            slot = self._admit(raw, address[0])
            if slot is None:
                _reset(raw)
                continue
            peer = f"{address[0]}:{address[1]}"
            thread = threading.Thread(target=self._serve_client, args=(slot, peer),
                                      name=f"s321-sandbox-{peer}", daemon=True)
            with self._clients_lock:
                self._clients.add(thread)
            thread.start()

    # ------------------------------------------------------------------ slots

    def _admit(self, raw: socket.socket, ip: str) -> _Slot | None:
        """A slot for a new connection, making room if need be; None to refuse it."""
        with self._clients_lock:
            if self._per_ip[ip] >= self.max_per_peer:
                log.warning("connection refused: too many from one address", ip=ip,
                            limit=self.max_per_peer)
                return None
            handshaking = [s for s in self._slots if s.connection is None]
            if len(handshaking) >= self.max_handshakes:
                self._evict(min(handshaking, key=lambda s: s.started))
            if len(self._slots) >= self.max_connections:
                victim = self._victim()
                if victim is None:
                    return None
                self._evict(victim)
            slot = _Slot(ip, raw)
            self._slots.add(slot)
            self._per_ip[ip] += 1
            return slot

    def _victim(self) -> _Slot | None:
        """Whose slot a newcomer takes: the oldest still handshaking (a real client
        gets through TLS in milliseconds), else the longest idle authenticated one."""
        handshaking = [s for s in self._slots if s.connection is None]
        if handshaking:
            return min(handshaking, key=lambda s: s.started)
        sessions = [s for s in self._slots if s.connection is not None]
        if sessions:
            return min(sessions, key=lambda s: s.connection.last_active)  # type: ignore[union-attr]
        return None

    def _evict(self, slot: _Slot) -> None:
        """Free `slot` now (caller holds the lock); its thread ends shortly after."""
        self._release(slot)
        self.evictions += 1
        if slot.connection is not None:
            slot.connection.evicted.set()  # told `unavailable` between frames
        elif not slot.finished:
            _shutdown(slot.sock)  # the handshake fails at once

    def _release(self, slot: _Slot) -> None:
        if slot in self._slots:
            self._slots.discard(slot)
            self._per_ip[slot.ip] -= 1
            if self._per_ip[slot.ip] <= 0:
                del self._per_ip[slot.ip]

    def _serve_client(self, slot: _Slot, peer: str) -> None:
        raw = slot.sock
        try:
            # Frames are small request/replies: without this each reply can wait for the
            # peer's delayed ACK (some 40 ms) behind the TLS records before it.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(self.settings.handshake_timeout)
            tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            with self._clients_lock:
                slot.sock = tls  # `raw` gave its descriptor to `tls`
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake failed", peer=peer,
                         reason=getattr(exc, "reason", None) or type(exc).__name__)
                with self._clients_lock:
                    slot.finished = True
                close_gently(tls)
                return
            connection = Connection(tls, peer, self.settings, self.reviewer, self.faults,
                                    self._stopping)
            with self._clients_lock:
                slot.connection = connection
                if slot not in self._slots:  # evicted during the handshake
                    connection.evicted.set()
            connection.run()
        except Exception as exc:  # never let one client take the server down
            log.error("client thread failed", peer=peer, error=type(exc).__name__)
        finally:
            with self._clients_lock:
                slot.finished = True
                self._release(slot)
                self._clients.discard(threading.current_thread())
            raw.close()


class Sandbox:
    """A sandbox in this process, on a loopback port, with dev certificates made in
    `folder/certs` and its store in `folder/sandbox.sqlite` (unless `db` is given).

        with Sandbox(tmp_path).start() as sandbox:
            options = P2POptions.model_validate(sandbox.transport_options())
    """

    def __init__(self, folder: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None, rates: dict[str, Decimal] | None = None,
                 profile_paths: Iterable[Path] = (), max_frame: int = DEFAULT_MAX_FRAME,
                 idle_timeout: float = 300.0, db: str | Path | None = None,
                 certs: DevCerts | None = None, identities: Identities | None = None,
                 **limits: Any):
        folder = Path(folder)
        self.certs = certs or ensure_dev_certs(folder / "certs")
        self.store = SandboxStore(db or folder / "sandbox.sqlite")
        self.faults = FaultState(faults or Faults())
        reviewer = Reviewer(self.store, rates, profile_paths, self.faults)
        context = server_context(self.certs.server_cert, self.certs.server_key, self.certs.ca)
        self.server = SandboxServer(context, reviewer, self.faults, host=host, port=port,
                                    max_frame=max_frame, idle_timeout=idle_timeout,
                                    identities=identities, **limits)

    def start(self) -> Sandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.store.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca_path(self) -> Path:
        return self.certs.ca

    @property
    def client_cert(self) -> Path:
        return self.certs.client_cert

    @property
    def client_key(self) -> Path:
        return self.certs.client_key

    def transport_options(self, **overrides: Any) -> dict[str, Any]:
        """A `p2p-socket` options table pointing at this sandbox and its dev certs."""
        return {"host": self.host, "port": self.port, "ca": str(self.ca_path),
                "cert": {"file": str(self.client_cert)}, "key": {"file": str(self.client_key)},
                **overrides}

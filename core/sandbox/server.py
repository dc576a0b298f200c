"""The sandbox server: a TLS listener with one thread per client connection, so a slow
or silent client never holds up another; and `Sandbox`, the same in-process on a
free loopback port with dev certificates, for tests and demos.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from s321.contracts import Serializer
from s321.framing import DEFAULT_MAX_FRAME
from s321.logs import get_logger
from s321.plugins.wire_s321 import S321Json
from s321.sandbox.certs import DevCerts, ensure_dev_certs, server_context
from s321.sandbox.connection import Connection, Settings, close_gently
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


class SandboxServer:
    def __init__(self, context: ssl.SSLContext, reviewer: Reviewer, faults: FaultState, *,
                 host: str = "127.0.0.1", port: int = 0, max_frame: int = DEFAULT_MAX_FRAME,
                 idle_timeout: float = 300.0, handshake_timeout: float = 10.0,
                 max_connections: int = 256, serializers: Mapping[str, Serializer] | None = None):
        if context.verify_mode is not ssl.CERT_REQUIRED:
            raise ValueError("the sandbox server requires client certificates")
        self.context = context
        self.reviewer = reviewer
        self.faults = faults
        self.host = host
        self.port = port
        self.max_connections = max_connections
        json = S321Json()
        self.settings = Settings(serializers=serializers or {json.name: json}, max_frame=max_frame,
                                 idle_timeout=idle_timeout, handshake_timeout=handshake_timeout)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._clients: set[threading.Thread] = set()
        self._clients_lock = threading.Lock()

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # create_server sets SO_REUSEADDR: a restarted sandbox gets its port back at once.
        listener = socket.create_server((self.host, self.port), family=family, backlog=128)
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
            with self._clients_lock:
                busy = len(self._clients) >= self.max_connections
            if busy or self.faults.refusing():
                _reset(raw)
                continue
            peer = f"{address[0]}:{address[1]}"
            thread = threading.Thread(target=self._serve_client, args=(raw, peer),
                                      name=f"s321-sandbox-{peer}", daemon=True)
            with self._clients_lock:
                self._clients.add(thread)
            thread.start()

    def _serve_client(self, raw: socket.socket, peer: str) -> None:
        try:
            raw.settimeout(self.settings.handshake_timeout)
            tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake failed", peer=peer,
                         reason=getattr(exc, "reason", None) or type(exc).__name__)
                close_gently(tls)
                return
            Connection(tls, peer, self.settings, self.reviewer, self.faults, self._stopping).run()
        except Exception as exc:  # never let one client take the server down
            log.error("client thread failed", peer=peer, error=type(exc).__name__)
        finally:
            raw.close()
            with self._clients_lock:
                self._clients.discard(threading.current_thread())


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
                 certs: DevCerts | None = None):
        folder = Path(folder)
        self.certs = certs or ensure_dev_certs(folder / "certs")
        self.store = SandboxStore(db or folder / "sandbox.sqlite")
        self.faults = FaultState(faults or Faults())
        reviewer = Reviewer(self.store, rates, profile_paths, self.faults)
        context = server_context(self.certs.server_cert, self.certs.server_key, self.certs.ca)
        self.server = SandboxServer(context, reviewer, self.faults, host=host, port=port,
                                    max_frame=max_frame, idle_timeout=idle_timeout)

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

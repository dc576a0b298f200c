"""The broker relay: a ZeroMQ ROUTER with CURVE encryption, where a ZAP allow-list lets
in only the client keys listed in relay.toml. A batch is stored in the relay ledger
(with its routes) before its receipt goes out, so a relay that dies loses nothing;
acks go back to the client that sent each record, also after either side restarts.

Several relays may share one PostgreSQL ledger (`[ledger] url`) and serve one broker's
clients: each takes batches from the clients connected to it, the records are forwarded
by whichever relay claims them first (leases, as daemons share a ledger), and an answer
waits in the shared outbox until the relay its client is connected to sends it on.

It keeps serving under load: a peer must finish the CURVE handshake (and the ZAP
check) within `handshake_timeout`, each peer's queues are bounded by high-water marks
(a slow or hostile peer cannot make the relay buffer without limit), and a control
body that is not usable JSON (nested 100,000 deep, say) is `malformed-message`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import zmq
from s321 import regimes
from s321.contracts import Ack, RecordAck, Serializer
from s321.ledger import Ledger, LedgerUnavailable
from s321.ledger_open import open_ledger
from s321.logs import get_logger
from s321.observers import Observers
from s321.registry import Registry
from s321.relay import keys, protocol
from s321.relay.config import LoadedRelay, RelayClient
from s321.relay.intake import Intake, Refused
from s321.relay.routes import Routes
from s321.relay.upstream import ClientUpstream
from zmq.auth.thread import ThreadAuthenticator

log = get_logger(__name__)

ZAP_DOMAIN = "s321-relay"
_POLL_MS = 100
_REDELIVER_TICK = 1.0
HIGH_WATER_MARK = 1000
"""Messages queued per peer, each way, before the relay stops taking (in) or sending
(out) more for that peer: ZeroMQ's default, set here so that it is a promise."""


class _Gone(Exception):
    """The peer of a routing id is not connected (any more)."""


class AllowList:
    """ZAP credentials provider: a client gets in only with a listed public key."""

    def __init__(self, public_keys: dict[str, str]):
        self._names = {key.encode("ascii"): name for key, name in public_keys.items()}

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self._names
        if not allowed:
            # A public key is not secret: log it so the broker can add it if meant to.
            log.warning("relay refused an unknown client key", public_key=key.decode("ascii", "replace"))
        return allowed


class RelayServer:
    """`start()` binds and returns; `stop()` drains nothing and loses nothing (what is
    in flight is in the ledger). Usable in-process: `endpoint` is the bound address."""

    handshake_timeout = 3.0
    """Seconds a new connection has to finish the CURVE handshake (tests shorten it)."""

    def __init__(self, loaded: LoadedRelay, registry: Registry | None = None):
        self.loaded = loaded
        self.config = loaded.config
        self.by_key = {c.config.public_key: c for c in loaded.clients.values()}
        self.serializer: Serializer = loaded.serializer.factory()
        self.observers = Observers(registry.pm) if registry is not None else None
        self.public_key = keys.public_of(self.config.relay.secret_key.get_secret_value())
        self.endpoint: str | None = None
        self.upstreams: dict[str, ClientUpstream] = {}
        self._stopping = threading.Event()
        self._notified: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._sessions: dict[tuple[str, str], bytes] = {}
        self._ctx: zmq.Context[Any] | None = None
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._thread: threading.Thread | None = None
        self.ledger: Ledger | None = None
        self.routes: Routes | None = None
        self.intake: Intake | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> RelayServer:
        cfg = self.config
        self.ledger = open_ledger(cfg.ledger, held=True, holder="s321 relay")
        try:
            self.routes = Routes(self.ledger)
        except BaseException:
            self.ledger.close()
            raise
        self.intake = Intake(self.ledger, self.routes, regimes.available(cfg.profile_paths))
        self._ctx = zmq.Context()
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, AllowList(
            {c.config.public_key: c.name for c in self.loaded.clients.values()}))
        sock = self._ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_secretkey = cfg.relay.secret_key.get_secret_value().encode("ascii")
        sock.curve_publickey = self.public_key.encode("ascii")
        # Fail closed: without a ZAP handler answering for this domain, libzmq would let
        # any CURVE client in; enforced, nobody gets in.
        sock.zap_domain = ZAP_DOMAIN.encode("ascii")
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.setsockopt(zmq.LINGER, 0)
        # An unknown or gone peer raises instead of the message vanishing unseen.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A peer cannot make the relay hold more than this for one message.
        sock.setsockopt(zmq.MAXMSGSIZE, cfg.relay.max_message)
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(cfg.relay.heartbeat_interval * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(cfg.relay.heartbeat_timeout * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, int(cfg.relay.heartbeat_timeout * 1000))
        # A connection that never finishes its handshake is closed, not kept for ever.
        sock.setsockopt(zmq.HANDSHAKE_IVL, int(self.handshake_timeout * 1000))
        sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        try:
            sock.bind(cfg.relay.bind)
        except zmq.ZMQError:
            sock.close()
            self._shutdown_context()
            self._close_files()
            raise
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._socket = sock
        for client in self.loaded.clients.values():
            upstream = ClientUpstream(client, self.ledger, self.routes, self.loaded.serializer,
                                      self.observers, self._notify, self.loaded.base_dir,
                                      cfg.relay.poll_interval)
            self.upstreams[client.name] = upstream
            upstream.start()
        self._thread = threading.Thread(target=self._serve, name="s321-relay-router", daemon=True)
        self._thread.start()
        log.info("relay listening", endpoint=self.endpoint, clients=len(self.loaded.clients))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for upstream in self.upstreams.values():
            upstream.stop()
        for upstream in self.upstreams.values():
            upstream.join(timeout)
        self._shutdown_context()
        self._close_files()
        log.info("relay stopped", endpoint=self.endpoint)

    def _close_files(self) -> None:
        if self.routes is not None:
            self.routes.close()
        if self.ledger is not None:
            self.ledger.close()

    def _shutdown_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            if self._thread is not None and self._thread.is_alive():
                self._ctx.destroy(linger=0)  # the router thread is stuck: do not wait on it
            else:
                self._ctx.term()

    def __enter__(self) -> RelayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _notify(self, client: str, session: str) -> None:
        self._notified.put((client, session))

    # ------------------------------------------------------------------ the router loop

    def _serve(self) -> None:
        sock = self._socket
        assert sock is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        next_redeliver = time.monotonic() + _REDELIVER_TICK
        try:
            while not self._stopping.is_set():
                if poller.poll(_POLL_MS):
                    for _ in range(100):  # then look at deliveries, so both keep moving
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._safely(self._handle, frames)
                due: set[tuple[str, str]] = set()
                while True:
                    try:
                        due.add(self._notified.get_nowait())
                    except queue.Empty:
                        break
                if time.monotonic() >= next_redeliver:
                    next_redeliver = time.monotonic() + _REDELIVER_TICK
                    assert self.routes is not None
                    try:
                        due.update(self.routes.waiting(time.time() - self.config.relay.redeliver_seconds))
                    except LedgerUnavailable as exc:  # the database restarts: the next tick tries again
                        log.warning("relay cannot read its outbox", error=str(exc))
                for client, session in due:
                    self._safely(self._deliver, client, session)
        finally:
            sock.close(linger=0)

    def _safely(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except LedgerUnavailable as exc:  # the database restarts: the client's resend or the next tick retries
            log.warning("relay failed on a message: its ledger is unavailable", error=str(exc))
        except Exception:  # one bad message or a busy disk must not stop the relay
            log.exception("relay failed on a message")

    def _handle(self, frames: list[zmq.Frame]) -> None:
        routing_id = frames[0].bytes
        if len(frames) < 3:
            return  # not the protocol: nothing to answer to
        client = self.by_key.get(frames[1].get("User-Id"))
        if client is None:
            return  # ZAP let it in, so this cannot happen; never trust it though
        kind = frames[1].bytes
        session = frames[2].bytes.decode("utf-8", "replace")
        if not protocol.SESSION.match(session):
            self._error(routing_id, None, protocol.MALFORMED_MESSAGE, "the session name is not valid")
            return
        self._sessions[(client.name, session)] = routing_id
        body = frames[3].bytes if len(frames) > 3 else b""
        if kind == protocol.HELLO:
            self._hello(client, session, routing_id, body)
        elif kind == protocol.BATCH:
            self._batch(client, session, routing_id, body)
        elif kind == protocol.DELIVERED:
            self._delivered(client, session, body)
        else:
            self._error(routing_id, None, protocol.MALFORMED_MESSAGE,
                        f"unknown message type {kind[:20]!r}")

    def _hello(self, client: RelayClient, session: str, routing_id: bytes, body: bytes) -> None:
        try:
            hello = protocol.loads(body)
        except ValueError as exc:
            self._error(routing_id, None, protocol.MALFORMED_MESSAGE, f"HELLO: {exc}")
            return
        except RecursionError:
            self._error(routing_id, None, protocol.MALFORMED_MESSAGE, "HELLO: nested too deeply")
            return
        if hello.get("format") != self.serializer.name:
            self._error(routing_id, None, protocol.FORMAT_REFUSED,
                        f"this relay takes {self.serializer.name!r} batches, not {hello.get('format')!r}")
            return
        cfg = client.config
        self._reply(routing_id, protocol.WELCOME, protocol.dumps({
            "protocol": protocol.PROTOCOL, "client": client.name,
            "originator_codes": cfg.originator_codes, "max_batch": cfg.max_batch,
            "max_in_flight": cfg.max_in_flight,
            "acknowledges": self.upstreams[client.name].acknowledges}))
        log.info("relay client connected", client=client.name, session=session)
        assert self.routes is not None
        self.routes.rewind(client.name, session)
        self._deliver(client.name, session)

    def _batch(self, client: RelayClient, session: str, routing_id: bytes, body: bytes) -> None:
        try:
            batch = self.serializer.decode_batch(body)
        except Exception as exc:
            self._error(routing_id, None, protocol.MALFORMED_BATCH, str(exc))
            return
        assert self.intake is not None
        try:
            taken = self.intake.take(client, session, batch,
                                     self.upstreams[client.name].acknowledges)
        except Refused as exc:
            log.warning("relay refused a batch", client=client.name, batch_id=batch.batch_id,
                        code=exc.code, records=len(batch.records))
            self._error(routing_id, batch.batch_id, exc.code, exc.message)
            return
        except Exception:
            log.exception("relay could not store a batch", client=client.name, batch_id=batch.batch_id)
            self._error(routing_id, batch.batch_id, protocol.UNAVAILABLE,
                        "the relay could not store the batch; send it again later")
            return
        # Stored and committed: only now may the client count on the relay.
        self._reply(routing_id, protocol.RECEIPT, protocol.dumps({
            "batch_id": batch.batch_id, "records": taken.records,
            "detail": f"stored by the relay: {taken.queued} to forward, {taken.answered} answered"}))
        log.info("relay stored a batch", client=client.name, batch_id=batch.batch_id,
                 records=taken.records, queued=taken.queued, answered=taken.answered,
                 revived=len(taken.revived))
        upstream = self.upstreams[client.name]
        if taken.new_lane:
            upstream.add_lane(taken.lane)
        upstream.wake.set()
        if taken.answered:
            self._deliver(client.name, session)

    def _delivered(self, client: RelayClient, session: str, body: bytes) -> None:
        try:
            note = protocol.loads(body)
            batch_id, upto = str(note["batch_id"]), int(note["upto"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return  # a confirmation we cannot read only means the ack comes again
        assert self.routes is not None
        self.routes.delivered(client.name, session, batch_id, upto)

    # ------------------------------------------------------------------ sending

    def _deliver(self, client: str, session: str) -> None:
        """Send the session's due results, one ACK per client batch id."""
        routing_id = self._sessions.get((client, session))
        if routing_id is None:
            return  # offline: kept until it says HELLO again
        assert self.routes is not None
        pending = self.routes.due(client, session, time.time() - self.config.relay.redeliver_seconds)
        by_batch: dict[str, list[Any]] = defaultdict(list)
        for p in pending:
            by_batch[p.batch_id].append(p)
        sent: list[int] = []
        for batch_id, rows in by_batch.items():
            ack = Ack(batch_id=batch_id, received_at=datetime.now(UTC),
                      results=[RecordAck.model_validate_json(r.result) for r in rows])
            upto = max(r.seq for r in rows)
            try:
                if not self._send(routing_id, protocol.ACK, protocol.dumps({"upto": upto}),
                                  self.serializer.encode_ack(ack)):
                    break  # its queue is full: the redelivery tick tries again
            except _Gone:
                self._sessions.pop((client, session), None)
                break
            sent.extend(r.seq for r in rows)
        if sent:
            self.routes.mark_sent(sent)

    def _error(self, routing_id: bytes, batch_id: str | None, code: str, message: str) -> None:
        self._reply(routing_id, protocol.ERROR,
                    protocol.dumps({"batch_id": batch_id, "code": code, "message": message}))

    def _reply(self, routing_id: bytes, *parts: bytes) -> None:
        """An answer to a message: if it cannot go, the client's wait for it times out
        and it sends again, which is safe."""
        try:
            self._send(routing_id, *parts)
        except _Gone:
            pass

    def _send(self, routing_id: bytes, *parts: bytes) -> bool:
        """False when the peer's queue is full; _Gone when it is not connected."""
        assert self._socket is not None
        try:
            self._socket.send_multipart([routing_id, *parts], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                raise _Gone() from None
            raise

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Per client: records queued and sent upstream, acks not yet delivered."""
        assert self.routes is not None
        out = {}
        for name, upstream in self.upstreams.items():
            queued, sent = upstream.outstanding()
            out[name] = {"queued": queued, "sent": sent, "undelivered": self.routes.undelivered(name),
                         "alive": upstream.is_alive() and not upstream.failed}
        return out



def status_report(loaded: LoadedRelay) -> list[dict[str, Any]]:
    """From the relay's files, running or not: per lane and state the counts, oldest
    queued and last error; per client the acks not yet confirmed by it."""
    ledger = open_ledger(loaded.config.ledger)
    try:
        routes = Routes(ledger)
        rows: list[dict[str, Any]] = [r for r in ledger.status() if r["pipeline"].startswith("relay:")]
        rows += [{"client": name, "undelivered_acks": routes.undelivered(name)} for name in loaded.clients]
        return rows
    finally:
        ledger.close()

"""Forwarding to CBP: one thread per relay client, so that a slow or failing upstream
holds up only that client. Each of the client's lanes has its own `Transmitter` over
the relay ledger, hence the same claim-before-send, retries and dead letters as a
pipeline; each result is put in the routing outbox for the client that sent it.

On a PostgreSQL ledger shared by several relays, the lanes other relays made are looked
for every LANES_EVERY seconds (so their batches are taken over if such a relay dies),
and a database that restarts makes the thread wait with backoff, not stop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s321.backoff import Backoff
from s321.contracts import PipelineContext, PipelineDefaults, RecordAck
from s321.ledger import Ledger, LedgerUnavailable
from s321.logs import get_logger
from s321.observers import Observers
from s321.record import FilerType, ModeOfTransport
from s321.registry import Component
from s321.relay.config import RelayClient
from s321.relay.routes import Lane, Routes
from s321.states import State
from s321.transmitter import Transmitter

log = get_logger(__name__)

LANES_EVERY = 2.0
"""Seconds between looks for lanes another relay on a shared ledger made."""


class ClientUpstream(threading.Thread):
    def __init__(self, client: RelayClient, ledger: Ledger, routes: Routes, serializer: Component,
                 observers: Observers | None, notify: Callable[[str, str], None],
                 base_dir: Path, poll_interval: float = 0.2):
        super().__init__(name=f"s321-relay-{client.name}", daemon=True)
        self.client = client
        self.ledger = ledger
        self.routes = routes
        self.serializer = serializer
        self.observers = observers
        self.notify = notify
        self.base_dir = base_dir
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.failed: str | None = None
        self._new: list[Lane] = list(routes.lanes(client.name))
        self._new_lock = threading.Lock()
        self.transmitters: dict[str, Transmitter] = {}
        self.acknowledges = self._upstream_acknowledges()
        self.shared = ledger.backend == "postgresql"
        """Other relays may share the ledger: their lanes are looked for now and then."""

    def add_lane(self, lane: Lane) -> None:
        with self._new_lock:
            self._new.append(lane)
        self.wake.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def run(self) -> None:
        next_lanes = time.monotonic() + LANES_EVERY
        backoff, failures = Backoff(initial=0.5, maximum=10.0), 0
        try:
            while not self.stop_event.is_set():
                look = self.shared and time.monotonic() >= next_lanes
                if look:
                    next_lanes = time.monotonic() + LANES_EVERY
                try:
                    busy = self._round(look)
                except LedgerUnavailable as exc:
                    # The database restarts or fails over: weather, not a failure of the
                    # client; what is in flight is in the ledger, and forwarding resumes.
                    self.failed = f"{type(exc).__name__}: {exc}"
                    delay = max(0.2, backoff.delay(failures))
                    failures += 1
                    log.warning("relay upstream waits for its ledger", client=self.client.name,
                                error=str(exc), retry_in=round(delay, 1))
                    self.stop_event.wait(delay)
                    continue
                if self.failed is not None:
                    log.info("relay upstream resumed", client=self.client.name)
                    self.failed, failures = None, 0
                if not busy:
                    self.wake.wait(self.poll_interval)
                    self.wake.clear()
        except Exception as exc:  # one client's failure never takes the relay down
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("relay upstream failed", client=self.client.name)
        finally:
            for sender in self.transmitters.values():
                try:
                    sender.close()  # what is in flight goes back to the queue, durably
                except LedgerUnavailable as exc:  # on a shared ledger its lease runs out instead
                    log.warning("relay upstream closed without its ledger", client=self.client.name,
                                error=str(exc))

    def _round(self, lanes: bool) -> bool:
        """Send what is due and read acks on every lane; whether any lane is busy.
        `lanes`: first look for lanes another relay on a shared ledger made (this one
        forwards them too, and takes over their batches if that relay dies)."""
        if lanes:
            known = set(self.transmitters)
            for lane in self.routes.lanes(self.client.name):
                if lane.lane not in known:
                    self.add_lane(lane)
        self._adopt()
        busy = False
        for sender in list(self.transmitters.values()):
            sender.transmit()
            awaiting = sender.owes()[1]
            sender.poll_acks(timeout=0.05 if awaiting else 0.0)
            busy = busy or not sender.idle()
        return busy

    def _adopt(self) -> None:
        with self._new_lock:
            lanes, self._new = self._new, []
        for lane in lanes:
            if lane.lane in self.transmitters:
                continue
            sender = self._transmitter(lane)
            # Records left `sent` by an earlier relay process get no ack on a new
            # connection: queue them again (CBP answers a repeated add as a duplicate).
            sender.recover()
            self.transmitters[lane.lane] = sender
            log.info("relay lane started", client=self.client.name, lane=lane.lane)

    def _upstream_acknowledges(self) -> bool:
        """Whether this client's upstream sends acknowledgements (`file` does not): read
        from a transport built and never connected."""
        lane = Lane("relay:probe", self.client.name, self.client.config.originator_codes[0],
                    "pilot-2019", None, None)
        try:
            transport = self._make_transport(lane)
            acknowledges = bool(transport.capabilities.acknowledges)
            transport.close()
            return acknowledges
        except Exception:
            return True  # the worker will report the real problem when it connects

    def _make_transport(self, lane: Lane) -> Any:
        up = self.client.upstream
        context = PipelineContext(
            pipeline=lane.lane, originator_code=lane.originator_code,
            filer_type=FilerType(lane.filer_type or FilerType.CUSTOMS_BROKER),
            mode_of_transport=ModeOfTransport(lane.mode_of_transport or ModeOfTransport.AIR),
            profile=lane.profile, source=f"relay:{self.client.name}", defaults=PipelineDefaults(),
            base_dir=self.base_dir)
        return up.component.factory(up.options, context, self.serializer.factory())

    def _transmitter(self, lane: Lane) -> Transmitter:
        cfg = self.client.config
        return Transmitter(
            self.ledger, lane.lane, lambda: self._make_transport(lane), lane.originator_code,
            lane.profile, cfg.retry, cfg.batch_size, observers=self.observers,
            on_resolved=self._resolved)

    def _resolved(self, transaction_id: str, state: State, result: Any, batch_id: str) -> None:
        body = result.model_dump_json() if isinstance(result, RecordAck) else str(result)
        where = self.routes.result(transaction_id, body)
        if where is None:
            log.warning("relay result without a route", client=self.client.name,
                        transaction_id=transaction_id, state=state.value)
            return
        self.notify(*where)

    def outstanding(self) -> tuple[int, int]:
        queued = sent = 0
        for sender in list(self.transmitters.values()):
            q, s = sender.outstanding()
            queued, sent = queued + q, sent + s
        return queued, sent

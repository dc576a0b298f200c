"""Two transmitters on one PostgreSQL ledger (two daemons), against a real server and a
real sandbox over p2p-socket: a slow but live sender renews the lease of the batch it
waits on, so no other daemon takes it over and sends it twice; a sender that stopped
renewing loses its batch to another daemon, forgets it, and counts it in /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from builders import consignment, marketplace_fields
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.config import RetrySection
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.metrics import Metrics
from s321.pipeline import Outcome, Status
from s321.plugins.wire_s321 import S321Json
from s321.sandbox import Faults, Sandbox
from s321.transmitter import Transmitter

LEASE = 1.0
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "read_timeout": 5.0, "connect_timeout": 5.0}


def daemon_ledger(url: str) -> Ledger:
    ledger = open_ledger(url)
    ledger.lease_seconds = LEASE
    return ledger


def sender(ledger: Ledger, sandbox: Sandbox, metrics: Metrics | None = None) -> Transmitter:
    options = P2POptions.model_validate(sandbox.transport_options(**FAST))
    return Transmitter(ledger, "shop", lambda: P2PSocketTransport(options, None, S321Json()), "MKT001",
                       "pilot-2019", RetrySection(ack_timeout=60), batch_size=10, metrics=metrics)


@pytest.fixture
def two_daemons(tmp_path, pg_url) -> Iterator[tuple[Ledger, Ledger, Sandbox]]:
    first, second = daemon_ledger(pg_url), daemon_ledger(pg_url)
    first.ingest("shop", "MKT001", "src", [
        Outcome(f"A{i}", Status.VALID, "f:1", consignment(marketplace_fields(), txid=f"T{i}")) for i in range(3)])
    with Sandbox(tmp_path / "sandbox", faults=Faults(ack_delay=2.5 * LEASE)).start() as sandbox:
        yield first, second, sandbox
    first.close()
    second.close()


def test_a_slow_live_sender_keeps_its_batch_by_renewing_the_lease(two_daemons) -> None:
    first, second, sandbox = two_daemons
    slow = sender(first, sandbox)
    assert slow.transmit() == 3
    deadline = time.monotonic() + 10
    while first.counts("shop") != {"accepted": 3} and time.monotonic() < deadline:
        slow.poll_acks(timeout=0.1)
        # Another daemon looking for work all the while: the batch is the slow one's.
        assert second.claim("shop", "B-other", 10) == []
    assert first.counts("shop") == {"accepted": 3}
    assert set(sandbox.store.accepted_counts().values()) == {1}
    slow.close()


def test_a_sender_that_stopped_renewing_loses_its_batch_and_forgets_it(two_daemons) -> None:
    first, second, sandbox = two_daemons
    metrics = Metrics(daemon=first.owner)
    stalled = sender(first, sandbox, metrics)
    assert stalled.transmit() == 3
    assert stalled.owes() == (False, True)
    time.sleep(LEASE + 0.3)  # stalled: no renewal, the lease runs out
    other = sender(second, sandbox)
    assert other.transmit() == 3  # taken over, sent again as it went
    assert stalled.renew_leases(force=True) != []
    assert stalled.owes() == (False, False)  # it waits for nothing it does not hold
    assert b's321_batches_taken_over_total{daemon="%s",pipeline="shop"} 1.0' % first.owner.encode() \
        in metrics.render()
    deadline = time.monotonic() + 15
    while first.counts("shop") != {"accepted": 3} and time.monotonic() < deadline:
        other.poll_acks(timeout=0.1)
        stalled.poll_acks(timeout=0.1)  # its late acks are facts: applied whoever reads them
    assert first.counts("shop") == {"accepted": 3}
    assert set(sandbox.store.accepted_counts().values()) == {1}  # the second sending was a duplicate
    stalled.close()
    other.close()

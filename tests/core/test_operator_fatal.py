"""A link refused for good (issue 15): a fatal error on connect leaves no record
`queued` without a last error. Every queued record is dead-lettered with the error,
reported in the counts, and `dlq retry` queues them again once the link is fixed."""

from pathlib import Path

from builders import carrier_fields, consignment
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.config import RetrySection
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.plugins.wire_s321 import S321Json
from s321.sandbox import Sandbox
from s321.transmitter import Transmitter


def test_a_refused_certificate_dead_letters_what_is_queued_with_the_error(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "a").start() as sandbox, Sandbox(tmp_path / "b").start() as other:
        # The client trusts another sandbox's CA: the handshake is refused, for good.
        options = P2POptions.model_validate(sandbox.transport_options(
            ca=str(other.ca_path), connect_timeout=5.0, read_timeout=5.0))
        ledger = Ledger(tmp_path / "ledger.sqlite")
        try:
            ledger.ingest("truck", "CAR001", "src", [
                Outcome(f"H{i}", Status.VALID, f"f:{i}", consignment(carrier_fields(), txid=f"T{i}"))
                for i in range(3)])
            sender = Transmitter(ledger, "truck", lambda: P2PSocketTransport(options, None, S321Json()),
                                 "CAR001", "pilot-2019", RetrySection())
            assert sender.transmit() == 0
            assert sender.stalled() and sender.counts["dead"] == 3
            assert ledger.counts("truck") == {"dead": 3}
            dead = ledger.dead("truck")
            assert all(r["last_error"] and "FatalError" in r["last_error"] for r in dead), dead
            # Queued while the link stays refused: dead-lettered on the next pass too.
            ledger.ingest("truck", "CAR001", "src", [
                Outcome("H9", Status.VALID, "f:9", consignment(carrier_fields(), txid="T9"))])
            sender.transmit()
            assert ledger.counts("truck") == {"dead": 4} and sender.counts["dead"] == 4
            sender.close()
            assert sandbox.store.accepted_counts() == {}
        finally:
            ledger.close()

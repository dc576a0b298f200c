"""A transport without acknowledgements ends its records `delivered` (issue 15): a
final state, so switching the pipeline to a transport that answers never sends them
again silently; a later change of one goes as a replace."""

from pathlib import Path

from builders import carrier_fields, consignment
from s321.adapters.file import FileOptions, FileTransport
from s321.adapters.p2p_socket import P2POptions, P2PSocketTransport
from s321.config import RetrySection
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.plugins.wire_s321 import S321Json
from s321.sandbox import Sandbox
from s321.states import FINAL, State
from s321.transmitter import Transmitter


def outcomes(*txids: str, **changes: object) -> list[Outcome]:
    return [Outcome(t, Status.VALID, f"f:{t}", consignment(carrier_fields(**changes), txid=t)) for t in txids]


def test_file_transport_records_are_delivered_and_a_switch_does_not_resend_them(tmp_path: Path) -> None:
    assert State.DELIVERED in FINAL
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        ledger.ingest("truck", "CAR001", "src", outcomes("T1", "T2"))
        to_file = FileTransport(FileOptions(directory=tmp_path / "out"), None, S321Json())
        sender = Transmitter(ledger, "truck", lambda: to_file, "CAR001", "pilot-2019", RetrySection())
        assert sender.transmit() == 2 and sender.counts["delivered"] == 2
        assert ledger.counts("truck") == {"delivered": 2}
        assert len(list((tmp_path / "out").glob("*.json"))) == 1
        with Sandbox(tmp_path / "sandbox").start() as sandbox:
            options = P2POptions.model_validate(sandbox.transport_options(read_timeout=5.0))
            switched = Transmitter(ledger, "truck", lambda: P2PSocketTransport(options, None, S321Json()),
                                   "CAR001", "pilot-2019", RetrySection())
            assert switched.recover() == 0
            assert switched.transmit() == 0
            assert ledger.counts("truck") == {"delivered": 2}
            # A change of a delivered record follows as a replace.
            ledger.ingest("truck", "CAR001", "src", outcomes("T1", house_bill_number="HB-2002"))
            assert switched.transmit() == 1
            [record] = [r for r in ledger.unacknowledged("truck", float("inf"))]
            assert (record.transaction_id, record.action.value) == ("T1", "replace")
            switched.close()
    finally:
        ledger.close()

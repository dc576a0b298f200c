"""What the Transmitter tells a loop about its pipeline: counted for a summary,
yes or no for every turn of the loop, the same answer either way."""

from builders import consignment, marketplace_fields
from s321.adapters.file import FileOptions, FileTransport
from s321.config import RetrySection
from s321.ledger import Ledger
from s321.pipeline import Outcome, Status
from s321.plugins.wire_s321 import S321Json
from s321.transmitter import Transmitter


def test_outstanding_owes_and_idle_agree(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.ingest("shop", "MKT001", "src", [
        Outcome(f"A{i}", Status.VALID, "f:1", consignment(marketplace_fields(), txid=f"T{i}")) for i in range(2)])
    transport = FileTransport(FileOptions(directory=tmp_path / "out"), None, S321Json())
    sender = Transmitter(ledger, "shop", lambda: transport, "MKT001", "pilot-2019", RetrySection())
    assert (sender.outstanding(), sender.owes(), sender.idle()) == ((2, 0), (True, False), False)
    assert sender.transmit() == 2
    # The file transport gets no acks: what it sent is owed nothing more.
    assert (sender.outstanding(), sender.owes(), sender.idle()) == ((0, 0), (False, False), True)
    ledger.close()

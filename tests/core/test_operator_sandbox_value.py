"""The sandbox checks the value a record declares in USD (issue 15): a currency it has
no rate for is no error when the filer declared the total; the declared total is what
the Section 321 limit is checked against."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from builders import carrier_fields, consignment
from s321.contracts import Batch
from s321.sandbox.review import Reviewer
from s321.sandbox.store import SandboxStore


def review(tmp_path: Path, **changes: object) -> list[str]:
    fields = carrier_fields(**changes)
    fields["items"][0]["currency"] = "CAD"
    store = SandboxStore(tmp_path / "sandbox.sqlite")
    try:
        batch = Batch(batch_id="B1", originator_code="CAR001", profile="pilot-2019", sent_at=datetime.now(UTC),
                      records=[consignment(fields, txid="T-CAD")])
        [result] = Reviewer(store).review(batch).results  # the sandbox knows USD only
        return [e.code for e in result.errors]
    finally:
        store.close()


def test_a_declared_usd_total_is_accepted_in_a_currency_without_a_rate(tmp_path: Path) -> None:
    assert review(tmp_path, total_value_usd="29.18") == []


def test_the_declared_total_is_what_the_limit_is_checked_against(tmp_path: Path) -> None:
    assert review(tmp_path, total_value_usd="912.00") == ["not-section-321"]


def test_without_a_declared_total_a_currency_without_a_rate_is_still_refused(tmp_path: Path) -> None:
    assert review(tmp_path) == ["unknown-currency-rate"]

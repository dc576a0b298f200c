"""The s321 fixtures for this folder. Once s321's `pytest11` entry point is installed
they come from it too; importing them here as well is harmless (same functions)."""

from s321.testing.plugin import (  # noqa: F401
    s321_faulty_transport,
    s321_harness,
    s321_ledger,
    s321_logs,
    s321_sandbox,
)

"""Suite-wide fixtures: logging is reset after each test, so that a test configuring
structlog (as the CLI does in-process) leaves nothing behind for the next one."""

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_logging():
    yield
    structlog.reset_defaults()

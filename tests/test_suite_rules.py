"""The suite's own rule: under `make test` (S321_NO_SKIPS=1) a skipped test fails, so a
test that CI silently stopped running cannot pass unnoticed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_a_skip_fails_under_make_test_and_is_a_skip_otherwise(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_one.py").write_text("import pytest\n\ndef test_it():\n    pytest.skip('no sshd here')\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tmp_path)]
    strict = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "S321_NO_SKIPS": "1"})
    assert strict.returncode == 1 and "1 failed" in strict.stdout and "no sshd here" in strict.stdout
    loose = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                           env={k: v for k, v in os.environ.items() if k != "S321_NO_SKIPS"})
    assert loose.returncode == 0 and "1 skipped" in loose.stdout

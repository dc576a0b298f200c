"""`make demo` run twice tells the same story: each run starts from a fresh folder, so
the first `run --once` files everything and the second sends nothing again, both times."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parents[2] / "contrib" / "demo" / "demo.py"


def story(folder: Path) -> list[str]:
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "S321_DEMO_DIR": str(folder)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # What each run --once did per pipeline, up to `sent N` (which records CBP's stand-in
    # turns down at random may differ).
    return re.findall(r"^(\w+ -> p2p-socket: received \d+, valid \d+, invalid \d+, skipped \d+, "
                      r"sent \d+)", proc.stdout, re.M)


@pytest.mark.slow
def test_the_demo_tells_the_same_story_every_time(tmp_path):
    first = story(tmp_path / "demo")
    second = story(tmp_path / "demo")
    assert first == second
    assert len(first) == 6  # three pipelines, run twice in each demo
    sent = [int(line.rsplit(" ", 1)[1]) for line in first]
    assert all(n > 0 for n in sent[:3]) and sent[3:] == [0, 0, 0]
    assert (tmp_path / "demo" / ".s321-demo").exists()


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "S321_DEMO_DIR": str(tmp_path)})
    assert proc.returncode != 0 and "refusing to delete" in proc.stdout + proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"

"""A progress bar per pipeline for `s321 run --once` on a terminal (rich)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn


def show(counts: dict[str, Counter[str]], running: Callable[[], bool]) -> None:
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(),
                  TextColumn("{task.fields[detail]}"), console=console, transient=False) as progress:
        tasks = {name: progress.add_task(name, total=None, detail="") for name in counts}

        def refresh() -> None:
            for name, c in counts.items():
                done = c["accepted"] + c["rejected"] + c["invalid"] + c["skipped"] + c["dead"]
                progress.update(tasks[name], total=max(c["received"], 1), completed=min(done, c["received"]),
                                detail=f"received {c['received']}  sent {c['sent']}  accepted {c['accepted']}"
                                       f"  rejected {c['rejected']}  invalid {c['invalid']}")

        while running():
            refresh()
            time.sleep(0.1)
        refresh()

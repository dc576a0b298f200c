"""A progress bar per pipeline for `s321 run --once` on a terminal (rich)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn


def show(counts: dict[str, Counter[str]], acknowledges: dict[str, bool],
         running: Callable[[], bool]) -> None:
    """A unit is done once invalid, skipped or dead, or once acknowledged (sent, for a
    transport that gets no acknowledgements)."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(),
                  TextColumn("{task.fields[detail]}"), console=console, transient=False) as progress:
        tasks = {name: progress.add_task(name, total=None, detail="") for name in counts}

        def refresh() -> None:
            for name, c in counts.items():
                filed = c["accepted"] + c["rejected"] if acknowledges[name] else c["sent"]
                done = filed + c["invalid"] + c["skipped"] + c["dead"]
                detail = f"received {c['received']}  sent {c['sent']}"
                if acknowledges[name]:
                    detail += f"  accepted {c['accepted']}  rejected {c['rejected']}"
                progress.update(tasks[name], total=max(c["received"], 1), completed=min(done, c["received"]),
                                detail=detail + f"  invalid {c['invalid']}  skipped {c['skipped']}")

        while running():
            refresh()
            time.sleep(0.1)
        refresh()

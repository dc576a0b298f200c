"""Runs every file of the real-world corpus (../shared/realworld/) through the real CLI,
`s321 preview --json`, with one small config per source, and returns its outcome lines.

Used by tests/realworld/test_corpus.py and, as a script, to write the per-file counts:
    python tests/realworld/corpus_run.py OUT.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "realworld"
SOURCES = {"shopify-csv": "shopify-csv", "shopify-json": "shopify-json", "x12": "x12-309",
           "fhl": "cargo-imp-fhl"}
FILER = {"shopify-csv": "online_marketplace", "shopify-json": "online_marketplace",
         "x12-309": "carrier", "cargo-imp-fhl": "carrier"}
MODE = {"shopify-csv": "air", "shopify-json": "air", "x12-309": "ocean", "cargo-imp-fhl": "air"}

CONFIG = """\
[currency_rates]
CAD = "0.73"
EUR = "1.08"
GBP = "1.27"

[pipelines.p]
originator_code = "RW0001"
filer_type = "{filer}"
mode_of_transport = "{mode}"
profile = "pilot-2019"

[pipelines.p.defaults]
marketplace_seller_id = "RW-HOUSE"
identified_marketplace_merchant = true
known_carrier_customer = true
seller = {{ name = "Real World Shop", address = {{ line1 = "1 Harbor Way", city = "Boston", state_or_province = "MA", postal_code = "02110", country = "US" }} }}

[pipelines.p.source]
plugin = "{plugin}"
path = "{path}"

[pipelines.p.transport]
plugin = "file"
directory = "outbox"
"""


def corpus_files() -> list[tuple[str, Path]]:
    """(source plugin, file) for every file of the corpus, in a stable order."""
    out = []
    for folder, plugin in SOURCES.items():
        for path in sorted((CORPUS / folder).iterdir()):
            if path.is_file():
                out.append((plugin, path.resolve()))
    return out


def preview(plugin: str, path: Path, workdir: Path) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, outcome lines, stderr) of `s321 preview --json` on one file."""
    config = workdir / f"{plugin}.toml"
    config.write_text(CONFIG.format(filer=FILER[plugin], mode=MODE[plugin], plugin=plugin,
                                    path=path), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "s321.cli", "preview", "-c", str(config),
                           "-p", "p", str(path), "--json"], capture_output=True, text=True,
                          cwd=workdir, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines, done.stderr


def counts(lines: list[dict[str, Any]]) -> dict[str, Any]:
    status = Counter(o["status"] for o in lines)
    codes = Counter(f["code"] for o in lines for f in o["findings"])
    return {"valid": status["valid"], "invalid": status["invalid"], "skipped": status["skipped"],
            "codes": dict(sorted(codes.items()))}


def main(out: str) -> None:
    import tempfile
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for plugin, path in corpus_files():
            code, lines, err = preview(plugin, path, Path(tmp))
            entry = counts(lines)
            entry["exit"] = code
            if "Traceback" in err:
                entry["traceback"] = True
            result[f"{path.parent.name}/{path.name}"] = entry
    Path(out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])

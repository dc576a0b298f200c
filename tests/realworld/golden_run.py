"""The outputs that must stay byte-identical: `s321 preview --json` lines (records and
findings) and the `s321/1` wire bytes of the valid records, for every bundled sample,
every file of ../shared/realworld/ and seeded inputs of bench/generate.py.

The golden copy in tests/realworld/golden/ was written by the code of commit 30d5847
(main when issue 21 began), and is only ever written again from that commit's worktree,
or on purpose with the reason in the commit message:

    git worktree add /tmp/s321-golden 30d5847
    .venv/bin/python bench/checkout.py /tmp/s321-golden tests/realworld/golden_run.py write

Everything in the output that is not about the input is fixed here: the batch id and
its sent-at time; locations name files relative to <repo>, <realworld> or <generated>.
Transaction ids are hashes of the input, so they are the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOLDEN = HERE / "golden"
CORPUS = (REPO / ".." / "shared" / "realworld").resolve()
SENT_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
GENERATED = {"shop": 600, "x12-309": 600, "cargo-imp-fhl": 600}  # orders / bills / houses

CONFIG = """\
[currency_rates]
CAD = "0.73"
EUR = "1.08"
GBP = "1.27"

[pipelines.p]
originator_code = "GOLD01"
filer_type = "{filer}"
mode_of_transport = "{mode}"
profile = "{profile}"

[pipelines.p.defaults]
marketplace_seller_id = "GOLD-HOUSE"
identified_marketplace_merchant = true
known_carrier_customer = true
seller = {{ name = "Golden Shop", address = {{ line1 = "1 Harbor Way", city = "Boston", state_or_province = "MA", postal_code = "02110", country = "US" }} }}

[pipelines.p.source]
plugin = "{plugin}"
path = "{path}"
{extra}
[pipelines.p.transport]
plugin = "file"
directory = "outbox"
"""
FILER = {"shopify-csv": "online_marketplace", "shopify-json": "online_marketplace",
         "records-jsonl": "online_marketplace", "bazaarly-csv": "online_marketplace",
         "x12-309": "carrier", "cargo-imp-fhl": "carrier"}
MODE = {"x12-309": "truck"}
CORPUS_FOLDERS = {"shopify-csv": "shopify-csv", "shopify-json": "shopify-json",
                  "x12": "x12-309", "fhl": "cargo-imp-fhl"}


def code_root() -> Path:
    """The checkout whose code is running (bench/checkout.py may point elsewhere)."""
    import s321
    return Path(s321.__file__).resolve().parents[1]


def cases(work: Path) -> Iterator[tuple[str, str, Path, str, bool]]:
    """(name, plugin, input, config text, keep the full output) for every input."""
    code = code_root()
    samples = code / "contrib" / "samples"
    shop = samples / "shop"

    def cfg(plugin: str, path: Path, profile: str = "pilot-2019", extra: str = "",
            mode: str | None = None) -> str:
        return CONFIG.format(filer=FILER[plugin], mode=mode or MODE.get(plugin, "air"),
                             plugin=plugin, path=path, profile=profile, extra=extra)

    tables = (f'catalog = "{shop / "catalog.csv"}"\nvendors = "{shop / "vendors.csv"}"\n'
              f'tracking = "{shop / "tracking.csv"}"\n')
    export = shop / "orders_export.csv"
    yield "sample/shop.toml", "shopify-csv", export, (code / "config" / "shop.toml").read_text(), True
    yield "sample/orders_export.csv+tables", "shopify-csv", export, cfg("shopify-csv", export, extra=tables), True
    yield ("sample/orders_export.csv+tables@nprm-2025-basic", "shopify-csv", export,
           cfg("shopify-csv", export, "nprm-2025-basic", tables), True)
    yield "sample/orders_export.csv", "shopify-csv", export, cfg("shopify-csv", export), True
    for name in ("orders.jsonl", "order-graphql.json", "order-webhook.json"):
        yield f"sample/{name}", "shopify-json", shop / name, cfg("shopify-json", shop / name), True
    for path in sorted((samples / "x12-309").iterdir()):
        yield f"sample/{path.name}", "x12-309", path, cfg("x12-309", path), True
    for path in sorted((samples / "cargo-imp-fhl").iterdir()):
        yield f"sample/{path.name}", "cargo-imp-fhl", path, cfg("cargo-imp-fhl", path), True
    records = GOLDEN / "records.jsonl"  # hand-made for records-jsonl, which has no sample
    yield "sample/records.jsonl", "records-jsonl", records, cfg("records-jsonl", records), True
    bazaarly = code / "contrib" / "plugin-template" / "samples" / "bazaarly-orders.csv"
    yield ("sample/bazaarly-orders.csv", "bazaarly-csv", bazaarly,
           cfg("bazaarly-csv", bazaarly), True)
    for folder, plugin in CORPUS_FOLDERS.items():
        for path in sorted((CORPUS / folder).iterdir()):
            if path.is_file():
                yield (f"realworld/{folder}/{path.name}", plugin, path,
                       cfg(plugin, path, mode="ocean" if plugin == "x12-309" else None), False)
    for kind, size in GENERATED.items():
        target = work / f"{kind}-{size}"
        subprocess.run([sys.executable, str(REPO / "bench" / "generate.py"), kind, str(size),
                        str(target)], check=True, capture_output=True)
        if kind == "shop":
            export = target / "orders_export.csv"
            extra = (f'catalog = "{target / "catalog.csv"}"\nvendors = "{target / "vendors.csv"}"\n'
                     f'tracking = "{target / "tracking.csv"}"\n')
            yield f"generated/{kind}-{size}", "shopify-csv", export, cfg("shopify-csv", export, extra=extra), False
        else:
            yield f"generated/{kind}-{size}", kind, target, cfg(kind, target), False


def run_case(config_text: str, path: Path, work: Path, pipeline: str) -> tuple[str, bytes, str]:
    """(preview --json text, s321/1 batch of the valid records, the ledger's stored
    JSON and content hash of each valid record) for one input."""
    from s321 import app, ids
    from s321.contracts import Batch
    from s321.plugins.wire_s321 import S321Json

    config = work / "golden.toml"
    config.write_text(config_text, encoding="utf-8")
    _registry, loaded = app.load(config)
    lines, valid = [], []
    files = [] if pipeline == "shop" else [path]
    for outcome in app.preview(loaded, pipeline, files):
        lines.append(outcome.to_json() + "\n")
        if outcome.status.value == "valid" and outcome.record is not None:
            valid.append(outcome.record)
    pipe = loaded.pipelines[pipeline]
    batch = Batch(batch_id="BGOLDEN", originator_code=pipe.context.originator_code,
                  profile=pipe.profile.name, sent_at=SENT_AT, records=valid)
    wire = S321Json().encode_batch(batch)
    stored = "".join("%s %s\n" % (h, t) for t, h in (ids.filed_json(r) for r in valid))
    return "".join(lines), wire, stored


def outputs(work: Path) -> Iterator[tuple[str, bool, dict[str, bytes]]]:
    """(case name, keep in full, {"preview.jsonl": ..., "wire.json": ..., "stored.txt": ...})
    with locations made independent of where the files are."""
    places = [(str(code_root()), "<repo>"), (str(CORPUS), "<realworld>"), (str(work), "<generated>"),
              (str(GOLDEN), "<golden>")]
    places.sort(key=lambda place: -len(place[0]))  # <golden> may lie inside <repo>
    for name, plugin, path, config_text, full in cases(work):
        pipeline = "shop" if name == "sample/shop.toml" else "p"
        if pipeline == "shop":
            config_text = config_text.replace('"../', f'"{code_root()}/')
        preview, wire, stored = run_case(config_text, path, work, pipeline)
        texts = {"preview.jsonl": preview.encode("utf-8"), "wire.json": wire,
                 "stored.txt": stored.encode("utf-8")}
        for key, value in texts.items():
            for real, shown in places:
                value = value.replace(real.encode("utf-8"), shown.encode("utf-8"))
            texts[key] = value
        yield name, full, texts


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def file_name(case: str, part: str) -> str:
    return case.replace("/", "__").replace("@", "_at_") + "." + part


def write() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.glob("sample__*"):
        old.unlink()
    hashes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, full, texts in outputs(Path(tmp)):
            hashes[name] = {part: digest(value) for part, value in texts.items()}
            if full:
                for part, value in texts.items():
                    (GOLDEN / file_name(name, part)).write_bytes(value)
    (GOLDEN / "hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"{len(hashes)} cases written to {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        sys.exit(__doc__)
    # The plugin template's code of the same checkout, not the one installed in the venv.
    sys.path.insert(0, str(code_root() / "contrib" / "plugin-template" / "src"))
    write()

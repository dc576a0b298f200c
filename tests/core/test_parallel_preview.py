"""`s321 preview` on several processes (s321.parallel) prints what it prints in one:
the same lines, findings (duplicate keys, a mapper that raises, enrichment), counts and
exit codes; a worker that is killed or cannot start never hangs it.

The inputs here are small, so the size below which a preview stays in one process is
lowered, and chunks are made tiny so that every input crosses many of them."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from s321 import app, parallel, validation
from s321.cli import main
from s321.contracts import RawUnit
from s321.plugins.shopify.mapping import ShopifyMapper

ROOT = Path(__file__).resolve().parents[2]
PARENT = os.getpid()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The preview forks only from a process with one thread: one an earlier test left
    # running here would turn every test below into the one-process path.
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert not others, f"threads left running by an earlier test: {others}"
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(parallel, "CHUNK", 7)
    monkeypatch.setattr(parallel, "AHEAD", 1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config over 300 generated orders (some invalid) with their tables, one order's
    rows repeated at the end of the export (a duplicate key)."""
    folder = tmp_path_factory.mktemp("parallel-shop")
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), "shop", "300", str(folder)],
                   check=True, capture_output=True)
    export = folder / "orders_export.csv"
    rows = export.read_text(encoding="utf-8").splitlines(keepends=True)
    again = [r for r in rows[1:] if r.startswith(rows[40].split(",")[0] + ",")]
    with export.open("a", encoding="utf-8") as fh:
        fh.writelines(again)
    config = folder / "s321.toml"
    config.write_text(f"""\
[currency_rates]
CAD = "0.73"
EUR = "1.08"
GBP = "1.27"

[pipelines.shop]
originator_code = "PAR321"
filer_type = "online_marketplace"
mode_of_transport = "air"
profile = "pilot-2019"

[pipelines.shop.defaults]
marketplace_seller_id = "PAR-HOUSE"
identified_marketplace_merchant = true

[pipelines.shop.source]
plugin = "shopify-csv"
path = "{export}"
catalog = "{folder / 'catalog.csv'}"
vendors = "{folder / 'vendors.csv'}"
tracking = "{folder / 'tracking.csv'}"

[pipelines.shop.transport]
plugin = "file"
directory = "{folder / 'outbox'}"
""", encoding="utf-8")
    return config


def preview(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["preview", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("as_json", [True, False])
def test_the_same_output_and_exit_code_on_two_processes(shop, capsys, as_json):
    flags = ["--json"] if as_json else []
    one = preview(capsys, "-c", str(shop), "-p", "shop", *flags, "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", *flags, "--jobs", "2")
    assert one[0] == two[0] == 1  # some generated orders are invalid
    assert one[1] == two[1]
    assert "duplicate-key" in one[1] and "several-sellers" in one[1]


def test_workers_write_the_lines(shop):
    """The parallel path really ran: its outcomes carry lines written by a worker."""
    _registry, loaded = app.load(shop)
    outcomes = list(app.preview(loaded, "shop", jobs=2))
    assert len(outcomes) == 301 and all(o.line is not None and o.record is None for o in outcomes)
    serial = list(app.preview(loaded, "shop"))
    assert [o.to_json() for o in outcomes] == [o.to_json() for o in serial]
    assert [o.status for o in outcomes] == [o.status for o in serial]


def test_a_mapper_that_raises_in_a_worker(shop, capsys, monkeypatch):
    mapped = ShopifyMapper.map

    def map_or_raise(self, unit):  # noqa: ANN001, ANN202
        if unit.key.endswith("7"):
            raise RuntimeError("a bug")
        return mapped(self, unit)

    monkeypatch.setattr(ShopifyMapper, "map", map_or_raise)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert one[1].count('"mapper-error"') == 30


def test_a_validator_that_raises_in_a_worker(shop, capsys, monkeypatch):
    validate = validation.validate

    def validate_or_raise(consignment, *args):  # noqa: ANN001, ANN002, ANN202
        if consignment.transaction_id.endswith(("A", "B")):
            raise RuntimeError("a bug")
        return validate(consignment, *args)

    monkeypatch.setattr(validation, "validate", validate_or_raise)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert '"validator-error"' in one[1]


def test_a_killed_worker_neither_hangs_nor_changes_the_output(shop, capsys, monkeypatch):
    mapped = ShopifyMapper.map

    def map_or_die(self, unit):  # noqa: ANN001, ANN202
        if os.getpid() != PARENT and unit.key.endswith("150"):
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        return mapped(self, unit)

    monkeypatch.setattr(ShopifyMapper, "map", map_or_die)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert "a preview worker stopped" in two[2]


def test_a_worker_that_cannot_open_the_pipeline(shop, capsys, monkeypatch):
    built = ShopifyMapper.__init__

    def build_or_fail(self, *args):  # noqa: ANN001, ANN002, ANN202
        if os.getpid() != PARENT:
            raise OSError("too many open files")
        built(self, *args)

    monkeypatch.setattr(ShopifyMapper, "__init__", build_or_fail)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert "a preview worker could not open the pipeline" in two[2]


def test_a_table_the_workers_cannot_open_is_reported_as_in_one_process(shop, capsys, tmp_path):
    config = tmp_path / "s321.toml"
    tracking = tmp_path / "tracking.csv"
    tracking.write_bytes(b"Name,Tracking Number\n#1001,\xff\xfe\n")
    config.write_text(shop.read_text().replace(str(shop.parent / "tracking.csv"), str(tracking)))
    one = preview(capsys, "-c", str(config), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(config), "-p", "shop", "--json", "--jobs", "2")
    assert one[0] == two[0] == 2
    assert one[1] == two[1] == ""
    assert str(tracking) in one[2]
    assert [line for line in one[2].splitlines() if str(tracking) in line] == \
        [line for line in two[2].splitlines() if str(tracking) in line]


def test_a_small_input_stays_in_one_process(shop, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_BYTES", 10**9)
    _registry, loaded = app.load(shop)
    outcomes = list(app.preview(loaded, "shop", jobs="auto"))
    assert all(o.record is not None or o.status.value != "valid" for o in outcomes)
    assert all(o.line is None for o in outcomes)


def test_jobs_are_auto_or_a_number(capsys):
    assert parallel.parse_jobs("auto") == "auto" and parallel.parse_jobs("3") == 3
    assert parallel.workers_for(1) == 1
    with pytest.raises(SystemExit) as stop:
        main(["preview", "-c", "x.toml", "-p", "shop", "--jobs", "0"])
    assert stop.value.code == 2
    assert "auto, or a number of processes" in capsys.readouterr().err


@dataclasses.dataclass(slots=True)
class _Plain:
    name: str
    lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Derived:
    name: str
    upper: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.upper = self.name.upper()


def test_units_cross_to_workers_unchanged():
    units = [RawUnit("k", "f:1", _Plain("a", ["x"]), (), ("f", 1)), RawUnit("k2", "f:3", _Derived("b"))]
    assert pickle.loads(parallel.dumps(units)) == units


def test_the_bundled_and_real_world_inputs_print_their_golden_lines(tmp_path, monkeypatch):
    """Every input tests/realworld/test_byte_identical.py holds, previewed on two
    processes: the `--json` lines are the golden ones."""
    golden_run = pytest.importorskip("realworld.golden_run")
    if not golden_run.CORPUS.is_dir():
        pytest.skip("../shared/realworld absent")
    import json
    hashes = json.loads((golden_run.GOLDEN / "hashes.json").read_text())
    serial = app.preview
    lines_by_workers = []

    def on_two(loaded, pipeline, files=()):  # noqa: ANN001, ANN202
        for outcome in serial(loaded, pipeline, files, jobs=2):
            lines_by_workers.append(outcome.line is not None)
            yield outcome

    monkeypatch.setattr(app, "preview", on_two)
    sys.path.insert(0, str(ROOT / "contrib" / "plugin-template" / "src"))
    seen = 0
    for name, _full, texts in golden_run.outputs(tmp_path):
        got = golden_run.digest(texts["preview.jsonl"])
        assert got == hashes[name]["preview.jsonl"], f"{name}: the parallel preview differs"
        seen += 1
    assert seen == len(hashes)
    assert lines_by_workers and all(lines_by_workers)


def test_the_config_sets_the_default_and_jobs_overrides_it(shop, capsys, tmp_path, monkeypatch):
    seen = []
    serial = app.preview

    def noting(loaded, pipeline, files=(), jobs=1):  # noqa: ANN001, ANN202
        seen.append(jobs)
        return serial(loaded, pipeline, files, jobs=jobs)

    monkeypatch.setattr(app, "preview", noting)
    config = tmp_path / "s321.toml"
    config.write_text("[preview]\njobs = 1\n\n" + shop.read_text())
    preview(capsys, "-c", str(config), "-p", "shop", "--json")
    preview(capsys, "-c", str(config), "-p", "shop", "--json", "--jobs", "2")
    preview(capsys, "-c", str(shop), "-p", "shop", "--json")
    assert seen == [1, 2, "auto"]
    config.write_text("[preview]\njobs = 0\n\n" + shop.read_text())
    code, _out, err = preview(capsys, "-c", str(config), "-p", "shop", "--json")
    assert code == 2 and "preview.jobs" in err


def preview_reading_spans(monkeypatch: pytest.MonkeyPatch, config: Path, pipeline: str
                          ) -> tuple[list[Any], list[Any]]:
    """A preview on two processes whose parent must never call the source's read() (only
    its keys pass), its outcomes asserted equal to one process's: (those outcomes, what
    the parent handed to the workers, each Plan as pickled)."""
    source_class = type(app.open_pipeline(app.load(config)[1], pipeline).source)
    read = source_class.read
    handed: list[Any] = []

    def read_in_workers_only(self, paths=None):  # noqa: ANN001, ANN202
        assert os.getpid() != PARENT, "the parent read the units"
        return read(self, paths)

    def noting(value):  # noqa: ANN001, ANN202
        handed.append(value)
        return dumps(value)

    _registry, loaded = app.load(config)
    serial = list(app.preview(loaded, pipeline))
    monkeypatch.setattr(source_class, "read", read_in_workers_only)
    dumps = parallel.dumps
    monkeypatch.setattr(parallel, "dumps", noting)
    outcomes = list(app.preview(loaded, pipeline, jobs=2))
    assert [o.to_json() for o in outcomes] == [o.to_json() for o in serial]
    assert [(o.ref, o.source, o.checkpoint, o.status, o.findings, o.reason) for o in outcomes] == [
        (o.ref, o.source, o.checkpoint, o.status, o.findings, o.reason) for o in serial]
    return serial, handed


def test_the_workers_read_their_own_spans_the_parent_never_reads_the_orders(shop, monkeypatch):
    """shopify-csv reads spans: the parent only runs the keys pass (which notes where
    each chunk starts) and never calls read(); the outcomes are those of one process."""
    _serial, span_reads = preview_reading_spans(monkeypatch, shop, "shop")
    plans = list({id(p): p for p in span_reads}.values())
    assert len(plans) == 43 and all(isinstance(p, parallel.Plan) for p in plans)
    assert all(isinstance(piece, list) for p in plans for piece in p.pieces)
    # The duplicate key (one order's rows again at the end) is named in both its chunks;
    # a chunk handed out before the keys pass found it repeated is handed out again
    # after, with its repeated keys; no other chunk is worked twice.
    assert sum(p.repeats is not None for p in plans) == 2
    twice = [p for p in plans if sum(q is p for q in span_reads) == 2]
    assert len(span_reads) == 43 + len(twice) and all(p.repeats for p in twice)


def test_a_worker_killed_in_the_middle_of_its_span(shop, capsys, monkeypatch):
    """A worker dies after reading part of its span: the parent reads that span again
    itself, and the rest; the output is complete and the same."""
    from s321.plugins import shopify_csv

    units = shopify_csv._units

    def units_or_die(reader, lines, file, *rest):  # noqa: ANN001, ANN002, ANN202
        for n, unit in enumerate(units(reader, lines, file, *rest)):
            if os.getpid() != PARENT and lines.first > 200 and n == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            yield unit

    monkeypatch.setattr(shopify_csv, "_units", units_or_die)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert len(two[1].splitlines()) == 301
    assert "a preview worker stopped" in two[2]


def test_a_keys_pass_with_positions_that_raises_falls_back_to_units(shop, capsys, monkeypatch):
    """The positions pass raises after chunks were already handed out: their outcomes are
    dropped and the parent reads the units and hands them over, as for any source."""
    from s321.plugins import shopify_csv

    positions = shopify_csv.read_export_positions

    def positions_then_raise(path, encoding="utf-8"):  # noqa: ANN001, ANN202
        for n, pair in enumerate(positions(path, encoding)):
            if n == 100:
                raise MemoryError("a bug")
            yield pair

    monkeypatch.setattr(shopify_csv, "read_export_positions", positions_then_raise)
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert "source raised while its keys were read" in two[2]


def test_a_folder_with_broken_files_between_the_spans(shop, capsys, tmp_path):
    """Spans stop at each file; a file refused whole (not UTF-8) or not an export is
    handed on as the one unit the keys pass had for it, in its place."""
    folder = tmp_path / "in"
    folder.mkdir()
    export = shop.parent / "orders_export.csv"
    (folder / "a.csv").write_bytes(export.read_bytes())
    (folder / "b.csv").write_bytes(b"Name,Currency\n#1,\xff\xfe\n")
    (folder / "c.csv").write_text("Name,Currency\n#1,USD\n", encoding="utf-8")
    (folder / "d.csv").write_bytes((ROOT / "contrib" / "samples" / "shop" / "orders_export.csv").read_bytes())
    (folder / "e.csv").write_bytes(b"")
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1", str(folder))
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2", str(folder))
    assert one[:2] == two[:2]
    for code in ("invalid-encoding", "missing-column", "not-an-orders-export", "duplicate-key"):
        assert f'"{code}"' in one[1], code


def test_a_file_named_twice_is_read_twice(shop, capsys):
    """`preview FILE FILE`: two readings of one file; a span never runs from one into
    the other (they have the same file and lines)."""
    export = str(ROOT / "contrib" / "samples" / "shop" / "orders_export.csv")  # 36 orders
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1", export, export)
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2", export, export)
    assert one[:2] == two[:2]
    assert len(two[1].splitlines()) == 2 * 36  # a chunk of 7 holds the end of one, the start of the other


CARRIERS = {"x12-309": ("truck", "manifests.edi"), "cargo-imp-fhl": ("air", "houses.txt")}


@pytest.fixture(scope="module", params=sorted(CARRIERS))
def carrier(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[str, Path]:
    """A config over 300 generated bills or houses of a carrier source, the first one
    repeated at the end of their file (a duplicate key), and a file before it that is
    not one of theirs."""
    kind = request.param
    mode, name = CARRIERS[kind]
    folder = tmp_path_factory.mktemp(f"parallel-{kind}")
    data = folder / "in" / name
    data.parent.mkdir()
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), kind, "300", str(data)],
                   check=True, capture_output=True)
    again = folder / "again"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), kind, "1", str(again)],
                   check=True, capture_output=True)
    with data.open("ab") as fh:  # keys repeat within one file only
        fh.write(again.read_bytes())
    (data.parent / f"b{data.suffix}").write_bytes(b"\xff\xfe neither X12 nor Cargo-IMP\n")
    return kind, carrier_config(folder, kind, mode, data.parent)


def carrier_config(folder: Path, kind: str, mode: str, inbox: Path) -> Path:
    """`folder/s321.toml`: pipeline `carrier`, source `kind` over `inbox`, to a file outbox."""
    config = folder / "s321.toml"
    config.write_text(f"""\
[pipelines.carrier]
originator_code = "CAR321"
filer_type = "carrier"
mode_of_transport = "{mode}"
profile = "pilot-2019"

[pipelines.carrier.defaults]
known_carrier_customer = true

[pipelines.carrier.source]
plugin = "{kind}"
path = "{inbox}"

[pipelines.carrier.transport]
plugin = "file"
directory = "{folder / 'outbox'}"
""", encoding="utf-8")
    return config


def test_a_carrier_source_s_workers_read_their_own_spans(carrier, monkeypatch):
    """The X12 309 and FHL sources read spans too: the parent runs the keys pass only,
    never reads a bill or house in full, and the outcomes (a duplicate key, a file
    refused whole) are those of one process."""
    _kind, config = carrier
    serial, handed = preview_reading_spans(monkeypatch, config, "carrier")
    handed = [p for p in handed if isinstance(p, parallel.Plan)]
    assert len(handed) >= 300 // 7 and all(isinstance(piece, list) for p in handed[1:-1]
                                            for piece in p.pieces)
    duplicates = [o for o in serial if any(f.code == "duplicate-key" for f in o.findings)]
    assert len(duplicates) == 2
    assert sum(o.status.value != "valid" for o in serial) >= 3  # and the file refused whole


def test_a_carrier_worker_killed_in_the_middle_of_its_span(carrier, capsys, monkeypatch):
    """A worker reading an X12 or FHL span dies after a few of its units: the parent
    reads that span again from its position, and the rest; every unit is printed once,
    as one process prints it."""
    kind, config = carrier
    source_class = type(app.open_pipeline(app.load(config)[1], "carrier").source)
    read_span = source_class.read_span
    spans = [0]

    def read_span_or_die(self, position, count):  # noqa: ANN001, ANN202
        spans[0] += 1
        for n, unit in enumerate(read_span(self, position, count)):
            if os.getpid() != PARENT and spans[0] == 5 and n == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            yield unit

    monkeypatch.setattr(source_class, "read_span", read_span_or_die)
    one = preview(capsys, "-c", str(config), "-p", "carrier", "--json", "--jobs", "1")
    two = preview(capsys, "-c", str(config), "-p", "carrier", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert len(two[1].splitlines()) == len(one[1].splitlines()) > 300
    assert "a preview worker stopped" in two[2]


class SlowKeysPass:
    """shopify-csv's keys pass made slow (5 ms an order, after waiting for a worker to
    finish its first chunk, however long the workers take to start), noting when it
    ended; and the moments the workers start a chunk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        from s321.plugins import shopify_csv

        self.ended: list[float] = []
        self.started = folder / "started"
        self.done = folder / "done"
        positions = shopify_csv.read_export_positions
        outcomes_of = parallel._plan_outcomes

        def slowly(path, encoding="utf-8"):  # noqa: ANN001, ANN202
            for n, pair in enumerate(positions(path, encoding)):
                if n == 3 * parallel.CHUNK:  # three chunks are out: wait for the first
                    deadline = time.monotonic() + 60
                    while not self.done.exists() and time.monotonic() < deadline:
                        time.sleep(0.01)
                time.sleep(0.005)
                yield pair
            self.ended.append(time.monotonic())

        def noting(processor, plan):  # noqa: ANN001, ANN202
            if os.getpid() != PARENT:
                with self.started.open("a") as fh:
                    fh.write(f"{time.monotonic()}\n")
            yield from outcomes_of(processor, plan)
            if os.getpid() != PARENT:
                self.done.touch()

        monkeypatch.setattr(shopify_csv, "read_export_positions", slowly)
        monkeypatch.setattr(parallel, "_plan_outcomes", noting)

    def starts(self) -> list[float]:
        return [float(line) for line in self.started.read_text().split()]


def test_the_workers_work_while_the_keys_pass_runs(shop, monkeypatch, tmp_path):
    """The keys pass of a source that reads spans takes a while (a large X12 or FHL
    file's: seconds): the chunks it has cut go to the workers meanwhile, all of them,
    not only the first few, and their outcomes wait (on disk) for the pass to end."""
    monkeypatch.setattr(parallel, "CHUNK", 3)  # about 100 chunks
    _registry, loaded = app.load(shop)
    serial = list(app.preview(loaded, "shop"))
    slow = SlowKeysPass(monkeypatch, tmp_path)
    outcomes = list(app.preview(loaded, "shop", jobs=2))
    assert [o.to_json() for o in outcomes] == [o.to_json() for o in serial]
    assert [(o.ref, o.source, o.checkpoint, o.status, o.findings, o.reason) for o in outcomes] == [
        (o.ref, o.source, o.checkpoint, o.status, o.findings, o.reason) for o in serial]
    starts = slow.starts()
    chunks = -(-301 // 3)
    assert len(slow.ended) == 1 and len(starts) >= chunks
    # Before, the first 32 chunks only were handed out while the pass ran.
    assert sum(t < slow.ended[0] for t in starts) >= 0.6 * chunks


def test_outcomes_that_cannot_wait_on_disk(shop, capsys, monkeypatch, tmp_path):
    """The temporary file cannot be made (a full or read-only temporary folder): the
    workers wait for the keys pass, and the preview is the same."""
    def no_room(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    SlowKeysPass(monkeypatch, tmp_path)
    monkeypatch.setattr(parallel, "TemporaryFile", no_room)
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert "outcomes cannot wait on disk" in two[2] and "No space left on device" in two[2]


def test_outcomes_lost_from_the_temporary_file(shop, capsys, monkeypatch, tmp_path):
    """The temporary file loses what it held (cut short under the preview): the parent
    works those chunks itself, and the preview is complete and the same."""
    read = parallel._Spill.read

    def cut_short_then_read(self, offset, size):  # noqa: ANN001, ANN202
        self.file.truncate(offset + size // 2)
        return read(self, offset, size)

    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    SlowKeysPass(monkeypatch, tmp_path)
    monkeypatch.setattr(parallel._Spill, "read", cut_short_then_read)
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]
    assert len(two[1].splitlines()) == 301
    assert "temporary file could not be read back" in two[2]


def test_outcomes_past_the_spill_limit_wait_for_the_keys_pass(shop, capsys, monkeypatch, tmp_path):
    """A spill that is full takes no more: the chunks not handed out wait for the pass."""
    one = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "1")
    SlowKeysPass(monkeypatch, tmp_path)
    monkeypatch.setattr(parallel, "SPILL_BYTES", 20_000)
    two = preview(capsys, "-c", str(shop), "-p", "shop", "--json", "--jobs", "2")
    assert one[:2] == two[:2]


@pytest.fixture(scope="module")
def big_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config over 30,000 generated X12 309 bills: a keys pass long enough to catch the
    preview at work from outside."""
    folder = tmp_path_factory.mktemp("parallel-carrier")
    data = folder / "in" / "manifests.edi"
    data.parent.mkdir()
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), "x12-309", "30000", str(data)],
                   check=True, capture_output=True)
    return carrier_config(folder, "x12-309", "truck", data.parent)


def start_preview(config: Path, scratch: Path) -> subprocess.Popen[bytes]:
    """A real `s321 preview --jobs 2` in a session of its own, its TMPDIR `scratch`."""
    return subprocess.Popen([sys.executable, "-m", "s321.cli", "preview", "-c", str(config), "-p", "carrier",
                             "--json", "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(scratch)}, start_new_session=True)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended, and waits only for its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_preview_leaves_no_buyers_data_in_the_temporary_folder(big_manifest, tmp_path):
    """The outcomes that wait for the keys pass hold buyers' names and addresses: their
    file is the preview's alone (0600) and has no name, so `kill -9` of the preview and
    its workers leaves nothing in $TMPDIR."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = start_preview(big_manifest, scratch)
    spill = None
    try:
        deadline = time.monotonic() + 60
        while spill is None and proc.poll() is None and time.monotonic() < deadline:
            for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith(str(scratch)):
                    spill = (target, os.stat(fd).st_mode & 0o777)
                    break
            time.sleep(0.01)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended first: the assertion below says so
            pass
        proc.communicate()
    assert spill is not None, "no outcomes waited on disk while the keys were read"
    assert spill[0].endswith("(deleted)") and spill[1] == 0o600, spill
    assert list(scratch.iterdir()) == []


def test_workers_end_with_a_preview_killed_alone(big_manifest, tmp_path):
    """`kill -9` of the preview alone (the OOM killer, an operator's kill of the pid) runs
    none of its clean-up: its workers, each holding a share of the buyers' data and its
    own copy of the tables, end with it instead of waiting for work for ever."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = start_preview(big_manifest, scratch)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = children(proc.pid)
            time.sleep(0.01)
        assert len(workers) == 2, f"the preview ended or started no workers: {proc.poll()}"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while (left := [w for w in workers if alive(w)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == [], "workers outlived their preview"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()

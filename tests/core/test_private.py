"""Personal data at rest: every file and folder s321 creates is owner-only under any
umask, a looser one of ours is tightened with a warning, an inbox is left alone, the
group mode comes from `[files] group`, and another account really cannot read them."""

import os
import shutil
import stat
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from builders import consignment, jsonl_pipeline_config, marketplace_fields
from s321 import app, private
from s321.adapters.file import FileOptions, FileTransport
from s321.contracts import Batch
from s321.ledger import Ledger
from s321.plugins.wire_s321 import S321Json
from s321.sandbox.store import SandboxStore


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """umask 000: whatever the code does not set itself would come out 0666/0777."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def shared_dir():
    """A folder any account can enter (unlike pytest's tmp_path, 0700 under /tmp), so
    that only the modes of what s321 creates inside stand between it and `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="s321-private-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture(autouse=True)
def _default_group():
    yield
    private.configure("none")


def nobody_can_read(path: Path) -> bool:
    if shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs root and runuser to act as another account")
    done = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)],
                          capture_output=True, timeout=10)
    return done.returncode == 0


def a_batch() -> Batch:
    return Batch(batch_id="B1", originator_code="MKT001", profile="pilot-2019",
                 sent_at=datetime.now(UTC), records=[consignment(marketplace_fields(), txid="T1")])


def test_ledger_store_and_their_wal_files_are_owner_only_under_umask_000(open_umask, shared_dir):
    ledger = Ledger(shared_dir / "state" / "ledger.sqlite")
    store = SandboxStore(shared_dir / "sandbox.sqlite")
    try:
        with ledger.transaction() as db:  # a write, so that -wal and -shm exist
            db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        with store.session() as session:
            session.reject("T1", "B1", ["probe"])
        for db_file in (shared_dir / "state" / "ledger.sqlite", shared_dir / "sandbox.sqlite"):
            for companion in private.sqlite_companions(db_file):
                if companion.exists():
                    assert mode(companion) == 0o600, companion
            assert Path(f"{db_file}-wal").exists()
            assert not nobody_can_read(db_file)
        assert mode(shared_dir / "state") == 0o700  # made by s321
        assert mode(shared_dir) == 0o755  # there before: not ours to change
    finally:
        ledger.close()
        store.close()


def test_the_check_is_meaningful_nobody_reads_a_0644_file_there(shared_dir):
    control = shared_dir / "control.txt"
    control.write_text("readable\n")
    control.chmod(0o644)
    assert nobody_can_read(control)


def test_file_transport_batches_and_outbox_are_owner_only_under_umask_000(open_umask, shared_dir):
    transport = FileTransport(FileOptions(directory=shared_dir / "outbox" / "day1"), None, S321Json())
    transport.connect()
    receipt = transport.send(a_batch())
    written = Path(receipt.detail)
    assert mode(written) == 0o600
    assert mode(shared_dir / "outbox") == mode(shared_dir / "outbox" / "day1") == 0o700
    assert not nobody_can_read(written)


def test_a_looser_ledger_of_ours_is_tightened_when_opened(shared_dir):
    path = shared_dir / "old.sqlite"
    Ledger(path).close()
    path.chmod(0o644)  # as an s321 before this change left it
    Ledger(path).close()
    assert mode(path) == 0o600
    assert not nobody_can_read(path)


def test_tightening_is_logged_with_the_path(shared_dir):
    from structlog.testing import capture_logs

    path = shared_dir / "loose.json"
    path.write_text("{}")
    path.chmod(0o666)
    with capture_logs() as logs:
        private.ensure_file(path)
    assert mode(path) == 0o600
    assert [e["event"] for e in logs] == ["made private: it was readable by others"]
    assert logs[0]["path"] == str(path) and logs[0]["was"] == "0o666"


def test_an_existing_inbox_is_never_changed_but_an_archive_is_tightened(shared_dir):
    inbox = shared_dir / "inbox"
    inbox.mkdir()
    inbox.chmod(0o777)  # an uploader account writes here
    private.ensure_dir(inbox)
    assert mode(inbox) == 0o777
    archive = shared_dir / "archive"
    archive.mkdir()
    archive.chmod(0o755)
    private.ensure_dir(archive, tighten=True)
    assert mode(archive) == 0o700


def test_create_refuses_a_symlink_at_the_path(shared_dir):
    target = shared_dir / "elsewhere"
    target.write_text("keep me")
    (shared_dir / "link").symlink_to(target)
    with pytest.raises(OSError):
        private.create(shared_dir / "link")
    assert target.read_text() == "keep me"


def test_files_group_from_the_config_opens_files_to_the_group(open_umask, tmp_path):
    cfg = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out")
    cfg.write_text('[files]\ngroup = "read"\n' + cfg.read_text())
    _registry, loaded = app.load(cfg)
    assert loaded.config.files.group == "read"
    ledger = Ledger(tmp_path / "group.sqlite")
    ledger.close()
    assert mode(tmp_path / "group.sqlite") == 0o640
    private.ensure_dir(tmp_path / "new")
    assert mode(tmp_path / "new") == 0o750


def test_a_wrong_files_group_is_a_config_error_naming_the_key(tmp_path):
    from s321.errors import ConfigError

    cfg = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out")
    cfg.write_text('[files]\ngroup = "everyone"\n' + cfg.read_text())
    with pytest.raises(ConfigError) as info:
        app.load(cfg)
    assert "files.group" in "\n".join(info.value.lines)


def test_the_sandbox_state_folder_and_store_are_owner_only_under_umask_000(shared_dir):
    import signal
    import sys
    import time

    state = shared_dir / ".s321-sandbox"
    port_file = shared_dir / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s321.sandbox.cli", "sandbox", "--port-file", str(port_file),
         "--certs-dir", str(state / "certs"), "--db", str(state / "sandbox.sqlite")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0))
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None and time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert mode(state) == mode(state / "certs") == 0o700
    assert mode(state / "sandbox.sqlite") == 0o600
    assert not nobody_can_read(state / "sandbox.sqlite")


def test_an_archived_input_can_be_made_private_quietly(shared_dir):
    from structlog.testing import capture_logs

    archived = shared_dir / "orders.jsonl"
    archived.write_text("{}\n")
    archived.chmod(0o644)  # as the uploader left it
    with capture_logs() as logs:
        private.ensure_file(archived, warn=False)
    assert mode(archived) == 0o600 and logs == []


def a_run_config(folder: Path, ledger: Path) -> Path:
    """A records-jsonl pipeline to the file transport, its ledger at `ledger`."""
    inbox = folder / "in"
    inbox.mkdir(exist_ok=True)
    config = jsonl_pipeline_config(folder, inbox, folder / "out")
    config.write_text(f'[ledger]\npath = "{ledger}"\n\n' + config.read_text())
    return config


def test_run_makes_the_ledger_folder_and_its_lock_owner_only_under_umask_000(shared_dir):
    """`s321 run` takes the ledger's lock before it opens the ledger, so the lock made the
    ledger's folder: with the umask's mode (0777 here, 0755 under 022), a folder where
    another account could plant the -wal that SQLite then writes buyers' data into."""
    import sys

    config = a_run_config(shared_dir, shared_dir / "state" / "ledger.sqlite")
    subprocess.run([sys.executable, "-m", "s321.cli", "run", "-c", str(config), "--once"],
                   check=True, capture_output=True, preexec_fn=lambda: os.umask(0))
    assert mode(shared_dir / "state") == 0o700
    assert mode(shared_dir / "state" / "ledger.sqlite.lock") == 0o600
    assert mode(shared_dir / "state" / "ledger.sqlite") == 0o600


def test_a_looser_lock_file_is_tightened(shared_dir):
    from s321.lock import LedgerLock

    (shared_dir / "ledger.sqlite.lock").touch(0o666)
    (shared_dir / "ledger.sqlite.lock").chmod(0o666)
    lock = LedgerLock(shared_dir / "ledger.sqlite").acquire("test")
    try:
        assert mode(shared_dir / "ledger.sqlite.lock") == 0o600
    finally:
        lock.release()


@pytest.mark.parametrize("companion", ["-wal", "-shm", ""])
def test_a_ledger_file_another_account_owns_is_refused_not_used(shared_dir, companion):
    """A -wal that another account made (in a folder it could write) stays readable by
    that account whatever mode s321 gives it: opening the ledger refuses it, naming it."""
    path = shared_dir / "ledger.sqlite"
    Ledger(path).close()
    planted = Path(f"{path}{companion}")
    planted.touch()
    nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True, check=True).stdout)
    os.chown(planted, nobody, -1)
    with pytest.raises(private.NotOurs, match=rf"{planted.name}: owned by uid {nobody}"):
        Ledger(path)


def test_a_journal_that_is_a_link_is_refused(shared_dir):
    path = shared_dir / "ledger.sqlite"
    Ledger(path).close()
    Path(f"{path}-wal").symlink_to(shared_dir / "elsewhere")
    with pytest.raises(private.NotOurs, match="symbolic link"):
        Ledger(path)
    assert not (shared_dir / "elsewhere").exists()


def test_a_ledger_reached_through_a_link_is_still_used(shared_dir):
    """The config may name the ledger by a symlink (SQLite keeps the journals beside the
    file it points to): that is no planted file."""
    real = shared_dir / "real" / "ledger.sqlite"
    Ledger(real).close()
    (shared_dir / "ledger.sqlite").symlink_to(real)
    Ledger(shared_dir / "ledger.sqlite").close()


def test_generated_keys_live_in_an_owner_only_folder_under_umask_000(open_umask, shared_dir):
    from s321.relay import keys

    keys.generate("relay", shared_dir / "state" / "keys")
    assert mode(shared_dir / "state") == mode(shared_dir / "state" / "keys") == 0o700


def test_the_drivers_shipment_list_is_owner_only_under_umask_000(open_umask, shared_dir):
    from s321.cli import main

    out = shared_dir / "driver-list.txt"
    trip = Path(__file__).resolve().parents[2] / "config" / "trips" / "NWTK2612070001.toml"
    assert main(["ace", "manifest-list", str(trip), "-o", str(out)]) == 0
    assert mode(out) == 0o600 and "NWTK" in out.read_text()


def test_sandbox_keys_written_over_older_files_are_owner_only(shared_dir):
    from s321.sandbox.certs import ensure_dev_certs

    certs = shared_dir / "certs"
    certs.mkdir()
    for name in ("server.key", "client.key"):
        (certs / name).touch()
        (certs / name).chmod(0o644)
    made = ensure_dev_certs(certs)
    assert mode(made.server_key) == mode(made.client_key) == 0o600
    assert not nobody_can_read(made.client_key)


def test_the_sandbox_drop_folders_and_answers_are_owner_only_under_umask_000(open_umask, shared_dir):
    from s321.sandbox.drop import DropSandbox
    from s321.sandbox.review import Reviewer

    store = SandboxStore(shared_dir / "sandbox.sqlite")
    try:
        drop = DropSandbox.in_folder(shared_dir / "drop", Reviewer(store))
        for folder in ("drop/inbound", "drop/outbound", "drop/inbound/processed", "drop/inbound/rejected"):
            assert mode(shared_dir / folder) == 0o700, folder
        (shared_dir / "drop" / "inbound" / "B1.json").write_bytes(S321Json().encode_batch(a_batch()))
        assert drop.run_once() == 1
        answers = list((shared_dir / "drop" / "outbound").iterdir())
        assert answers and all(mode(answer) == 0o600 for answer in answers), answers
    finally:
        store.close()


def test_a_file_named_as_a_folder_is_never_made_private(shared_dir):
    """An `archive_dir` that names a table by mistake: the archive fails, said, and the
    table keeps its mode (s321 changes the modes of its own folders only)."""
    table = shared_dir / "catalog.csv"
    table.write_text("sku,hts\n")
    table.chmod(0o644)
    with pytest.raises(NotADirectoryError):
        private.ensure_dir(table, tighten=True)
    assert mode(table) == 0o644


def test_the_file_transport_refuses_a_file_for_its_folder(shared_dir):
    """Refused in the config (`s321 check`), not retried until the run gives up."""
    from pydantic import ValidationError

    (shared_dir / "outbox").write_text("")
    with pytest.raises(ValidationError, match="is a file, not a folder"):
        FileOptions(directory=shared_dir / "outbox")

"""ACE truck end to end: a carrier's Shopify export through a pipeline with the
`ace-truck-309` serializer. What the transmitter puts in one transmission is one trip,
whatever the queue holds; a shipment on no trip is dead-lettered saying so; with the
sandbox over a real sshd, ACE's answers come back into the ledger."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sshd import SshServer, sshd_missing

from s321 import app
from s321.cli import main
from s321.ledger import Ledger
from s321.plugins.ace_truck import validate
from s321.sandbox.drop import DropSandbox
from s321.sandbox.faults import Faults, FaultState
from s321.sandbox.review import Reviewer
from s321.sandbox.store import SandboxStore

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "contrib" / "samples"
TRIP = (SAMPLES / "ace-truck" / "trip.toml").read_text(encoding="utf-8")


def arrival_in(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).astimezone().isoformat(timespec="seconds")


def trip_file(folder: Path, number: str, shipments: list[str], hours: float = 4) -> None:
    text = TRIP.replace("NWTK2612070001", number)
    text = re.sub(r"(?m)^estimated_arrival = .*$", f"estimated_arrival = {arrival_in(hours)}", text)
    text = re.sub(r"(?m)^shipments = .*$", "shipments = [" + ", ".join(f'"{s}"' for s in shipments) + "]", text)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{number}.toml").write_text(text, encoding="utf-8")


def carrier_config(tmp_path: Path, transport: str) -> Path:
    """The example config/ace-truck.toml with its paths made absolute and `transport` as
    its transport table."""
    text = (ROOT / "config" / "ace-truck.toml").read_text(encoding="utf-8")
    text = text.replace("../contrib", str(ROOT / "contrib")).replace("../build/ace-truck", str(tmp_path))
    text = text[:text.index("[pipelines.truck.transport]")] + transport
    path = tmp_path / "s321.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_transmission_is_one_trip_and_a_shipment_on_no_trip_says_so(tmp_path: Path) -> None:
    trips = tmp_path / "trips"
    trip_file(trips, "NWTK2612070001", ["NWTK1001", "NWTK1003"])
    trip_file(trips, "NWTK2612070002", ["NWTK1002"])
    # NWTK1007 rides on no trip
    config = carrier_config(tmp_path, f'[pipelines.truck.transport]\nplugin = "file"\ndirectory = "{tmp_path}/out"\n')
    registry, loaded = app.load(config)
    [summary] = app.run_once(registry, loaded)
    files = sorted(f for f in (tmp_path / "out").iterdir() if not f.name.startswith("."))
    sent = {}
    for f in files:
        checked = validate.validate(f.read_bytes(), f.name)
        assert checked.problems == []
        sent[checked.trip] = sorted(s.control_number for s in checked.shipments)
    assert sent == {"NWTK2612070001": ["NWTK1001", "NWTK1003"], "NWTK2612070002": ["NWTK1002"]}
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        [alone] = ledger.find("NWTK1007")
        row = ledger.get(alone)
        assert row is not None and row["state"] == "dead"
        assert "shipment control number" in row["last_error"] and "trip file" in row["last_error"]
        assert {ledger.get(t)["state"] for t in ledger.find("NWTK1001") + ledger.find("NWTK1002")} == {"delivered"}
    finally:
        ledger.close()


def test_trip_files_anywhere_from_the_pipelines_serializer_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "dispatch" / "today"
    trip_file(elsewhere, "NWTK2612070001", ["NWTK1001", "NWTK1003"])
    trip_file(tmp_path / "dispatch" / "late", "NWTK2612070002", ["NWTK1002"])
    transport = (f'[pipelines.truck.serializer_options]\ntrip_files = ["dispatch/today", '
                 f'"dispatch/late/NWTK2612070002.toml"]\n\n'
                 f'[pipelines.truck.transport]\nplugin = "file"\ndirectory = "{tmp_path}/out"\n')
    config = carrier_config(tmp_path, transport)  # no trips/ beside it
    assert not (tmp_path / "trips").exists()
    assert main(["ace", "check-trip", "-c", str(config)]) == 0  # the config's trip files, both trips
    assert capsys.readouterr().out.count(": trip NWTK261207000") == 2
    registry, loaded = app.load(config)
    app.run_once(registry, loaded)
    sent = {}
    for f in (tmp_path / "out").iterdir():
        if not f.name.startswith("."):
            checked = validate.validate(f.read_bytes(), f.name)
            sent[checked.trip] = sorted(s.control_number for s in checked.shipments)
    assert sent == {"NWTK2612070001": ["NWTK1001", "NWTK1003"], "NWTK2612070002": ["NWTK1002"]}


def test_s321_check_refuses_trip_files_that_are_missing_or_invalid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "dispatch"
    trip_file(bad, "NWTK2612070001", ["NWTK1001"])
    (bad / "NWTK2612070001.toml").write_text(
        (bad / "NWTK2612070001.toml").read_text().replace('port_of_arrival = "3004"', 'port_of_arrival = "30"'))
    out = f'[pipelines.truck.transport]\nplugin = "file"\ndirectory = "{tmp_path}/out"\n'
    for options, says in (('trip_files = ["dispatch"]', "dispatch/NWTK2612070001.toml: port_of_arrival"),
                          ('trip_files = ["nowhere.toml"]', "no such trip file or folder"),
                          ('trip_file = ["dispatch"]', "serializer_options.trip_file")):
        config = carrier_config(tmp_path, f"[pipelines.truck.serializer_options]\n{options}\n\n{out}")
        assert main(["check", "-c", str(config)]) != 0
        err = capsys.readouterr().err
        assert says in err and "pipelines.truck.serializer_options" in err and "Traceback" not in err
    config = carrier_config(tmp_path, f'[pipelines.truck.serializer_options]\ntrip_files = ["x"]\n\n{out}'
                            .replace("ace-truck-309", "s321/1"))
    assert main(["check", "-c", str(config)]) != 0  # s321/1 takes no options: any key is an error
    assert "serializer_options.trip_files" in capsys.readouterr().err


def test_a_trip_too_late_for_ace_is_not_sent(tmp_path: Path) -> None:
    trips = tmp_path / "trips"
    trip_file(trips, "NWTK2612070001", ["NWTK1001", "NWTK1002", "NWTK1003", "NWTK1007"], hours=0.5)
    config = carrier_config(tmp_path, f'[pipelines.truck.transport]\nplugin = "file"\ndirectory = "{tmp_path}/out"\n')
    registry, loaded = app.load(config)
    app.run_once(registry, loaded)
    out = tmp_path / "out"
    assert not out.exists() or not [f for f in out.iterdir() if not f.name.startswith(".")]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        row = ledger.get(ledger.find("NWTK1001")[0])
        assert row is not None and row["state"] == "dead"
        assert "ACE wants a trip at least 60 minutes before arrival" in row["last_error"]
    finally:
        ledger.close()


def test_the_bundled_trip_checks_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trips = tmp_path / "trips"
    trips.mkdir()
    shutil.copy(ROOT / "config" / "trips" / "NWTK2612070001.toml", trips)
    copied = trips / "NWTK2612070001.toml"
    copied.chmod(0o644)
    assert main(["ace", "check-trip", str(trips)]) == 0
    assert "make it owner-only" in capsys.readouterr().err
    copied.chmod(0o600)
    assert main(["ace", "check-trip", str(trips)]) == 0
    assert "owner-only" not in capsys.readouterr().err
    config = carrier_config(tmp_path, f'[pipelines.truck.transport]\nplugin = "file"\ndirectory = "{tmp_path}/out"\n')
    assert main(["ace", "check-trip", str(trips), "-c", str(config)]) == 0  # nothing queued: no risk
    assert main(["ace", "manifest-list", str(trips / "NWTK2612070001.toml")]) == 0
    out = capsys.readouterr().out
    assert "NWTK1001" in out and "broker's entry" in out
    assert "Robin" not in out and "42705555" not in out  # no crew data on the list


# --------------------------------------------------------------------------- over sftp-drop


def test_a_shopify_export_filed_over_sftp_to_the_sandbox_comes_back_as_355_answers(tmp_path: Path) -> None:
    """Real sshd serving the sandbox's drop folder; the sandbox rejects some shipments by
    fault injection (seeded); the 997s and 355s land in the ledger as acceptances and
    rejections with ACE's codes."""
    missing = sshd_missing()
    if missing:
        pytest.skip(missing)
    trips = tmp_path / "trips"
    trip_file(trips, "NWTK2612070001", ["NWTK1001", "NWTK1002", "NWTK1003"])
    trip_file(trips, "NWTK2612070002", ["NWTK1007"])
    server = SshServer(tmp_path / "sshd").start()
    store = SandboxStore(tmp_path / "sandbox.sqlite")
    # seed 3: the sandbox's draws go reject, accept, reject, accept
    reviewer = Reviewer(store, faults=FaultState(Faults(reject_fraction=0.5, seed=3)))
    drop = DropSandbox.in_folder(server.root, reviewer, poll_interval=0.05).start()
    try:
        config = carrier_config(tmp_path, "\n".join([
            "[pipelines.truck.transport]", 'plugin = "sftp-drop"', 'host = "127.0.0.1"', f"port = {server.port}",
            f'username = "{server.user}"', f'key = "{server.user_key.private}"',
            f'known_hosts = "{server.known_hosts()}"', "poll_interval = 0.05", "settle_time = 0",
            "connect_timeout = 5", "op_timeout = 5", "window = 1", ""]))
        registry, loaded = app.load(config)
        [summary] = app.run_once(registry, loaded)
    finally:
        drop.stop()
        server.stop()
        store.close()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        states = {}
        for scn in ("NWTK1001", "NWTK1002", "NWTK1003", "NWTK1007"):
            [txid] = ledger.find(scn)
            row = ledger.get(txid)
            assert row is not None
            states[scn] = row["state"]
            if row["state"] == "rejected":
                assert "ACE" in (row["ack"] or "")  # CBP's code and text, as the 355 gave them
        assert set(states.values()) == {"accepted", "rejected"}, states
        assert sorted(states.values()).count("rejected") == 2, states
    finally:
        ledger.close()
    assert summary.error is None


def test_a_running_pipeline_warns_when_a_trip_is_at_risk_of_reaching_ace_late(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real sshd, but nobody answers in the mailbox: the trip's shipments stay unanswered
    while its deadline (arrival in 80 minutes: due at ACE in 20) comes within warn_minutes
    (30). The pipeline's next pass says so: observers (pipeline_failing), /metrics, log;
    never a crew member's data."""
    import types

    from s321.hookspecs import hookimpl
    from s321.metrics import Metrics
    from s321.observers import Observers
    from s321.worker import PipelineWorker

    missing = sshd_missing()
    if missing:
        pytest.skip(missing)
    trip_file(tmp_path / "trips", "NWTK2612070001", ["NWTK1001", "NWTK1002", "NWTK1003", "NWTK1007"],
              hours=80 / 60)
    server = SshServer(tmp_path / "sshd").start()
    alerts: list[tuple[str, str]] = []
    watcher = types.ModuleType("watcher")

    @hookimpl
    def pipeline_failing(pipeline: str, error: str) -> None:
        alerts.append((pipeline, error))

    watcher.pipeline_failing = pipeline_failing  # type: ignore[attr-defined]
    try:
        config = carrier_config(tmp_path, "\n".join([
            "[pipelines.truck.transport]", 'plugin = "sftp-drop"', 'host = "127.0.0.1"', f"port = {server.port}",
            f'username = "{server.user}"', f'key = "{server.user_key.private}"',
            f'known_hosts = "{server.known_hosts()}"', "poll_interval = 0.05", "settle_time = 0",
            "connect_timeout = 5", "op_timeout = 5", ""]))
        registry, loaded = app.load(config)
        assert registry.add_plugin(watcher, "watcher").status == "loaded"
        ledger = Ledger(tmp_path / "ledger.sqlite")
        metrics = Metrics()
        worker = PipelineWorker(loaded.pipelines["truck"], loaded.rates, ledger, Observers(registry.pm), metrics)
        try:
            worker.ingest()
            assert worker.transmit() == 4  # the trip is on the wire; no 355 comes
            assert alerts == []
            worker.transmit()  # the daemon's next pass
            worker.transmit()  # and the one after: said once
        finally:
            worker.close()
            ledger.close()
    finally:
        server.stop()
    [(pipeline, message)] = alerts
    assert pipeline == "truck" and "trip NWTK2612070001 is at risk of reaching ACE late" in message
    assert "NWTK1001" in message and "Robin" not in message and "Example" not in message
    assert 's321_deadlines_at_risk{daemon="' in metrics.render().decode()
    assert any(line.startswith("s321_deadlines_at_risk{") and line.endswith(" 1.0")
               for line in metrics.render().decode().splitlines())
    logged = capsys.readouterr()
    assert "ACE trip at risk of being late" in logged.out + logged.err
    assert "Robin" not in logged.out + logged.err and "42705555" not in logged.out + logged.err

"""`[daemon] transmit = "auto"`, the default: a run or daemon whose pipelines use installed
plugins transmits in a child process; one using a component registered by code in the
process (which a child loading the entry points would not have), or a process allowed one
core, transmits in its own threads. Real runs: the sandbox on loopback mutual TLS, a
SQLite ledger, the transmit process as the operator's log tells of it, a real CPU affinity."""

import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import pytest
from crash.world import World

from s321 import app
from s321 import config as config_mod
from s321.hookspecs import hookimpl
from s321.transmit_process import choose, cores

@pytest.fixture
def world(tmp_path):
    (tmp_path / "w").mkdir()
    w = World(tmp_path / "w", ack_delay=0.01)  # its config does not name `transmit`
    assert "transmit =" not in w.config.read_text()
    yield w
    w.stop_sandbox()


def pipelines(loaded):
    return list(loaded.pipelines.values())


@pytest.mark.skipif(cores() < 2, reason="auto transmits in a thread on one core")
def test_the_default_transmits_installed_plugins_in_a_child(world, capfd):
    registry, loaded = app.load(world.config)
    assert loaded.config.daemon.transmit == "auto"
    assert choose("auto", registry, pipelines(loaded)) == "process"
    world.start_sandbox()
    world.add_input("a", 40)
    capfd.readouterr()
    [summary] = app.run_once(registry, loaded)
    assert summary.error is None and summary.counts["accepted"] == 40, summary
    # Forked, or exec'd when this process has other threads (what earlier tests in this
    # worker left running): either way another process, as the operator's log says.
    out = capfd.readouterr()
    started = re.search(r"transmit process started\s+pid=(\d+)", out.out + out.err)
    assert started and int(started[1]) != os.getpid(), "the run started no transmit process"
    world.assert_every_version_once()


def test_a_component_registered_in_process_transmits_here(world, capfd):
    """A transport registered by code here: the child would not have it, so the run
    sends from its own threads (and works), whatever `transmit` says."""
    registry, _ = app.load(world.config)
    installed = registry.get("transport", "p2p-socket")

    class Here:
        @hookimpl
        def register_transports(self, register):  # noqa: ANN001, ANN201
            register("p2p-here", installed.factory, options=installed.options)

    assert registry.add_plugin(Here(), "here").status == "loaded"
    world.config.write_text(world.config.read_text().replace('plugin = "p2p-socket"', 'plugin = "p2p-here"'))
    loaded = config_mod.load(world.config, registry)
    assert choose("auto", registry, pipelines(loaded)) == "thread"
    assert choose("process", registry, pipelines(loaded)) == "thread"
    assert choose("thread", registry, pipelines(loaded)) == "thread"
    world.start_sandbox()
    world.add_input("a", 25)
    capfd.readouterr()
    [summary] = app.run_once(registry, loaded)
    assert summary.error is None and summary.counts["accepted"] == 25, summary
    out = capfd.readouterr()
    assert "transmit process started" not in out.out + out.err
    assert "batch sent" in out.out + out.err  # sent, from here
    world.assert_every_version_once()


def test_an_installed_component_replaced_in_process_transmits_here(world):
    """The harness's wrap_transport keeps the plugin's name but not its factory."""
    registry, loaded = app.load(world.config)
    p = next(iter(loaded.pipelines.values()))
    p.transport = dataclasses.replace(p.transport, factory=lambda *a: p.transport.factory(*a))
    assert choose("auto", registry, pipelines(loaded)) == "thread"


def test_one_core_transmits_in_a_thread_unless_process_is_asked_for(world):
    script = textwrap.dedent(f"""
        import os
        os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
        from s321 import app
        from s321.transmit_process import choose
        registry, loaded = app.load({str(world.config)!r})
        ps = list(loaded.pipelines.values())
        print(choose("auto", registry, ps), choose("process", registry, ps))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *said, chosen = proc.stdout.splitlines()  # structlog's default writes to stdout
    assert chosen.split() == ["thread", "process"]
    assert "one core" in "".join(said)

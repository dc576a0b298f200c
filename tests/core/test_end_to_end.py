"""The bundled samples of every source system, end to end as a user runs them: the CLI
in a subprocess, over p2p-socket to the sandbox, logging at debug level. What a user
relies on: records accepted, reachability reported by `check --connect`, and no
personal data from the inputs anywhere in the log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import write_config
from s321.sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "contrib" / "samples"

# Names, streets, e-mail addresses and phones that appear in the bundled samples.
PERSONAL = [
    # the Shopify export
    "José Müller", "Zoë Lindqvist", "Amara Okafor", "jose.jose@example.com", "41 Brattle Street",
    # the X12 309 manifests
    "José Ángel Hernández", "Zoë Nakamura-Brandt", "Dolores Muñoz", "4712 San Bernardo Ave",
    # the Cargo-IMP FHL houses
    "José Álvarez", "Zoë Müller-Brandt", "West Sunset Boulevard", "Shoal Creek", "13235550142",
]


def transport_table(options: dict) -> str:
    cert, key = options["cert"]["file"], options["key"]["file"]
    return (f'plugin = "p2p-socket"\nhost = "{options["host"]}"\nport = {options["port"]}\n'
            f'ca = "{options["ca"]}"\ncert = {{ file = "{cert}" }}\nkey = {{ file = "{key}" }}')


@pytest.fixture
def world(tmp_path):
    with Sandbox(tmp_path / "sandbox").start() as sandbox:
        transport = transport_table(sandbox.transport_options())
        config = write_config(tmp_path, f"""
            [ledger]
            path = "{tmp_path / 'ledger.sqlite'}"

            [pipelines.shop]
            originator_code = "E2E001"
            filer_type = "online_marketplace"
            mode_of_transport = "air"
            [pipelines.shop.defaults]
            marketplace_seller_id = "HOUSE"
            identified_marketplace_merchant = true
            seller = {{ name = "Northwind Goods Ltd", address = {{ line1 = "1 Quay", city = "Vancouver", country = "CA" }} }}
            [pipelines.shop.source]
            plugin = "shopify-csv"
            path = "{SAMPLES / 'shop' / 'orders_export.csv'}"
            catalog = "{SAMPLES / 'shop' / 'catalog.csv'}"
            vendors = "{SAMPLES / 'shop' / 'vendors.csv'}"
            tracking = "{SAMPLES / 'shop' / 'tracking.csv'}"
            [pipelines.shop.transport]
{transport}

            [pipelines.truck]
            originator_code = "E2E002"
            filer_type = "carrier"
            mode_of_transport = "truck"
            defaults = {{ known_carrier_customer = true }}
            [pipelines.truck.source]
            plugin = "x12-309"
            path = "{SAMPLES / 'x12-309'}"
            [pipelines.truck.transport]
{transport}

            [pipelines.air]
            originator_code = "E2E003"
            filer_type = "carrier"
            mode_of_transport = "air"
            defaults = {{ known_carrier_customer = false }}
            [pipelines.air.source]
            plugin = "cargo-imp-fhl"
            path = "{SAMPLES / 'cargo-imp-fhl' / 'houses.txt'}"
            [pipelines.air.transport]
{transport}
        """)
        yield sandbox, config


def s321(*args):
    return subprocess.run([sys.executable, "-m", "s321.cli", "--log-level", "debug", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ))


def test_every_sample_goes_through_and_no_personal_data_is_logged(world):
    sandbox, config = world
    proc = s321("run", "-c", config, "--once")
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: the samples hold invalid records
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines() if " -> " in line}
    assert "sent 30, accepted 30" in lines["shop -> p2p-socket"]
    assert "sent 9, accepted 9" in lines["truck -> p2p-socket"]
    assert "accepted 0" not in lines["air -> p2p-socket"]
    assert set(sandbox.store.accepted_counts().values()) == {1}
    assert "batch sent" in proc.stderr  # debug logging was on ...
    for word in PERSONAL:
        assert word not in proc.stderr, word  # ... and held none of these


def test_check_connect_reports_reachability_without_sending_data(world):
    sandbox, config = world
    proc = s321("check", "-c", config, "--connect")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": reachable: p2p-socket") == 3
    assert sandbox.store.accepted_counts() == {}
    sandbox.stop()
    proc = s321("check", "-c", config, "--connect")
    assert proc.returncode == 3  # a transport is unreachable
    assert proc.stdout.count(": FAILED: p2p-socket") == 3

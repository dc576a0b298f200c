"""The console on a PostgreSQL ledger (issue 18): the broker's world (console/world.py,
filed for real through the sandbox) moved into a real PostgreSQL database with `ledger
copy`, and the console's pages (overview, records with search and keyset pages, one
record, findings, dead letters) and an action read and change it there, with the same
scopes as on SQLite. HTTP level, Starlette's test client; the server is tests/pgserver.py."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from console.world import World, client_for, log_in
from s321 import app as s321_app
from s321.config import LedgerSection
from s321.console.queries import LedgerReader, LedgerUnavailable
from s321.ledger_copy import copy_ledger
from s321.ledger_open import open_ledger


@pytest.fixture(scope="module")
def pg_world(world: World, pg_server: Any) -> Iterator[World]:
    """The same world, its ledger copied into a database and its config pointing there."""
    url = pg_server.create_database()
    copy_ledger(world.ledger, url)
    config = world.folder / "s321-pg.toml"
    text = world.config.read_text()
    assert f'path = "{world.ledger}"' in text
    config.write_text(text.replace(f'path = "{world.ledger}"', f'url = "{url}"'), encoding="utf-8")
    yield dataclasses.replace(world, config=config)
    pg_server.drop_database(url.rsplit("/", 1)[1])


def reader_of(world: World) -> LedgerReader:
    _, loaded = s321_app.load(world.config)
    assert loaded.config.ledger.backend == "postgresql"
    return LedgerReader(loaded.config.ledger)


def test_the_pages_read_a_postgresql_ledger_within_the_users_scope(pg_world: World) -> None:
    ada, alice = client_for(pg_world), client_for(pg_world)
    log_in(ada, "ada")
    log_in(alice, "alice")
    overview = ada.get("/")
    assert overview.status_code == 200 and "alpha" in overview.text and "beta" in overview.text
    scoped = alice.get("/").text
    assert "ALPHA01" in scoped and "BETA002" not in scoped
    # Records, a search by a name people use, and one record with its history.
    listed = ada.get("/records").text
    assert all(f'href="/records/{t}"' in listed for t in pg_world.alpha + pg_world.beta)
    found = ada.get("/records", params={"q": "BETATRK0001"}).text
    assert f'href="/records/{pg_world.beta[1]}"' in found and f'href="/records/{pg_world.beta[0]}"' not in found
    assert "No records match" in alice.get("/records", params={"q": "B-1"}).text
    one = ada.get(f"/records/{pg_world.alpha[0]}").text
    assert "ALPHTRK0000" in one and 'id="history"' in one and "accepted" in one
    assert alice.get(f"/records/{pg_world.beta[0]}").status_code == 404
    # Findings (codes read from the stored JSON) and dead letters.
    findings = ada.get("/findings").text
    assert "missing-one-of" in findings
    dead = ada.get("/dead").text
    assert all(t in dead for t in pg_world.beta)
    assert all(t not in alice.get("/dead").text for t in pg_world.beta)
    filtered = ada.get("/records", params={"finding": "missing-one-of"}).text
    assert all(f'href="/records/{t}"' in filtered for t in pg_world.alpha[4:])
    assert f'href="/records/{pg_world.alpha[0]}"' not in filtered


def test_queries_on_postgresql_answer_as_on_sqlite(world: World, pg_world: World) -> None:
    pg, lite = reader_of(pg_world), LedgerReader(world.ledger)
    try:
        now = time.time()
        assert pg.overview(None, now) == lite.overview(None, now)
        assert pg.overview(["BETA002"], now) == lite.overview(["BETA002"], now)
        assert pg.timeline(None, now=now) == lite.timeline(None, now=now)
        strip = [{k: v for k, v in f.items() if k != "records"} for f in lite.findings(None)]
        assert [{k: v for k, v in f.items() if k != "records"} for f in pg.findings(None)] == strip
        assert pg.dead(None) == lite.dead(None)
        assert pg.records(["BETA002"], search="A-1")[0] == []
        assert pg.records(None, search="#a-2")[0][0]["transaction_id"] == pg_world.alpha[2]
        # Keyset pages: every record once, newest first, two a page.
        seen, cursor = [], None
        while True:
            page, cursor = pg.records(None, before=cursor, limit=2)
            seen += [r["transaction_id"] for r in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(pg_world.alpha + pg_world.beta) and len(seen) == 9
        assert [r["transaction_id"] for r in pg.records(None, limit=9)[0]] == seen
        record = pg.record(None, pg_world.alpha[4])
        assert record is not None and record["findings"][0]["code"] == "missing-one-of"
        assert [h["event"] for h in record["history"]] == [
            h["event"] for h in (lite.record(None, pg_world.alpha[4]) or {})["history"]]
    finally:
        pg.close()


def test_an_action_changes_the_postgresql_ledger(pg_world: World) -> None:
    client = client_for(pg_world)
    token = log_in(client, "bob")
    txid = pg_world.beta[0]
    done = client.post(f"/records/{txid}/retry", data={"csrf": token, "back": "dead"})
    assert done.status_code == 303 and done.headers["location"] == "/dead"
    assert "retry: queued again" in client.get("/dead").text
    ledger = open_ledger(s321_app.load(pg_world.config)[1].config.ledger)
    try:
        assert (ledger.get(txid) or {})["state"] == "queued"
    finally:
        ledger.close()


def test_a_database_without_a_ledger_is_said_so_not_made(pg_server: Any) -> None:
    url = pg_server.create_database()
    try:
        reader = LedgerReader(LedgerSection(url=url))
        with pytest.raises(LedgerUnavailable, match="ledger migrate"):
            reader.overview(None)
        with psycopg.connect(url) as conn:  # the console made nothing there
            assert conn.execute("SELECT to_regclass('consignments')").fetchone() == (None,)
    finally:
        pg_server.drop_database(url.rsplit("/", 1)[1])


def test_a_database_that_is_down_is_a_503_page_and_then_read_again(pg_world: World, pg_server: Any) -> None:
    client = client_for(pg_world)
    log_in(client, "vera")
    assert client.get("/").status_code == 200
    pg_server.stop()
    try:
        down = client.get("/records")
        assert down.status_code == 503 and "The ledger cannot be read" in down.text
        assert "Traceback" not in down.text
    finally:
        pg_server.start()
    assert client.get("/records").status_code == 200  # the same console, nothing restarted

"""Many daemons on one PostgreSQL ledger, against a real server (tests/pgserver.py): each
`Ledger` opened here is one daemon (its own pool and owner). Ingestion is idempotent
across them, claims never overlap, a lease not renewed is taken over and fences its old
holder, renewal keeps a slow live holder's batch, add goes before replace whoever sends,
numbers are unique across daemons and restarts, input files are read by one daemon."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ledger_steps import answer, claim_one, valid
from s321.ledger import Ledger
from s321.ledger_open import open_ledger
from s321.record import Action
from s321.states import State


@pytest.fixture
def daemons(pg_url: str) -> Iterator[Callable[[], Ledger]]:
    """Open another daemon's ledger on the test's database."""
    opened: list[Ledger] = []

    def daemon(lease_seconds: float = 30.0) -> Ledger:
        ledger = open_ledger(pg_url)
        ledger.lease_seconds = lease_seconds
        opened.append(ledger)
        return ledger
    yield daemon
    for ledger in opened:
        ledger.close()


def together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls at once, one thread each (started at a barrier); their results."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def outcomes(n: int, **changes: object) -> list:
    return [valid(f"T{i:04d}", **changes) for i in range(n)]


def test_two_daemons_ingesting_the_same_file_at_once_make_one_record_each(daemons) -> None:
    a, b = daemons(), daemons()
    for round_ in range(3):  # a race lost is run again; a few rounds make one likely
        changes = {"tracking_number": f"1ZROUND{round_}"}
        ca, cb = together(lambda: a.ingest("shop", "C", "src", outcomes(300, **changes)),
                          lambda: b.ingest("shop", "C", "src", outcomes(300, **changes)))
        # Each record was stored (or changed) by one daemon; the other found it as it is.
        made = (ca.new + cb.new) if round_ == 0 else (ca.changed + cb.changed)
        assert made == 300 and ca.unchanged + cb.unchanged == 300
    assert a.counts("shop") == {"queued": 300}
    assert len(a.history("T0000")) == 3  # read, then changed twice: never twice for one change


def test_two_claimers_never_claim_the_same_record(daemons) -> None:
    a, b = daemons(), daemons()
    a.ingest("shop", "C", "src", outcomes(400))

    def drain(ledger: Ledger, name: str) -> list[str]:
        got: list[str] = []
        n = 0
        while rows := ledger.claim("shop", f"{name}-{n}", 7):
            got += [r.transaction_id for r in rows]
            n += 1
        return got
    got_a, got_b = together(lambda: drain(a, "A"), lambda: drain(b, "B"))
    assert not set(got_a) & set(got_b)
    assert sorted(got_a + got_b) == [f"T{i:04d}" for i in range(400)]
    assert got_a and got_b  # both worked: the rows were split, not queued behind one
    assert a.counts("shop") == {"sent": 400}


def test_a_batch_not_renewed_is_taken_over_after_expiry_and_fences_its_old_holder(daemons) -> None:
    a, b = daemons(lease_seconds=1), daemons(lease_seconds=1)
    a.ingest("shop", "C", "src", [valid("T1"), valid("T2")])
    first = {r.transaction_id: r for r in a.claim("shop", "A-1", 10)}
    assert b.claim("shop", "B-1", 10) == []  # leased to a, not expired
    time.sleep(1.3)  # a "died": it stopped renewing
    taken = {r.transaction_id: r for r in b.claim("shop", "B-2", 10)}
    assert sorted(taken) == ["T1", "T2"]
    for txid, row in taken.items():  # sent again exactly as it went
        assert (row.version, row.action) == (first[txid].version, first[txid].action)
        assert row.lease_epoch == first[txid].lease_epoch + 1
    assert "taken over from" in a.history("T1")[-1]["detail"]
    # The old holder's decisions change nothing now: requeue, dead-letter, renew.
    a.requeue(["T1"], "no ack in time")
    a.requeue(["T2"], "refused", dead=["T2"])
    a.delivered(["T1"])
    assert a.renew("shop", ["A-1"]) == ["A-1"]
    assert {t: a.get(t)["state"] for t in taken} == {"T1": State.SENT, "T2": State.SENT}
    assert a.get("T1")["lease_owner"] == b.owner
    # A stale epoch fences even its own holder; the current one decides.
    b.requeue(["T1"], "late", epochs={"T1": first["T1"].lease_epoch})
    assert b.get("T1")["state"] == State.SENT
    b.requeue(["T1"], "no ack in time", epochs={"T1": taken["T1"].lease_epoch})
    assert b.get("T1")["state"] == State.QUEUED
    # An answer is a fact: applied by (transaction id, version) whoever receives it.
    assert a.resolve(answer("A-1", "T2", "accepted", version=first["T2"].version)) == {"T2": State.ACCEPTED}


def test_renewing_keeps_a_slow_live_daemons_batch(daemons) -> None:
    a, b = daemons(lease_seconds=1), daemons(lease_seconds=1)
    a.ingest("shop", "C", "src", [valid("T1")])
    claim_one(a, "A-1")
    deadline = time.monotonic() + 2.0  # twice the lease, renewed all along
    while time.monotonic() < deadline:
        assert a.renew("shop", ["A-1", "A-gone"]) == ["A-gone"]
        assert b.claim("shop", "B-1", 10) == []
        time.sleep(0.3)
    assert a.get("T1")["lease_owner"] == a.owner


def test_add_goes_before_replace_across_daemons(daemons) -> None:
    a, b = daemons(lease_seconds=1), daemons(lease_seconds=1)
    a.ingest("shop", "C", "src", [valid("T1")])
    add = claim_one(a, "A-1")
    b.ingest("shop", "C", "src", [valid("T1", tracking_number="1ZNEW")])  # changed while the add is out
    assert b.claim("shop", "B-1", 10) == []  # one version outstanding, whoever asks
    b.resolve(answer("A-1", "T1", "accepted", version=add.version))  # b got a's answer
    replace = claim_one(b, "B-2")
    assert (replace.action, replace.record.tracking_number) == (Action.REPLACE, "1ZNEW")
    assert replace.version > add.version
    a.resolve(answer("B-2", "T1", "accepted", version=replace.version))
    # An add taken over unanswered goes again as an add.
    a.ingest("shop", "C", "src", [valid("T2")])
    first = claim_one(a, "A-2")
    time.sleep(1.3)
    again = claim_one(b, "B-3")
    assert (again.transaction_id, again.action, again.version) == ("T2", Action.ADD, first.version)


def test_next_number_is_unique_across_daemons_and_a_server_restart(daemons, pg_server) -> None:
    a, b = daemons(), daemons()
    got = together(lambda: [a.next_number("isa") for _ in range(40)],
                   lambda: [b.next_number("isa") for _ in range(40)])
    numbers = got[0] + got[1]
    assert sorted(numbers) == list(range(1, 81))
    assert a.next_number("gs") == 1  # one sequence a name
    pg_server.restart()
    assert b.next_number("isa") == 81 and a.next_number("isa") == 82
    assert a.counts() == {}  # reads work again too


def test_an_input_file_is_read_by_one_daemon(daemons) -> None:
    a, b = daemons(lease_seconds=1), daemons(lease_seconds=1)
    key = ("shop", "/inbox/a.csv", 10, 123, "ab" * 32)
    assert together(lambda: a.claim_input(*key), lambda: b.claim_input(*key)).count(True) == 1
    holder, other = (a, b) if a.claim_input(*key) else (b, a)
    assert holder.claim_input(*key) and not other.claim_input(*key)  # renewed by its holder only
    holder.release_input("shop", "/inbox/a.csv")  # its read failed
    assert other.claim_input(*key)
    time.sleep(1.3)  # the new holder died reading it
    assert holder.claim_input(*key)
    holder.ingest("shop", "C", "src", [valid("T1")], input_file=key[1:4])
    assert not a.claim_input(*key) and not b.claim_input(*key)  # ingested
    assert a.input_seen("shop", "/inbox/a.csv", 10, 123)


def test_a_connection_lost_during_commit_is_in_doubt_and_the_ledger_goes_on(daemons, pg_url) -> None:
    import psycopg

    from s321.ledger_backend import LedgerInDoubt

    a = daemons()
    assert a.next_number("isa") == 1
    # A deferred trigger holds COMMIT open; the server ends the session meanwhile (as a
    # failover or a restart would), so the client never hears how the COMMIT ended.
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
                      " $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$")
        admin.execute("CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON sequences DEFERRABLE INITIALLY DEFERRED"
                      " FOR EACH ROW EXECUTE FUNCTION slow_commit()")

        def end_the_commit() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE query = 'COMMIT' AND state = 'active'").fetchall()
                if ended:
                    return
                time.sleep(0.05)
        killer = threading.Thread(target=end_the_commit)
        killer.start()
        with pytest.raises(LedgerInDoubt, match="during COMMIT.*read the ledger again"):
            a.next_number("isa")
        killer.join()
        admin.execute("DROP TRIGGER slow ON sequences")
    # Read again before acting: here the COMMIT did not complete; nothing is repeated.
    assert a.next_number("isa") == 2


def test_a_config_section_opens_the_shared_ledger_and_names_it_without_its_password(pg_url) -> None:
    from pydantic import SecretStr

    from s321.config import LedgerSection
    from s321.ledger_backend import LedgerUnavailable, without_password

    ledger = open_ledger(LedgerSection(url=pg_url, lease_seconds=2), held=True)
    try:
        assert (ledger.backend, ledger.lease_seconds, ledger.describe()) == ("postgresql", 2, pg_url)
        assert ledger.schema_version() > 0 and ledger.check() == ([], {})
    finally:
        ledger.close()
    assert without_password("postgresql://s321:hunter2@db.example:5433/s321") == \
        "postgresql://s321@db.example:5433/s321"
    closed = pg_url.rsplit(":", 1)[0] + ":1/s321"  # nothing listens on port 1
    with pytest.raises(LedgerUnavailable) as refused:
        open_ledger(LedgerSection(url=closed, password=SecretStr("hunter2")))
    assert "cannot connect" in str(refused.value) and "hunter2" not in str(refused.value)


def test_a_record_sent_before_leases_existed_is_taken_over(daemons, pg_url) -> None:
    import psycopg

    a, b = daemons(), daemons()
    a.ingest("shop", "C", "src", [valid("T1")])
    first = claim_one(a, "A-1")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # as a ledger copied from schema 5 holds it
        admin.execute("UPDATE consignments SET lease_owner = NULL, lease_expires = NULL")
    again = claim_one(b, "B-1")
    assert (again.transaction_id, again.version, again.action) == ("T1", first.version, first.action)


def test_every_commit_is_durable_whatever_the_database_default(pg_url) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:  # a server tuned for speed over safety
        admin.execute(f"ALTER DATABASE \"{pg_url.rsplit('/', 1)[1]}\" SET synchronous_commit = off")
    ledger = open_ledger(pg_url)
    try:
        with ledger.transaction() as db:
            assert db.execute("SHOW synchronous_commit").fetchone()[0] == "on"
            assert db.execute("SHOW transaction_isolation").fetchone()[0] == "read committed"
    finally:
        ledger.close()

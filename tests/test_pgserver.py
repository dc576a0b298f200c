"""The throw-away PostgreSQL server the ledger tests rely on: it runs, it survives a
restart, and a SIGKILL of the postmaster loses nothing that was committed before it."""

import psycopg

from pgserver import SUPERUSER


def test_server_runs_as_an_unprivileged_user_with_fsync_on(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == SUPERUSER
        assert conn.execute("SHOW fsync").fetchone()[0] == "on"
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert conn.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith("127.0.0.1")


def test_each_test_gets_a_fresh_empty_database(pg_url):
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert tables == 0


def test_data_survives_a_restart(pg_server, pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('before restart')")
    pg_server.restart()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("before restart",)]


def test_committed_data_survives_a_sigkill_of_the_postmaster(pg_server, pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (n int)")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for n in range(200):
            conn.execute("INSERT INTO t VALUES (%s)", (n,))
        pid = pg_server.postmaster_pid()
        pg_server.kill()
    assert pg_server.postmaster_pid() is None
    pg_server.start()
    assert pg_server.postmaster_pid() not in (None, pid)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), max(n) FROM t").fetchone() == (200, 199)


def test_stop_and_start(pg_server, pg_url):
    pg_server.stop()
    assert pg_server.postmaster_pid() is None
    pg_server.start()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

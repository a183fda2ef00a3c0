"""The PostgreSQL fixture is a real server: it stores rows, survives a restart, keeps them."""

import psycopg2

from tests.pg_server import PostgresServer


def test_postgres_fixture_keeps_rows_across_restart(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.create_database()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")
        cur.execute("INSERT INTO t VALUES (1), (2)")
    postgres_server.restart()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT sum(x) FROM t")
        assert cur.fetchone() == (3,)

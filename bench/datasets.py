"""The benchmark table and how to fill it fast on each engine.

Both engines get the same rows (same generator expressions), so a workload that
reads MariaDB and one that reads PostgreSQL move comparable bytes. Rows go in
as a few large INSERT ... SELECT statements, one transaction each, because the
decoders then see the multi-row transactions a bulk load or batch job makes.
"""

from __future__ import annotations

from psycopg import sql

from bench.progress import log
from bench.servers import Servers, mysql_connect, pg_connect

TABLE = "bench_rows"
BATCH = 100_000

PG_DDL = f"""
CREATE TABLE public.{TABLE} (
    id         bigint        PRIMARY KEY,
    n          integer       NOT NULL,
    label      varchar(64)   NOT NULL,
    amount     numeric(12,2) NOT NULL,
    created_at timestamp(6)  NOT NULL,
    note       text
)"""

# Same table without the key: the COPY ceiling loads into it so the ceiling is
# the raw data path, not data plus an index build.
PG_DDL_NO_KEY = PG_DDL.replace("PRIMARY KEY", "NOT NULL")

MYSQL_DDL = f"""
CREATE TABLE {TABLE} (
    id         BIGINT        NOT NULL PRIMARY KEY,
    n          INT           NOT NULL,
    label      VARCHAR(64)   NOT NULL,
    amount     DECIMAL(12,2) NOT NULL,
    created_at DATETIME(6)   NOT NULL,
    note       TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

# Every 10th note is NULL; the rest vary in length (5..80 chars) so TEXT is not constant.
# %% is psycopg's escape for the modulo operator.
PG_INSERT = f"""
INSERT INTO public.{TABLE}
SELECT i,
       ((i * 7919) %% 1000003)::integer,
       'user-' || i,
       round(((i * 37) %% 10000000) / 100.0, 2),
       timestamp '2024-01-01 00:00:00' + i * interval '1500007 microseconds',
       CASE WHEN i %% 10 = 0 THEN NULL
            ELSE 'note ' || i || ' ' || repeat('abcdefghij', (i %% 8)::int) END
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i"""

MYSQL_INSERT = """
INSERT INTO {table}
SELECT seq,
       (seq * 7919) % 1000003,
       CONCAT('user-', seq),
       ROUND(((seq * 37) % 10000000) / 100.0, 2),
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (seq * 1500007) MICROSECOND,
       IF(seq % 10 = 0, NULL, CONCAT('note ', seq, ' ', REPEAT('abcdefghij', seq % 8)))
FROM seq_{lo}_to_{hi}"""


def batches(rows: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + BATCH - 1, rows)) for lo in range(1, rows + 1, BATCH)]


def drop_pg_db(servers: Servers, name: str) -> None:
    with pg_connect(servers) as conn:
        # A slot pins its database; the bench's own slots are the only ones expected here.
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = %s",
            (name,),
        )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def recreate_pg_db(servers: Servers, name: str) -> None:
    drop_pg_db(servers, name)
    with pg_connect(servers) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def settle_pg(servers: Servers) -> None:
    """Flush dirty buffers now, so a checkpoint the load made due does not land inside a timing."""
    with pg_connect(servers) as conn:
        conn.execute("CHECKPOINT")


def create_pg_table(servers: Servers, db: str, *, with_key: bool = True) -> None:
    with pg_connect(servers, db) as conn:
        conn.execute(PG_DDL if with_key else PG_DDL_NO_KEY)


def load_pg(servers: Servers, db: str, rows: int) -> None:
    """Fill the (already created) table; one transaction per batch."""
    with pg_connect(servers, db) as conn:
        for lo, hi in batches(rows):
            conn.execute(PG_INSERT, {"lo": lo, "hi": hi})
        conn.execute(f"VACUUM ANALYZE public.{TABLE}")
    log(f"pg {db}.{TABLE}: {rows} rows loaded")


def recreate_mysql_db(servers: Servers, name: str, ddl: str = MYSQL_DDL) -> None:
    """An empty database `name` with the table `ddl` creates (the bench table's)."""
    with mysql_connect(servers) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{name}`")
        cur.execute(ddl)


def drop_mysql_db(servers: Servers, name: str) -> None:
    with mysql_connect(servers) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def load_mysql(servers: Servers, db: str, rows: int) -> None:
    with mysql_connect(servers, db) as conn, conn.cursor() as cur:
        for lo, hi in batches(rows):
            cur.execute(MYSQL_INSERT.format(table=TABLE, lo=lo, hi=hi))
    log(f"mariadb {db}.{TABLE}: {rows} rows loaded")


def pg_count(servers: Servers, db: str, schema: str = "public") -> int:
    with pg_connect(servers, db) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(TABLE)
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


def mysql_binlog_position(servers: Servers) -> tuple[str, int]:
    with mysql_connect(servers) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    if not row:
        raise SystemExit("bench: MariaDB has no binary log (log-bin is off)")
    return str(row[0]), int(row[1])


def mysql_binlog_files(servers: Servers, first: str, last: str) -> list[str]:
    """The binlog files from ``first`` to ``last`` inclusive, in server order."""
    with mysql_connect(servers) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        names = [str(r[0]) for r in cur.fetchall()]
    return names[names.index(first) : names.index(last) + 1]

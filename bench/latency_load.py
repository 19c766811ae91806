"""The latency workloads' tables and their paced writers.

The source table `lat` stamps each row with the moment it was written
(`written_at`, the server's clock; the row's transaction commits microseconds
later), and the target's copy stamps it with the moment the sink wrote it
(`applied_at`, a `clock_timestamp()` default; its batch commits right after). Both
clocks are this machine's. The writers run inside each server (a `DO` block, a
stored procedure), one commit per transaction, and sleep to hold a steady rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.servers import Servers, mysql_connect, pg_connect

TABLE = "lat"
PG_SOURCE_DDL = f"""CREATE TABLE public.{TABLE} (
    id bigint PRIMARY KEY, n integer NOT NULL, label text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp())"""
MYSQL_SOURCE_DDL = f"""CREATE TABLE {TABLE} (
    id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(40) NOT NULL,
    written_at DATETIME(6) NOT NULL)"""
# the target's copy, as cdc schema would create it, plus the sink's stamp
PG_TARGET_DDL = """CREATE TABLE {schema}.{table} (
    id bigint PRIMARY KEY, n integer NOT NULL, label {label} NOT NULL,
    written_at {written} NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"""
TICK_ROWS = 100  # the writer checks its pace every this many rows


@dataclass(frozen=True)
class Pace:
    rate: int  # rows per second
    rows: int
    rows_per_tx: int

    @property
    def transactions(self) -> int:
        return self.rows // self.rows_per_tx


def pg_target_ddl(schema: str, from_mysql: bool) -> str:
    # a MariaDB DATETIME (UTC in cdc's sessions) lands as a timestamp without zone
    written = "timestamp(6)" if from_mysql else "timestamptz"
    label = "varchar(40)" if from_mysql else "text"
    return PG_TARGET_DDL.format(schema=schema, table=TABLE, label=label, written=written)


def write_pg(servers: Servers, db: str, pace: Pace, first_id: int) -> None:
    """`pace.rows` rows from id `first_id` on, at `pace.rate` rows per second."""
    k = pace.rows_per_tx
    statement = f"""
DO $$
DECLARE
    started timestamptz := clock_timestamp();
    t bigint;
BEGIN
    FOR t IN 0..{pace.transactions - 1} LOOP
        INSERT INTO public.{TABLE} (id, n, label)
        SELECT g, g % 1000, 'row ' || g
        FROM generate_series({first_id} + t * {k}, {first_id} + t * {k} + {k - 1}) AS g;
        COMMIT;
        IF (t + 1) * {k} % {TICK_ROWS} < {k} THEN
            PERFORM pg_sleep(GREATEST(0, EXTRACT(epoch FROM
                started + ((t + 1) * {k}) * interval '1 second' / {pace.rate}
                - clock_timestamp())));
        END IF;
    END LOOP;
END $$"""
    with pg_connect(servers, db) as conn:
        conn.execute("SET synchronous_commit = off")  # the bench times cdc, not the disk
        conn.execute(statement.encode())


def write_mysql(servers: Servers, db: str, pace: Pace, first_id: int) -> None:
    """`write_pg` on MariaDB."""
    procedure = f"""
CREATE PROCEDURE bench_paced(first_id BIGINT, transactions BIGINT, k INT, rate INT)
BEGIN
    DECLARE started DATETIME(6) DEFAULT SYSDATE(6);
    DECLARE t BIGINT DEFAULT 0;
    DECLARE i INT;
    DECLARE id BIGINT;
    WHILE t < transactions DO
        START TRANSACTION;
        SET i = 0;
        WHILE i < k DO
            SET id = first_id + t * k + i;
            INSERT INTO {TABLE} VALUES (id, id % 1000, CONCAT('row ', id), SYSDATE(6));
            SET i = i + 1;
        END WHILE;
        COMMIT;
        SET t = t + 1;
        IF t * k % {TICK_ROWS} < k THEN
            DO SLEEP(GREATEST(0, TIMESTAMPDIFF(MICROSECOND, SYSDATE(6),
                started + INTERVAL FLOOR(t * k * 1000000 / rate) MICROSECOND) / 1000000));
        END IF;
    END WHILE;
END"""
    with mysql_connect(servers, db) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")  # written_at in UTC, as cdc reads it
        cur.execute("DROP PROCEDURE IF EXISTS bench_paced")
        cur.execute(procedure)
        cur.execute(
            "CALL bench_paced(%s, %s, %s, %s)",
            (first_id, pace.transactions, pace.rows_per_tx, pace.rate),
        )
        cur.execute("DROP PROCEDURE bench_paced")

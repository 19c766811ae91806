"""Traffic as production writes it: many small transactions of inserts, updates and deletes.

`Mix.of(events)` splits a number of row changes into single-row insert transactions
(60 %) and pgbench-like transactions of four statements (update, update of two other
columns, insert, delete). Each engine's server writes them from a loop of its own
(a `DO` block, a stored procedure), one commit per transaction, so the load takes
seconds and no client round trip shapes the log. Both engines get the same rows and
the same changes, from the expressions of `bench.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import datasets
from bench.progress import log
from bench.servers import Servers, mysql_connect, pg_connect

OPS = ("INSERT", "UPDATE", "DELETE")
STATEMENTS_PER_MIXED = 4


@dataclass(frozen=True)
class Mix:
    singles: int  # single-row insert transactions
    mixed: int  # transactions of update, update, insert, delete

    @classmethod
    def of(cls, events: int) -> Mix:
        mixed = events // 10
        return cls(events - STATEMENTS_PER_MIXED * mixed, mixed)

    @property
    def events(self) -> int:
        """Row changes: what a decoder reports."""
        return self.singles + STATEMENTS_PER_MIXED * self.mixed

    @property
    def transactions(self) -> int:
        return self.singles + self.mixed

    @property
    def messages(self) -> int:
        """Kafka messages of a Debezium-style source: each delete is followed by its
        tombstone."""
        return self.events + self.mixed

    # Mixed transaction k (1..mixed) updates rows k and k + mixed, inserts row
    # singles + k and deletes row singles + 1 - k: the rows it deletes (the top tenth of
    # the single inserts) are never the ones updated (the first fifth), so every
    # statement changes exactly one row.


_PG_ROW = """{i},
       (({i} * 7919) % 1000003)::integer,
       'user-' || {i},
       round((({i} * 37) % 10000000) / 100.0, 2),
       timestamp '2024-01-01 00:00:00' + {i} * interval '1500007 microseconds',
       CASE WHEN {i} % 10 = 0 THEN NULL
            ELSE 'note ' || {i} || ' ' || repeat('abcdefghij', ({i} % 8)::int) END"""

_PG_LOAD = """
DO $$
DECLARE
    i bigint;
BEGIN
    FOR i IN 1..{singles} LOOP
        INSERT INTO public.{table} VALUES ({row_i});
        COMMIT;
    END LOOP;
    FOR i IN 1..{mixed} LOOP
        UPDATE public.{table} SET n = n + 1 WHERE id = i;
        UPDATE public.{table} SET amount = amount + 1, note = 'updated' WHERE id = i + {mixed};
        INSERT INTO public.{table} VALUES ({row_new});
        DELETE FROM public.{table} WHERE id = {singles} + 1 - i;
        COMMIT;
    END LOOP;
END $$"""

_MYSQL_ROW = """{i},
       ({i} * 7919) % 1000003,
       CONCAT('user-', {i}),
       ROUND((({i} * 37) % 10000000) / 100.0, 2),
       TIMESTAMP'2024-01-01 00:00:00' + INTERVAL ({i} * 1500007) MICROSECOND,
       IF({i} % 10 = 0, NULL, CONCAT('note ', {i}, ' ', REPEAT('abcdefghij', {i} % 8)))"""

# autocommit is on: each single insert is a transaction of its own
_MYSQL_LOAD = """
CREATE PROCEDURE bench_oltp(singles BIGINT, mixed BIGINT)
BEGIN
    DECLARE i BIGINT DEFAULT 1;
    WHILE i <= singles DO
        INSERT INTO {table} VALUES ({row_i});
        SET i = i + 1;
    END WHILE;
    SET i = 1;
    WHILE i <= mixed DO
        START TRANSACTION;
        UPDATE {table} SET n = n + 1 WHERE id = i;
        UPDATE {table} SET amount = amount + 1, note = 'updated' WHERE id = i + mixed;
        INSERT INTO {table} VALUES ({row_new});
        DELETE FROM {table} WHERE id = singles + 1 - i;
        COMMIT;
        SET i = i + 1;
    END WHILE;
END"""


def load_pg(servers: Servers, db: str, mix: Mix) -> None:
    """Write `mix` into the (empty) bench table of `db`."""
    statement = _PG_LOAD.format(
        table=datasets.TABLE,
        singles=mix.singles,
        mixed=mix.mixed,
        row_i=_PG_ROW.format(i="i"),
        row_new=_PG_ROW.format(i=f"({mix.singles} + i)"),
    )
    with pg_connect(servers, db) as conn:
        # the bench measures decoding, not the disk: no flush wait per commit
        conn.execute("SET synchronous_commit = off")
        conn.execute(statement.encode())
    log(f"pg {db}.{datasets.TABLE}: {mix.transactions} transactions, {mix.events} changes")


def load_mysql(servers: Servers, db: str, mix: Mix) -> None:
    """Write `mix` into the (empty) bench table of `db`."""
    procedure = _MYSQL_LOAD.format(
        table=datasets.TABLE,
        row_i=_MYSQL_ROW.format(i="i"),
        row_new=_MYSQL_ROW.format(i="(singles + i)"),
    )
    with mysql_connect(servers, db) as conn, conn.cursor() as cur:
        cur.execute("DROP PROCEDURE IF EXISTS bench_oltp")
        cur.execute(procedure)
        cur.execute("CALL bench_oltp(%s, %s)", (mix.singles, mix.mixed))
        cur.execute("DROP PROCEDURE bench_oltp")
    log(f"mariadb {db}.{datasets.TABLE}: {mix.transactions} transactions, {mix.events} changes")

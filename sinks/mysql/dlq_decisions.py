"""`cdc_dead_letters` on a MySQL/MariaDB target, in the DSN's database: what
`cdc dlq` decided about each dead letter (`sinks.dlq.decisions`), next to the
sink's `cdc_offsets`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

import pymysql

from cdc.mysql.dialect import qualified
from cdc.secrets import MysqlDsn
from sinks.dlq.decisions import Decision
from sinks.mysql.target_database import target_database

DECISIONS_TABLE = "cdc_dead_letters"
DECISIONS_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    consumer_group VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    dead_letter_id BIGINT NOT NULL,
    topic VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset BIGINT NOT NULL,
    state VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    detail TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    decided_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (consumer_group, dead_letter_id)
) ENGINE=InnoDB
"""
_NO_SUCH_TABLE = 1146
_COLUMNS = "dead_letter_id, topic, kafka_partition, kafka_offset, state, detail, decided_at"


class MysqlDecisions:
    def __init__(self, dsn: MysqlDsn, group: str) -> None:
        args = dsn.connect_kwargs()
        database = target_database(args)
        self._conn = pymysql.connect(
            **args,
            charset="utf8mb4",
            autocommit=True,
            init_command="SET SESSION time_zone = '+00:00'",  # decided_at is UTC
        )
        self._table = qualified(database, DECISIONS_TABLE)
        self._group = group

    def load(self) -> dict[int, Decision]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM {self._table} WHERE consumer_group = %s",
                    (self._group,),
                )
                rows = cur.fetchall()
        except pymysql.err.ProgrammingError as exc:
            if exc.args[0] == _NO_SUCH_TABLE:
                return {}
            raise
        return {
            int(row[0]): Decision(
                int(row[0]),
                (str(row[1]), int(row[2]), int(row[3])),
                str(row[4]),
                str(row[5]),
                row[6].replace(tzinfo=UTC),
            )
            for row in rows
        }

    def record(self, decisions: Sequence[Decision]) -> None:
        with self._conn.cursor() as cur:
            cur.execute(DECISIONS_DDL.format(table=self._table))  # DDL commits: before the rows
            self._conn.begin()
            try:
                cur.executemany(
                    f"INSERT INTO {self._table} (consumer_group, {_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, CURRENT_TIMESTAMP(6))"
                    " ON DUPLICATE KEY UPDATE topic = VALUES(topic),"
                    " kafka_partition = VALUES(kafka_partition),"
                    " kafka_offset = VALUES(kafka_offset), state = VALUES(state),"
                    " detail = VALUES(detail), decided_at = CURRENT_TIMESTAMP(6)",
                    [(self._group, d.id, *d.origin, d.state, d.detail) for d in decisions],
                )
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise

    def close(self) -> None:
        if self._conn.open:  # a connection the server dropped is closed already
            self._conn.close()

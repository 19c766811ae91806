"""`public.cdc_dead_letters` on a PostgreSQL target: what `cdc dlq` decided
about each dead letter (`sinks.dlq.decisions`), next to the sink's
`cdc_offsets`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from cdc.applied_marks import PG_APPLICATION_NAME, PG_READ_WRITE_OPTION
from sinks.dlq.decisions import Decision

DECISIONS_TABLE = "public.cdc_dead_letters"
DECISIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (
    consumer_group text NOT NULL,
    dead_letter_id bigint NOT NULL,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    state text NOT NULL,
    detail text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, dead_letter_id)
)
"""
_COLUMNS = "dead_letter_id, topic, kafka_partition, kafka_offset, state, detail, decided_at"


class PostgresDecisions:
    def __init__(self, dsn: str, group: str) -> None:
        # read-write even where `cdc cutover` fenced the database, as the applier does
        self._conn: psycopg.Connection[Any] = psycopg.connect(
            dsn,
            autocommit=True,
            options=PG_READ_WRITE_OPTION.strip(),
            application_name=PG_APPLICATION_NAME,
        )
        self._group = group

    def load(self) -> dict[int, Decision]:
        try:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM {DECISIONS_TABLE} WHERE consumer_group = %s",
                (self._group,),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
        return {
            row[0]: Decision(row[0], (row[1], row[2], row[3]), row[4], row[5], row[6])
            for row in rows
        }

    def record(self, decisions: Sequence[Decision]) -> None:
        with self._conn.transaction():
            self._conn.execute(DECISIONS_DDL)
            with self._conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {DECISIONS_TABLE} (consumer_group, {_COLUMNS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, now())"
                    " ON CONFLICT (consumer_group, dead_letter_id) DO UPDATE SET"
                    " topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition,"
                    " kafka_offset = EXCLUDED.kafka_offset, state = EXCLUDED.state,"
                    " detail = EXCLUDED.detail, decided_at = now()",
                    [(self._group, d.id, *d.origin, d.state, d.detail) for d in decisions],
                )

    def close(self) -> None:
        self._conn.close()

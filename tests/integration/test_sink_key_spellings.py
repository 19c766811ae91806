"""Two messages of one target row under different Kafka keys in one batch (a
key spelt `1` and `"1"`, as a producer other than cdc or a changed source
encoding may write it): the sink applies them in order instead of failing the
batch on PostgreSQL's "ON CONFLICT DO UPDATE cannot affect a row a second time"
and restarting into it."""

from __future__ import annotations

from pathlib import Path

import psycopg

from cdc.envelope import encode_value
from cdc.events import ChangeEvent, EncodedChanges, Op
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.schemas import Column, TableSchema
from tests.integration.pipeline import pipeline, running, wait_until
from tests.integration.test_publisher import Seq

SCHEMA = TableSchema(
    "postgresql",
    "public",
    "items",
    (
        Column("id", "bigint", nullable=False, extra={"oid": 20, "kind": "b"}),
        Column("name", "text", extra={"oid": 25, "kind": "b"}),
    ),
    ("id",),
)


def _insert(n: int, name: str) -> bytes:
    event = ChangeEvent(
        Op.CREATE, "public", "items", {"id": 1}, None, {"id": 1, "name": name}, n, Seq(n),
        SCHEMA.fingerprint,
    )  # fmt: skip
    return encode_value(event)


def test_one_row_under_two_key_spellings_applies_in_order(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    publisher = KafkaPublisher(kafka_bootstrap, TopicLayout(topic_prefix, 1, 1))
    publisher.publish(SCHEMA)
    # one partition: the order of the two spellings is the order they were written in
    spellings = [(b'{"id":1}', "first"), (b'{"id":"1"}', "second"), (b'{"id":1}', "third")]
    for n, (key, name) in enumerate(spellings, 1):
        messages = [(Op.CREATE, key, _insert(n, name))]
        publisher.publish(EncodedChanges("public", "items", SCHEMA.fingerprint, messages))
    assert publisher.flush(30)
    settings = pipeline(
        tmp_path,
        topic_prefix,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
        kafka_bootstrap,
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    found: list[tuple[int, str]] = []

    def applied() -> bool:
        try:
            with psycopg.connect(pg_target_dsn) as conn:
                found[:] = conn.execute("SELECT id, name FROM public.items").fetchall()
        except psycopg.errors.UndefinedTable:
            return False
        return found == [(1, "third")]

    with running(settings, "sink"):  # a sink that failed its batch raises here
        assert wait_until(applied, timeout=60), found

"""Rows far above Kafka's 1 MB default, on the real broker: up to
`kafka.max_message_bytes` (32 MiB by default) they replicate. A row above it
stops the source: tests/integration/test_bad_input.py."""

from __future__ import annotations

from pathlib import Path

from cdc.settings import Settings
from cdc.topics import table_topic
from tests.integration.conftest import pg_execute
from tests.integration.pipeline import TopicReader, pipeline, running_source

# md5 text does not compress away: the broker sees (nearly) the full size
BIG_ROW = (
    "INSERT INTO wide SELECT {id}, string_agg(md5(i::text), '')"
    " FROM generate_series(1, {parts}) AS i"
)


def _settings(tmp_path: Path, name: str, pg_dsn: str, bootstrap: str, **kafka: int) -> Settings:
    settings = pipeline(
        tmp_path, name, {"type": "postgres", "dsn": pg_dsn, "tables": ["public.wide"]}, bootstrap
    )
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=kafka)})


def test_a_15_mb_row_replicates(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    pg_execute(pg_dsn, "CREATE TABLE wide (id int PRIMARY KEY, body text)")
    settings = _settings(tmp_path, topic_prefix, pg_dsn, kafka_bootstrap)
    reader = TopicReader(kafka_bootstrap, table_topic(topic_prefix, "public", "wide"))
    try:
        with running_source(settings):
            pg_execute(pg_dsn, BIG_ROW.format(id=1, parts=470_000))  # 15 MB of text
            messages = reader.read_until(1, timeout=90)
    finally:
        reader.close()
    assert len(messages) == 1
    assert len(messages[0].value() or b"") > 15_000_000

"""A restarted source publishes again what Kafka had but its server had not
confirmed: the same changes, at the same source positions, at later offsets.
Replayed after the sink applied the row's delete, an update that left its
TOASTed column out finds no row and cannot insert one: the sink tells it is a
replay (it applied a later delete of the key), counts and logs it as a
`replayed` conflict, and dead-letters nothing. A partial update of a row that
is really missing is still a dead letter."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cdc.envelope import encode_value
from cdc.events import ChangeEvent, EncodedChanges, Op
from cdc.kafka.publisher import KafkaPublisher, TopicLayout
from cdc.schemas import Column, TableSchema
from tests.integration.pipeline import pipeline, write_config
from tests.integration.sink_support import (
    SinkProcess,
    end_positions,
    headers_of,
    key_of,
    read_topic,
    rows_by_id,
    wait_applied,
)
from tests.integration.test_publisher import Seq

SCHEMA = TableSchema(
    "postgresql",
    "public",
    "docs",
    (
        Column("id", "bigint", nullable=False, extra={"oid": 20, "kind": "b"}),
        Column("name", "text", extra={"oid": 25, "kind": "b"}),
        Column("body", "text", extra={"oid": 25, "kind": "b"}),
    ),
    ("id",),
)
MISSING = "update of a missing row without all its columns"
Message = tuple[Op, bytes, bytes]


def _message(op: Op, row_id: int, lsn: int, name: str | None = None) -> Message:
    """One change of a PostgreSQL source at `lsn`; an update leaves `body` out,
    unchanged TOAST under the default REPLICA IDENTITY."""
    key = {"id": row_id}
    after: dict[str, Any] | None = None
    unchanged: tuple[str, ...] = ()
    if op is Op.CREATE:
        after = {"id": row_id, "name": name, "body": "a TOASTed body " * 1000}
    elif op is Op.UPDATE:
        after, unchanged = {"id": row_id, "name": name}, ("body",)
    event = ChangeEvent(
        op=op,
        schema="public",
        table="docs",
        key=key,
        before=None if op is Op.CREATE else key,
        after=after,
        ts_ms=1_700_000_000_000 + lsn,
        position=Seq(lsn),
        fingerprint=SCHEMA.fingerprint,
        txid=lsn,
        source={"connector": "postgresql", "db": "app", "lsn": lsn},
        unchanged=unchanged,
    )
    return op, b'{"id":%d}' % row_id, encode_value(event)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _conflict_counts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "cdc_sink_conflicts"
        for sample in family.samples
        if sample.name == "cdc_sink_conflicts_total" and sample.labels["table"] == "public.docs"
    }


def test_a_replayed_partial_update_of_a_deleted_row_is_no_dead_letter(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    publisher = KafkaPublisher(kafka_bootstrap, TopicLayout(topic_prefix, 1, 1))
    publisher.publish(SCHEMA)
    topic, dlq = f"{topic_prefix}.public.docs", f"{topic_prefix}.__dlq"
    settings = pipeline(
        tmp_path,
        topic_prefix,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.docs"]},
        kafka_bootstrap,
        target={"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
    )
    config = tmp_path / f"{topic_prefix}.yaml"
    raw = yaml.safe_load(config.read_text())
    port = _free_port()
    raw["metrics"]["listen"] = f"127.0.0.1:{port}"
    write_config(config, raw)

    def publish_applied(*messages: Message) -> None:
        """Each message in a batch of its own, as a sink keeping up reads them."""
        for message in messages:
            publisher.publish(EncodedChanges("public", "docs", SCHEMA.fingerprint, [message]))
            assert publisher.flush(30)
            ends = end_positions(kafka_bootstrap, [topic], 1)
            wait_applied(pg_target_dsn, settings.consumer_group, ends, timeout=60)
            daemon.assert_alive()

    updated = _message(Op.UPDATE, 1, 200, "changed")
    deleted = _message(Op.DELETE, 1, 300)
    daemon = SinkProcess(config, tmp_path / "cdc.log")
    try:
        publish_applied(_message(Op.CREATE, 1, 100, "new"))
        publish_applied(updated)
        with psycopg.connect(pg_target_dsn) as conn:
            found = conn.execute("SELECT name, length(body) FROM docs WHERE id = 1").fetchone()
        assert found == ("changed", len("a TOASTed body ") * 1000), "the update kept the body"
        publish_applied(deleted)
        # the source restarts: the update and the delete again, same positions
        publish_applied(updated, deleted)

        assert rows_by_id(pg_target_dsn, "docs") == {}
        assert read_topic(kafka_bootstrap, dlq, 1, timeout=5) == [], "a replay dead-lettered"
        assert _conflict_counts(port) == {"replayed": 1.0, "delete_missing": 1.0}
        logged = [
            (e["kind"], e["key"])
            for e in daemon.log_events()
            if e["event"] == "conflict" and e["table"] == "public.docs"
        ]
        assert logged == [("replayed", [1]), ("delete_missing", [1])]

        # partial updates of rows never there: after everything applied, and before
        # the delete applied last (a long transaction that committed after it)
        publish_applied(_message(Op.UPDATE, 2, 400, "never"), _message(Op.UPDATE, 3, 150, "x"))
        counts = _conflict_counts(port)
    finally:
        daemon.stop()

    assert rows_by_id(pg_target_dsn, "docs") == {}
    letters = read_topic(kafka_bootstrap, dlq, 3, timeout=10)
    assert sorted((key_of(m)["id"], headers_of(m)["cdc.error"]) for m in letters) == [
        (2, MISSING),
        (3, MISSING),
    ]
    assert counts == {"replayed": 1.0, "delete_missing": 1.0, "update_missing": 2.0}

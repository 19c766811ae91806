"""Our PostgreSQL source on the ``pg_decoding`` workload: pgoutput slot to Kafka.

``cdc run --role source`` reads its own pgoutput slot (created before the load,
like the reference's) with ``snapshot.mode: never``, so it decodes exactly the
WAL the reference decodes. The clock runs from the spawn (interpreter start-up
included, as for the reference) until Kafka holds every row: the topic's high
watermarks sum to the row count. With ``acks=all`` a message below the high
watermark is acknowledged, so that is the moment the source could confirm the
last row to the slot. The process is then stopped with SIGTERM; its peak RSS
comes from GNU time, as for every other runner.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import yaml
from confluent_kafka import Consumer, TopicPartition

from bench import datasets
from bench.kafka_timing import time_until_in_kafka
from bench.kafka_topics import PARTITIONS, delete_topics, high_watermarks
from bench.measure import Measurement
from bench.pg_decoding import PgDecodingState
from bench.servers import ENV_FILE, ROOT, _read_env_file
from bench.workloads import Context, Runner

NAME = "cdc source (pgoutput -> Kafka)"
TIMEOUT_S = 900.0
PASSWORD_VAR = "CDC_BENCH_PG_PASSWORD"


def kafka_bootstrap() -> str:
    values = _read_env_file(ENV_FILE) | dict(os.environ)
    bootstrap = values.get("CDC_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise RuntimeError("CDC_KAFKA_BOOTSTRAP unset; run `bash dev/services.sh up` first")
    return bootstrap


def _config(ctx: Context, state: PgDecodingState, name: str, bootstrap: str) -> dict[str, object]:
    pg = ctx.servers.pg
    return {
        "name": name,
        "source": {
            "type": "postgres",
            # the password stays out of the file and argv: ${...} is read from the environment
            "dsn": f"postgresql://{quote(pg.user, safe='')}:${{{PASSWORD_VAR}}}"
            f"@{pg.host}:{pg.port}/{state.db}",
            "tables": [f"public.{datasets.TABLE}"],
            "slot_name": state.slots[NAME],
            "publication": state.publication,
        },
        "kafka": {"bootstrap_servers": bootstrap, "partitions": PARTITIONS},
        "snapshot": {"mode": "never"},
        "metrics": {"listen": "127.0.0.1:0"},
        "log": {"level": "warning"},
    }


def _distinct_rows(bootstrap: str, topic: str, group: str) -> int:
    """Distinct keys in the topic: the check that every row arrived (a
    delivery may repeat a row after a broker hiccup; none may be missing)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(PARTITIONS)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        done = {p for p, end in ends.items() if end == 0}
        keys: set[bytes] = set()
        deadline = time.monotonic() + TIMEOUT_S
        while len(done) < PARTITIONS and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 1.0):
                partition, offset, key = msg.partition(), msg.offset(), msg.key()
                if msg.error() is None and key is not None:
                    keys.add(key)
                if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                    done.add(partition)
        return len(keys)
    finally:
        consumer.close()


def run(ctx: Context, state: PgDecodingState) -> Measurement:
    return measure(ctx, state, ctx.rows, distinct=True)


def measure(ctx: Context, state: PgDecodingState, messages: int, *, distinct: bool) -> Measurement:
    """Our source on its slot until Kafka holds `messages` messages of the bench table;
    with `distinct`, each one must be another row (an insert-only load)."""
    bootstrap = kafka_bootstrap()
    name = f"{ctx.prefix}_cdc_{os.getpid()}"[:63]
    topic = f"{name}.public.{datasets.TABLE}"
    cdc = ROOT / ".venv" / "bin" / "cdc"
    env = ctx.servers.tool_env() | {PASSWORD_VAR: quote(ctx.servers.pg.password, safe="")}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{name}_watch"})
    with tempfile.TemporaryDirectory(prefix="cdc-bench-ours-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        config = work / "cdc.yaml"
        config.write_text(yaml.safe_dump(_config(ctx, state, name, bootstrap)))
        argv = [str(cdc), "run", "-c", str(config)]
        try:
            _, seconds, rss = time_until_in_kafka(
                argv, env, work, messages, lambda: high_watermarks(consumer, topic), "cdc"
            )
            if distinct:
                rows = _distinct_rows(bootstrap, topic, f"{name}_check")
                if rows != messages:
                    raise RuntimeError(f"Kafka holds {rows} distinct rows, expected {messages}")
        finally:
            consumer.close()
            delete_topics(bootstrap, name)
    return Measurement(NAME, messages, seconds, rss)


RUNNER: Runner[PgDecodingState] = Runner(
    NAME,
    "ours",
    run,
    note="cdc run --role source, own pgoutput slot from its creation point; "
    "spawn until Kafka acknowledged every row (acks=all)",
)

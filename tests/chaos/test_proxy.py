"""Each network fault of tests/chaos/proxy.py does what it says, against the real servers:
through the proxy the server answers, and under the fault a client sees the failure a
real network would give it (delay, reset, silence, refusal), until the proxy is healed."""

from __future__ import annotations

import select
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.chaos.proxy import KAFKA, MYSQL, PG, ChaosProxies, read_dev_env

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def chaos_proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosProxies]:
    with ChaosProxies.start(read_dev_env(), tmp_path_factory.mktemp("toxiproxy")) as proxies:
        yield proxies


@pytest.fixture
def proxies(chaos_proxies: ChaosProxies) -> Iterator[ChaosProxies]:
    yield chaos_proxies
    chaos_proxies.heal_all()


def _timed_select(conn: psycopg.Connection[Any]) -> float:
    start = time.monotonic()
    assert conn.execute("SELECT 1").fetchone() == (1,)
    return time.monotonic() - start


def _reply_within(conn: psycopg.Connection[Any], seconds: float) -> bool:
    """Whether any byte of the reply to a query arrives within `seconds` (without blocking
    on it, which under a black hole would be forever)."""
    conn.pgconn.send_query(b"SELECT 1")
    conn.pgconn.flush()
    readable, _, _ = select.select([conn.pgconn.socket], [], [], seconds)
    return bool(readable)


def test_postgres_faults(proxies: ChaosProxies) -> None:
    server_port = urlsplit(read_dev_env()["CDC_PG_DSN"]).port
    assert urlsplit(proxies.pg_dsn).port != server_port
    with psycopg.connect(proxies.pg_dsn, connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (server_port,)
        assert _timed_select(conn) < 0.3

        proxies.latency(PG, 300, 0)
        assert _timed_select(conn) >= 0.3
        proxies.latency(PG, 100, 0)  # a second call changes the delay
        assert 0.1 <= _timed_select(conn) < 0.3
        proxies.heal(PG)
        assert _timed_select(conn) < 0.3

        proxies.reset_peer(PG)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxies.pg_dsn, connect_timeout=5)

    proxies.heal(PG)
    assert proxies.toxics(PG) == []
    # closed without a context manager: its exit would wait for the swallowed reply
    held = psycopg.connect(proxies.pg_dsn, connect_timeout=5, autocommit=True)
    try:
        proxies.black_hole(PG)
        assert not _reply_within(held, 1.0), "a reply crossed the black hole"
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            psycopg.connect(proxies.pg_dsn, connect_timeout=2)
        assert time.monotonic() - start >= 1.9  # the client gave up, not the proxy
    finally:
        held.close()

    proxies.heal(PG)
    with psycopg.connect(proxies.pg_dsn, connect_timeout=5) as conn:
        assert _timed_select(conn) < 0.3


def _mysql(dsn: str, **timeouts: int) -> pymysql.Connection[Any]:
    url = urlsplit(dsn)
    connection: pymysql.Connection[Any] = pymysql.connect(
        host=url.hostname, port=url.port, user=url.username, password=url.password, **timeouts
    )
    return connection


def _mysql_select(conn: pymysql.Connection[Any]) -> Any:
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()


def test_mariadb_faults(proxies: ChaosProxies) -> None:
    conn = _mysql(proxies.mysql_dsn, connect_timeout=5, read_timeout=1)
    assert _mysql_select(conn) == (1,)

    proxies.black_hole(MYSQL)
    start = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError, match="timed out"):
        _mysql_select(conn)
    assert time.monotonic() - start >= 0.9

    proxies.heal(MYSQL)
    proxies.reset_peer(MYSQL)
    with pytest.raises(pymysql.err.OperationalError):
        _mysql(proxies.mysql_dsn, connect_timeout=5)

    proxies.heal(MYSQL)
    proxies.disable(MYSQL)
    with pytest.raises(pymysql.err.OperationalError, match="Connection refused"):
        _mysql(proxies.mysql_dsn, connect_timeout=5)

    proxies.heal(MYSQL)
    with _mysql(proxies.mysql_dsn, connect_timeout=5) as healed:
        assert _mysql_select(healed) == (1,)


def test_kafka_faults(proxies: ChaosProxies) -> None:
    direct = read_dev_env()["CDC_KAFKA_BOOTSTRAP"]
    admin = AdminClient({"bootstrap.servers": direct})
    topic = f"chaos_proxy_{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    try:
        delivered: list[KafkaError | None] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            delivered.append(error)

        producer = Producer(
            {
                "bootstrap.servers": proxies.kafka_bootstrap,
                "reconnect.backoff.max.ms": 500,
                "on_delivery": on_delivery,
            }
        )
        # The broker hands out the proxy's address: no connection bypasses it.
        brokers = producer.list_topics(timeout=10).brokers
        assert [str(b) for b in brokers.values()] == [f"{proxies.kafka_bootstrap}/1"]
        producer.produce(topic, b"before")
        assert producer.flush(10) == 0
        assert delivered == [None]

        proxies.disable(KAFKA)
        producer.produce(topic, b"while down")
        assert producer.flush(3) == 1, "delivered through a disabled proxy"
        assert delivered == [None]

        proxies.enable(KAFKA)
        assert producer.flush(20) == 0
        assert delivered == [None, None]
        assert _watermarks(direct, topic) == (0, 2)  # each message once, in the log
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def _watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low), int(high)
    finally:
        consumer.close()

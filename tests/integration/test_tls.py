"""TLS on every connection, against the local servers and the throwaway CA that
`dev/services.sh` made: PostgreSQL with sslmode=verify-full, MariaDB with a CA
and hostname check, Kafka over SSL and SASL_SSL (SCRAM-SHA-512). A certificate
from another CA, a wrong host name or a wrong password must stop cdc with a
message that names the cause."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pymysql
import pytest
from confluent_kafka import Consumer, Producer

from cdc.app.appliers import build_applier
from cdc.app.daemon import build_source
from cdc.errors import TerminalError
from cdc.kafka.admin import TopicAdmin
from cdc.kafka.connection import check_access
from cdc.kafka.offsets import KafkaOffsetStore
from cdc.postgres.replication import ReplicationConnection, ReplicationError
from cdc.settings_issues import ConfigError
from tests.integration.conftest import mysql_connect, pg_execute
from tests.integration.pipeline import running, wait_until, write_config

CDC = Path(sys.executable).parent / "cdc"
# a source section for tests that never start the source
PG_UNUSED = {"type": "postgres", "dsn": "postgresql://u@h/db", "tables": ["public.t"]}


@pytest.fixture(scope="session")
def tls(dev_env: dict[str, str]) -> dict[str, str]:
    keys = ("CDC_TLS_CA", "CDC_KAFKA_SSL_BOOTSTRAP", "CDC_KAFKA_SASL_BOOTSTRAP")
    missing = [key for key in keys if key not in dev_env]
    if missing:
        pytest.fail(f".dev/env lacks {', '.join(missing)}: run `make services` to add TLS")
    return dev_env


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that signed nothing the servers present."""
    directory = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=unrelated CA", "-keyout", str(directory / "ca.key")),
            *("-out", str(directory / "ca.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return str(directory / "ca.pem")


def verify_full(dsn: str, ca: str, **params: str) -> str:
    """`dsn` (a URL) verifying the server's certificate and name against `ca`."""
    query = "&".join(f"{k}={quote(v)}" for k, v in {"sslrootcert": ca, **params}.items())
    return f"{dsn}?sslmode=verify-full&{query}"


@pytest.fixture
def mysql_tls_user(mysql_dsn: str, unique_name: str) -> Iterator[str]:
    """`mysql_dsn` as a user the server admits only over TLS (REQUIRE SSL)."""
    user, password = unique_name[:60], "tls-" + unique_name[-8:]
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}' REQUIRE SSL")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'")
    parts = urlsplit(mysql_dsn)
    yield urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def kafka_sasl(tls: dict[str, str], password: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": tls["CDC_KAFKA_SASL_BOOTSTRAP"],
        "partitions": 2,
        "tls": {"ca_file": tls["CDC_TLS_CA"]},
        "sasl": {
            "mechanism": "SCRAM-SHA-512",
            "username": tls["CDC_KAFKA_SASL_USER"],
            "password": password or tls["CDC_KAFKA_SASL_PASSWORD"],
        },
    }


def kafka_ssl(tls: dict[str, str], ca: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": tls["CDC_KAFKA_SSL_BOOTSTRAP"],
        "partitions": 2,
        "tls": {"ca_file": ca or tls["CDC_TLS_CA"], "verify_hostname": True},
    }


def pipeline(tmp_path: Path, name: str, **sections: Any) -> Any:
    config = {
        "name": name,
        "metrics": {"listen": "127.0.0.1:0"},
        "snapshot": {"chunk_rows": 1000},
        **sections,
    }
    return write_config(tmp_path / f"{name}.yaml", config)


def pg_ssl_sessions(admin_dsn: str, database: str) -> list[bool]:
    """Whether each session of cdc on `database` is encrypted, per pg_stat_ssl."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.datname = %s AND a.pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [bool(row[0]) for row in rows]


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.strip("/")


def test_pg_source_to_mariadb_target_over_tls_and_kafka_sasl_ssl(
    tmp_path: Path,
    tls: dict[str, str],
    pg_dsn: str,
    mysql_dsn: str,
    mysql_tls_user: str,
    topic_prefix: str,
) -> None:
    database = database_of(mysql_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
    settings = pipeline(
        tmp_path,
        topic_prefix,
        source={
            "type": "postgres",
            "dsn": verify_full(pg_dsn, tls["CDC_TLS_CA"]),
            "tables": ["public.items"],
        },
        kafka=kafka_sasl(tls),
        target={
            "type": "mysql",
            "dsn": mysql_tls_user,
            "tls": {"ca_file": tls["CDC_TLS_CA"], "verify_hostname": True},
            "create_tables": True,
        },
    )

    def target_rows() -> list[tuple[Any, ...]]:
        try:
            with mysql_connect(mysql_dsn, database) as conn, conn.cursor() as cur:
                cur.execute("SELECT id, name FROM items ORDER BY id")
                return list(cur.fetchall())
        except pymysql.err.ProgrammingError:  # the sink has not created the table yet
            return []

    with running(settings, "all"):
        assert wait_until(lambda: len(target_rows()) == 50), target_rows()[-3:]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (51, 'streamed')")
            conn.execute("UPDATE items SET name = 'changed' WHERE id = 1")
        assert wait_until(lambda: len(target_rows()) == 51)
        # the walsender streaming the slot, and any other session of the source
        sessions = pg_ssl_sessions(pg_dsn, database_of(pg_dsn))
        assert sessions and all(sessions), sessions

    expected = [(1, "changed")] + [(i, f"item {i}") for i in range(2, 51)] + [(51, "streamed")]
    assert target_rows() == expected


def test_mariadb_source_to_pg_target_over_tls_and_kafka_ssl(
    tmp_path: Path,
    tls: dict[str, str],
    mysql_dsn: str,
    mysql_tls_user: str,
    pg_dsn: str,
    pg_target_dsn: str,
    topic_prefix: str,
) -> None:
    database = database_of(mysql_dsn)
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"row {i}") for i in range(20)])
    settings = pipeline(
        tmp_path,
        topic_prefix,
        source={
            "type": "mysql",
            "dsn": mysql_tls_user,
            "tls": {"ca_file": tls["CDC_TLS_CA"], "verify_hostname": True},
            "tables": [f"{database}.items"],
        },
        kafka=kafka_ssl(tls),
        target={
            "type": "postgres",
            "dsn": verify_full(pg_target_dsn, tls["CDC_TLS_CA"]),
            "create_tables": True,
        },
    )

    def target_rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(pg_target_dsn) as conn:
            found = conn.execute("SELECT to_regclass(%s)", (f"{database}.items",)).fetchone()
            if found is None or found[0] is None:
                return []
            return conn.execute(f'SELECT id, name FROM "{database}".items ORDER BY id').fetchall()

    with running(settings, "all"):
        assert wait_until(lambda: len(target_rows()) == 20), target_rows()[-3:]
        # the binlog stream: the server admits this user only over TLS
        with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (20, 'streamed')")
        assert wait_until(lambda: len(target_rows()) == 21)
        sessions = pg_ssl_sessions(pg_dsn, database_of(pg_target_dsn))
        assert sessions and all(sessions), sessions

    assert target_rows()[-1] == (20, "streamed")


def test_pg_with_another_ca_or_another_host_name_is_refused(
    tmp_path: Path, tls: dict[str, str], pg_dsn: str, other_ca: str, unique_name: str
) -> None:
    wrong_ca = verify_full(pg_dsn, other_ca)
    with pytest.raises(ReplicationError, match="certificate verify failed"):
        ReplicationConnection(wrong_ca)
    settings = pipeline(
        tmp_path,
        unique_name,
        source=PG_UNUSED,
        kafka={"bootstrap_servers": tls["CDC_KAFKA_BOOTSTRAP"]},
        target={"type": "postgres", "dsn": wrong_ca},
    )
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        build_applier(settings)
    # the right CA, but the certificate names localhost and 127.0.0.1 only
    wrong_name = verify_full(
        pg_dsn.replace("@127.0.0.1:", "@db.example.invalid:"),
        tls["CDC_TLS_CA"],
        hostaddr="127.0.0.1",
    )
    with pytest.raises(ReplicationError, match=r'does not match host name "db\.example\.invalid"'):
        ReplicationConnection(wrong_name)


def test_mariadb_with_another_ca_is_refused(
    tmp_path: Path,
    tls: dict[str, str],
    mysql_dsn: str,
    mysql_tls_user: str,
    other_ca: str,
    topic_prefix: str,
) -> None:
    wrong_ca = {"ca_file": other_ca}
    settings = pipeline(
        tmp_path,
        topic_prefix,
        source={
            "type": "mysql",
            "dsn": mysql_tls_user,
            "tls": wrong_ca,
            "tables": [f"{database_of(mysql_dsn)}.items"],
        },
        kafka={"bootstrap_servers": tls["CDC_KAFKA_BOOTSTRAP"]},
        target={"type": "mysql", "dsn": mysql_tls_user, "tls": wrong_ca},
    )
    source = build_source(settings, KafkaOffsetStore(tls["CDC_KAFKA_BOOTSTRAP"], topic_prefix))
    with pytest.raises(pymysql.OperationalError, match="certificate verify failed"):
        next(iter(source.stream(None)))
    with pytest.raises(pymysql.OperationalError, match="certificate verify failed"):
        build_applier(settings)


def test_a_ca_file_that_holds_no_certificate_fails_the_config_check(
    tmp_path: Path, tls: dict[str, str], unique_name: str
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as error:
        pipeline(
            tmp_path,
            unique_name,
            source=PG_UNUSED,
            kafka={"bootstrap_servers": "127.0.0.1:9", "tls": {"ca_file": str(not_pem)}},
        )
    assert f"kafka.tls: {not_pem} holds no usable CA certificate" in str(error.value)


@pytest.mark.parametrize("listener", ["ssl", "sasl_ssl", "sasl_ssl_password_file"])
def test_kafka_publish_and_consume_with_the_pipeline_settings(
    tmp_path: Path, tls: dict[str, str], topic_prefix: str, listener: str
) -> None:
    kafka = kafka_ssl(tls) if listener == "ssl" else kafka_sasl(tls)
    if listener == "sasl_ssl_password_file":
        # a credential file beside the pipeline file, as a DSN in dsn_file
        (tmp_path / "kafka-password").write_text(kafka["sasl"].pop("password") + "\n")
        kafka["sasl"]["password_file"] = "kafka-password"
    settings = pipeline(tmp_path, topic_prefix, source=PG_UNUSED, kafka=kafka)
    topic = f"{topic_prefix}.public.items"
    TopicAdmin(settings.kafka.client_config()).ensure(topic, 1, 1)
    producer = Producer(settings.kafka.producer_config())
    producer.produce(topic, key=b"1", value=b"over " + listener.encode())
    assert producer.flush(30) == 0

    consumer = Consumer(
        {**settings.kafka.consumer_config(topic_prefix), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(150):
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.value() == b"over " + listener.encode()
    finally:
        consumer.close()


def test_kafka_with_another_ca_is_refused(tls: dict[str, str], other_ca: str) -> None:
    connection = {
        "bootstrap.servers": tls["CDC_KAFKA_SSL_BOOTSTRAP"],
        "security.protocol": "SSL",
        "ssl.ca.location": other_ca,
    }
    with pytest.raises(TerminalError, match="certificate verify failed") as error:
        check_access(connection)
    assert "check kafka.tls" in error.value.remedy


def test_pg_stream_over_tls_reads_ahead_and_ends_without_hanging(
    tls: dict[str, str], pg_dsn: str, unique_name: str
) -> None:
    """With OpenSSL read-ahead the stream still yields every change, and the
    server ending it is noticed at once, not after libpq waits on a socket
    whose data OpenSSL already took in."""
    rows = 3000
    pg_execute(pg_dsn, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    pg_execute(pg_dsn, f'CREATE PUBLICATION "{unique_name}" FOR TABLE items')
    stream = ReplicationConnection(verify_full(pg_dsn, tls["CDC_TLS_CA"]))
    try:
        stream.create_slot(unique_name, export_snapshot=False)
        pg_execute(
            pg_dsn, "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, %s) g", rows
        )
        stream.start(unique_name, unique_name)
        assert stream.reads_ahead
        inserts = 0
        deadline = time.monotonic() + 60
        while inserts < rows and time.monotonic() < deadline:
            # XLogData ('w', 25 header bytes) carrying a pgoutput Insert ('I')
            inserts += sum(1 for m in stream.read(1.0, 1000) if m[0] == 0x77 and m[25] == 0x49)
        assert inserts == rows
        pg_execute(
            pg_dsn,
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE slot_name = %s",
            unique_name,
        )
        started = time.monotonic()
        with pytest.raises(ReplicationError, match="replication stream ended"):
            while time.monotonic() - started < 30:
                stream.read(1.0, 1000)
        assert time.monotonic() - started < 10
    finally:
        stream.close()  # the fixture drops the slot once its walsender is gone


@pytest.mark.parametrize("mistake", ["sasl_password", "other_ca", "plaintext_to_tls"])
def test_assess_names_the_brokers_reason_for_refusing(
    tmp_path: Path, tls: dict[str, str], other_ca: str, pg_dsn: str, mistake: str
) -> None:
    kafka = {
        "sasl_password": kafka_sasl(tls, password="Wrong-pw-assess"),
        "other_ca": kafka_ssl(tls, ca=other_ca),
        "plaintext_to_tls": {"bootstrap_servers": tls["CDC_KAFKA_SSL_BOOTSTRAP"]},
    }[mistake]
    settings = pipeline(
        tmp_path,
        "assess_kafka",
        source={"type": "postgres", "dsn": pg_dsn, "tables": ["public.t"]},
        kafka=kafka,
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)")
    done = subprocess.run(
        [str(CDC), "assess", "-c", str(tmp_path / f"{settings.name}.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    checks = json.loads(done.stdout)["checks"]
    found = [c for c in checks if c["scope"] == "kafka" and c["status"] == "blocker"]
    assert done.returncode == 1, done.stderr[-2000:]
    assert found, checks
    reason = {
        "sasl_password": "SASL authentication error",
        "other_ca": "certificate verify failed",
        "plaintext_to_tls": "the brokers speak TLS on this port: set kafka.tls",
    }[mistake]
    assert reason in found[0]["detail"] + found[0]["fix"], found[0]
    assert "Broker transport failure" not in found[0]["detail"]

"""Fixtures on the real local servers started by `make services`.

Each test gets its own PostgreSQL database, MariaDB database and Kafka topic
prefix, so tests never see each other's data. A missing server is a failure,
never a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql
import pytest
from confluent_kafka.admin import AdminClient

from cdc.settings import Settings
from tests.conftest import ROOT
from tests.integration.pipeline import command_config, mysql_pipeline

SERVICES = ROOT / "dev" / "services.sh"


def _dev_env() -> dict[str, str]:
    env_file = Path(os.environ.get("CDC_DEV_ENV", ROOT / ".dev" / "env"))
    if not env_file.exists():
        pytest.fail(f"{env_file} is missing: start the local servers with `make services`")
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@pytest.fixture(scope="session")
def dev_env() -> dict[str, str]:
    return _dev_env()


@pytest.fixture(scope="session")
def kafka_bootstrap(dev_env: dict[str, str]) -> str:
    return dev_env["CDC_KAFKA_BOOTSTRAP"]


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test run, usable as database, slot and topic prefix."""
    base = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:30]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_prefix(unique_name: str, kafka_bootstrap: str) -> Iterator[str]:
    yield unique_name
    delete_topics(kafka_bootstrap, unique_name)


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic of the pipeline named `prefix`."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


CommandFile = Callable[[dict[str, Any], dict[str, Any]], Path]


@pytest.fixture
def command_file(tmp_path: Path, unique_name: str, kafka_bootstrap: str) -> CommandFile:
    """Writes the pipeline.yaml a `cdc` command (assess, schema, ...) reads: the test's
    source and target sections, named after the test."""

    def write(source: dict[str, Any], target: dict[str, Any]) -> Path:
        return command_config(tmp_path, unique_name, source, target, kafka_bootstrap)

    return write


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture
def pg_dsn(dev_env: dict[str, str], unique_name: str) -> Iterator[str]:
    """DSN of a fresh PostgreSQL database, dropped (with its slots) after the test."""
    admin_dsn = dev_env["CDC_PG_DSN"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{unique_name}"')
    yield with_database(admin_dsn, unique_name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = %s AND NOT active",
            (unique_name,),
        )
        conn.execute(f'DROP DATABASE "{unique_name}" WITH (FORCE)')


@pytest.fixture
def pg_target_dsn(dev_env: dict[str, str], unique_name: str) -> Iterator[str]:
    """A second fresh PostgreSQL database, the target of a pipeline."""
    admin_dsn = dev_env["CDC_PG_DSN"]
    name = unique_name + "_dst"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def mysql_connect(dsn: str, database: str | None = None) -> pymysql.Connection:  # type: ignore[type-arg]
    parts = urlsplit(dsn)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=database or (parts.path.lstrip("/") or None),
        autocommit=True,
        charset="utf8mb4",
    )


def pg_execute(dsn: str, statement: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement.encode(), params or None)


def my_execute(dsn: str, statement: str, *params: Any) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(statement, params or None)


@pytest.fixture
def mysql_dsn(dev_env: dict[str, str], unique_name: str) -> Iterator[str]:
    """DSN of a fresh MariaDB database, dropped after the test."""
    admin_dsn = dev_env["CDC_MYSQL_DSN"]
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{unique_name}`")
    yield with_database(admin_dsn, unique_name)
    with mysql_connect(admin_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")


def services(*args: str) -> None:
    """Drive dev/services.sh: stop, kill and restart one server (crash tests)."""
    subprocess.run(["bash", str(SERVICES), *args], check=True, timeout=180)


@pytest.fixture
def mysql_items_to_pg(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> Settings:
    """A pipeline from MariaDB's items (id, v; rows 1, 2, 3) to PostgreSQL, never run:
    its file is `<topic_prefix>.yaml` in tmp_path."""
    database = urlsplit(mysql_dsn).path.strip("/")
    my_execute(mysql_dsn, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    my_execute(mysql_dsn, "INSERT INTO items VALUES (1, 1), (2, 2), (3, 3)")
    return mysql_pipeline(
        tmp_path,
        topic_prefix,
        mysql_dsn,
        kafka_bootstrap,
        [f"{database}.items"],
        target={"type": "postgres", "dsn": pg_target_dsn},
    )

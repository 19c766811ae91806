"""The run's databases: a source and a target for each pipeline, made with the
nemesis's tables, and everything dropped again at the end (slots and topics too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from tests.chaos.databases import Database
from tests.chaos.pipelines import Pipeline
from tests.chaos.tables import MYSQL_DDL, PG_DDL
from tests.integration.conftest import delete_topics, mysql_connect, with_database

if TYPE_CHECKING:
    from tests.chaos.nemesis import Nemesis

ENGINES = {"pg": "postgres", "mysql": "mysql"}


def _create(nemesis: Nemesis, engine: str, name: str, tables: bool) -> Database:
    if engine == "postgres":
        admin = nemesis.env["CDC_PG_DSN"]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        db = Database(engine, with_database(admin, name))
        ddl = PG_DDL
    else:
        admin = nemesis.env["CDC_MYSQL_DSN"]
        with mysql_connect(admin) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        db = Database(engine, with_database(admin, name))
        ddl = MYSQL_DDL
    if tables:
        conn = db.connect(autocommit=True)
        try:
            for statement in ddl:
                conn.cursor().execute(statement)
        finally:
            conn.close()
    return db


def create_databases(nemesis: Nemesis) -> list[Pipeline]:
    pipelines = []
    for label in nemesis.labels:
        source_kind, target_kind = label.split("->")
        base = f"chaos_{source_kind}_{target_kind}_{nemesis.suffix}"
        source = _create(nemesis, ENGINES[source_kind], f"{base}_src", tables=True)
        target = _create(nemesis, ENGINES[target_kind], f"{base}_dst", tables=False)
        if source.engine == "mysql" and target.engine == "postgres":
            # a MariaDB database becomes a schema of the same name on PostgreSQL
            target = Database(target.engine, target.dsn, schema=source.name)
        pipelines.append(
            Pipeline(
                label=label,
                base_name=base,
                source=source,
                target=target,
                source_via=source.at(nemesis.proxy.address(source_kind)),
                target_via=target.at(nemesis.proxy.address(target_kind)),
                bootstrap=nemesis.proxy.kafka_bootstrap,
                workdir=nemesis.workdir,
            )
        )
    return pipelines


def drop_databases(nemesis: Nemesis) -> None:
    pg_admin, my_admin = nemesis.env["CDC_PG_DSN"], nemesis.env["CDC_MYSQL_DSN"]
    for pipeline in nemesis.pipelines:
        for db in (pipeline.source, pipeline.target):
            if db.engine == "postgres":
                with psycopg.connect(pg_admin, autocommit=True) as conn:
                    conn.execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE database = %s AND NOT active",
                        (db.name,),
                    )
                    conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
            else:
                with mysql_connect(my_admin) as conn, conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
        delete_topics(nemesis.env["CDC_KAFKA_BOOTSTRAP"], pipeline.base_name)

"""`cdc assess` on the real servers: table facts, blockers with their fix, and the
least-privilege roles of README.md ("Least-privilege roles") found sufficient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from cdc.cli import main
from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import command_config
from tests.integration.roles import (
    mysql_source_user,
    mysql_target_user,
    pg_source_role,
    pg_target_role,
)

ROWS = 1000


def assess(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["assess", "-c", str(config), *args])


def assess_json(config: Path) -> tuple[int, dict[str, Any]]:
    result = assess(config, "--json")
    return result.exit_code, json.loads(result.stdout)


def blockers(report: dict[str, Any]) -> list[dict[str, str]]:
    return [c for c in report["checks"] if c["status"] == "blocker"]


def pg_items(dsn: str, *more: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL)")
        conn.execute(
            f"INSERT INTO items SELECT i, repeat('x', 50) FROM generate_series(1, {ROWS}) i"
        )
        for statement in more:
            conn.execute(statement)


def mysql_items(dsn: str, *more: str) -> None:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, note VARCHAR(60) NOT NULL)")
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s)", [(i, "x" * 50) for i in range(1, ROWS + 1)]
        )
        for statement in more:
            cur.execute(statement)


def test_healthy_pg_to_pg(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    pg_items(pg_dsn, "CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz)")
    config = command_config(
        tmp_path,
        unique_name,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items", "public.events"]},
        {"type": "postgres", "dsn": pg_target_dsn, "create_tables": True},
        kafka_bootstrap,
    )
    code, report = assess_json(config)
    assert code == 0, blockers(report)
    assert report["ok"] is True
    tables = {t["table"]: t for t in report["tables"]}
    items = tables["public.items"]
    assert items["rows"] == ROWS
    assert items["rows_exact"] is True
    assert items["key"] == "primary key (id)"
    assert items["size_bytes"] > 0
    assert items["sample_rows"] == ROWS
    assert items["copy_seconds_estimate"] > 0
    assert items["target"] == "public.items"
    events = tables["public.events"]
    assert any("sequences are not streamed" in f for f in events["features"])
    statuses = {(c["scope"], c["name"]): c["status"] for c in report["checks"]}
    assert statuses[("source", "server")] == "ok"
    assert statuses[("source", "replication slot")] == "ok"
    assert statuses[("kafka", "reachable")] == "ok"
    human = assess(config)
    assert human.exit_code == 0
    assert "ready: 0 blockers" in human.stdout


def test_an_existing_target_table_of_other_types_is_flagged(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    pg_items(pg_dsn, "ALTER TABLE items ADD COLUMN at timestamptz, ADD COLUMN label text")
    with psycopg.connect(pg_target_dsn, autocommit=True) as conn:
        # made by hand on the new side: `at` as a number, `label` too short, `note` fine
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL, at bigint,"
            " label varchar(10) NOT NULL)"
        )
    config = command_config(
        tmp_path,
        unique_name,
        {"type": "postgres", "dsn": pg_dsn, "tables": ["public.items"]},
        {"type": "postgres", "dsn": pg_target_dsn},
        kafka_bootstrap,
    )
    code, report = assess_json(config)
    flagged = [c for c in report["checks"] if c["name"] == "table columns"]
    found = sorted((c["status"], c["detail"].split(" ")[0]) for c in flagged)
    assert code == 1
    # `at` a number where timestamps come; `label` varchar(10) for text, NOT NULL for nullable
    assert found == [
        ("blocker", "public.items.at"),
        ("warning", "public.items.label"),
        ("warning", "public.items.label"),
    ], flagged
    at = next(c for c in flagged if c["status"] == "blocker")
    assert "bigint on the target" in at["detail"] and "timestamp" in at["detail"], at
    assert "cdc schema" in at["fix"]


def test_table_without_key_is_a_blocker_with_the_fix(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    pg_items(
        pg_dsn,
        "CREATE TABLE nokey (a int, b text)",
        "CREATE TABLE full_identity (a int, b text)",
        "ALTER TABLE full_identity REPLICA IDENTITY FULL",
    )
    tables = ["public.items", "public.nokey", "public.full_identity"]
    config = command_config(
        tmp_path,
        unique_name,
        {"type": "postgres", "dsn": pg_dsn, "tables": tables},
        {"type": "postgres", "dsn": pg_target_dsn},
        kafka_bootstrap,
    )
    code, report = assess_json(config)
    assert code == 1
    found = blockers(report)
    assert [(c["scope"], c["name"]) for c in found] == [("table public.nokey", "key")]
    assert (
        found[0]["fix"]
        == 'ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL (or add a primary key)'
    )
    keys = {t["table"]: t["key"] for t in report["tables"]}
    assert keys["public.full_identity"] == "replica identity full"
    human = assess(config)
    assert human.exit_code == 1
    assert 'fix: ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL' in human.stdout


def test_least_privilege_source_without_select_is_a_blocker(
    tmp_path: Path, pg_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    pg_items(pg_dsn, "CREATE TABLE secrets (id int PRIMARY KEY, value text)")
    with (
        pg_source_role(pg_dsn, ["public.items"], unique_name) as source_dsn,
        pg_target_role(pg_target_dsn) as target_dsn,
    ):
        config = command_config(
            tmp_path,
            unique_name,
            {"type": "postgres", "dsn": source_dsn, "tables": ["public.items", "public.secrets"]},
            {"type": "postgres", "dsn": target_dsn, "create_tables": True},
            kafka_bootstrap,
        )
        code, report = assess_json(config)
    assert code == 1
    denied = [c for c in blockers(report) if c["name"] == "select privilege"]
    assert [c["scope"] for c in denied] == ["table public.secrets"]
    assert "may not read public.secrets" in denied[0]["detail"]
    assert denied[0]["fix"].startswith('GRANT SELECT ON "public"."secrets" TO ')


def test_least_privilege_roles_pass(
    tmp_path: Path, pg_dsn: str, mysql_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    """PostgreSQL source role and MariaDB target user as README.md grants them."""
    pg_items(pg_dsn)
    database = mysql_dsn.rsplit("/", 1)[1]
    with (
        pg_source_role(pg_dsn, ["public.items"], unique_name) as source_dsn,
        mysql_target_user(mysql_dsn, database) as target_dsn,
    ):
        config = command_config(
            tmp_path,
            unique_name,
            {"type": "postgres", "dsn": source_dsn, "tables": ["public.items"]},
            {"type": "mysql", "dsn": target_dsn, "create_tables": True},
            kafka_bootstrap,
        )
        code, report = assess_json(config)
    assert code == 0, blockers(report)
    statuses = {(c["scope"], c["name"]): c["status"] for c in report["checks"]}
    assert statuses[("source", "publication")] == "ok"
    assert statuses[("target", "privileges")] == "ok"
    assert report["tables"][0]["target"] == f"{database}.items"


def test_mariadb_source(
    tmp_path: Path, mysql_dsn: str, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    mysql_items(
        mysql_dsn,
        "CREATE TABLE nokey (a INT, b TEXT)",
        "SET sql_mode = ''",
        "CREATE TABLE dated (id INT PRIMARY KEY, d DATE, at DATETIME, ok DATE)",
        "INSERT INTO dated VALUES (1, '0000-00-00', '2024-05-00 10:00:00', '2024-05-01'),"
        " (2, '2024-00-10', NULL, NULL), (3, NULL, '2024-01-01 00:00:00', '2024-01-01')",
    )
    database = mysql_dsn.rsplit("/", 1)[1]
    with (
        mysql_source_user(mysql_dsn, database) as source_dsn,
        pg_target_role(pg_target_dsn) as target_dsn,
    ):
        config = command_config(
            tmp_path,
            unique_name,
            {"type": "mysql", "dsn": source_dsn, "tables": {"include": [f"{database}.*"]}},
            {"type": "postgres", "dsn": target_dsn, "create_tables": True},
            kafka_bootstrap,
        )
        code, report = assess_json(config)
    assert code == 0
    assert not blockers(report)
    nokey = next(
        c
        for c in report["checks"]
        if c["scope"] == f"table {database}.nokey" and c["name"] == "key"
    )
    assert nokey["status"] == "warning" and "by every column" in nokey["detail"]
    items = next(t for t in report["tables"] if t["table"] == f"{database}.items")
    assert (items["rows"], items["rows_exact"], items["sample_rows"]) == (ROWS, True, ROWS)
    assert items["key"] == "primary key (id)"
    assert items["target"] == f"{database}.items"
    statuses = {(c["scope"], c["name"]): c["status"] for c in report["checks"]}
    assert statuses[("source", "server")] == "ok"
    # the columns holding zero dates, which become NULL or stop the source
    zero = [c["detail"] for c in report["checks"] if c["name"] == "zero dates"]
    assert [detail.split(":")[0] for detail in zero] == ["d", "at"], zero
    assert zero[0].startswith("d: 2 rows hold a zero date")


def test_unreachable_source_exits_2(
    tmp_path: Path, pg_target_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    config = command_config(
        tmp_path,
        unique_name,
        {"type": "postgres", "dsn": "postgresql://cdc:pw@127.0.0.1:1/x", "tables": ["public.t"]},
        {"type": "postgres", "dsn": pg_target_dsn},
        kafka_bootstrap,
    )
    result = assess(config)
    assert result.exit_code == 2
    assert "cannot read the source" in result.stderr

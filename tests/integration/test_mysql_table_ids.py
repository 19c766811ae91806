"""A MariaDB restart reuses table ids: a source reading across it decodes each table's rows
with that table's own layout.

The source parses a table map once per table id (the server gives a table a new id on
every ALTER). A killed server leaves its binlog without a closing rotation and numbers
tables from the start again, so the same id can name another table in the next file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from cdc.kafka.offsets import KafkaOffsetStore
from cdc.mysql.position import BinlogPosition
from cdc.mysql.source import POSITION_KEY
from tests.integration.conftest import my_execute, mysql_connect, services
from tests.integration.pipeline import (
    TopicReader,
    mysql_pipeline,
    running_source,
    write_config,
)


def _position(dsn: str) -> tuple[str, int]:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return str(row[0]), int(row[1])


def _table_ids(dsn: str, start: tuple[str, int], table: str) -> set[int]:
    """The ids the binlog gave `table` from `start` on."""
    ids: set[int] = set()
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [str(r[0]) for r in cur.fetchall()]
        for name in files[files.index(start[0]) :]:
            offset = start[1] if name == start[0] else 4
            cur.execute(f"SHOW BINLOG EVENTS IN '{name}' FROM {offset}")
            for row in cur.fetchall():
                found = re.match(r"table_id: (\d+) \(.*\.(\w+)\)", str(row[5]))
                if row[2] == "Table_map" and found and found.group(2) == table:
                    ids.add(int(found.group(1)))
    return ids


def _crash_and_start() -> None:
    services("kill", "mysql")  # no closing rotation in its binlog
    services("start", "mysql")


def test_rows_after_a_crash_that_reused_a_table_id_keep_their_own_columns(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    my_execute(mysql_dsn, "CREATE TABLE a (id INT PRIMARY KEY, word VARCHAR(20))")
    my_execute(mysql_dsn, "CREATE TABLE b (id INT PRIMARY KEY, x DOUBLE, y BIGINT, z CHAR(3))")
    tables = [f"{database}.a", f"{database}.b"]
    mysql_pipeline(tmp_path, topic_prefix, mysql_dsn, kafka_bootstrap, tables)
    config = tmp_path / f"{topic_prefix}.yaml"
    settings = write_config(
        config, {**yaml.safe_load(config.read_text()), "snapshot": {"mode": "never"}}
    )
    _crash_and_start()
    start = _position(mysql_dsn)
    # after each start, the first table written is the first user table the server opens
    my_execute(mysql_dsn, "INSERT INTO a VALUES (1, 'one'), (2, 'two')")
    _crash_and_start()
    my_execute(mysql_dsn, "INSERT INTO b VALUES (1, 1.5, 10, 'abc'), (2, -2.25, 20, 'xyz')")
    a_ids, b_ids = _table_ids(mysql_dsn, start, "a"), _table_ids(mysql_dsn, start, "b")
    assert a_ids == b_ids, f"the restart gave b another id than a had: {a_ids} / {b_ids}"

    KafkaOffsetStore(kafka_bootstrap, topic_prefix).put(
        POSITION_KEY, BinlogPosition(*start).to_json()
    )
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    with running_source(settings):
        for table in ("a", "b"):
            reader = TopicReader(kafka_bootstrap, f"{topic_prefix}.{database}.{table}")
            reader.read_until(2)
            rows[table] = {
                key["id"]: orjson.loads(orjson.dumps(value.after))
                for key, value in reader.envelopes()
                if key is not None and value.after is not None
            }
            reader.close()
    assert rows == {
        "a": {1: {"id": 1, "word": "one"}, 2: {"id": 2, "word": "two"}},
        "b": {
            1: {"id": 1, "x": 1.5, "y": 10, "z": "abc"},
            2: {"id": 2, "x": -2.25, "y": 20, "z": "xyz"},
        },
    }

"""The cut-over's pure parts: positions compared, partitions left to apply, the marks
that keep reverse replication from looping, the cutover section and the reverse file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from cdc.app.engines import engine_for
from cdc.applied_marks import (
    APPLY_SERVER_ID_MAX,
    APPLY_SERVER_ID_MIN,
    applied_by_sink,
    apply_server_id,
)
from cdc.engine import Sides
from cdc.errors import TerminalError
from cdc.migrate.cutover.reverse import write_reverse
from cdc.migrate.positions import behind, reached
from cdc.mysql.marker import BinlogMarker
from cdc.postgres.marker import LsnMarker
from cdc.settings import MysqlSource, default_server_id
from cdc.settings_issues import ConfigError
from cdc.settings_load import load_settings


def test_a_pg_slot_reaches_a_marker_only_past_it() -> None:
    marker = LsnMarker(0x1_0000_0010)
    assert str(marker) == "1/10"
    assert not reached(None, marker)
    assert not reached(LsnMarker(0x1_0000_0010), marker)  # the commit comes after the message
    assert reached(LsnMarker(0x1_0000_0011), marker)


def test_a_binlog_position_compares_by_file_number_then_position() -> None:
    marker = BinlogMarker(file="binlog.000009", pos=500)
    assert str(marker) == "binlog.000009:500"
    assert reached(BinlogMarker(file="binlog.000009", pos=500), marker)
    assert not reached(BinlogMarker(file="binlog.000009", pos=499), marker)
    assert reached(BinlogMarker(file="binlog.000010", pos=4), marker)
    assert not reached(BinlogMarker(file="binlog.000008", pos=9999), marker)


def test_a_mariadb_position_compares_by_gtid_per_domain() -> None:
    marker = BinlogMarker(file="binlog.000009", pos=500, gtid="0-1-100,1-2-5")
    # a rotation moved file and position, no transaction: the GTIDs still count
    assert reached(BinlogMarker(file="binlog.000009", pos=700, gtid="0-1-100,1-2-5"), marker)
    assert reached(BinlogMarker(file="binlog.000008", pos=9, gtid="0-1-101,1-2-5"), marker)
    assert not reached(BinlogMarker(file="binlog.000010", pos=4, gtid="0-1-99,1-2-5"), marker)
    assert not reached(BinlogMarker(file="binlog.000010", pos=4, gtid="0-1-100"), marker)


def test_behind_counts_what_the_sink_has_not_applied() -> None:
    ends = {("t", 0): (0, 10), ("t", 1): (5, 8), ("t", 2): (0, 0), ("t", 3): (100, 120)}
    done = {("t", 0): 10, ("t", 1): 6}
    # partition 3 never applied and its start was deleted by retention: from the low mark
    assert behind(ends, done) == {("t", 1): 2, ("t", 3): 20}


def test_sink_server_ids_never_meet_source_replica_ids() -> None:
    for name in ("orders", "orders_reverse", "x" * 63):
        sink = apply_server_id(name)
        assert APPLY_SERVER_ID_MIN <= sink < APPLY_SERVER_ID_MAX and applied_by_sink(sink)
        assert not applied_by_sink(default_server_id(name))
    assert apply_server_id("orders") != apply_server_id("orders_reverse")
    assert not applied_by_sink(1)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


FORWARD = """
name: orders
source: {type: mysql, dsn: "mysql://app:${MY_PW}@db1:3306/shop", tables: [shop.orders]}
target: {type: postgres, dsn_file: target.dsn}
kafka: {bootstrap_servers: "k:9092", topic_prefix: prod.orders}
transforms: [{type: rename_column, table: shop.orders, from: a, to: b}]
metrics: {listen: "127.0.0.1:9300"}
cutover: {reverse: true, max_lag_seconds: 5}
"""


def test_the_reverse_file_swaps_the_sides_and_keeps_secrets_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PW", "pw")
    write(tmp_path / "target.dsn", "postgresql://cdc:pw@db2:5432/shop")
    path = write(tmp_path / "orders.yaml", FORWARD)
    settings = load_settings(path)
    assert settings.cutover.reverse_name == "orders_reverse"
    written = write_reverse(settings, Sides.of(settings, engine_for), path, [("shop", "orders")])
    assert written == tmp_path / "orders.reverse.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    document = yaml.safe_load(written.read_text())
    assert document["source"] == {
        "type": "postgres",
        "dsn_file": "target.dsn",
        "tables": ["shop.orders"],
    }
    assert document["target"] == {"type": "mysql", "dsn": "mysql://app:${MY_PW}@db1:3306/shop"}
    assert "transforms" not in document and "topic_prefix" not in document["kafka"]
    reverse = load_settings(written)
    assert reverse.name == "orders_reverse" and reverse.kafka.topic_prefix == "orders_reverse"
    # both pipelines run on one host for the rollback window: the next port
    assert reverse.snapshot.mode == "never" and reverse.metrics.listen == "127.0.0.1:9301"
    assert isinstance(load_settings(path).source, MysqlSource)


def test_the_reverse_file_needs_the_mysql_database_to_write_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PW", "pw")
    write(tmp_path / "target.dsn", "postgresql://cdc:pw@db2:5432/shop")
    path = write(tmp_path / "orders.yaml", FORWARD.replace("db1:3306/shop", "db1:3306"))
    with pytest.raises(TerminalError, match=r"names none \(fix: end source\.dsn with /<database>"):
        settings = load_settings(path)
        write_reverse(settings, Sides.of(settings, engine_for), path, [("shop", "orders")])


def test_dlq_since_needs_a_time_zone(tmp_path: Path) -> None:
    text = FORWARD.replace("max_lag_seconds: 5", "dlq_since: 2024-05-01T10:00:00")
    write(tmp_path / "target.dsn", "postgresql://cdc:pw@db2:5432/shop")
    with pytest.raises(ConfigError, match=r"cutover\.dlq_since"):
        load_settings(write(tmp_path / "orders.yaml", text.replace("${MY_PW}", "pw")))


def test_a_table_going_back_to_postgres_is_renamed_to_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PW", "pw")
    forward = """
name: orders
source: {type: postgres, dsn: "postgresql://cdc:pw@db1/shop", tables: [sales.orders, public.items]}
target: {type: mysql, dsn: "mysql://app:${MY_PW}@db2:3306/shop"}
kafka: {bootstrap_servers: "k:9092"}
cutover: {reverse: true}
"""
    path = write(tmp_path / "orders.yaml", forward)
    settings = load_settings(path)
    sides = Sides.of(settings, engine_for)
    written = write_reverse(settings, sides, path, [("sales", "orders"), ("public", "items")])
    document = yaml.safe_load(written.read_text())
    assert document["source"]["tables"] == ["shop.orders", "shop.items"]
    assert document["transforms"] == [
        {"type": "rename_table", "table": "shop.orders", "to": "sales.orders"},
        {"type": "rename_table", "table": "shop.items", "to": "public.items"},
    ]

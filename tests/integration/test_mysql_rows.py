"""`cdc.mysql.rows` on the binlog of the real local MariaDB, against exact values."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from structlog.testing import capture_logs

from cdc import metrics
from cdc.mysql.rows import RowDecoders, RowPair
from cdc.mysql.zero_dates import ZeroDateError
from tests.integration.conftest import mysql_connect

DDL = """
CREATE TABLE every_type (
    id INT NOT NULL PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE,
    dec_small DECIMAL(12,2), dec_big DECIMAL(65,30), dec_int DECIMAL(10,0), dec_frac DECIMAL(5,5),
    dt DATE, dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6),
    ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL,
    tm TIME, tm1 TIME(1), tm6 TIME(6), y YEAR,
    vc VARCHAR(100), vc_long VARCHAR(300), ch CHAR(10),
    lat VARCHAR(50) CHARACTER SET latin1, lat_ch CHAR(5) CHARACTER SET latin1,
    tt TINYTEXT, txt TEXT, mtxt MEDIUMTEXT, ltxt LONGTEXT,
    bin BINARY(4), vb VARBINARY(20), tbl TINYBLOB, bl BLOB, mbl MEDIUMBLOB, lbl LONGBLOB,
    js JSON,
    en ENUM('a', 'b', 'c'), st SET('x', 'y', 'z'),
    bt BIT(12), b1 BIT(1),
    g GEOMETRY
) DEFAULT CHARSET=utf8mb4
"""

COLUMNS = [
    "id", "ti", "tu", "si", "su", "mi", "mu", "i", "iu", "bi", "bu", "f", "d",
    "dec_small", "dec_big", "dec_int", "dec_frac", "dt", "dtm", "dtm3", "dtm6", "ts", "ts0",
    "tm", "tm1", "tm6", "y", "vc", "vc_long", "ch", "lat", "lat_ch", "tt", "txt", "mtxt", "ltxt",
    "bin", "vb", "tbl", "bl", "mbl", "lbl", "js", "en", "st", "bt", "b1", "g",
]  # fmt: skip

DEC_MAX = "9" * 35 + "." + "9" * 30
POINT_WKB = bytes.fromhex("0101000000000000000000f03f0000000000000040")

# (SQL values in COLUMNS order, expected Python values)
ROW_MAX: dict[str, Any] = {
    "id": 1, "ti": -128, "tu": 255, "si": -32768, "su": 65535, "mi": -8388608, "mu": 16777215,
    "i": -2147483648, "iu": 4294967295, "bi": -(2**63), "bu": 2**64 - 1,
    "f": 1.5, "d": -2.5e300,
    "dec_small": Decimal("-1234567890.12"), "dec_big": Decimal(DEC_MAX),
    "dec_int": Decimal("-9999999999"), "dec_frac": Decimal("0.00001"),
    "dt": date(9999, 12, 31), "dtm": datetime(2024, 5, 1, 12, 30, 59),
    "dtm3": datetime(2024, 5, 1, 12, 30, 59, 123000),
    "dtm6": datetime(1000, 1, 1, 0, 0, 0, 1),
    "ts": datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
    "ts0": datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    "tm": timedelta(hours=-838, minutes=-59, seconds=-59),
    "tm1": timedelta(hours=-1, seconds=-0.5),
    "tm6": timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
    "y": 2155,
    "vc": "emoji 🦆 ünïcode", "vc_long": "x" * 300, "ch": "chär",
    "lat": "café €", "lat_ch": "Ä", "tt": "tiny", "txt": "text " * 100,
    "mtxt": "medium", "ltxt": "long 🦆",
    "bin": b"\x00\x01\xfe\xff", "vb": b"\x00bin\xff", "tbl": b"\x01", "bl": bytes(range(256)),
    "mbl": b"m" * 70000, "lbl": b"",
    "js": {"a": [1, 2.5, None, True], "k": "v"},
    "en": "c", "st": {"x", "z"}, "bt": b"\x0a\xbc", "b1": b"\x01",
    "g": b"\x00\x00\x00\x00" + POINT_WKB,
}  # fmt: skip
ROW_NULLS: dict[str, Any] = {name: None for name in COLUMNS} | {"id": 2}
ROW_SMALL: dict[str, Any] = ROW_MAX | {
    "id": 3, "ti": 127, "si": 32767, "mi": 8388607, "i": 2147483647, "bi": 2**63 - 1,
    "tu": 0, "bu": 0, "f": -0.0, "d": 0.0,
    "dec_small": Decimal("0.00"), "dec_big": Decimal("-" + DEC_MAX), "dec_int": Decimal("0"),
    "dec_frac": Decimal("-0.12345"),
    "dt": date(1000, 1, 1), "tm": timedelta(0), "tm1": timedelta(seconds=0.1),
    "tm6": timedelta(microseconds=-1), "y": 1901, "vc": "", "ch": "", "txt": "",
    "en": "a", "st": set(), "js": [], "bt": b"\x00\x00",
}  # fmt: skip

STOCK_WRONG = {
    # The stock library returns BIT as a '0101' string, JSON (MariaDB LONGTEXT) as a str,
    # an empty SET as None, an empty LONGBLOB as '', naive TIMESTAMPs, and misreads
    # the fraction of a negative TIME(6) ('-00:00:00.000001').
    "bt", "b1", "js", "st", "ts", "ts0", "tm6", "lbl",
}  # fmt: skip


def sql_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "js":
        return json.dumps(value)
    if name == "st":
        return ",".join(sorted(value))
    if name == "g":
        return value[4:]
    if isinstance(value, timedelta):
        sign = "-" if value < timedelta(0) else ""
        a = abs(value)
        hours, rest = divmod(int(a.total_seconds()), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}.{a.microseconds:06d}"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def insert(cur: Any, row: dict[str, Any]) -> None:
    marks = ", ".join("ST_GeomFromWKB(%s)" if c == "g" else "%s" for c in COLUMNS)
    cur.execute(
        f"INSERT INTO every_type ({', '.join(COLUMNS)}) VALUES ({marks})",
        [sql_value(c, row[c]) for c in COLUMNS],
    )


def binlog_position(dsn: str) -> tuple[str, int]:
    with mysql_connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def read_binlog(
    dsn: str, start: tuple[str, int], decoders: RowDecoders, *, stock: bool = True
) -> list[tuple[str, str, list[RowPair], list[Any]]]:
    """(kind, table, our pairs, stock rows) for every rows event of the test's database."""
    parts = urlsplit(dsn)
    schema = parts.path.lstrip("/")
    stream = BinLogStreamReader(
        connection_settings={
            "host": parts.hostname,
            "port": parts.port,
            "user": parts.username,
            "password": parts.password,
        },
        server_id=3_100_000_000 + os.getpid() % 1_000_000,
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=False,
        only_events=[TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[schema],
    )
    out = []
    try:
        for event in stream:
            if isinstance(event, TableMapEvent):
                decoders.table_map(event)
                continue
            kind = {WriteRowsEvent: "c", UpdateRowsEvent: "u", DeleteRowsEvent: "d"}[type(event)]
            ours = decoders.decode(event)
            # Ours first: the stock decoder consumes the packet.
            theirs = event.rows if stock else []
            out.append((kind, event.table, ours, theirs))
    finally:
        stream.close()
    return out


def test_every_type_insert_update_delete(mysql_dsn: str) -> None:
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(DDL)
        start = binlog_position(mysql_dsn)
        for row in (ROW_MAX, ROW_NULLS, ROW_SMALL):
            insert(cur, row)
        cur.execute("UPDATE every_type SET vc = 'updated', bu = 42, js = NULL WHERE id = 1")
        cur.execute("DELETE FROM every_type WHERE id = 3")
    decoders = RowDecoders(json_columns={(urlsplit(mysql_dsn).path[1:], "every_type"): {"js"}})
    events = read_binlog(mysql_dsn, start, decoders)
    assert [(kind, len(pairs)) for kind, _, pairs, _ in events] == [
        ("c", 1),
        ("c", 1),
        ("c", 1),
        ("u", 1),
        ("d", 1),
    ]
    written = [pairs[0][1] for kind, _, pairs, _ in events if kind == "c"]
    for got, want in zip(written, (ROW_MAX, ROW_NULLS, ROW_SMALL), strict=True):
        assert got is not None
        assert list(got) == COLUMNS
        for name in COLUMNS:
            if name == "f" and want[name] is not None:
                assert got[name] == pytest.approx(want[name]), name
            else:
                assert got[name] == want[name], name
                assert type(got[name]) is type(want[name]), name
    before, after = events[3][2][0]
    first = written[0]
    assert first is not None
    assert before == first
    assert after == first | {"vc": "updated", "bu": 42, "js": None}
    assert events[4][2][0] == (written[2], None)

    # Where the stock library is right, both agree value for value.
    for _, _, pairs, stock_rows in events:
        for (before, after), stock in zip(pairs, stock_rows, strict=True):
            for ours, key in ((before, "before_values"), (after, "after_values")):
                theirs = stock.get(key, stock.get("values"))
                if ours is None:
                    continue
                for name in set(COLUMNS) - STOCK_WRONG:
                    if name in ("dtm6", "dt") and theirs[name] is None:
                        continue
                    assert ours[name] == theirs[name], name


def test_zero_dates(mysql_dsn: str) -> None:
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("SET sql_mode = ''")
        cur.execute(
            "CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME(6), ts TIMESTAMP NULL,"
            " tm TIME)"
        )
        start = binlog_position(mysql_dsn)
        cur.execute(
            "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',"
            " '00:00:00'), (2, '2024-00-10', '2024-05-00 10:00:00', NULL, '-00:00:01')"
        )
    table = f"{urlsplit(mysql_dsn).path.strip('/')}.z"
    counted = {c: _zero_dates_counted(table, c) for c in ("d", "dt", "ts")}
    with capture_logs() as logged:
        events = read_binlog(mysql_dsn, start, RowDecoders(), stock=False)
    assert [pair[1] for pair in events[0][2]] == [
        {"id": 1, "d": None, "dt": None, "ts": None, "tm": timedelta(0)},
        {"id": 2, "d": None, "dt": None, "ts": None, "tm": timedelta(seconds=-1)},
    ]
    # NULL in place of a date is said: once per table and column, counted each time
    said = [(e["table"], e["column"]) for e in logged if e["event"] == "zero_date_as_null"]
    assert sorted(said) == [(table, "d"), (table, "dt"), (table, "ts")]
    now = {c: _zero_dates_counted(table, c) - counted[c] for c in counted}
    assert now == {"d": 2, "dt": 2, "ts": 1}
    with pytest.raises(ZeroDateError, match=f"{table}.d"):
        read_binlog(mysql_dsn, start, RowDecoders(zero_dates="error"), stock=False)


def _zero_dates_counted(table: str, column: str) -> float:
    return metrics.ZERO_DATES.labels(table=table, column=column)._value.get()


def test_alter_table_mid_stream(mysql_dsn: str) -> None:
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY, old_col VARCHAR(10), n INT)")
        start = binlog_position(mysql_dsn)
        cur.execute("INSERT INTO a VALUES (1, 'x', 10), (2, NULL, 20)")
        cur.execute("ALTER TABLE a DROP COLUMN old_col, ADD COLUMN amount DECIMAL(8,3) FIRST")
        cur.execute("INSERT INTO a (id, n, amount) VALUES (3, 30, -1.5)")
        cur.execute("UPDATE a SET n = n + 1 WHERE id = 1")
    decoders = RowDecoders()
    events = read_binlog(mysql_dsn, start, decoders, stock=False)
    assert [pairs for _, _, pairs, _ in events] == [
        [(None, {"id": 1, "old_col": "x", "n": 10}), (None, {"id": 2, "old_col": None, "n": 20})],
        [(None, {"amount": Decimal("-1.500"), "id": 3, "n": 30})],
        [
            (
                {"amount": None, "id": 1, "n": 10},
                {"amount": None, "id": 1, "n": 11},
            )
        ],
    ]
    assert [d.primary_key for d in decoders.compiled()] == [("id",), ("id",)]


def test_many_rows_per_event_and_index_order(mysql_dsn: str) -> None:
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE m (id BIGINT PRIMARY KEY, note TEXT, v INT NOT NULL)")
        start = binlog_position(mysql_dsn)
        cur.execute(
            "INSERT INTO m SELECT seq, IF(seq % 3 = 0, NULL, REPEAT('n', seq % 50)), seq * 2"
            " FROM seq_1_to_5000"
        )
    events = read_binlog(mysql_dsn, start, RowDecoders())
    ours = [after for _, _, pairs, _ in events for _, after in pairs]
    theirs = [row["values"] for _, _, _, stock in events for row in stock]
    assert ours == theirs
    assert [row["id"] for row in ours if row] == list(range(1, 5001))

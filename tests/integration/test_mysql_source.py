"""The MySQL/MariaDB source on the real server and broker."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cdc.events import Op
from cdc.topics import table_topic
from tests.integration.conftest import mysql_connect
from tests.integration.pipeline import TopicReader, mysql_pipeline, running_source

TABLE = """
CREATE TABLE everything (
    id BIGINT UNSIGNED PRIMARY KEY,
    small TINYINT, big BIGINT, dec65 DECIMAL(65,30), f FLOAT, d DOUBLE,
    label VARCHAR(20), body TEXT CHARACTER SET latin1, emoji VARCHAR(10),
    raw VARBINARY(8), blobby BLOB, bits BIT(10),
    day DATE, at DATETIME(6), ts TIMESTAMP(3) NULL, span TIME, yr YEAR,
    mood ENUM('sad','ok','happy'), tags SET('a','b','c'), doc JSON, zero DATE
)
"""

ROW = (
    "INSERT INTO everything VALUES (%s, -128, -9223372036854775808,"
    " 99999999999999999999999999999999999.999999999999999999999999999999, 1.1, 2.5,"
    " 'naïve', 'café', '😀', x'00ff', x'0102', b'1010101010',"
    " '2024-02-29', '2024-02-29 12:34:56.000001', '2024-02-29 10:00:00.123', '-838:59:59',"
    " 2024, 'happy', 'a,c', '{\"k\": [1, 2.5, null]}', '0000-00-00')"
)

EXPECTED = {
    "small": -128,
    "big": -9223372036854775808,
    "dec65": "99999999999999999999999999999999999.999999999999999999999999999999",
    "f": 1.100000023841858,
    "d": 2.5,
    "label": "naïve",
    "body": "café",
    "emoji": "😀",
    "raw": "AP8=",
    "blobby": "AQI=",
    "bits": "Aqo=",
    "day": "2024-02-29",
    "at": "2024-02-29T12:34:56.000001",
    "ts": "2024-02-29T10:00:00.123000Z",
    "span": "-PT838H59M59.000000S",
    "yr": 2024,
    "mood": "happy",
    "tags": ["a", "c"],
    "doc": {"k": [1, 2.5, None]},
    "zero": None,
}


def test_snapshot_then_every_kind_of_change_in_order(
    tmp_path: Path, mysql_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    database = urlsplit(mysql_dsn).path.strip("/")
    with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(TABLE)
        cur.execute(ROW, (18446744073709551615,))
    settings = mysql_pipeline(
        tmp_path, unique_name, mysql_dsn, kafka_bootstrap, [f"{database}.everything"]
    )
    reader = TopicReader(kafka_bootstrap, table_topic(unique_name, database, "everything"))
    try:
        with running_source(settings):
            reader.read_until(1)
            with mysql_connect(mysql_dsn) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = ''")
                cur.execute(ROW, (2,))
                cur.execute("UPDATE everything SET label = 'changed' WHERE id = 2")
                cur.execute("UPDATE everything SET id = 3 WHERE id = 2")
                cur.execute("DELETE FROM everything WHERE id = 3")
                cur.execute("TRUNCATE TABLE everything")
            reader.read_until(1 + 5 + 2 + 2)
    finally:
        reader.close()
    events = reader.envelopes()
    snapshot = [e for _, e in events if e.op is Op.READ]
    assert len(snapshot) == 1
    assert snapshot[0].after == {"id": 18446744073709551615, **EXPECTED}

    streamed = [(k, e) for k, e in events if e.op is not Op.READ]
    by_key: dict[int, list[str]] = {}
    for key, envelope in streamed:
        if key is not None:
            by_key.setdefault(key["id"], []).append(envelope.op.value)
    assert by_key == {2: ["c", "u", "d"], 3: ["c", "d"]}
    insert = next(e for k, e in streamed if k == {"id": 2} and e.op is Op.CREATE)
    assert insert.after == {"id": 2, **EXPECTED}  # the binlog and the snapshot agree
    assert insert.source["file"].startswith("binlog.")
    assert [e.op for k, e in streamed if k is None] == [Op.TRUNCATE, Op.TRUNCATE]

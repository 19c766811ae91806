"""The PostgreSQL source on the real server and broker."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from cdc.events import Op
from cdc.topics import table_topic
from tests.integration.conftest import services
from tests.integration.pipeline import TopicReader, pg_pipeline, running_source

TYPES_TABLE = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.everything (
    id bigint PRIMARY KEY,
    small smallint, num numeric(20, 6), nan numeric, dbl double precision,
    flag boolean, label varchar(20), body text, raw bytea,
    day date, at timestamp(6), at_tz timestamptz, span interval,
    uid uuid, doc jsonb, ints int[], feeling mood, addr inet
);
"""

ROW = (
    "INSERT INTO everything VALUES (%s, 7, 12345678901234.123456, 'NaN', 'Infinity', true,"
    " 'naïve', 'line1\nline2\ttab\\back', '\\x00ff', '2024-02-29', '2024-02-29 12:34:56.000001',"
    " '2024-02-29 12:00:00+02', '1 year 2 mons 3 days 04:05:06.5', "
    " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2.5, null]}', '{1,NULL,3}',"
    " 'happy', '10.1.2.3')"
)

EXPECTED_AFTER = {
    "id": 1,
    "small": 7,
    "num": "12345678901234.123456",
    "nan": "NaN",
    "dbl": "Infinity",
    "flag": True,
    "label": "naïve",
    "body": "line1\nline2\ttab\\back",
    "raw": "AP8=",
    "day": "2024-02-29",
    "at": "2024-02-29T12:34:56.000001",
    "at_tz": "2024-02-29T10:00:00.000000Z",
    "span": "P1Y2M3DT4H5M6.5S",
    "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "doc": {"k": [1, 2.5, None]},
    "ints": [1, None, 3],
    "feeling": "happy",
    "addr": "10.1.2.3",
}


def test_snapshot_then_every_kind_of_change_in_order(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(TYPES_TABLE)
        conn.execute(ROW, (1,))
    settings = pg_pipeline(tmp_path, unique_name, pg_dsn, kafka_bootstrap, ["public.everything"])
    reader = TopicReader(kafka_bootstrap, table_topic(unique_name, "public", "everything"))
    try:
        with running_source(settings):
            reader.read_until(1)
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(ROW, (2,))
                conn.execute("UPDATE everything SET label = 'changed' WHERE id = 2")
                conn.execute("UPDATE everything SET id = 3 WHERE id = 2")  # key change
                conn.execute("DELETE FROM everything WHERE id = 3")
                conn.execute("TRUNCATE everything")
            # r, c, u, d+c (key change), d; plus 2 tombstones; truncate on both partitions
            reader.read_until(1 + 5 + 2 + 2)
    finally:
        reader.close()
    events = reader.envelopes()
    snapshot = [e for _, e in events if e.op is Op.READ]
    assert len(snapshot) == 1
    assert snapshot[0].after == EXPECTED_AFTER
    assert snapshot[0].source["snapshot"] == "true"

    streamed = [(k, e) for k, e in events if e.op is not Op.READ]
    by_key: dict[int, list[str]] = {}
    for key, envelope in streamed:
        if key is not None:
            by_key.setdefault(key["id"], []).append(envelope.op.value)
    assert by_key == {2: ["c", "u", "d"], 3: ["c", "d"]}
    insert = next(e for k, e in streamed if k == {"id": 2} and e.op is Op.CREATE)
    assert insert.after == {**EXPECTED_AFTER, "id": 2}  # stream and snapshot agree
    update = next(e for _, e in streamed if e.op is Op.UPDATE)
    assert update.after is not None and update.after["label"] == "changed"
    assert [e.op for k, e in streamed if k is None] == [Op.TRUNCATE, Op.TRUNCATE]
    assert all(isinstance(e.source["lsn"], int) for _, e in streamed)


def test_unchanged_toast_value_is_not_nulled(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, big text)")
    settings = pg_pipeline(tmp_path, unique_name, pg_dsn, kafka_bootstrap, ["public.docs"])
    reader = TopicReader(kafka_bootstrap, table_topic(unique_name, "public", "docs"))
    big = "".join(f"{n:08x}" for n in range(40_000))  # 320 kB, incompressible enough to TOAST
    try:
        with running_source(settings):
            time.sleep(2)
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO docs VALUES (1, 'a', %s)", (big,))
                conn.execute("UPDATE docs SET title = 'b' WHERE id = 1")
            reader.read_until(2)
    finally:
        reader.close()
    insert, update = (e for _, e in reader.envelopes())
    assert insert.after is not None and insert.after["big"] == big
    assert update.op is Op.UPDATE
    assert update.after == {"id": 1, "title": "b"}
    assert update.unchanged == ("big",)


def test_source_reconnects_after_a_server_restart(
    tmp_path: Path, pg_dsn: str, kafka_bootstrap: str, unique_name: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
    settings = pg_pipeline(tmp_path, unique_name, pg_dsn, kafka_bootstrap, ["public.items"])
    reader = TopicReader(kafka_bootstrap, table_topic(unique_name, "public", "items"))
    try:
        with running_source(settings):
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO items SELECT generate_series(1, 100)")
            reader.read_keys("id", set(range(1, 101)))
            services("restart", "pg")
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO items SELECT generate_series(101, 200)")
            reader.read_keys("id", set(range(1, 201)))
    finally:
        reader.close()
    ids = {key["id"] for key, _ in reader.envelopes() if key is not None}
    assert ids == set(range(1, 201))

"""The sink's binary COPY (cdc_copytext.RowEncoder, binary=True) gives
PostgreSQL the same rows as its text COPY, for every type it encodes in
binary, on random and edge values in wire form; values in shapes of their own
decline (the batch takes the planned path, which hands them to PostgreSQL's
text input)."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from cdc_copytext import BINARY_HEADER, BINARY_TRAILER, RowEncoder
from psycopg import sql

from cdc import values
from cdc.postgres.target_types import binary_kind, encoder_kind

COLUMNS = {
    "id": "bigint PRIMARY KEY",
    "i2": "smallint",
    "i4": "integer",
    "f4": "real",
    "f8": "double precision",
    "n": "numeric(12,2)",
    "nu": "numeric",
    "t": "text",
    "vc": "varchar(10)",
    "ch": "char(4)",
    "b": "boolean",
    "d": "date",
    "ts": "timestamp(6)",
    "ts3": "timestamp(3)",
    "tz": "timestamptz",
    "by": "bytea",
    "js": "json",
    "jb": "jsonb",
    "u": "uuid",
}
EDGES: list[dict[str, Any]] = [
    {"i2": -32768, "i4": 2**31 - 1, "f4": 3.4e38, "f8": -0.0, "n": Decimal("-9999999999.99")},
    {"i2": 32767, "f8": 1e-300, "nu": Decimal("-123456789012345678901234567890.000123")},
    {"nu": Decimal("0.000"), "n": Decimal("1.005"), "f4": 1e-45, "t": "", "vc": "ten chars!"},
    {"nu": Decimal("10000"), "n": Decimal("0.05"), "vc": "abc       ", "ch": "x"},
    {"d": date(1, 1, 1), "ts": datetime(1, 1, 1), "tz": datetime(9999, 12, 31, tzinfo=UTC)},
    {"d": date(2000, 2, 29), "ts3": datetime(2024, 1, 1, 23, 59, 59, 999500), "by": b""},
    {"t": 'tab\tnew\nline\r\\ "quote" é😀 \u2028', "js": {"a": [1, None, "x\ty"]}, "jb": "s"},
    {"js": [], "jb": {"k": {"deep": [1.5, -2, True]}}, "by": bytes(range(256))},
    # UTC without its "Z" (the session's time zone), and a "Z" a timestamp ignores
    {"tz": "2024-05-01T10:00:00.000000", "ts": "2024-05-01T10:00:00.000000Z"},
]


def _random_row(rng: random.Random) -> dict[str, Any]:
    def text(limit: int) -> str:
        return "".join(rng.choice('ab \t\n\\"é😀{}') for _ in range(rng.randrange(limit)))

    stamp = datetime(1970, 1, 1) + timedelta(microseconds=rng.randrange(-(2**55), 2**55))
    generators = {
        "i2": lambda: rng.randrange(-(2**15), 2**15),
        "i4": lambda: rng.randrange(-(2**31), 2**31),
        "f4": lambda: rng.uniform(-1e6, 1e6),
        "f8": lambda: rng.uniform(-1e12, 1e12) * 10.0 ** rng.randrange(-20, 20),
        "n": lambda: Decimal(rng.randrange(-(10**12), 10**12)).scaleb(-rng.randrange(2, 5)),
        "nu": lambda: Decimal(rng.randrange(-(10**30), 10**30)).scaleb(-rng.randrange(40)),
        "t": lambda: text(30),
        "vc": lambda: text(10),
        "ch": lambda: text(4),
        "b": lambda: rng.random() < 0.5,
        "d": stamp.date,
        "ts": lambda: stamp,
        "ts3": lambda: stamp,
        "tz": lambda: stamp.replace(tzinfo=UTC),
        "by": lambda: rng.randbytes(rng.randrange(20)),
        "js": lambda: {text(5): [rng.randrange(100), text(5), None]},
        "jb": lambda: {text(5): {"n": rng.uniform(-1, 1), "b": rng.random() < 0.5}},
        "u": lambda: uuid.UUID(int=rng.getrandbits(128)),
    }
    return {name: make() for name, make in generators.items() if rng.random() < 0.85}


def _event(row: dict[str, Any]) -> bytes:
    return values.dumps({"before": None, "after": row, "source": {"ts_ms": 1}, "op": "c"})


def _table_types(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()
    return dict(rows)


def _copy(conn: psycopg.Connection[Any], table: str, encoded: bytes, binary: bool) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    query = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        sql.Identifier(table), columns, sql.SQL(" (FORMAT binary)" if binary else "")
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.write(BINARY_HEADER + encoded + BINARY_TRAILER if binary else encoded)


@pytest.fixture
def conn(pg_target_dsn: str) -> Any:
    # the sink's session time zone (sinks.postgres.applier.SESSION_OPTIONS)
    with psycopg.connect(pg_target_dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        for table in ("via_text", "via_binary"):
            conn.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(sql.SQL(f"{c} {t}") for c, t in COLUMNS.items()),
                )
            )
        yield conn


def test_binary_copy_gives_the_rows_text_copy_gives(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(20261126)
    rows = [*EDGES, *(_random_row(rng) for _ in range(3000))]
    for i, row in enumerate(rows):
        row["id"] = i
    messages = [_event(row) for row in rows]
    types = _table_types(conn, "via_text")
    kinds = [binary_kind(t) for t in types.values()]
    assert None not in kinds, types  # every column of the table is one the binary encoder takes
    text = RowEncoder(list(types), [encoder_kind(t) for t in types.values()]).encode(messages)
    binary = RowEncoder(list(types), [str(k) for k in kinds], binary=True).encode(messages)
    assert text is not None
    assert binary is not None
    _copy(conn, "via_text", text[0], binary=False)
    _copy(conn, "via_binary", binary[0], binary=True)

    def table_rows(table: str) -> list[str]:
        query = sql.SQL("SELECT t::text FROM {} t ORDER BY id").format(sql.Identifier(table))
        return [r[0] for r in conn.execute(query).fetchall()]

    via_text = table_rows("via_text")
    assert len(via_text) == len(rows)
    assert table_rows("via_binary") == via_text


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("i2", 32768),  # out of range: the text path's error, then the dead-letter topic
        ("i4", 1.5),
        ("f8", "NaN"),
        ("nu", "Infinity"),
        ("nu", "1e5"),
        ("d", "infinity"),
        ("d", "2023-02-29"),
        ("ts", "2024-01-01 00:00:00"),
        ("ts", "2024-01-01T00:00:00+00:00"),
        ("tz", "2024-01-01T00:00:00.000000+02:00"),
        ("u", "{123e4567-e89b-12d3-a456-426614174000}"),
        ("by", "not base64!"),
        ("b", "t"),
    ],
)
def test_values_in_shapes_of_their_own_decline(
    conn: psycopg.Connection[Any], column: str, value: Any
) -> None:
    types = _table_types(conn, "via_binary")
    encoder = RowEncoder(list(types), [str(binary_kind(t)) for t in types.values()], binary=True)
    assert encoder.encode([_event({"id": 1, column: value})]) is None
    assert encoder.encode([_event({"id": 1})]) is not None


def test_bytes_of_the_wire_round_trip(conn: psycopg.Connection[Any]) -> None:
    payload = bytes(range(256)) * 3
    types = _table_types(conn, "via_binary")
    encoder = RowEncoder(list(types), [str(binary_kind(t)) for t in types.values()], binary=True)
    encoded = encoder.encode([_event({"id": 7, "by": base64.b64encode(payload).decode()})])
    assert encoded is not None
    _copy(conn, "via_binary", encoded[0], binary=True)
    row = conn.execute("SELECT by FROM via_binary WHERE id = 7").fetchone()
    assert row is not None
    assert bytes(row[0]) == payload

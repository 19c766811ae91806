"""The native encoder of insert events (`cdc_copytext.RowEncoder`, the sink's
direct insert path) writes the same COPY lines as the Python one
(`sinks.postgres.copy_text.LineBuilder`, the planned path) for the same wire rows, and
declines, sending the batch the planned way, whatever it does not convert."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest
from cdc_copytext import RowEncoder

from cdc import envelope
from cdc.events import ChangeEvent, Op
from cdc.postgres.target_types import encoder_kind, text_encoder
from sinks.postgres.copy_text import LineBuilder
from tests.unit.test_envelope import Lsn

# target column -> format_type(), one of every encoder kind
TYPES = {
    "id": "bigint",
    "name": "text",
    "price": "numeric(10,2)",
    "ratio": "double precision",
    "blob": "bytea",
    "doc": "jsonb",
    "flag": "boolean",
    "span": "interval",
    "tags": "text[]",
    "grid": "integer[]",
}
ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "plain", "price": "12.50", "ratio": 1.5, "flag": True},
    {"id": 2, "name": "tab\there\nnew line\r\\back", "flag": False, "ratio": -0.25},
    {"id": 3, "name": 'quote " and unicode é😀 \u2028', "doc": {"a": [1, "x\ty", None]}},
    {"id": 4, "name": None, "price": None, "doc": "just a string", "span": "P1DT2H3M4.5S"},
    {"id": 5, "blob": base64.b64encode(b"\x00\x01\\\xff").decode(), "doc": [1, 2.5, True]},
    {"id": 6, "blob": "", "tags": ["a", 'b"c', "d\\e", None, "", "tab\t"], "grid": [[1, 2], [3]]},
    {"id": 7, "tags": [{"k": "v"}, True, 12], "grid": [], "doc": {"nested": {"deep": "\\"}}},
    {"id": 8, "name": 12345, "price": 7, "span": "PT0S", "tags": "{already,literal}"},
    {"id": 9, "name": True, "doc": None, "flag": None},
    {"id": 10, "name": {"as": "json text"}, "extra": "a column the table lacks"},
    {"id": 11, "name": "\x01\x1f\x7f control bytes COPY passes as they are"},
]


def event_value(row: dict[str, Any] | None, op: Op = Op.READ, ts_ms: int = 1_000) -> bytes:
    event = ChangeEvent(
        op=op,
        schema="public",
        table="t",
        key={"id": 1},
        before=row if op in (Op.UPDATE, Op.DELETE) else None,
        after=None if op is Op.DELETE else row,
        ts_ms=ts_ms,
        position=Lsn(1),
        fingerprint="0123456789abcdef",
        txid=None,
        source={"connector": "postgresql"},
    )
    return envelope.encode_value(event)


def encoders() -> tuple[RowEncoder, LineBuilder]:
    native = RowEncoder(list(TYPES), [encoder_kind(t) for t in TYPES.values()])
    python = LineBuilder(list(TYPES), [text_encoder(t) for t in TYPES.values()])
    return native, python


def test_native_lines_equal_the_python_lines_for_every_kind_of_value() -> None:
    native, python = encoders()
    values = [event_value(row, Op.READ if i % 2 else Op.CREATE) for i, row in enumerate(ROWS)]
    encoded = native.encode(values)
    assert encoded is not None
    text, _ = encoded
    assert text.decode() == python.text(ROWS)
    assert text.count(b"\n") == len(ROWS)


def _random_value(rng: random.Random, kind: str, depth: int = 0) -> Any:
    def text() -> str:
        return "".join(rng.choice('ab \t\n\r\\"{},é😀\x01/') for _ in range(rng.randrange(6)))

    def scalar() -> Any:
        return rng.choice([None, True, False, rng.randrange(-(2**40), 2**40), text()])

    def nested() -> Any:
        if depth > 2 or rng.random() < 0.4:
            return scalar()
        if rng.random() < 0.5:
            return [_random_value(rng, "array", depth + 1) for _ in range(rng.randrange(4))]
        return {text(): nested() for _ in range(rng.randrange(3))}

    if rng.random() < 0.15:
        return None
    return {
        "text": lambda: rng.choice(
            [text(), rng.randrange(10**6), round(rng.uniform(-1e3, 1e3), 3)]
        ),
        "bytes": lambda: base64.b64encode(rng.randbytes(rng.randrange(9))).decode(),
        "json": nested,
        "bool": lambda: rng.random() < 0.5,
        "interval": lambda: f"P{rng.randrange(9)}DT{rng.randrange(24)}H",
        "array": lambda: [nested() for _ in range(rng.randrange(4))],
    }[kind]()


def test_native_lines_equal_the_python_lines_on_random_rows() -> None:
    rng = random.Random(20261126)
    native, python = encoders()
    kinds = {name: encoder_kind(t) for name, t in TYPES.items()}
    rows = [
        {name: _random_value(rng, kind) for name, kind in kinds.items() if rng.random() < 0.9}
        for _ in range(2000)
    ]
    encoded = native.encode([event_value(row) for row in rows])
    assert encoded is not None
    assert encoded[0].decode() == python.text(rows)


def test_floats_are_written_as_the_wire_has_them() -> None:
    """Python's str() and the wire (orjson) write some floats differently
    (1e-07 / 1e-7); PostgreSQL reads both as the same number."""
    native, python = encoders()
    row = {"id": 1, "ratio": 1e-07}
    encoded = native.encode([event_value(row)])
    assert encoded is not None
    native_field = encoded[0].decode().split("\t")[3]
    python_field = python.text([row]).split("\t")[3]
    assert native_field == "1e-7"
    assert python_field == "1e-07"
    assert float(native_field) == float(python_field)


def test_newest_source_commit_time_comes_back() -> None:
    native, _ = encoders()
    values = [event_value({"id": i}, ts_ms=ts) for i, ts in enumerate([5, 9, 7])]
    assert native.encode(values) == (
        b"".join(b"%d" % i + b"\t\\N" * 9 + b"\n" for i in range(3)),
        9,
    )


def declined(value: bytes) -> bool:
    native, _ = encoders()
    return native.encode([event_value({"id": 1}), value]) is None


@pytest.mark.parametrize(
    "value",
    [
        event_value({"id": 1}, Op.UPDATE),
        event_value({"id": 1}, Op.DELETE),
        b'{"before":null,"after":{"id":1},"op":"c","unchanged":["name"]}',  # not a whole row
        b'{"before":null,"after":null,"op":"c"}',
        b'{"before":null,"after":{"id":1}}',  # no op
        b'{"before":null,"after":{"id":1},"op":"c"} trailing',
        b'{"before":null,"after":{"id":1,},"op":"c"}',
        b'{"after":{"id":1},"after":{"id":2},"op":"c"}',
        b"{",
        b"[]",
        b'{"after":{"id":1},"op":"c","x":"\xff"}',  # not UTF-8
    ],
)
def test_anything_but_a_whole_new_row_declines(value: bytes) -> None:
    assert declined(value)


@pytest.mark.parametrize(
    "row",
    [
        {"id": 1, "span": "-P1D"},  # a negative duration: the planned path converts it
        {"id": 1, "flag": "yes"},  # not a JSON boolean
        {"id": 1, "blob": "not base64!"},
        {"id": 1, "blob": 42},
        {"id": 1, "name": "NUL \x00 inside"},  # PostgreSQL text cannot hold it
    ],
)
def test_values_left_to_the_planned_path_decline(row: dict[str, Any]) -> None:
    assert declined(event_value(row))


def test_a_lone_surrogate_declines() -> None:
    assert declined(b'{"after":{"id":1,"name":"\\ud800"},"op":"c"}')


def test_whitespace_between_tokens_is_read() -> None:
    native, python = encoders()
    row = {"id": 1, "name": "x", "doc": {"a": [1, 2]}}
    spaced = orjson.dumps({"before": None, "after": row, "op": "c"}, option=orjson.OPT_INDENT_2)
    assert native.encode([spaced]) == (python.text([row]).encode(), 0)


def test_an_unknown_encoder_kind_is_refused() -> None:
    with pytest.raises(ValueError, match='unknown encoder kind "money"'):
        RowEncoder(["id"], ["money"])

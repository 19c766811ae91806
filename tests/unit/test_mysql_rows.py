"""`cdc.mysql.rows` on binlog events captured from MariaDB 10.11 (no server needed).

The fixture holds the raw packets of the table maps and rows events that
tests/integration/test_mysql_rows.py writes (every type, then zero dates);
they are replayed through the library's own packet framing.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc.errors import TerminalError
from cdc.mysql.column_types import decimal_reader, decode_latin1, time2_reader
from cdc.mysql.rows import RowDecoders, RowPair
from cdc.mysql.zero_dates import ZeroDateError
from tests.integration.test_mysql_rows import COLUMNS, ROW_MAX, ROW_NULLS, ROW_SMALL

FIXTURE = Path(__file__).parent / "fixtures" / "mysql" / "every_type_binlog.json.gz"
EVENTS = frozenset([TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])


class _Ctl:
    """What the library asks of its control connection while parsing events."""

    charset = "utf8mb4"

    def _get_dbms(self) -> str:
        return "mariadb"


def replay(decoders: RowDecoders) -> list[tuple[str, list[RowPair]]]:
    capture = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    table_map: dict[int, Any] = {}
    out = []
    for item in capture["events"]:
        wrapper = BinLogPacketWrapper(
            MysqlPacket(bytes.fromhex(item["packet"]), "utf8"),
            table_map,
            _Ctl(),
            (10, 11, 0),
            capture["use_checksum"],
            EVENTS,
            None,
            None,
            None,
            None,
            False,
            False,
            False,
            True,  # optional_meta_data: the server has binlog_row_metadata=FULL
            False,
        )
        event = wrapper.event
        if isinstance(event, TableMapEvent):
            decoders.table_map(event)
        else:
            out.append((event.table, decoders.decode(event)))
    return out


def json_decoders() -> RowDecoders:
    return RowDecoders(json_columns={("capture_fixture", "every_type"): {"js"}})


def test_every_type_from_captured_bytes() -> None:
    events = replay(json_decoders())
    written = [pairs[0][1] for _, pairs in events[:3]]
    for got, want in zip(written, (ROW_MAX, ROW_NULLS, ROW_SMALL), strict=True):
        assert got is not None
        assert list(got) == COLUMNS
        for name in COLUMNS:
            if name == "f" and want[name] is not None:
                assert got[name] == pytest.approx(want[name])
            else:
                assert (got[name], type(got[name])) == (want[name], type(want[name])), name
    first = written[0]
    assert first is not None
    assert events[3][1] == [(first, first | {"vc": "updated", "bu": 42, "js": None})]
    assert events[4][1] == [(written[2], None)]


def test_zero_dates_null_or_error() -> None:
    table, pairs = replay(RowDecoders())[5]
    assert table == "z"
    assert [after for _, after in pairs] == [
        {"id": 1, "d": None, "dt": None, "ts": None},
        {"id": 2, "d": None, "dt": None, "ts": None},
    ]
    with pytest.raises(ZeroDateError):
        replay(RowDecoders(zero_dates="error"))


def test_decoders_are_compiled_once_per_layout() -> None:
    decoders = json_decoders()
    replay(decoders)
    # Five statements on every_type sent five table maps with the same layout.
    assert [(d.table, d.primary_key) for d in decoders.compiled()] == [
        ("every_type", ("id",)),
        ("z", ("id",)),
    ]


def test_rows_event_without_table_map_is_terminal() -> None:
    with pytest.raises(TerminalError):
        RowDecoders().decoder(12345)


@pytest.mark.parametrize(
    ("precision", "scale", "text"),
    [
        (65, 30, "9" * 35 + "." + "9" * 30),
        (65, 30, "-" + "9" * 35 + "." + "9" * 30),
        (65, 30, "0." + "0" * 29 + "1"),
        (10, 0, "-1"),
        (12, 2, "0.00"),
        (9, 9, "-0.000000001"),
        (18, 9, "123456789.987654321"),
    ],
)
def test_decimal_binary_format(precision: int, scale: int, text: str) -> None:
    size, read = decimal_reader(precision, scale)
    assert read(_mysql_decimal_bytes(Decimal(text), precision, scale)) == Decimal(text)
    # The exponent is the column's scale, so the wire encoding keeps every digit.
    assert format(read(_mysql_decimal_bytes(Decimal(text), precision, scale)), "f") == text
    assert len(_mysql_decimal_bytes(Decimal(text), precision, scale)) == size


def _mysql_decimal_bytes(value: Decimal, precision: int, scale: int) -> bytes:
    """decimal2bin, written independently of the reader for the round trip."""
    dig2bytes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    with localcontext(prec=100):
        sign, digits, _ = value.quantize(Decimal(1).scaleb(-scale)).as_tuple()
    text = "".join(map(str, digits)).rjust(precision, "0")
    intg, frac = text[: precision - scale], text[precision - scale :]
    chunks = []
    head = len(intg) % 9
    if head:
        chunks.append((intg[:head], dig2bytes[head]))
    chunks += [(intg[i : i + 9], 4) for i in range(head, len(intg), 9)]
    chunks += [(frac[i : i + 9], 4) for i in range(0, len(frac) - len(frac) % 9, 9)]
    if len(frac) % 9:
        chunks.append((frac[len(frac) - len(frac) % 9 :], dig2bytes[len(frac) % 9]))
    raw = bytearray(b"".join(int(d).to_bytes(n, "big") for d, n in chunks))
    raw[0] ^= 0x80
    if sign:
        raw = bytearray(b ^ 0xFF for b in raw)
    return bytes(raw)


def test_time2_negative_fractions() -> None:
    # '-00:00:00.000001' at TIME(6): offset-binary 0x800000000000 - 1.
    assert time2_reader(6)((0x800000000000 - 1).to_bytes(6, "big")) == timedelta(microseconds=-1)
    # '-00:00:01.5' at TIME(1): the int part and the fraction are both negative.
    raw = (0x80000000 - ((1 << 8) + 50)).to_bytes(4, "big")
    assert time2_reader(1)(raw) == timedelta(seconds=-1.5)


def test_latin1_is_mysql_cp1252() -> None:
    assert decode_latin1(b"caf\xe9 \x80 \x81") == "café € \x81"

"""Streaming replication framing: XLogData, keepalive, standby status, LSN text."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from cdc.postgres.copy_protocol import (
    CopyProtocolError,
    PrimaryKeepalive,
    XLogData,
    lsn_to_str,
    parse_copy_data,
    pg_now,
    standby_status_update,
    str_to_lsn,
)
from cdc.postgres.pgoutput import Decoder, decode
from cdc.postgres.pgoutput_messages import PG_EPOCH_UNIX_MS, Commit, StreamStart

FIXTURES = Path(__file__).parent / "fixtures" / "pgoutput"


def captured_frames() -> dict[str, bytes]:
    document = json.loads((FIXTURES / "copy_frames.json").read_text())
    return {kind: bytes.fromhex(document[kind]) for kind in ("xlogdata", "keepalive")}


def test_captured_xlogdata_exposes_the_pgoutput_payload_without_copying() -> None:
    raw = captured_frames()["xlogdata"]
    frame = parse_copy_data(raw)
    assert isinstance(frame, XLogData)
    assert 0 < frame.wal_start <= frame.wal_end
    assert frame.send_time > 0
    assert frame.payload.obj is raw  # a view into the CopyData buffer
    assert bytes(frame.payload) == raw[25:]
    # The capture's first frame opens the streamed transaction.
    message = Decoder().decode(frame.payload)
    assert isinstance(message, StreamStart) and message.first_segment


def test_captured_keepalive() -> None:
    frame = parse_copy_data(captured_frames()["keepalive"])
    assert isinstance(frame, PrimaryKeepalive)
    assert frame.wal_end > 0 and frame.send_time > 0
    assert frame.reply_requested is False


def test_xlogdata_round_trip_from_a_memoryview() -> None:
    payload = b"C\x00" + struct.pack("!QQq", 10, 20, 30)
    raw = b"w" + struct.pack("!QQq", 0x16B374D848, 0x16B374D900, 123_456) + payload
    frame = parse_copy_data(memoryview(raw))
    assert isinstance(frame, XLogData)
    assert (frame.wal_start, frame.wal_end, frame.send_time) == (
        0x16B374D848,
        0x16B374D900,
        123_456,
    )
    assert decode(frame.payload) == Commit(0, 10, 20, 30)


def test_keepalive_with_reply_requested() -> None:
    raw = b"k" + struct.pack("!QqB", 0x1000, -5, 1)
    assert parse_copy_data(raw) == PrimaryKeepalive(0x1000, -5, True)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty"),
        (b"x\x00", "unknown replication message type 0x78"),
        (b"w\x00\x00", "truncated 'w'"),
        (b"k" + bytes(18), "keepalive of 19 bytes"),
    ],
)
def test_malformed_frames(raw: bytes, error: str) -> None:
    with pytest.raises(CopyProtocolError, match=error):
        parse_copy_data(raw)


def test_standby_status_update_layout() -> None:
    data = standby_status_update(3, 2, 1, client_time=42, reply_requested=True)
    assert data == b"r" + struct.pack("!QQQqB", 3, 2, 1, 42, 1)
    kind, write, flush, apply, client_time, reply = struct.unpack("!cQQQqB", data)
    assert (kind, write, flush, apply, client_time, reply) == (b"r", 3, 2, 1, 42, 1)


def test_standby_status_update_defaults_to_now_and_no_reply() -> None:
    before = pg_now()
    data = standby_status_update(5, 5, 5)
    after = pg_now()
    _, _, _, _, client_time, reply = struct.unpack("!cQQQqB", data)
    assert before <= client_time <= after and reply == 0


def test_pg_now_counts_from_2000() -> None:
    unix_ms = time.time() * 1000
    assert abs(pg_now() // 1000 + PG_EPOCH_UNIX_MS - unix_ms) < 5_000


@pytest.mark.parametrize(
    ("text", "lsn"),
    [("16/B374D848", 0x16B374D848), ("0/0", 0), ("FFFFFFFF/FFFFFFFF", 2**64 - 1), ("1/0", 2**32)],
)
def test_lsn_text_round_trip(text: str, lsn: int) -> None:
    assert lsn_to_str(lsn) == text
    assert str_to_lsn(text) == lsn
    assert str_to_lsn(text.lower()) == lsn


@pytest.mark.parametrize(
    "text", ["", "16B374D848", "G/0", "+1/0", "1_0/0", "123456789/0", "0/", " 0/0", "0/0/0"]
)
def test_str_to_lsn_rejects_non_lsns(text: str) -> None:
    with pytest.raises(ValueError, match="not an LSN"):
        str_to_lsn(text)


@pytest.mark.parametrize("lsn", [-1, 2**64])
def test_lsn_to_str_rejects_out_of_range(lsn: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        lsn_to_str(lsn)


def test_lsn_text_matches_what_postgres_printed() -> None:
    # The SQL interface printed each message's LSN with pg_lsn's output
    # function; for a Commit it is the transaction's end LSN.
    document = json.loads((FIXTURES / "crud.json").read_text())
    commits = 0
    for record in document["messages"]:
        assert lsn_to_str(str_to_lsn(record["lsn"])) == record["lsn"]
        message = decode(bytes.fromhex(record["hex"]))
        if isinstance(message, Commit):
            assert lsn_to_str(message.end_lsn) == record["lsn"]
            commits += 1
    assert commits == 4

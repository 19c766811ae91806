"""The pgoutput decoder against bytes captured from PostgreSQL 15.

Fixtures: tests/unit/fixtures/pgoutput/*.json(.gz), made by capture.py next
to them (see its docstring). OIDs, xids and LSNs change on every capture, so
relations are found by name and values compared by content.
"""

from __future__ import annotations

import gzip
import json
import struct
import uuid
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cdc.postgres.pgoutput import Decoder, PgoutputError, decode
from cdc.postgres.pgoutput_messages import (
    PG_EPOCH_UNIX_MS,
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TypeMessage,
    Update,
    Value,
    pg_time_to_unix_ms,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pgoutput"
CAPTURES = sorted(p.name for p in FIXTURES.glob("*.json*") if p.name != "copy_frames.json")
M = TypeVar("M")


def load(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    data = path.read_bytes()
    result: dict[str, Any] = json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    return result


def decoded(name: str) -> list[Message]:
    decoder = Decoder()
    messages = [decoder.decode(bytes.fromhex(m["hex"])) for m in load(name)["messages"]]
    assert not decoder.in_stream
    return messages


def only(messages: list[Message], kind: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, kind)]


def relation(messages: list[Message], name: str) -> Relation:
    return next(m for m in only(messages, Relation) if m.name == name)


def as_row(rel: Relation, values: tuple[Value, ...] | None) -> dict[str, Value]:
    assert values is not None and len(values) == len(rel.columns)
    return dict(zip(rel.column_names, values, strict=True))


def raw(value: Value) -> bytes:
    assert isinstance(value, bytes), value
    return value


@pytest.mark.parametrize("name", CAPTURES)
def test_every_captured_message_decodes_the_same_from_bytes_and_memoryview(name: str) -> None:
    capture = load(name)
    assert capture["messages"], name
    from_bytes, from_view = Decoder(), Decoder()
    for record in capture["messages"]:
        data = bytes.fromhex(record["hex"])
        padded = memoryview(b"\x00" + data + b"\x00")[1:-1]  # a view into a larger buffer
        assert from_bytes.decode(data) == from_view.decode(padded)


def test_all_types_relation_lists_columns_types_and_key() -> None:
    messages = decoded("all_types.json")
    assert [type(m) for m in messages] == [Begin, TypeMessage, Relation, *[Insert] * 3, Commit]
    mood = only(messages, TypeMessage)[0]
    assert (mood.namespace, mood.name, mood.xid) == ("public", "mood", None)
    rel = relation(messages, "all_types")
    assert (rel.namespace, rel.replica_identity, rel.key_names) == ("public", "d", ("id",))
    types = {c.name: (c.type_oid, c.type_modifier) for c in rel.columns}
    assert types == {
        "id": (20, -1), "c_int2": (21, -1), "c_int4": (23, -1), "c_numeric": (1700, -1),
        "c_price": (1700, (10 << 16 | 2) + 4), "c_float8": (701, -1), "c_text": (25, -1),
        "c_varchar": (1043, 20 + 4), "c_bool": (16, -1), "c_bytea": (17, -1),
        "c_date": (1082, -1), "c_ts": (1114, -1), "c_tstz": (1184, -1),
        "c_interval": (1186, -1), "c_uuid": (2950, -1), "c_json": (114, -1),
        "c_jsonb": (3802, -1), "c_int_arr": (1007, -1), "c_text_arr": (1009, -1),
        "c_mood": (mood.type_oid, -1), "c_inet": (869, -1),
    }  # fmt: skip


def test_all_types_text_values_arrive_exactly_as_postgres_prints_them() -> None:
    messages = decoded("all_types.json")
    rel = relation(messages, "all_types")
    full, special, empty = (as_row(rel, m.new) for m in only(messages, Insert))
    assert full == {
        "id": b"1", "c_int2": b"32767", "c_int4": b"-2147483648",
        "c_numeric": b"12345678901234567890.000123", "c_price": b"19.99", "c_float8": b"3.5",
        "c_text": b"hello, world", "c_varchar": b"varchar value", "c_bool": b"t",
        "c_bytea": b"\\x00ff10", "c_date": b"2024-02-29", "c_ts": b"2024-02-29 13:14:15.123456",
        "c_tstz": b"2024-02-29 11:14:15.5+00",  # decoding session runs in UTC
        "c_interval": b"1 year 2 mons 3 days 04:05:06.7",
        "c_uuid": b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_json": b'{"a": [1, 2, {"b": null}]}', "c_jsonb": b'{"k": "v", "n": 1.50}',
        "c_int_arr": b"{1,NULL,3}", "c_text_arr": b'{x,"y z","q\\"uote"}',
        "c_mood": b"happy", "c_inet": b"192.168.0.1/24",
    }  # fmt: skip
    assert special["c_numeric"] == b"NaN"
    assert special["c_float8"] == b"-Infinity"
    assert special["c_text"] == "héllo ✓\nline two".encode()
    assert special["c_int_arr"] == special["c_text_arr"] == b"{}"
    assert special["c_bool"] is None
    assert empty["id"] == b"3"
    assert all(value is None for column, value in empty.items() if column != "id")


def test_binary_mode_keeps_the_send_format_bytes() -> None:
    messages = decoded("all_types_binary.json")
    rel = relation(messages, "all_types")
    full, _, empty = (as_row(rel, m.new) for m in only(messages, Insert))
    assert struct.unpack("!q", raw(full["id"])) == (1,)
    assert struct.unpack("!h", raw(full["c_int2"])) == (32767,)
    assert struct.unpack("!d", raw(full["c_float8"])) == (3.5,)
    assert full["c_bool"] == b"\x01"
    assert full["c_bytea"] == b"\x00\xff\x10"
    assert full["c_uuid"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").bytes
    assert full["c_jsonb"] == b'\x01{"k": "v", "n": 1.50}'  # jsonb binary: version byte
    assert full["c_text"] == b"hello, world"
    assert empty["c_text"] is None


def test_crud_keys_nulls_and_transaction_boundaries() -> None:
    capture = load("crud.json")
    messages = decoded("crud.json")
    rel = relation(messages, "items")
    assert rel.key_names == ("id",)
    apple, pear = (as_row(rel, m.new) for m in only(messages, Insert))
    assert apple == {"id": b"1", "name": b"apple", "qty": b"5"}
    assert pear == {"id": b"2", "name": b"pear", "qty": None}

    same_key, new_key = only(messages, Update)
    assert same_key.key is None and same_key.old is None
    assert as_row(rel, same_key.new)["qty"] == b"7"
    # A changed primary key sends the old key; non-key columns come as NULL.
    assert new_key.key == (b"1", None, None) and new_key.old is None
    assert as_row(rel, new_key.new) == {"id": b"10", "name": b"apple", "qty": b"7"}

    (delete,) = only(messages, Delete)
    assert delete.key == (b"2", None, None) and delete.old is None
    assert all(m.relation_id == rel.relation_id for m in only(messages, Insert))

    begins, commits = only(messages, Begin), only(messages, Commit)
    assert len(begins) == len(commits) == 4
    sql_xids = {r["xid"] for r in capture["messages"]}
    assert {b.xid for b in begins} == sql_xids
    for begin, commit in zip(begins, commits, strict=True):
        assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
        assert begin.commit_time == commit.commit_time
        assert pg_time_to_unix_ms(commit.commit_time) > 1_700_000_000_000  # captured after 2023


def test_replica_identity_full_sends_the_whole_old_row() -> None:
    messages = decoded("replica_identity_full.json")
    rel = relation(messages, "audit")
    assert rel.replica_identity == "f"
    assert rel.key_names == ("id", "note", "score")  # FULL: every column identifies the row
    (update,) = only(messages, Update)
    assert update.key is None
    assert as_row(rel, update.old) == {"id": b"1", "note": b"first", "score": b"10"}
    assert as_row(rel, update.new) == {"id": b"1", "note": None, "score": b"11"}
    (delete,) = only(messages, Delete)
    assert delete.key is None
    assert as_row(rel, delete.old) == {"id": b"1", "note": None, "score": b"11"}


def test_unchanged_toast_column_is_the_sentinel_not_null() -> None:
    messages = decoded("toast_unchanged.json")
    rel = relation(messages, "docs")
    (insert,) = only(messages, Insert)
    assert as_row(rel, insert.new)["body"] == b"0123456789abcdef" * 256
    (update,) = only(messages, Update)
    row = as_row(rel, update.new)
    assert row == {"id": b"1", "title": b"v2", "body": UNCHANGED}
    assert row["body"] is not None
    assert repr(UNCHANGED) == "UNCHANGED"


def test_truncate_options_and_relations() -> None:
    messages = decoded("truncate.json")
    names = {m.relation_id: m.name for m in only(messages, Relation)}
    cascade, plain = only(messages, Truncate)
    assert cascade.options == 3 and cascade.cascade and cascade.restart_identity
    assert [names[oid] for oid in cascade.relation_ids] == ["parent", "child"]
    assert plain.options == 0 and not plain.cascade and not plain.restart_identity
    assert [names[oid] for oid in plain.relation_ids] == ["items"]


def test_logical_messages_transactional_or_not() -> None:
    messages = decoded("logical_message.json")
    kinds = [type(m) for m in messages]
    assert kinds == [Begin, Relation, Insert, LogicalMessage, Commit, *[LogicalMessage] * 2]
    inside, heartbeat, binary = only(messages, LogicalMessage)
    commit = only(messages, Commit)[0]
    assert (inside.transactional, inside.prefix, inside.content, inside.xid) == (
        True, "cdc.tx", b"transactional content", None,
    )  # fmt: skip
    assert inside.lsn <= commit.commit_lsn
    assert (heartbeat.transactional, heartbeat.prefix, heartbeat.content) == (
        False, "cdc.heartbeat", b"tick",
    )  # fmt: skip
    assert (binary.prefix, binary.content) == ("cdc.bin", b"\x00\xff\x00")
    assert commit.end_lsn <= heartbeat.lsn < binary.lsn


def test_origin_follows_begin_and_carries_the_origin_commit() -> None:
    messages = decoded("origin.json")
    assert [type(m) for m in messages] == [Begin, Origin, Relation, Insert, Commit]
    origin = only(messages, Origin)[0]
    assert (origin.name, origin.commit_lsn) == ("cdc_capture_origin", 0x0ABCDEF0)
    # pg_replication_origin_xact_setup's timestamp becomes the commit time.
    assert pg_time_to_unix_ms(only(messages, Begin)[0].commit_time) == 1_704_067_200_000


def test_streamed_transaction_commits_with_matching_xids() -> None:
    messages = decoded("stream_commit.json.gz")
    assert not only(messages, Begin) and not only(messages, Commit)
    starts = only(messages, StreamStart)
    assert len(starts) == len(only(messages, StreamStop)) >= 2
    top = starts[0].xid
    assert [s.first_segment for s in starts] == [True] + [False] * (len(starts) - 1)
    assert {s.xid for s in starts} == {top}
    (commit,) = only(messages, StreamCommit)
    assert commit.xid == top and commit.flags == 0 and commit.commit_lsn < commit.end_lsn
    assert isinstance(messages[-1], StreamCommit) and isinstance(messages[-2], StreamStop)

    rel = relation(messages, "stream_rows")
    assert rel.xid == top
    ids_by_xid: dict[int | None, set[int]] = {}
    for insert in only(messages, Insert):
        ids_by_xid.setdefault(insert.xid, set()).add(int(raw(insert.new[0])))
    # Changes of the savepoint's subtransaction carry its own xid.
    (sub,) = set(ids_by_xid) - {top}
    assert sub is not None and sub != top
    assert ids_by_xid == {top: set(range(1, 801)), sub: set(range(801, 1201))}
    (message,) = only(messages, LogicalMessage)
    assert (message.xid, message.content) == (top, b"inside stream")
    (update,) = only(messages, Update)
    assert (update.xid, update.new) == (top, (b"1", b"-1"))
    (delete,) = only(messages, Delete)
    assert (delete.xid, delete.key) == (top, (b"2", None))


def test_streamed_subtransaction_and_transaction_aborts() -> None:
    messages = decoded("stream_abort.json.gz")
    starts = only(messages, StreamStart)
    top = starts[0].xid
    sub_abort, top_abort = only(messages, StreamAbort)
    assert messages[-2:] == [sub_abort, top_abort]
    assert top_abort.xid == top_abort.subxid == top
    assert sub_abort.xid == top and sub_abort.subxid != top
    assert sub_abort.abort_lsn is None and sub_abort.abort_time is None  # protocol 4 only
    sub_ids = {int(raw(m.new[0])) for m in only(messages, Insert) if m.xid == sub_abort.subxid}
    assert sub_ids and min(sub_ids) == 10801  # the rows inserted after SAVEPOINT s1


def test_bench_stream_decodes_ten_thousand_rows() -> None:
    messages = decoded("bench_inserts_10k.json.gz")
    inserts = only(messages, Insert)
    assert len(inserts) == 10_000 and all(len(m.new) == 6 for m in inserts)
    assert inserts[-1].new == (
        b"10000", b"9", b"12500.00", b"note number 10000", b"2024-01-01 02:46:40+00", b"t",
    )  # fmt: skip


# Hand-built messages for what a capture does not show (or shows by chance).


def tuple_data(*values: bytes | str | None) -> bytes:
    out = struct.pack("!H", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        else:
            assert isinstance(value, bytes)
            out += b"t" + struct.pack("!I", len(value)) + value
    return out


def test_empty_and_all_null_tuples() -> None:
    assert decode(b"I" + struct.pack("!I", 7) + b"N" + tuple_data()) == Insert(7, ())
    insert = decode(b"I" + struct.pack("!I", 7) + b"N" + tuple_data(None, None, None))
    assert insert == Insert(7, (None, None, None))
    update = decode(b"U\x00\x00\x00\x07" + b"O" + tuple_data(None) + b"N" + tuple_data("u"))
    assert update == Update(7, new=(UNCHANGED,), old=(None,))


def test_binary_and_empty_values_keep_their_bytes() -> None:
    body = b"\x00\x02" + b"b\x00\x00\x00\x02\x00\n" + b"t\x00\x00\x00\x00"
    assert decode(b"I\x00\x00\x00\x01N" + body) == Insert(1, (b"\x00\n", b""))


def test_in_stream_data_messages_read_the_leading_xid() -> None:
    decoder = Decoder()
    assert decoder.decode(b"S\x00\x00\x01\xf4\x01") == StreamStart(500, True)
    assert decoder.in_stream
    insert = decoder.decode(b"I\x00\x00\x01\xf5\x00\x00\x00\x07N" + tuple_data(b"x"))
    assert insert == Insert(7, (b"x",), xid=501)
    type_message = decoder.decode(b"Y\x00\x00\x01\xf4\x00\x00\x00\x63public\x00mood\x00")
    assert type_message == TypeMessage(99, "public", "mood", xid=500)
    truncate = decoder.decode(b"T\x00\x00\x01\xf4\x00\x00\x00\x01\x02\x00\x00\x00\x07")
    assert truncate == Truncate(2, (7,), xid=500)
    assert decoder.decode(b"E") == StreamStop()
    assert not decoder.in_stream
    # The same bytes outside a stream mean relation 500, not xid 500.
    assert decode(b"D\x00\x00\x01\xf4K" + tuple_data(b"1")) == Delete(500, key=(b"1",))


def test_stream_abort_reads_the_protocol_4_fields_when_present() -> None:
    v2 = b"A" + struct.pack("!II", 9, 10)
    assert decode(v2) == StreamAbort(9, 10)
    v4 = v2 + struct.pack("!Qq", 0x16B374D848, 1_000_000)
    assert decode(v4) == StreamAbort(9, 10, 0x16B374D848, 1_000_000)


def test_stream_state_violations_are_errors() -> None:
    decoder = Decoder()
    with pytest.raises(PgoutputError, match="outside a stream"):
        decoder.decode(b"E")
    decoder.decode(b"S\x00\x00\x00\x01\x01")
    with pytest.raises(PgoutputError, match="inside a stream"):
        decoder.decode(b"S\x00\x00\x00\x01\x00")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "malformed"),
        (b"Z\x00", "unknown pgoutput message type 0x5a"),
        (b"B\x00\x00", "fields end at 21"),  # truncated fixed fields
        (b"I\x00\x00\x00\x01N\x00\x01t\x00\x00\x00\x05ab", "fields end at"),  # short value
        (b"I\x00\x00\x00\x01N\x00\x00\xff", "fields end at"),  # trailing byte
        (b"I\x00\x00\x00\x01N\x00\x01x", "unknown tuple value kind 0x78"),
        (b"I\x00\x00\x00\x01X\x00\x00", "Insert without a new tuple"),
        (b"D\x00\x00\x00\x01N\x00\x00", "neither key nor old"),
        (b"R\x00\x00\x00\x01public", "malformed"),  # unterminated string
        (b"O\x00\x00\x00\x00\x00\x00\x00\x01\xff\x00", "malformed"),  # not UTF-8
    ],
)
def test_malformed_messages_raise_pgoutput_error(data: bytes, error: str) -> None:
    with pytest.raises(PgoutputError, match=error):
        decode(data)


def test_pg_time_to_unix_ms() -> None:
    assert pg_time_to_unix_ms(0) == PG_EPOCH_UNIX_MS == 946_684_800_000
    assert pg_time_to_unix_ms(1_999) == PG_EPOCH_UNIX_MS + 1
    assert pg_time_to_unix_ms(-1) == PG_EPOCH_UNIX_MS - 1  # floors before 2000 too

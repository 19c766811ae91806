"""Decoder of pgoutput, PostgreSQL's logical replication output plugin.

Protocol versions 1 and 2 ("Logical Replication Message Formats", PostgreSQL
15 manual), including the Stream messages of ``streaming on``; the two-phase
messages of version 3 are rejected. Inside a stream (Stream Start .. Stream
Stop) every data message (R, Y, I, U, D, T, M) carries its (sub)transaction's
xid after the type byte and nothing in the message says so: `Decoder` tracks
Stream Start/Stop to know; the one-shot `decode()` takes an `in_stream` flag.

The messages it makes are `cdc.postgres.pgoutput_messages`; column values stay
raw bytes, text or binary as sent. Names and prefixes are decoded as UTF-8,
because the server sends them in the session's client_encoding, which must be
UTF8.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, NoReturn

from cdc.postgres.pgoutput_messages import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    RelationColumn,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TupleData,
    TypeMessage,
    Update,
    Value,
)


class PgoutputError(ValueError):
    """The bytes are not a well-formed pgoutput message of protocol 1 or 2."""


_U32 = struct.Struct("!I")
_U32X2 = struct.Struct("!II")
_U64 = struct.Struct("!Q")
_REL_TAIL = struct.Struct("!BH")
_COLUMN_TYPE = struct.Struct("!Ii")
_TRUNCATE = struct.Struct("!IB")
_MESSAGE = struct.Struct("!BQ")
_STREAM_ABORT_V4 = struct.Struct("!IIQq")

# Messages whose fields after the type byte have a fixed layout: the layout
# and the class its fields construct, in order.
_FIXED: Final[dict[int, tuple[struct.Struct, Callable[..., Message]]]] = {
    ord("B"): (struct.Struct("!QqI"), Begin),
    ord("C"): (struct.Struct("!BQQq"), Commit),
    ord("S"): (struct.Struct("!I?"), StreamStart),
    ord("E"): (struct.Struct("!"), StreamStop),
    ord("c"): (struct.Struct("!IBQQq"), StreamCommit),
    ord("A"): (struct.Struct("!II"), StreamAbort),
}
_N, _K, _O = ord("N"), ord("K"), ord("O")


def _tuple(buf: bytes, pos: int) -> tuple[TupleData, int]:
    # The hot loop: a length read and one slice per value, no per-byte work,
    # NULL costs nothing but the skip. Lengths are trusted, so a short buffer
    # yields a short slice here and is caught by the caller's end check.
    count = buf[pos] << 8 | buf[pos + 1]
    pos += 2
    u32 = _U32.unpack_from
    values: list[Value] = [None] * count
    for i in range(count):
        # Literal byte values: constants beat global lookups in this loop.
        kind = buf[pos]
        if kind == 116:  # 't' text
            start = pos + 5
            pos = start + u32(buf, pos + 1)[0]
            values[i] = buf[start:pos]
        elif kind == 110:  # 'n' NULL
            pos += 1
        elif kind == 98:  # 'b' binary
            start = pos + 5
            pos = start + u32(buf, pos + 1)[0]
            values[i] = buf[start:pos]
        elif kind == 117:  # 'u' unchanged TOAST
            values[i] = UNCHANGED
            pos += 1
        else:
            raise PgoutputError(f"unknown tuple value kind {kind:#04x} at offset {pos}")
    return tuple(values), pos


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def _bad_end(buf: bytes, pos: int) -> NoReturn:
    raise PgoutputError(f"{chr(buf[0])!r} message is {len(buf)} bytes but its fields end at {pos}")


def _expect_end(buf: bytes, pos: int) -> None:
    if pos != len(buf):
        _bad_end(buf, pos)


def insert_values(buf: bytes, pos: int) -> tuple[int, TupleData]:
    """Relation id and new tuple of the Insert whose relation id is at `pos`
    of `buf` and whose tuple ends it: the stream's fast path, which reads an
    Insert straight from the replication message, with no message object."""
    try:
        (relation_id,) = _U32.unpack_from(buf, pos)
        pos += 4
        if buf[pos] != _N:
            raise PgoutputError(f"Insert without a new tuple (got {buf[pos]:#04x})")
        new, pos = _tuple(buf, pos + 1)
    except (struct.error, IndexError) as exc:
        raise PgoutputError(f"malformed pgoutput Insert: {exc}") from exc
    if pos != len(buf):
        raise PgoutputError(f"'I' message ends at byte {len(buf)} but its fields end at {pos}")
    return relation_id, new


def _insert(buf: bytes, in_stream: bool) -> Insert:
    if in_stream:
        (xid,) = _U32.unpack_from(buf, 1)
        relation_id, new = insert_values(buf, 5)
        return Insert(relation_id, new, xid)
    relation_id, new = insert_values(buf, 1)
    return Insert(relation_id, new)


def _update(buf: bytes, in_stream: bool) -> Update:
    if in_stream:
        xid, relation_id = _U32X2.unpack_from(buf, 1)
        pos = 9
    else:
        xid, (relation_id,), pos = None, _U32.unpack_from(buf, 1), 5
    key = old = None
    kind = buf[pos]
    if kind == _K:
        key, pos = _tuple(buf, pos + 1)
    elif kind == _O:
        old, pos = _tuple(buf, pos + 1)
    if buf[pos] != _N:
        raise PgoutputError(f"Update without a new tuple (got {buf[pos]:#04x})")
    new, pos = _tuple(buf, pos + 1)
    if pos != len(buf):
        _bad_end(buf, pos)
    return Update(relation_id, new, key, old, xid)


def _delete(buf: bytes, in_stream: bool) -> Delete:
    if in_stream:
        xid, relation_id = _U32X2.unpack_from(buf, 1)
        pos = 9
    else:
        xid, (relation_id,), pos = None, _U32.unpack_from(buf, 1), 5
    kind = buf[pos]
    tuple_data, end = _tuple(buf, pos + 1)
    _expect_end(buf, end)
    if kind == _K:
        return Delete(relation_id, key=tuple_data, xid=xid)
    if kind == _O:
        return Delete(relation_id, old=tuple_data, xid=xid)
    raise PgoutputError(f"Delete with neither key nor old tuple (got {kind:#04x})")


def _xid_prefix(buf: bytes, in_stream: bool) -> tuple[int | None, int]:
    if in_stream:
        return _U32.unpack_from(buf, 1)[0], 5
    return None, 1


def _origin(buf: bytes, in_stream: bool) -> Origin:
    # Origin never carries an xid, not even when sent right after Stream Start.
    (lsn,) = _U64.unpack_from(buf, 1)
    name, pos = _string(buf, 9)
    _expect_end(buf, pos)
    return Origin(lsn, name)


def _relation(buf: bytes, in_stream: bool) -> Relation:
    xid, pos = _xid_prefix(buf, in_stream)
    (relation_id,) = _U32.unpack_from(buf, pos)
    namespace, pos = _string(buf, pos + 4)
    name, pos = _string(buf, pos)
    identity, count = _REL_TAIL.unpack_from(buf, pos)
    pos += _REL_TAIL.size
    columns = []
    for _ in range(count):
        flags = buf[pos]
        column_name, pos = _string(buf, pos + 1)
        type_oid, type_modifier = _COLUMN_TYPE.unpack_from(buf, pos)
        pos += _COLUMN_TYPE.size
        columns.append(RelationColumn(column_name, type_oid, type_modifier, bool(flags & 1)))
    _expect_end(buf, pos)
    return Relation(relation_id, namespace, name, chr(identity), tuple(columns), xid)


def _type(buf: bytes, in_stream: bool) -> TypeMessage:
    xid, pos = _xid_prefix(buf, in_stream)
    (type_oid,) = _U32.unpack_from(buf, pos)
    namespace, pos = _string(buf, pos + 4)
    name, pos = _string(buf, pos)
    _expect_end(buf, pos)
    return TypeMessage(type_oid, namespace, name, xid)


def _truncate(buf: bytes, in_stream: bool) -> Truncate:
    xid, pos = _xid_prefix(buf, in_stream)
    count, options = _TRUNCATE.unpack_from(buf, pos)
    pos += _TRUNCATE.size
    relation_ids = struct.unpack_from(f"!{count}I", buf, pos)
    _expect_end(buf, pos + 4 * count)
    return Truncate(options, relation_ids, xid)


def _message(buf: bytes, in_stream: bool) -> LogicalMessage:
    xid, pos = _xid_prefix(buf, in_stream)
    flags, lsn = _MESSAGE.unpack_from(buf, pos)
    prefix, pos = _string(buf, pos + _MESSAGE.size)
    (length,) = _U32.unpack_from(buf, pos)
    pos += 4
    _expect_end(buf, pos + length)
    return LogicalMessage(bool(flags & 1), lsn, prefix, buf[pos:], xid)


_VARIABLE: Final[dict[int, Callable[[bytes, bool], Message]]] = {
    ord("R"): _relation,
    ord("Y"): _type,
    ord("T"): _truncate,
    ord("M"): _message,
    ord("O"): _origin,
}


class Decoder:
    """Decodes the messages of one replication session, in order.

    Stateful only in whether it is inside a stream: Stream Start enters it,
    Stream Stop leaves it, so streamed data messages read their leading xid.
    Use one Decoder per session; a session never starts mid-stream.
    """

    __slots__ = ("_in_stream",)

    def __init__(self, in_stream: bool = False) -> None:
        self._in_stream = in_stream

    @property
    def in_stream(self) -> bool:
        return self._in_stream

    def decode(self, data: bytes | memoryview) -> Message:
        # One copy of a memoryview up front: slicing bytes then yields the
        # column values directly, where a view would need a copy per slice.
        buf = data if type(data) is bytes else bytes(data)
        try:
            kind = buf[0]
            # Row changes dwarf everything else: test for them first.
            if kind == 73:  # 'I'
                return _insert(buf, self._in_stream)
            if kind == 85:  # 'U'
                return _update(buf, self._in_stream)
            if kind == 68:  # 'D'
                return _delete(buf, self._in_stream)
            fixed = _FIXED.get(kind)
            if fixed is not None:
                layout, make = fixed
                if kind == 65 and len(buf) == 1 + _STREAM_ABORT_V4.size:  # 'A', protocol 4
                    layout = _STREAM_ABORT_V4
                _expect_end(buf, 1 + layout.size)
                message = make(*layout.unpack_from(buf, 1))
                if kind in (83, 69):  # 'S', 'E'
                    self._enter_stream(kind == 83)
                return message
            parse = _VARIABLE.get(kind)
            if parse is None:
                raise PgoutputError(f"unknown pgoutput message type {kind:#04x} ({chr(kind)!r})")
            return parse(buf, self._in_stream)
        except PgoutputError:
            raise
        except (struct.error, IndexError, ValueError) as exc:  # ValueError: bad UTF-8, no NUL
            raise PgoutputError(f"malformed pgoutput message: {exc}") from exc

    def _enter_stream(self, enter: bool) -> None:
        if enter == self._in_stream:
            where = "inside" if enter else "outside"
            raise PgoutputError(f"Stream {'Start' if enter else 'Stop'} {where} a stream")
        self._in_stream = enter


def decode(data: bytes | memoryview, *, in_stream: bool = False) -> Message:
    """Decode one message on its own; `in_stream`: it was sent between Stream
    Start and Stream Stop, so a data message carries a leading xid."""
    return Decoder(in_stream).decode(data)

"""Decoder of pgoutput, PostgreSQL's logical replication output plugin.

Covers protocol versions 1 and 2 ("Logical Replication Message Formats" in
the PostgreSQL 15 manual): Begin, Commit, Origin, Relation, Type, Insert,
Update, Delete, Truncate, Message and, in version 2 with ``streaming on``,
Stream Start/Stop/Commit/Abort. Two-phase messages (version 3) are rejected.

Inside a stream (between Stream Start and Stream Stop) every data message
(R, Y, I, U, D, T, M) carries the xid of its (sub)transaction right after the
type byte, and nothing in the message itself says so: the reader has to know.
`Decoder` tracks it from the Stream Start/Stop messages it sees; the stateless
`decode(data, in_stream=...)` leaves that to the caller.

Column values stay raw bytes (text or binary format, whatever the server
sent); converting them by type OID happens elsewhere. Strings (names,
prefixes) are decoded as UTF-8: the server converts them to the session's
client_encoding, which must therefore be UTF8.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

# 2000-01-01T00:00:00Z, the zero of every PostgreSQL timestamp on the wire.
PG_EPOCH_UNIX_MS: Final = 946_684_800_000


def pg_time_to_unix_ms(pg_time: int) -> int:
    """Microseconds since 2000-01-01 (the wire format) -> milliseconds since 1970-01-01."""
    return pg_time // 1000 + PG_EPOCH_UNIX_MS


class PgoutputError(ValueError):
    """The bytes are not a well-formed pgoutput message of protocol 1 or 2."""


class Unchanged(enum.Enum):
    """Type of `UNCHANGED`: an enum member, so `value is UNCHANGED` narrows for mypy."""

    UNCHANGED = "u"

    def __repr__(self) -> str:
        return "UNCHANGED"


# An unchanged TOASTed column ('u'): the server did not send the value, the
# stored one stands. Distinct from None, which is SQL NULL.
UNCHANGED: Final = Unchanged.UNCHANGED

Value: TypeAlias = bytes | Literal[Unchanged.UNCHANGED] | None
TupleData: TypeAlias = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: int  # µs since 2000-01-01
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int  # µs since 2000-01-01


@dataclass(frozen=True, slots=True)
class Origin:
    """The transaction was replayed from another node (replication origin)."""

    commit_lsn: int  # the commit LSN on the origin server
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int  # atttypmod, -1 when none
    key: bool  # part of the replica identity


@dataclass(frozen=True, slots=True)
class Relation:
    """A table's shape; sent before its first change in each session or stream,
    and again after it changes. Only published columns are listed."""

    relation_id: int
    namespace: str
    name: str
    replica_identity: str  # pg_class.relreplident: d, n, f or i
    columns: tuple[RelationColumn, ...]
    xid: int | None = None  # only inside a stream

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.key)


@dataclass(frozen=True, slots=True)
class TypeMessage:
    """A non-builtin data type ('Y'), sent before the Relation that uses it."""

    type_oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """`key` ('K') when the replica identity columns changed: the old key
    values, every other column None. `old` ('O') with REPLICA IDENTITY FULL:
    the whole old row. Never both; neither when the key did not change."""

    relation_id: int
    new: TupleData
    key: TupleData | None = None
    old: TupleData | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Exactly one of `key` (identity index columns, others None) or `old` (FULL)."""

    relation_id: int
    key: TupleData | None = None
    old: TupleData | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    options: int  # bit 1: CASCADE, bit 2: RESTART IDENTITY
    relation_ids: tuple[int, ...]
    xid: int | None = None

    @property
    def cascade(self) -> bool:
        return bool(self.options & 1)

    @property
    def restart_identity(self) -> bool:
        return bool(self.options & 2)


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """A `pg_logical_emit_message`. Non-transactional ones arrive on their own,
    outside any Begin/Commit, as soon as they are decoded."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int  # µs since 2000-01-01


@dataclass(frozen=True, slots=True)
class StreamAbort:
    """`subxid == xid` when the whole transaction aborted; otherwise only the
    subtransaction's streamed changes are void. `abort_lsn`/`abort_time` are
    only sent by protocol 4 (parallel streaming, PostgreSQL 16+)."""

    xid: int
    subxid: int
    abort_lsn: int | None = None
    abort_time: int | None = None


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeMessage
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_U16 = struct.Struct("!H")
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
_I, _U, _D, _N, _K, _O = (ord(c) for c in "IUDNKO")


def _tuple(buf: bytes, pos: int) -> tuple[TupleData, int]:
    # The hot loop: one pass, a length read and one slice per value; no
    # per-byte work. Lengths are trusted, so a short buffer yields a short
    # slice here and is caught by the caller's end-of-message check.
    (count,) = _U16.unpack_from(buf, pos)
    pos += 2
    u32 = _U32.unpack_from
    values: list[Value] = []
    append = values.append
    for _ in range(count):
        # Literal byte values: constants beat global lookups in this loop.
        kind = buf[pos]
        if kind == 116:  # 't' text
            start = pos + 5
            pos = start + u32(buf, pos + 1)[0]
            append(buf[start:pos])
        elif kind == 110:  # 'n' NULL
            append(None)
            pos += 1
        elif kind == 98:  # 'b' binary
            start = pos + 5
            pos = start + u32(buf, pos + 1)[0]
            append(buf[start:pos])
        elif kind == 117:  # 'u' unchanged TOAST
            append(UNCHANGED)
            pos += 1
        else:
            raise PgoutputError(f"unknown tuple value kind {kind:#04x} at offset {pos}")
    return tuple(values), pos


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def _expect_end(buf: bytes, pos: int) -> None:
    if pos != len(buf):
        raise PgoutputError(
            f"{chr(buf[0])!r} message is {len(buf)} bytes but its fields end at {pos}"
        )


def _insert(buf: bytes, in_stream: bool) -> Insert:
    if in_stream:
        xid, relation_id = _U32X2.unpack_from(buf, 1)
        pos = 9
    else:
        xid, (relation_id,), pos = None, _U32.unpack_from(buf, 1), 5
    if buf[pos] != _N:
        raise PgoutputError(f"Insert without a new tuple (got {buf[pos]:#04x})")
    new, pos = _tuple(buf, pos + 1)
    _expect_end(buf, pos)
    return Insert(relation_id, new, xid)


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
    _expect_end(buf, pos)
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


def decode(data: bytes | memoryview, *, in_stream: bool = False) -> Message:
    """Decode one pgoutput message. `in_stream`: it was sent between Stream
    Start and Stream Stop, so data messages carry a leading xid."""
    # One copy of a memoryview up front: slicing bytes then yields the column
    # values directly, where slicing the view would need a second copy each.
    buf = data if type(data) is bytes else bytes(data)
    try:
        kind = buf[0]
        # Row changes dwarf everything else: test for them first.
        if kind == _I:
            return _insert(buf, in_stream)
        if kind == _U:
            return _update(buf, in_stream)
        if kind == _D:
            return _delete(buf, in_stream)
        fixed = _FIXED.get(kind)
        if fixed is not None:
            layout, make = fixed
            if kind == 65 and len(buf) == 1 + _STREAM_ABORT_V4.size:  # 'A', protocol 4
                layout = _STREAM_ABORT_V4
            _expect_end(buf, 1 + layout.size)
            return make(*layout.unpack_from(buf, 1))
        parse = _VARIABLE.get(kind)
        if parse is None:
            raise PgoutputError(f"unknown pgoutput message type {kind:#04x} ({chr(kind)!r})")
        return parse(buf, in_stream)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, PgoutputError):
            raise
        raise PgoutputError(f"malformed pgoutput message: {exc}") from exc


class Decoder:
    """Decodes the messages of one replication session, in order.

    Stateful only in whether it is inside a stream: Stream Start enters it,
    Stream Stop leaves it, so streamed data messages read their leading xid.
    Use one Decoder per session; a new session never starts mid-stream.
    """

    __slots__ = ("_in_stream",)

    def __init__(self) -> None:
        self._in_stream = False

    @property
    def in_stream(self) -> bool:
        return self._in_stream

    def decode(self, data: bytes | memoryview) -> Message:
        message = decode(data, in_stream=self._in_stream)
        kind = type(message)
        if kind is StreamStart:
            if self._in_stream:
                raise PgoutputError("Stream Start inside a stream")
            self._in_stream = True
        elif kind is StreamStop:
            if not self._in_stream:
                raise PgoutputError("Stream Stop outside a stream")
            self._in_stream = False
        return message

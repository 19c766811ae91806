"""The messages of pgoutput, PostgreSQL's logical replication output plugin, as
`cdc.postgres.pgoutput` decodes them: one class per message type of protocol
versions 1 and 2 ("Logical Replication Message Formats", PostgreSQL 15 manual),
Stream messages included.

Column values stay raw bytes, text or binary as sent; conversion by type OID
happens elsewhere (`cdc.postgres.types`). Times are the wire's: microseconds
since 2000-01-01.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

# 2000-01-01T00:00:00Z, the zero of every PostgreSQL timestamp on the wire.
PG_EPOCH_UNIX_MS: Final = 946_684_800_000


def pg_time_to_unix_ms(pg_time: int) -> int:
    """Microseconds since 2000-01-01 (the wire format) -> milliseconds since 1970-01-01."""
    return pg_time // 1000 + PG_EPOCH_UNIX_MS


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


# Insert, Update and Delete are made once per row of the stream: plain
# dataclasses, because a frozen one sets each field through
# object.__setattr__, about three times the cost. Nothing modifies them.
@dataclass(slots=True)
class Insert:
    relation_id: int
    new: TupleData
    xid: int | None = None


@dataclass(slots=True)
class Update:
    """`key` ('K') when the replica identity columns changed: the old key
    values, every other column None. `old` ('O') with REPLICA IDENTITY FULL:
    the whole old row. Never both; neither when the key did not change."""

    relation_id: int
    new: TupleData
    key: TupleData | None = None
    old: TupleData | None = None
    xid: int | None = None


@dataclass(slots=True)
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
    Begin | Commit | Origin | Relation | TypeMessage | Insert | Update | Delete | Truncate
    | LogicalMessage | StreamStart | StreamStop | StreamCommit | StreamAbort
)  # fmt: skip

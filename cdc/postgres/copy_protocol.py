"""The streaming replication framing around pgoutput (CopyBoth sub-protocol).

After START_REPLICATION the server sends CopyData messages whose payload is
an XLogData ('w', carrying one pgoutput message) or a Primary keepalive
('k'); the client answers with Standby status updates ('r'). Layouts: the
"Streaming Replication Protocol" section of the PostgreSQL manual.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from typing import Final, TypeAlias

from cdc.postgres.pgoutput_messages import PG_EPOCH_UNIX_MS

__all__ = [
    "WAL_START",
    "XLOG_PAYLOAD",
    "CopyProtocolError",
    "PrimaryKeepalive",
    "ReplicationFrame",
    "XLogData",
    "lsn_to_str",
    "parse_copy_data",
    "pg_now",
    "standby_status_update",
    "str_to_lsn",
]

_PG_EPOCH_UNIX_NS: Final = PG_EPOCH_UNIX_MS * 1_000_000
_XLOG_DATA = struct.Struct("!QQq")
# For readers that take an XLogData apart themselves (the stream's fast path):
# its `wal_start` is this at offset 1, and its payload starts at XLOG_PAYLOAD.
WAL_START: Final = struct.Struct("!Q")
XLOG_PAYLOAD: Final = 1 + _XLOG_DATA.size
_KEEPALIVE = struct.Struct("!Qq?")
_STANDBY_STATUS = struct.Struct("!cQQQqB")
_W, _K = ord("w"), ord("k")
_MAX_LSN: Final = 2**64 - 1
# Plain hex only: int(x, 16) alone would also take "+", "_" and spaces.
_LSN_TEXT: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class CopyProtocolError(ValueError):
    """A CopyData payload that is not a well-formed replication message."""


# Not frozen: one is made per message of the stream, and a frozen dataclass
# sets each field through object.__setattr__ (three times the cost). Nothing
# modifies it.
@dataclass(slots=True)
class XLogData:
    """One pgoutput message. `wal_start` is the LSN of the change it came from,
    but 0 for messages with no WAL record of their own (a logical walsender
    sends Relation messages that way): never track progress from a 0."""

    wal_start: int
    wal_end: int  # the server's current end of WAL
    send_time: int  # µs since 2000-01-01
    payload: memoryview  # one pgoutput message, a view into the CopyData buffer


@dataclass(frozen=True, slots=True)
class PrimaryKeepalive:
    wal_end: int
    send_time: int  # µs since 2000-01-01
    # The server wants a status update now, or it will end the connection
    # at wal_sender_timeout.
    reply_requested: bool


ReplicationFrame: TypeAlias = XLogData | PrimaryKeepalive


def parse_copy_data(data: bytes | memoryview) -> ReplicationFrame:
    """Parse one server CopyData payload; the XLogData payload is not copied."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    if not view:
        raise CopyProtocolError("empty CopyData message")
    kind = view[0]
    try:
        if kind == _W:
            wal_start, wal_end, send_time = _XLOG_DATA.unpack_from(view, 1)
            return XLogData(wal_start, wal_end, send_time, view[1 + _XLOG_DATA.size :])
        if kind == _K:
            if len(view) != 1 + _KEEPALIVE.size:
                raise CopyProtocolError(f"keepalive of {len(view)} bytes")
            return PrimaryKeepalive(*_KEEPALIVE.unpack_from(view, 1))
    except struct.error as exc:
        raise CopyProtocolError(f"truncated {chr(kind)!r} message: {exc}") from exc
    raise CopyProtocolError(f"unknown replication message type {kind:#04x}")


def pg_now() -> int:
    """Now in µs since 2000-01-01, the clock of the replication protocol."""
    return (time.time_ns() - _PG_EPOCH_UNIX_NS) // 1000


def standby_status_update(
    write_lsn: int,
    flush_lsn: int,
    apply_lsn: int,
    *,
    client_time: int | None = None,
    reply_requested: bool = False,
) -> bytes:
    """The 'r' CopyData payload. The server may release WAL up to `flush_lsn`
    (the slot's confirmed_flush_lsn), so report there only what is durable."""
    return _STANDBY_STATUS.pack(
        b"r",
        write_lsn,
        flush_lsn,
        apply_lsn,
        pg_now() if client_time is None else client_time,
        1 if reply_requested else 0,
    )


def lsn_to_str(lsn: int) -> str:
    """16/B374D848: the two 32-bit halves in uppercase hex, as PostgreSQL prints them."""
    if not 0 <= lsn <= _MAX_LSN:
        raise ValueError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    """Parse PostgreSQL's pg_lsn text form (case-insensitive hex halves)."""
    match = _LSN_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)

"""Buffers of streamed (in-progress) transactions, bounded in memory.

With protocol v2 and `streaming on`, the server sends a large transaction in
chunks before it commits. Its changes must not reach Kafka before Stream
Commit (it may still abort), so they wait here: in memory up to a budget,
then in a temporary file. Stream Abort drops the transaction, or only the
aborted subtransaction's changes.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from typing import IO

# payload length, subtransaction xid, WAL position
_RECORD = struct.Struct("!IIQ")
# per buffered message: list slot, tuple, bytes header; keeps the budget honest
_OVERHEAD = 100


class StreamedTransaction:
    def __init__(self, xid: int, memory_budget: int) -> None:
        self.xid = xid
        self._budget = memory_budget
        self._memory: list[tuple[int, int, bytes]] = []
        self._memory_bytes = 0
        self._spill: IO[bytes] | None = None
        self._spilled = 0
        self._aborted: set[int] = set()

    def add(self, subxid: int, lsn: int, payload: bytes | memoryview) -> None:
        data = bytes(payload)
        if self._spill is None and self._memory_bytes + len(data) + _OVERHEAD <= self._budget:
            self._memory.append((subxid, lsn, data))
            self._memory_bytes += len(data) + _OVERHEAD
            return
        if self._spill is None:
            # closed in close(); the file outlives this call by design
            self._spill = tempfile.TemporaryFile(prefix=f"cdc-tx-{self.xid}-")  # noqa: SIM115
        self._spill.write(_RECORD.pack(len(data), subxid, lsn))
        self._spill.write(data)
        self._spilled += 1

    def abort_subtransaction(self, subxid: int) -> None:
        self._aborted.add(subxid)

    @property
    def spilled(self) -> int:
        return self._spilled

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """(WAL position, message) in arrival order, without aborted subtransactions."""
        aborted = self._aborted
        for subxid, lsn, data in self._memory:
            if subxid not in aborted:
                yield lsn, data
        if self._spill is not None:
            spill = self._spill
            spill.seek(0)
            while header := spill.read(_RECORD.size):
                length, subxid, lsn = _RECORD.unpack(header)
                data = spill.read(length)
                if subxid not in aborted:
                    yield lsn, data

    def close(self) -> None:
        self._memory.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

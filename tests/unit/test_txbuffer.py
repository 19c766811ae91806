"""Streamed transaction buffers: order kept across the spill, aborts honoured."""

from __future__ import annotations

from cdc.postgres.txbuffer import StreamedTransaction


def test_order_is_kept_across_memory_and_spill_file() -> None:
    tx = StreamedTransaction(7, memory_budget=1000)
    payloads = [f"change {n}".encode() * 3 for n in range(100)]
    for lsn, payload in enumerate(payloads):
        tx.add(7, lsn, payload)
    assert 0 < tx.spilled < 100
    assert list(tx.replay()) == list(enumerate(payloads))
    tx.close()


def test_aborted_subtransaction_changes_are_dropped() -> None:
    tx = StreamedTransaction(7, memory_budget=150)
    tx.add(7, 1, b"top 1")
    tx.add(8, 2, b"sub 1")
    tx.add(9, 3, b"other sub")
    tx.add(8, 4, b"sub 2")
    tx.add(7, 5, b"top 2")
    tx.abort_subtransaction(8)
    assert list(tx.replay()) == [(1, b"top 1"), (3, b"other sub"), (5, b"top 2")]
    tx.close()

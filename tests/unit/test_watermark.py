"""The low watermark: out-of-order delivery never acknowledges a gap."""

from __future__ import annotations

import random

from cdc.watermark import Watermark


def test_out_of_order_deliveries_advance_only_over_the_delivered_prefix() -> None:
    mark: Watermark[int] = Watermark()
    tickets = [mark.track(n) for n in range(1, 6)]  # as if each message were a checkpoint
    mark.delivered(tickets[2])
    mark.delivered(tickets[1])
    assert mark.acknowledged is None  # 1 is still out
    mark.delivered(tickets[0])
    assert mark.acknowledged == 3
    mark.delivered(tickets[4])
    assert mark.acknowledged == 3
    mark.delivered(tickets[3])
    assert mark.acknowledged == 5
    assert mark.in_flight == 0
    assert mark.drain() == [1, 2, 3, 4, 5]
    assert mark.drain() == []


def test_a_message_holds_back_later_checkpoints() -> None:
    mark: Watermark[int] = Watermark()
    first = mark.track(None)
    mark.mark(1)
    second = mark.track(None)
    mark.mark(2)
    mark.delivered(second)
    assert mark.acknowledged is None
    mark.delivered(first)
    assert mark.acknowledged == 2
    assert mark.drain() == [1, 2]  # every checkpoint, not only the latest


def test_checkpoint_passes_once_everything_before_it_is_delivered() -> None:
    mark: Watermark[int] = Watermark()
    ticket = mark.track(1)
    mark.mark(2)
    assert mark.acknowledged is None
    mark.delivered(ticket)
    assert mark.acknowledged == 2
    mark.mark(3)
    assert mark.acknowledged == 3


def test_random_delivery_order_matches_the_prefix_rule() -> None:
    rng = random.Random(7)
    mark: Watermark[int] = Watermark()
    tickets = [mark.track(n) for n in range(1000)]
    order = tickets[:]
    rng.shuffle(order)
    done: set[int] = set()
    for ticket in order:
        mark.delivered(ticket)
        done.add(ticket)
        prefix = 0
        while prefix in done:
            prefix += 1
        assert mark.acknowledged == (prefix - 1 if prefix else None)

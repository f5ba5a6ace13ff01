"""The minter's queue (core/mint_queue.py): deduplicated by order id, taken in batches, failures backed off."""
from __future__ import annotations

from decimal import Decimal

from core.mint_queue import MintQueue
from core.mint_request import MintRequest


def req(i: int) -> MintRequest:
    return MintRequest(f"0xu:c{i}", "0xu", "IDX", Decimal("0.5"), 18)


def test_the_same_order_pushed_again_is_queued_once_also_while_in_flight() -> None:
    q = MintQueue(100, 1000)
    assert q.add([req(1), req(2), req(1)]) == 2
    assert q.add([req(2)]) == 0
    assert [m.order_id for m in q.take(10, 0)] == ["0xu:c1", "0xu:c2"]
    assert q.add([req(1), req(3)]) == 1  # c1 is in flight: a catch-up's copy is not a second mint
    assert len(q) == 3


def test_take_returns_at_most_the_batch_oldest_first() -> None:
    q = MintQueue(100, 1000)
    q.add(req(i) for i in range(5))
    assert [m.order_id for m in q.take(2, 0)] == ["0xu:c0", "0xu:c1"]
    assert [m.order_id for m in q.take(2, 0)] == ["0xu:c2", "0xu:c3"]
    assert [m.order_id for m in q.take(2, 0)] == ["0xu:c4"]
    assert q.take(2, 0) == [] and q.next_ready_ms() is None


def test_a_failed_mint_waits_its_backoff_doubling_up_to_the_cap() -> None:
    q = MintQueue(100, 250)
    q.add([req(1), req(2)])
    q.take(10, 0)
    q.failed(["0xu:c1"], 1_000)
    q.landed(["0xu:c2"])
    assert q.next_ready_ms() == 1_100 and q.take(10, 1_099) == []
    assert [m.order_id for m in q.take(10, 1_100)] == ["0xu:c1"]
    q.failed(["0xu:c1"], 2_000)
    assert q.next_ready_ms() == 2_200  # second failure: twice the first delay
    q.take(10, 2_200)
    q.failed(["0xu:c1"], 3_000)
    assert q.next_ready_ms() == 3_250  # capped at retry_max_ms
    q.take(10, 3_250)
    q.landed(["0xu:c1"])
    assert len(q) == 0


def test_a_failed_order_does_not_hold_back_the_others() -> None:
    q = MintQueue(100, 1000)
    q.add([req(1)])
    q.take(10, 0)
    q.failed(["0xu:c1"], 0)
    q.add([req(2)])
    assert [m.order_id for m in q.take(10, 50)] == ["0xu:c2"]


def test_landed_resets_the_backoff_and_dropped_forgets() -> None:
    q = MintQueue(100, 1000)
    q.add([req(1), req(2)])
    q.take(10, 0)
    q.failed(["0xu:c1"], 0)
    q.take(10, 100)
    q.landed(["0xu:c1"])
    q.dropped(["0xu:c2"])
    assert len(q) == 0
    q.add([req(1)])  # pushed again later (a shard's restart): a fresh first attempt
    q.take(10, 0)
    q.failed(["0xu:c1"], 0)
    assert q.next_ready_ms() == 100
    q.failed(["0xu:c9"], 0)  # not in flight: nothing to put back
    assert len(q) == 1


def test_in_flight_lists_what_was_taken_and_not_settled() -> None:
    q = MintQueue(100, 1000)
    q.add([req(1), req(2), req(3)])
    q.take(2, 0)
    assert q.in_flight() == ["0xu:c1", "0xu:c2"]
    q.landed(["0xu:c1"])
    q.failed(["0xu:c2"], 0)
    assert q.in_flight() == [] and [m.order_id for m in q.waiting()] == ["0xu:c3", "0xu:c2"]

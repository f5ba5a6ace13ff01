"""The send queue releases requests exactly as fast as every rate-limit window allows, in FIFO order."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.rate_limits import ORDERS, RAW_REQUESTS, REQUEST_WEIGHT, RateLimit, RateLimiter
from core.send_queue import SendQueue

T0 = 1_700_000_040_000


def limiter(clock: ManualClock, orders_per_10s: int = 100, safety: str = "0.95") -> RateLimiter:
    return RateLimiter([RateLimit(REQUEST_WEIGHT, 60_000, 6000), RateLimit(ORDERS, 10_000, orders_per_10s),
                        RateLimit(ORDERS, 86_400_000, 200_000), RateLimit(RAW_REQUESTS, 300_000, 61_000)],
                       clock, Decimal(safety))


def test_a_backlog_goes_out_at_the_budget_and_no_faster() -> None:
    clock = ManualClock(T0)
    q: SendQueue[int] = SendQueue(limiter(clock), weight=1)
    q.push(range(300))
    sent: list[tuple[int, int]] = []
    while len(q):
        batch = q.take()
        sent += [(clock.now_ms(), i) for i in batch]
        wait = q.wait_ms()
        if wait:
            clock.advance(wait)
    assert [i for _, i in sent] == list(range(300))  # FIFO
    times = [t for t, _ in sent]
    assert all(sum(1 for u in times if t - 10_000 < u <= t) <= 95 for t in times)  # never over 95 % of 100/10 s
    assert times[94] == T0 and times[95] == T0 + 10_000  # and not slower than the budget either


def test_take_respects_max_items_and_push_front_keeps_order() -> None:
    clock = ManualClock(T0)
    q: SendQueue[str] = SendQueue(limiter(clock), weight=1)
    q.push(["a", "b", "c", "d"])
    assert q.take(max_items=2) == ["a", "b"]
    q.push_front(["a2", "b2"])
    assert list(q) == ["a2", "b2", "c", "d"]
    assert q.remove("c") and not q.remove("zz")
    assert q.take() == ["a2", "b2", "d"] and q.wait_ms() is None


def test_a_back_off_holds_everything_until_it_ends() -> None:
    clock = ManualClock(T0)
    lim = limiter(clock)
    q: SendQueue[int] = SendQueue(lim, weight=1)
    q.push([1, 2])
    lim.back_off(3_000)
    assert q.take() == [] and q.wait_ms() == 3_000
    clock.advance(3_000)
    assert q.take() == [1, 2]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.integers(5, 100))
def test_no_window_is_ever_exceeded(steps: list[int], limit: int) -> None:
    clock = ManualClock(T0)
    q: SendQueue[int] = SendQueue(limiter(clock, limit, "1"), weight=1)
    q.push(range(500))
    times: list[int] = []
    for step in steps:
        times += [clock.now_ms()] * len(q.take())
        clock.advance(step)
    assert all(sum(1 for u in times if t - 10_000 < u <= t) <= limit for t in times)

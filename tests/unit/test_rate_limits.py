"""Rate limits: sliding-window budgets never let any window of the limit's length exceed the limit."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import ManualClock
from core.rate_limits import (
    ORDERS,
    RAW_REQUESTS,
    REQUEST_WEIGHT,
    RateLimit,
    RateLimiter,
    WindowBudget,
    rate_limits_from_exchange_info,
)

MINUTE = 60_000
DAY = 86_400_000
T0 = 1_700_000_040_000  # a whole minute (and 10 s) boundary: 1_700_000_040_000 % 60_000 == 0


def test_real_exchange_info_limits(exchange_info: dict, data_dir) -> None:
    assert rate_limits_from_exchange_info(exchange_info) == [
        RateLimit(REQUEST_WEIGHT, 60_000, 6000),
        RateLimit(ORDERS, 10_000, 50),
        RateLimit(ORDERS, 86_400_000, 160_000),
        RateLimit(RAW_REQUESTS, 300_000, 61_000),
    ]
    newer = json.loads((data_dir / "binance" / "exchangeInfo_header_2025-06-21.json").read_text())
    limits = rate_limits_from_exchange_info(newer)
    assert RateLimit(ORDERS, 10_000, 100) in limits and RateLimit(ORDERS, 86_400_000, 200_000) in limits


def test_unknown_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        rate_limits_from_exchange_info({"rateLimits": [
            {"rateLimitType": "ORDERS", "interval": "WEEK", "intervalNum": 1, "limit": 5}]})
    with pytest.raises(ValueError):
        rate_limits_from_exchange_info({"rateLimits": [
            {"rateLimitType": "CONNECTIONS", "interval": "MINUTE", "intervalNum": 1, "limit": 5}]})


def test_safety_fraction_rounds_the_budget_down() -> None:
    assert WindowBudget(RateLimit(ORDERS, 10_000, 100), Decimal("0.9")).capacity == 90
    assert WindowBudget(RateLimit(ORDERS, 10_000, 100), Decimal("0.999")).capacity == 99
    with pytest.raises(ValueError):
        WindowBudget(RateLimit(ORDERS, 10_000, 100), Decimal("1.1"))


def test_no_double_burst_across_a_window_edge() -> None:
    """The case a refill bucket gets wrong: a full burst at the end of a minute and another right after."""
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 6000)], clock)
    clock.advance(MINUTE - 1)
    assert limiter.try_acquire(6000)
    clock.advance(1)  # a new calendar minute, but the trailing minute still holds 6000
    assert not limiter.try_acquire(1)
    assert limiter.wait_ms(1) == MINUTE - 1
    clock.advance(MINUTE - 2)
    assert not limiter.try_acquire(1)
    clock.advance(1)
    assert limiter.try_acquire(6000)


def test_all_or_nothing() -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 100), RateLimit(ORDERS, 10_000, 2),
                           RateLimit(RAW_REQUESTS, MINUTE, 10)], clock)
    assert limiter.try_acquire(10, orders=1)
    assert limiter.try_acquire(10, orders=1)
    assert not limiter.try_acquire(10, orders=1)  # ORDERS full: nothing else may be charged
    used = {(w["kind"], w["interval_ms"]): w["used"] for w in limiter.snapshot()["windows"]}
    assert used == {(REQUEST_WEIGHT, MINUTE): 20, (ORDERS, 10_000): 2, (RAW_REQUESTS, MINUTE): 2}
    assert limiter.try_acquire(10)  # a non-order request still fits
    assert not limiter.try_acquire(81)


def test_request_larger_than_the_limit_never_fits() -> None:
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 100)], ManualClock(T0))
    assert not limiter.try_acquire(101)
    with pytest.raises(ValueError):
        limiter.wait_ms(101)


def test_orders_available_is_exact() -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 1000), RateLimit(ORDERS, 10_000, 50),
                           RateLimit(ORDERS, DAY, 160_000), RateLimit(RAW_REQUESTS, 300_000, 61_000)], clock)
    assert limiter.orders_available(1) == 50
    assert limiter.orders_available(40) == 25
    assert limiter.try_acquire(200)
    n = limiter.orders_available(40)
    assert n == 20
    for _ in range(n):
        assert limiter.try_acquire(40, orders=1)
    assert not limiter.try_acquire(40, orders=1)
    assert limiter.orders_available(40) == 0
    # The capacity is what empty windows admit, whatever is used now: the ORDERS window binds at weight 1, the
    # weight window at 40 (1000 // 40 = 25).
    assert limiter.orders_capacity(1) == 50 and limiter.orders_capacity(40) == 25
    clock.advance(MINUTE)
    assert limiter.orders_available(40) == limiter.orders_capacity(40)


def test_back_off_blocks_until_its_end() -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 6000)], clock)
    limiter.back_off(1500)
    assert not limiter.try_acquire(1)
    assert limiter.wait_ms(1) == 1500
    assert limiter.orders_available(1) == 0
    limiter.back_off(100)  # a shorter block does not shorten the longer one
    clock.advance(1499)
    assert not limiter.try_acquire(1)
    assert limiter.wait_ms(1) == 1
    assert limiter.snapshot()["blocked_until"] == T0 + 1500
    clock.advance(1)
    assert limiter.wait_ms(1) == 0
    assert limiter.try_acquire(1)


def test_header_correction_raises_never_lowers() -> None:
    clock = ManualClock(T0 + 1000)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 6000), RateLimit(ORDERS, 10_000, 100),
                           RateLimit(ORDERS, DAY, 200_000)], clock)

    def used() -> dict:
        return {(w["kind"], w["interval_ms"]): w["used"] for w in limiter.snapshot()["windows"]}

    assert limiter.try_acquire(100, orders=1)
    limiter.correct_from_headers({"X-MBX-USED-WEIGHT-1M": "250", "Content-Type": "application/json"})
    assert used()[(REQUEST_WEIGHT, MINUTE)] == 250
    limiter.correct_from_headers({"X-MBX-USED-WEIGHT-1M": "100"})  # less than we count: ignored
    assert used()[(REQUEST_WEIGHT, MINUTE)] == 250
    limiter.correct_from_headers({"x-mbx-used-weight-1m": "300", "x-mbx-order-count-10s": "7"})
    assert used() == {(REQUEST_WEIGHT, MINUTE): 300, (ORDERS, 10_000): 7, (ORDERS, DAY): 1}
    limiter.correct_from_headers({"X-Mbx-Order-Count-1D": "1000", "X-MBX-USED-WEIGHT-1H": "99999"})
    assert used()[(ORDERS, DAY)] == 1000  # a header for a window we do not track (1H) is ignored
    assert used()[(REQUEST_WEIGHT, MINUTE)] == 300


def test_header_correction_compares_within_the_calendar_window() -> None:
    """Binance reports the count of the current calendar minute; usage from the previous minute does not hide it."""
    clock = ManualClock(T0 - 100)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 6000)], clock)
    assert limiter.try_acquire(500)
    clock.advance(110)  # 10 ms into the next calendar minute
    limiter.correct_from_headers({"X-MBX-USED-WEIGHT-1M": "0"})
    assert limiter.snapshot()["windows"][0]["used"] == 500
    limiter.correct_from_headers({"X-MBX-USED-WEIGHT-1M": "200"})
    assert limiter.snapshot()["windows"][0]["used"] == 700  # 200 more than the 0 counted in this minute
    assert not limiter.try_acquire(5301)
    assert limiter.try_acquire(5300)


def test_same_ms_entries_coalesce_and_a_day_of_orders_stays_cheap() -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(ORDERS, DAY, 200_000)], clock)
    window = limiter.windows[0]
    for i in range(200_000):
        if i % 4 == 0:
            clock.advance(1)
        assert limiter.try_acquire(0, orders=1)
    assert window.snapshot(clock.now_ms())["entries"] == 50_000
    assert not limiter.try_acquire(0, orders=1)
    assert limiter.wait_ms(0, orders=1) == DAY - (50_000 - 1)  # the first ms's 4 orders expire first
    assert limiter.wait_ms(0, orders=5) == DAY - (50_000 - 1) + 1


def test_snapshot_is_plain_data() -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, MINUTE, 6000)], clock, safety=Decimal("0.5"))
    limiter.try_acquire(20)
    snap = limiter.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["windows"][0]["capacity"] == 3000 and snap["windows"][0]["used"] == 20
    assert snap["windows"][0]["limit"] == 6000 and snap["blocked_until"] == 0


# ------------------------------------------------------------------------------------------- properties

limit_sets = st.lists(
    st.builds(
        RateLimit,
        kind=st.sampled_from([REQUEST_WEIGHT, ORDERS, RAW_REQUESTS]),
        interval_ms=st.integers(1, 40),
        limit=st.integers(1, 25),
    ),
    min_size=1,
    max_size=4,
)
requests = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 10), st.integers(0, 3)),  # (ms to wait, weight, orders)
    min_size=1,
    max_size=80,
)
safeties = st.sampled_from([Decimal("1"), Decimal("0.9"), Decimal("0.5")])


def charge(limit: RateLimit, weight: int, orders: int) -> int:
    return {REQUEST_WEIGHT: weight, RAW_REQUESTS: 1, ORDERS: orders}[limit.kind]


def capacity(limit: RateLimit, safety: Decimal) -> int:
    return int(limit.limit * safety)  # floor: the safety margin only shrinks the budget


def trailing(log: list[tuple[int, int]], t: int, interval: int) -> int:
    """Brute force: total in (t - interval, t]."""
    return sum(n for s, n in log if t - interval < s <= t)


@settings(max_examples=300, deadline=None)
@given(limits=limit_sets, ops=requests, safety=safeties)
def test_no_window_ever_exceeds_the_limit_and_nothing_is_refused_needlessly(
    limits: list[RateLimit], ops: list[tuple[int, int, int]], safety: Decimal
) -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter(limits, clock, safety)
    admitted: list[list[tuple[int, int]]] = [[] for _ in limits]
    for dt, weight, orders in ops:
        now = clock.advance(dt)
        ok = limiter.try_acquire(weight, orders)
        fits = [trailing(admitted[i], now, L.interval_ms) + charge(L, weight, orders) <= capacity(L, safety)
                or charge(L, weight, orders) == 0 for i, L in enumerate(limits)]
        assert ok == all(fits)  # admitted exactly when every trailing window has room
        if ok:
            for i, L in enumerate(limits):
                if charge(L, weight, orders):
                    admitted[i].append((now, charge(L, weight, orders)))
    for i, L in enumerate(limits):
        times = [t for t, _ in admitted[i]]
        if not times:
            continue
        for start in range(times[0] - L.interval_ms, times[-1] + 1):  # every window [start, start + interval)
            in_window = sum(n for t, n in admitted[i] if start <= t < start + L.interval_ms)
            assert in_window <= L.limit and in_window <= capacity(L, safety)


@settings(max_examples=300, deadline=None)
@given(limits=limit_sets, ops=requests, probe=st.tuples(st.integers(0, 10), st.integers(0, 3)),
       safety=safeties)
def test_wait_ms_is_exact(limits: list[RateLimit], ops: list[tuple[int, int, int]], probe: tuple[int, int],
                          safety: Decimal) -> None:
    clock = ManualClock(T0)
    limiter = RateLimiter(limits, clock, safety)
    for dt, weight, orders in ops:
        clock.advance(dt)
        limiter.try_acquire(weight, orders)
    weight, orders = probe
    if any(charge(L, weight, orders) > capacity(L, safety) for L in limits):
        with pytest.raises(ValueError):
            limiter.wait_ms(weight, orders)
        return
    wait = limiter.wait_ms(weight, orders)
    assert wait >= 0
    if wait > 0:
        clock.advance(wait - 1)
        assert not limiter.try_acquire(weight, orders)  # a refusal records nothing, so we can probe again
        clock.advance(1)
    assert limiter.try_acquire(weight, orders)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("acquire"), st.integers(0, 4_000), st.integers(0, 900)),
            st.tuples(st.just("header"), st.integers(0, 4_000), st.integers(0, 6000)),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_header_corrections_never_let_the_exchange_count_exceed_the_limit(ops: list[tuple[str, int, int]]) -> None:
    limit = RateLimit(REQUEST_WEIGHT, MINUTE, 6000)
    clock = ManualClock(T0 + 123)
    limiter = RateLimiter([limit], clock)
    window = limiter.windows[0]
    log: list[tuple[int, int]] = []  # admitted weight and injected corrections
    reports: list[tuple[int, int, int]] = []  # (op index, time, reported)
    admissions: list[tuple[int, int, int]] = []  # (op index, time, weight)
    for i, (kind, dt, amount) in enumerate(ops):
        now = clock.advance(dt)
        if kind == "acquire":
            if limiter.try_acquire(amount):
                admissions.append((i, now, amount))
                if amount:
                    log.append((now, amount))
                # at every admission the trailing minute, corrections included, is within the limit
                assert trailing(log, now, MINUTE) <= limit.limit
        else:
            before = window.used(now)
            limiter.correct_from_headers({"X-MBX-USED-WEIGHT-1M": str(amount)})
            after = window.used(now)
            assert after >= before  # never lowered
            if after > before:
                log.append((now, after - before))
            reports.append((i, now, amount))
    # the exchange's view: what it reported, plus what we sent later in the same calendar minute, fits the limit
    for i, t, reported in reports:
        minute_end = t - t % MINUTE + MINUTE
        later = sum(n for j, s, n in admissions if j > i and s < minute_end)
        assert reported + later <= limit.limit

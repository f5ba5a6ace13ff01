"""Token buckets: never more than burst + rate x time, and the retry-after they give is exact."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.rate_limit import TokenBucket


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50),
       st.lists(st.tuples(st.integers(0, 300), st.integers(1, 5)), min_size=1, max_size=200))
def test_admitted_never_exceeds_burst_plus_refill(rate: int, burst: int, requests: list[tuple[int, int]]) -> None:
    bucket = TokenBucket(rate, burst, now_ms=0)
    now = 0
    admitted = 0
    for gap, n in requests:
        now += gap
        if bucket.take(n, now) == 0:
            admitted += n
        # Everything admitted up to `now` fits in what the bucket held plus what it refilled.
        assert admitted * 1000 <= burst * 1000 + now * rate


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1000), st.integers(1, 20), st.integers(1, 20), st.integers(0, 5000))
def test_retry_after_is_exact(rate: int, burst: int, n: int, spent_at: int) -> None:
    n = min(n, burst)
    bucket = TokenBucket(rate, burst, now_ms=0)
    while bucket.take(1, spent_at) == 0:  # empty it at `spent_at`
        pass
    wait = bucket.take(n, spent_at)
    assert wait > 0
    probe = TokenBucket(rate, burst, now_ms=0)
    while probe.take(1, spent_at) == 0:
        pass
    assert probe.take(n, spent_at + wait) == 0  # fits after the wait ...
    if wait > 1:
        late = TokenBucket(rate, burst, now_ms=0)
        while late.take(1, spent_at) == 0:
            pass
        assert late.take(n, spent_at + wait - 1) > 0  # ... and not one ms earlier (unless rounding to 1 ms)


def test_a_refused_request_takes_nothing_and_time_running_back_refills_nothing() -> None:
    bucket = TokenBucket(10, 5, now_ms=1000)
    assert bucket.take(5, 1000) == 0
    assert bucket.take(1, 1000) == 100  # one token every 100 ms
    assert bucket.available(1000) == 0
    assert bucket.take(1, 500) > 0  # clock stepped back: no refill
    assert bucket.take(1, 1100) == 0


def test_buckets_need_positive_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0)
    with pytest.raises(ValueError):
        TokenBucket(1, 0, 0)

"""The circuit breaker on exchange rejects: a symbol stops after N rejects in a row, the account after one
insufficient-balance reject; an operator or the cool-off clears it; the state round-trips through plain data."""
from __future__ import annotations

import json

import pytest

from core.circuit_breaker import ACCOUNT, CONSECUTIVE_REJECTS, INSUFFICIENT_BALANCE, CircuitBreaker
from core.clock import ManualClock

BALANCE = "-2010: Account has insufficient balance for requested action."


def breaker(threshold: int = 3, cool_off_ms: int = 0) -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    return CircuitBreaker(threshold, cool_off_ms, clock), clock


def test_n_consecutive_rejects_trip_the_symbol_and_only_it() -> None:
    b, clock = breaker(3)
    assert b.on_reject("BTCUSDC", "-1013: Filter failure: PRICE_FILTER") is None
    assert b.on_reject("BTCUSDC", "-1013: Filter failure: PRICE_FILTER") is None
    assert b.on_reject("ETHUSDC", "-1013: Filter failure: LOT_SIZE") is None  # another symbol's own count
    clock.advance(5)
    trip = b.on_reject("BTCUSDC", "-2010: Order rejected")
    assert trip is not None and (trip.key, trip.reason, trip.scope, trip.rejects) == (
        "BTCUSDC", CONSECUTIVE_REJECTS, "symbol", 3)
    assert trip.since_ms == clock.now_ms() and trip.detail == "-2010: Order rejected"
    assert b.blocking("BTCUSDC") == trip and b.blocking("ETHUSDC") is None
    assert b.on_reject("BTCUSDC", "again") is None  # already open: not tripped twice
    assert b.open == [trip]


def test_an_accepted_order_restarts_the_count() -> None:
    b, _ = breaker(2)
    b.on_reject("BTCUSDC", "x")
    assert b.on_accepted("BTCUSDC") is True
    assert b.on_accepted("BTCUSDC") is False  # nothing was counting
    assert b.on_reject("BTCUSDC", "x") is None
    assert b.on_reject("BTCUSDC", "x") is not None


def test_one_insufficient_balance_reject_stops_the_whole_account() -> None:
    b, _ = breaker(5)
    trip = b.on_reject("ETHUSDC", BALANCE, insufficient_balance=True)
    assert trip is not None and (trip.key, trip.scope, trip.reason) == (ACCOUNT, "account", INSUFFICIENT_BALANCE)
    assert trip.detail == f"ETHUSDC: {BALANCE}"
    assert b.blocking("BTCUSDC") == trip and b.blocking("ETHUSDC") == trip


def test_resume_clears_only_what_it_names() -> None:
    b, _ = breaker(1)
    sym = b.on_reject("BTCUSDC", "x")
    acct = b.on_reject("ETHUSDC", BALANCE, insufficient_balance=True)
    assert b.blocking("BTCUSDC") == acct  # the account's breaker comes first
    assert b.resume(ACCOUNT) == acct
    assert b.blocking("BTCUSDC") == sym and b.blocking("ETHUSDC") is None
    assert b.resume("BTCUSDC") == sym and b.blocking("BTCUSDC") is None
    assert b.resume("BTCUSDC") is None  # not open
    assert b.open == []


def test_the_cool_off_clears_a_breaker_and_the_next_run_counts_from_zero() -> None:
    b, clock = breaker(2, cool_off_ms=1_000)
    b.on_reject("BTCUSDC", "x")
    trip = b.on_reject("BTCUSDC", "x")
    assert b.next_expiry_ms() == trip.since_ms + 1_000
    clock.advance(999)
    assert b.expire() == [] and b.blocking("BTCUSDC") == trip
    clock.advance(1)
    assert b.expire() == [trip] and b.blocking("BTCUSDC") is None and b.next_expiry_ms() is None
    assert b.on_reject("BTCUSDC", "x") is None  # one reject after the cool-off does not trip it again


def test_without_a_cool_off_only_the_operator_clears() -> None:
    b, clock = breaker(1, cool_off_ms=0)
    trip = b.on_reject("BTCUSDC", "x")
    clock.advance(10**9)
    assert b.expire() == [] and b.next_expiry_ms() is None and b.blocking("BTCUSDC") == trip


def test_state_round_trips_as_json_and_absent_state_loads_empty() -> None:
    b, clock = breaker(3, cool_off_ms=60_000)
    b.on_reject("SOLUSDC", "x")
    for _ in range(3):
        b.on_reject("BTCUSDC", "y")
    b.on_reject("ETHUSDC", BALANCE, insufficient_balance=True)
    stored = json.loads(json.dumps(b.to_dict()))
    again, _ = breaker(3, cool_off_ms=60_000)
    again.clock = clock
    again.load(stored)
    assert again.open == b.open and again.to_dict() == b.to_dict()
    assert again.on_reject("SOLUSDC", "x") is None and again.on_reject("SOLUSDC", "x") is not None  # count kept
    for old in (None, {}):  # a stored sender state without a breaker
        fresh, _ = breaker()
        fresh.load(old)
        assert fresh.open == [] and fresh.blocking("BTCUSDC") is None


@pytest.mark.parametrize("threshold, cool_off", [(0, 0), (1, -1)])
def test_bad_settings_are_refused(threshold: int, cool_off: int) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cool_off, ManualClock())

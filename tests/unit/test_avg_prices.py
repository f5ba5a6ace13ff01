"""The average-price cache: a symbol is refetched only when its value has aged past the configured age or the
filter's avgPriceMins window, an aged value is never used, a zero price is no reference."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from core.avg_prices import AvgPrices
from core.clock import ManualClock
from core.symbol_filters import parse_exchange_info

D = Decimal


@pytest.fixture(scope="module")
def filters(exchange_info):
    return parse_exchange_info(exchange_info)


def test_only_missing_or_aged_values_are_refetched(filters) -> None:
    clock = ManualClock()
    cache = AvgPrices(60_000, clock)
    symbols = ["BTCUSDC", "ETHUSDC", "NOPEUSDC", "BTCUSDC"]
    assert cache.to_refresh(symbols, filters) == ["BTCUSDC", "ETHUSDC"]  # unknown symbols are not asked for
    cache.put("BTCUSDC", D("60000.12"), clock.now_ms())
    clock.advance(30_000)
    cache.put("ETHUSDC", D("2500.5"), clock.now_ms())
    assert cache.to_refresh(symbols, filters) == []  # fresh: no round trip
    assert cache.fresh(symbols, filters) == {"BTCUSDC": D("60000.12"), "ETHUSDC": D("2500.5")}
    clock.advance(30_000)  # BTC is now 60 s old
    assert cache.to_refresh(symbols, filters) == ["BTCUSDC"]
    assert cache.fresh(symbols, filters) == {"ETHUSDC": D("2500.5")}  # an aged value is never used


def test_the_filter_window_bounds_the_age(filters) -> None:
    clock = ManualClock()
    cache = AvgPrices(3_600_000, clock)  # configured an hour: the real filters' 5-minute window wins
    assert filters["BTCUSDC"].avg_price_mins == 5
    cache.put("BTCUSDC", D("60000"), clock.now_ms())
    clock.advance(5 * 60_000 - 1)
    assert cache.to_refresh(["BTCUSDC"], filters) == []
    clock.advance(1)
    assert cache.to_refresh(["BTCUSDC"], filters) == ["BTCUSDC"]
    last_trade = {"BTCUSDC": dataclasses.replace(filters["BTCUSDC"], avg_price_mins=0)}  # 0: last trade price
    assert cache.to_refresh(["BTCUSDC"], last_trade) == []  # no window: the configured age alone


def test_a_zero_price_is_no_reference(filters) -> None:
    clock = ManualClock()
    cache = AvgPrices(60_000, clock)
    cache.put("BTCUSDC", D("60000"), clock.now_ms())
    cache.put("BTCUSDC", D("0E-8"), clock.now_ms())  # "0.00000000": an exchange with no trades and no book
    assert cache.fresh(["BTCUSDC"], filters) == {} and cache.to_refresh(["BTCUSDC"], filters) == ["BTCUSDC"]
    with pytest.raises(ValueError):
        AvgPrices(0, clock)


def test_the_symbols_batches_used_are_due_before_they_age_out_and_forgotten_when_unused(filters) -> None:
    clock = ManualClock()
    cache = AvgPrices(60_000, clock, keep_ms=600_000)
    assert cache.due(filters, lead_ms=15_000) == []  # nothing used yet: nothing kept fresh
    cache.used(["BTCUSDC", "ETHUSDC", "NOPEUSDC"])
    assert cache.due(filters, lead_ms=15_000) == ["BTCUSDC", "ETHUSDC"]  # no value yet (unknown ones never)
    cache.put("BTCUSDC", D("60000"), clock.now_ms())
    cache.put("ETHUSDC", D("2500"), clock.now_ms())
    clock.advance(44_999)
    assert cache.due(filters, lead_ms=15_000) == []  # still fresh 15 s from now
    clock.advance(1)
    assert cache.due(filters, lead_ms=15_000) == ["BTCUSDC", "ETHUSDC"]  # would age out before the next round
    assert cache.fresh(["BTCUSDC"], filters) == {"BTCUSDC": D("60000")}  # (still usable now)
    cache.used(["ETHUSDC"])
    clock.advance(600_000 - 45_000 + 1)  # BTC last used 600,001 ms ago, ETH 555,001 ms ago
    assert cache.due(filters, lead_ms=15_000) == ["ETHUSDC"]  # an unused symbol costs no more weight

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

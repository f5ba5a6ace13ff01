"""The exchange's published average prices (GET /api/v3/avgPrice), cached with their age.

PERCENT_PRICE_BY_SIDE bounds a limit price by that average, so the band is checked against the exchange's own
figure. It moves slowly: a value younger than `max_age_ms` (and the filter's window) is used as is, and the values
of symbols batches used in the last `keep_ms` are refreshed before they age out (`due`), so a batch waits only
for a symbol nobody traded in a while."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping

from core.clock import Clock
from core.symbol_filters import SymbolFilters


class AvgPrices:
    def __init__(self, max_age_ms: int, clock: Clock, keep_ms: int = 0) -> None:
        if max_age_ms < 1:
            raise ValueError(f"max_age_ms must be positive, got {max_age_ms}")
        self.max_age_ms = max_age_ms
        self.keep_ms = keep_ms
        self.clock = clock
        self._prices: dict[str, tuple[Decimal, int]] = {}  # symbol -> (price, fetched at ms)
        self._used: dict[str, int] = {}  # symbol -> when a batch last needed its value (ms)

    def _limit_ms(self, f: SymbolFilters | None) -> int:
        """The age past which a symbol's value is refetched: the configured age, within the filter's window
        (avgPriceMins 0 means "last trade price": no window, the configured age alone)."""
        if f is not None and f.avg_price_mins > 0:
            return min(self.max_age_ms, f.avg_price_mins * 60_000)
        return self.max_age_ms

    def to_refresh(self, symbols: Iterable[str], filters: Mapping[str, SymbolFilters], lead_ms: int = 0) -> list[str]:
        """The known symbols among `symbols` whose value is missing or too old, or will be within `lead_ms`
        (sorted, each once)."""
        now = self.clock.now_ms() + lead_ms
        out = set()
        for s in symbols:
            if s not in filters:
                continue  # intake rejects it as UNKNOWN_SYMBOL; nothing to ask the exchange
            cached = self._prices.get(s)
            if cached is None or now - cached[1] >= self._limit_ms(filters[s]):
                out.add(s)
        return sorted(out)

    def used(self, symbols: Iterable[str]) -> None:
        """A batch needs these symbols' values now: they are kept fresh for `keep_ms` (see `due`)."""
        now = self.clock.now_ms()
        for s in symbols:
            self._used[s] = now

    def recent(self) -> list[str]:
        """The symbols a batch used within `keep_ms` (the ones worth watching), sorted."""
        now = self.clock.now_ms()
        return sorted(s for s, at in self._used.items() if now - at <= self.keep_ms)

    def due(self, filters: Mapping[str, SymbolFilters], lead_ms: int) -> list[str]:
        """The symbols a batch used within `keep_ms` whose value is missing or ages out within `lead_ms`: refreshed
        now, the next batch finds them fresh. Symbols unused for longer are forgotten (no weight spent on them)."""
        now = self.clock.now_ms()
        for s in [s for s, at in self._used.items() if now - at > self.keep_ms]:
            del self._used[s]
        return self.to_refresh(self._used, filters, lead_ms)

    def put(self, symbol: str, price: Decimal, at_ms: int) -> None:
        """Record a fetched value. A non-positive price (an exchange with no trades and no book answers 0) is no
        reference: it is not kept, so the band is not checked rather than checked against zero."""
        if price > 0:
            self._prices[symbol] = (price, at_ms)
        else:
            self._prices.pop(symbol, None)

    def fresh(self, symbols: Iterable[str], filters: Mapping[str, SymbolFilters]) -> dict[str, Decimal]:
        """The values of `symbols` still within their age limit (an aged one is left out, never used)."""
        now = self.clock.now_ms()
        out = {}
        for s in symbols:
            cached = self._prices.get(s)
            if cached is not None and now - cached[1] < self._limit_ms(filters.get(s)):
                out[s] = cached[0]
        return out

    def snapshot(self) -> dict[str, dict[str, str | int]]:
        return {s: {"price": str(p), "at_ms": at} for s, (p, at) in sorted(self._prices.items())}

"""A seeded price process per symbol that moves the simulator's own resting liquidity.

Each step moves the best bid by whole ticks and steers the market maker's ladder on a grid anchored to prices: a
small move changes a few levels, like a real book's diff stream. The random draw only becomes a whole count (no
price passes through a float); same seed, same book. A regime (regimes.py) scales it; a switch requotes at once."""
from __future__ import annotations

import math
import random
import zlib
from decimal import Decimal
from typing import Any, Mapping, Protocol

from core.money import ZERO, D, quantize_down
from core.side import Side
from exchange.simulator.config import PriceProcessConfig
from exchange.simulator.markets import SimMarket
from exchange.simulator.regimes import CALM, Regime

_BPS = Decimal(10_000)


class MarketMakerPort(Protocol):
    def mm_levels(self, symbol: str, side: Side) -> dict[Decimal, Decimal]: ...

    def mm_set_level(self, symbol: str, side: Side, price: Decimal, qty: Decimal) -> None: ...

    def mm_take(self, symbol: str, taker_side: Side, qty: Decimal) -> None: ...


def _ticks(value: Decimal, tick: Decimal) -> int:
    return int(value / tick)


class PriceProcess:
    def __init__(self, market: SimMarket, cfg: PriceProcessConfig, seed_price: Decimal,
                 snapshot: Mapping[str, Any] | None = None) -> None:
        self.market = market
        self.symbol = market.symbol
        self.cfg = cfg
        self.rng = random.Random(cfg.seed * 1_000_003 + zlib.crc32(market.symbol.encode()))
        self.tick = market.tick if market.tick > 0 else Decimal("0.00000001")
        f = market.filters
        self.step_qty = f.step_size if f.step_size > 0 else f.base_unit
        self.min_qty = max(f.min_qty, self.step_qty)
        self.max_qty = f.max_qty if f.max_qty > 0 else None
        self.snapshot = snapshot
        if snapshot and snapshot.get("bids") and snapshot.get("asks"):
            best_bid = quantize_down(D(snapshot["bids"][0][0]), self.tick)
            best_ask = quantize_down(D(snapshot["asks"][0][0]), self.tick)
            self.bid_top = _ticks(best_bid, self.tick)
            self.spread = max(1, _ticks(best_ask, self.tick) - self.bid_top)
            seed_price = (best_bid + best_ask) / 2
        else:
            price_ticks = max(2, _ticks(seed_price, self.tick))
            self.spread = max(1, int(seed_price * cfg.spread_bps / _BPS / self.tick))
            self.bid_top = max(1, price_ticks - self.spread // 2 - self.spread % 2)
        self.seed_price = seed_price
        self.gap = max(1, int(seed_price * cfg.level_gap_bps / _BPS / self.tick))
        # Mean quantity of a level: the configured notional at the seed price, on the step grid.
        self.base_qty = max(quantize_down(cfg.level_notional / seed_price, self.step_qty), self.min_qty)
        # What the calm regime quotes; other regimes scale these.
        self.calm_spread, self.calm_qty = self.spread, self.base_qty
        self.regime = CALM
        self._drift_ticks = ZERO  # the drift's fraction of a tick not yet applied (exact)

    @property
    def ask_top(self) -> int:
        return self.bid_top + self.spread

    def _price(self, ticks: int) -> Decimal:
        return self.tick * ticks

    def _draw_qty(self) -> Decimal:
        factor = Decimal(self.rng.randint(50, 150)) / 100  # a whole percentage: exact
        q = max(quantize_down(self.base_qty * factor, self.step_qty), self.min_qty)
        return min(q, self.max_qty) if self.max_qty is not None else q

    # ------------------------------------------------------------------ seeding
    def seed(self, mm: MarketMakerPort) -> None:
        """Put the initial ladder on the book: the real snapshot's levels when there is one, else a grid."""
        if self.snapshot and self.snapshot.get("bids") and self.snapshot.get("asks"):
            for side, key in ((Side.BUY, "bids"), (Side.SELL, "asks")):
                for p, q in self.snapshot[key][: self.cfg.depth_levels]:
                    price = quantize_down(D(p), self.tick)
                    qty = quantize_down(D(q), self.step_qty)
                    if price > 0 and qty > 0:
                        mm.mm_set_level(self.symbol, side, price, qty)
        self._maintain(mm, jitter=False)

    # ------------------------------------------------------------------ stepping
    def step(self, mm: MarketMakerPort, dt_ms: int) -> None:
        cfg, regime = self.cfg, self.regime
        sigma = (float(cfg.volatility_bps_per_s * regime.volatility_factor) / 10_000 * self.bid_top
                 * math.sqrt(max(dt_ms, 1) / 1000))
        move = int(round(self.rng.gauss(0.0, sigma))) if sigma > 0 else 0
        if regime.drift_bps_per_min:
            # Exact: the drift accrues in Decimal ticks and moves the price by the whole ones (toward zero).
            self._drift_ticks += self.bid_top * regime.drift_bps_per_min / _BPS * dt_ms / 60_000
            whole = int(self._drift_ticks)
            self._drift_ticks -= whole
            move += whole
        self.bid_top = max(1, self.bid_top + move)
        self._maintain(mm, jitter=True)
        if cfg.trade_percent > 0 and self.rng.randrange(100) < cfg.trade_percent:
            taker = Side.BUY if self.rng.randrange(2) else Side.SELL
            top = mm.mm_levels(self.symbol, taker.opposite)
            if top:
                best = min(top) if taker is Side.BUY else max(top)
                qty = quantize_down(top[best] * Decimal(self.rng.randint(10, 50)) / 100, self.step_qty)
                if qty >= self.min_qty:
                    mm.mm_take(self.symbol, taker, qty)

    # ------------------------------------------------------------------ regimes and shocks
    def set_regime(self, mm: MarketMakerPort, regime: Regime) -> None:
        """Quote as `regime` from now on: the spread and the levels' quantities are scaled from the calm ones
        (rounded down to the tick and the step, at least one tick and the minimum quantity), the mid is kept, and
        the ladder is requoted at once."""
        mid2 = 2 * self.bid_top + self.spread  # twice the mid, in ticks: exact
        self.regime = regime
        self.spread = max(1, int(self.calm_spread * regime.spread_factor))
        self.base_qty = max(quantize_down(self.calm_qty * regime.depth_factor, self.step_qty), self.min_qty)
        self._drift_ticks = ZERO
        self.bid_top = max(1, (mid2 - self.spread) // 2)
        self.requote(mm)

    def jump(self, mm: MarketMakerPort, percent: Decimal) -> None:
        """A gap: the price jumps by `percent` at once (the best bid rounded down to the tick) and the ladder is
        requoted there; resting orders the new levels cross trade with them, as when a market gaps through them."""
        moved = quantize_down(self.bid_top * (1 + percent / 100), Decimal(1))
        self.bid_top = max(1, int(moved))
        self.requote(mm)

    def anchor(self, best_bid: Decimal, best_ask: Decimal | None) -> None:
        """Take over a book another source drove (a replay): the walk goes on from its best bid and spread."""
        self.bid_top = max(1, _ticks(best_bid, self.tick))
        if best_ask is not None and best_ask > best_bid:
            self.spread = max(1, _ticks(best_ask, self.tick) - self.bid_top)

    def requote(self, mm: MarketMakerPort) -> None:
        """Withdraw the whole ladder and quote a fresh one around the current price."""
        for side in Side:
            for price in mm.mm_levels(self.symbol, side):
                mm.mm_set_level(self.symbol, side, price, ZERO)
        self._maintain(mm, jitter=False)

    def _maintain(self, mm: MarketMakerPort, jitter: bool) -> None:
        s = self.symbol
        bid_top, ask_top, n, gap = self.bid_top, self.ask_top, self.cfg.depth_levels, self.gap
        bids = {_ticks(p, self.tick): q for p, q in mm.mm_levels(s, Side.BUY).items()}
        asks = {_ticks(p, self.tick): q for p, q in mm.mm_levels(s, Side.SELL).items()}
        # 1. withdraw levels inside the new spread (both sides first, so the maker never trades with itself)
        for t in [t for t in bids if t > bid_top]:
            mm.mm_set_level(s, Side.BUY, self._price(t), ZERO)
            del bids[t]
        for t in [t for t in asks if t < ask_top]:
            mm.mm_set_level(s, Side.SELL, self._price(t), ZERO)
            del asks[t]
        # 2. a level at the top when the best one drifted a gap away; 3. trim / extend on the grid
        for side, levels, top, away in ((Side.BUY, bids, bid_top, -1), (Side.SELL, asks, ask_top, 1)):
            best = (max(levels) if away < 0 else min(levels)) if levels else None
            if best is None or abs(best - top) >= gap:
                q = self._draw_qty()
                mm.mm_set_level(s, side, self._price(top), q)
                levels[top] = q
            ordered = sorted(levels, reverse=away < 0)  # best first
            for t in ordered[n:]:
                mm.mm_set_level(s, side, self._price(t), ZERO)
                del levels[t]
            worst = ordered[min(n, len(ordered)) - 1]
            while len(levels) < n:
                worst += away * gap
                if worst < 1:
                    break
                if worst not in levels:
                    q = self._draw_qty()
                    mm.mm_set_level(s, side, self._price(worst), q)
                    levels[worst] = q
            # 4. fresh quantities on a few levels, so the diff stream flows even when the price sits still
            if jitter and levels:
                keys = sorted(levels)
                for _ in range(min(self.cfg.jitter_levels, len(keys))):
                    t = keys[self.rng.randrange(len(keys))]
                    mm.mm_set_level(s, side, self._price(t), self._draw_qty())

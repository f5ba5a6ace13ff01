"""A quote: how many index units an amount of collateral buys now.

Answered as the solver would size a batch for that amount alone (plan_batch on today's asks, no inventory), so a
quote is what an order sent now would be sized to, not a promise: books move, and orders are netted with others.
An index needing a stale book, or holding a pair the exchange halted, has no quote (STALE_BOOK:<symbols>,
MARKET_CLOSED:<pairs>). A quote says how wide the market is: the basket's spread at the touch, in basis points of its
mid value, and whether that is past the configured width (`[solver] wide_spread_bps`)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Collection, Mapping, Sequence

from core.basket import Basket
from core.batch_planner import Level, PendingOrder, PlannerLimits, plan_batch
from core.symbol_filters import SymbolFilters


@dataclass(frozen=True, slots=True)
class IndexQuote:
    index: str
    amount: Decimal
    units: Decimal  # index units the amount buys now (0 if it buys nothing)
    index_price: Decimal  # expected price per unit, buffer included (0 if none)
    limited_by_liquidity: bool
    problem: str | None = None  # why there is no quote: NO_LIQUIDITY:<symbol>, STALE_BOOK:<symbols>, UNKNOWN_INDEX
    spread_bps: Decimal | None = None  # the basket's spread at the touch (None: a side of a book is empty)
    wide: bool = False  # spread_bps past the configured width


BPS_STEP = Decimal("0.01")


def basket_spread_bps(basket: Basket, best_bids: Mapping[str, Decimal], best_asks: Mapping[str, Decimal]
                      ) -> Decimal | None:
    """(Σ q·ask − Σ q·bid) / Σ q·mid, in basis points, rounded UP to 0.01 (a user is never told the market is
    tighter than it is); None when a side of some asset's book is empty."""
    bid = ask = Decimal(0)
    for a in basket.assets:
        b, k = best_bids.get(a.symbol), best_asks.get(a.symbol)
        if b is None or k is None:
            return None
        bid += a.quantity * b
        ask += a.quantity * k
    mid = (bid + ask) / 2
    return ((ask - bid) / mid * 10_000).quantize(BPS_STEP, rounding=ROUND_UP) if mid > 0 else None


def quote_index(index: str, amount: Decimal, baskets: Mapping[str, Basket], asks: Mapping[str, Sequence[Level]],
                filters: Mapping[str, SymbolFilters], limits: PlannerLimits,
                stale: Collection[str] = frozenset(), closed: Collection[str] = frozenset(),
                best_bids: Mapping[str, Decimal] | None = None, wide_spread_bps: Decimal | None = None) -> IndexQuote:
    """`best_bids` (with `asks`' best levels) give the quote's spread; `wide_spread_bps` the width past which the
    quote says the market is wide."""
    plan = plan_batch([PendingOrder("quote", index, amount)], baskets, asks, filters, order_budget=10**9,
                      limits=limits, stale=stale, closed=closed)
    if plan.engagements:
        (e,) = plan.engagements
        spread = None if best_bids is None else basket_spread_bps(
            baskets[index], best_bids, {s: levels[0][0] for s, levels in asks.items() if levels})
        wide = spread is not None and wide_spread_bps is not None and spread > wide_spread_bps
        return IndexQuote(index, amount, e.units, e.index_price, plan.scale < 1, spread_bps=spread, wide=wide)
    reason = plan.deferred[0].reason if plan.deferred else "NO_LIQUIDITY"
    if reason == "TOO_SMALL":  # a valid answer: this amount buys nothing
        return IndexQuote(index, amount, Decimal(0), Decimal(0), False)
    return IndexQuote(index, amount, Decimal(0), Decimal(0), False, reason)

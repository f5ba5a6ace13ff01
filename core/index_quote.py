"""A quote: how many index units an amount of collateral buys now.

Answered as the solver would size a batch for that amount alone (plan_batch on today's asks, no inventory), so a
quote is what an order sent now would be sized to, not a promise: books move, and orders are netted with others.
An index needing a stale book has no quote (STALE_BOOK:<symbols>)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
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


def quote_index(index: str, amount: Decimal, baskets: Mapping[str, Basket], asks: Mapping[str, Sequence[Level]],
                filters: Mapping[str, SymbolFilters], limits: PlannerLimits,
                stale: Collection[str] = frozenset()) -> IndexQuote:
    plan = plan_batch([PendingOrder("quote", index, amount)], baskets, asks, filters, order_budget=10**9,
                      limits=limits, stale=stale)
    if plan.engagements:
        (e,) = plan.engagements
        return IndexQuote(index, amount, e.units, e.index_price, plan.scale < 1)
    reason = plan.deferred[0].reason if plan.deferred else "NO_LIQUIDITY"
    if reason == "TOO_SMALL":  # a valid answer: this amount buys nothing
        return IndexQuote(index, amount, Decimal(0), Decimal(0), False)
    return IndexQuote(index, amount, Decimal(0), Decimal(0), False, reason)

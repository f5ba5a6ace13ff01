"""Sell demand: which pending redemptions a batch takes, what they release of each asset, and each asset's sell limit.

A redemption of U index units releases, per asset, U x basket quantity summed over its index's orders and rounded
DOWN to the asset's base unit: the redeemed tokens hold that much and no more, so we never sell what they do not
hold (the sub-unit rest stays with the house). The sell limit is best bid x (1 - slippage cap) rounded UP to the
tick, so a sell never accepts less than the cap allows. A sell whose proceeds at the book (walking the bids down
to the limit, less commission) cannot reach its minimum is not started: deferred as BELOW_MINIMUM (and rejected
when that lasts: core/late_reject.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Collection, Mapping, NamedTuple, Sequence

from core.basket import Basket
from core.batch_planner import Deferred, Level, PlannerLimits
from core.money import ONE, ZERO, quantize_down, quantize_up, units_down
from core.side import Side
from core.stale_books import stale_in, stale_reason
from core.symbol_filters import SymbolFilters, round_price

#: The deferral reason of a sell whose expected proceeds are below the user's minimum.
BELOW_MINIMUM = "BELOW_MINIMUM"
#: A sell of less than one index unit, or of units whose proceeds round to nothing at the collateral unit.
TOO_SMALL_TO_SELL = "TOO_SMALL_TO_SELL"


@dataclass(frozen=True, slots=True)
class PendingSell:
    """A redemption that may be planned now, in FIFO priority (the list order)."""

    order_id: str
    index: str
    units: Decimal  # index units to redeem, a multiple of the index unit (at most the user's credited tokens)
    min_proceeds: Decimal | None = None  # the least USDC the user accepts for them


class SellEngagement(NamedTuple):
    """A redemption's part in a batch."""

    order_id: str
    index: str
    units: Decimal
    min_proceeds: Decimal | None
    expected: Decimal  # payout expected at the plan's book, rounded down to the collateral unit


@dataclass(frozen=True, slots=True)
class SellQuote:
    """One asset's sell side at plan time: the limit, the bid levels at or above it (best first), the book's mid."""

    symbol: str
    limit: Decimal  # on the tick
    levels: tuple[Level, ...]
    mid: Decimal

    @property
    def liquidity(self) -> Decimal:
        return sum((q for _, q in self.levels), ZERO)

    def value_of(self, quantity: Decimal) -> Decimal:
        """Gross quote that selling `quantity` fetches walking the levels; what they cannot take fetches nothing
        (the IOC would not fill it), so this never overstates the proceeds."""
        left, value = quantity, ZERO
        for price, qty in self.levels:
            if left <= 0:
                break
            take = min(left, qty)
            value += take * price
            left -= take
        return value


@dataclass(frozen=True)
class SellPlan:
    engagements: tuple[SellEngagement, ...]
    #: index -> symbol -> base units that index's engaged sells release (their summed units x quantity, down)
    release: Mapping[str, Mapping[str, int]]
    quotes: Mapping[str, SellQuote]
    deferred: tuple[Deferred, ...]
    units: Mapping[str, Decimal] = field(default_factory=dict)  # symbol -> base unit

    @property
    def is_empty(self) -> bool:
        return not self.engagements

    def released(self) -> dict[str, int]:
        """Base units released per symbol by all the batch's sells."""
        out: dict[str, int] = {}
        for per_symbol in self.release.values():
            for symbol, n in per_symbol.items():
                out[symbol] = out.get(symbol, 0) + n
        return out


def sell_quote(symbol: str, bids: Sequence[Level] | None, asks: Sequence[Level] | None, f: SymbolFilters | None,
               limits: PlannerLimits, avg_price: Decimal | None = None) -> SellQuote | None:
    """The asset's sell limit and the bids it can reach (None: nothing to sell into). With the exchange's average
    price, the limit is raised into PERCENT_PRICE's ask band (up: a higher limit sells less, never cheaper); a best
    bid above the band's top cannot be sold into at all."""
    if not bids or f is None:
        return None
    best = bids[0][0]
    limit = round_price(f, best * (ONE - limits.slippage_cap), Side.SELL)  # up to the tick: inside the cap
    if avg_price is not None and f.percent_price_filter is not None and f.ask_down is not None:
        low = avg_price * f.ask_down
        if limit < low:
            limit = quantize_up(low, f.tick_size) if f.tick_size > 0 else low
        if f.ask_up is not None and f.ask_up > 0 and limit > avg_price * f.ask_up:
            return None
    if f.min_price > 0 and limit < f.min_price:
        limit = f.min_price
    levels = tuple((p, q) for p, q in bids if p >= limit)[: limits.max_levels]
    if not levels:
        return None
    mid = (best + asks[0][0]) / 2 if asks else best  # a one-sided book: the bid is all we know of the price
    return SellQuote(symbol, limit, levels, mid)


def plan_sells(
    sells: Sequence[PendingSell],
    baskets: Mapping[str, Basket],
    bids: Mapping[str, Sequence[Level]],
    filters: Mapping[str, SymbolFilters],
    *,
    order_budget: int,
    limits: PlannerLimits,
    asks: Mapping[str, Sequence[Level]] | None = None,
    stale: Collection[str] = frozenset(),
    avg_prices: Mapping[str, Decimal] | None = None,
) -> SellPlan:
    """Plan the sells of one batch. `order_budget` bounds the assets sells may touch (each may need an exchange
    order); whole indexes are taken in FIFO order (of their first sell) until one does not fit."""
    asks = asks or {}
    avg_prices = avg_prices or {}
    deferred: list[Deferred] = []
    iu = limits.index_unit

    by_index: dict[str, list[PendingSell]] = {}
    for i, s in enumerate(sells):
        if i >= limits.max_orders:
            deferred.append(Deferred(s.order_id, "BATCH_FULL"))
        elif s.index not in baskets:
            deferred.append(Deferred(s.order_id, "UNKNOWN_INDEX"))
        elif s.units < iu or quantize_down(s.units, iu) != s.units:
            deferred.append(Deferred(s.order_id, TOO_SMALL_TO_SELL))  # not whole index units: intake's error
        else:
            by_index.setdefault(s.index, []).append(s)

    quotes: dict[str, SellQuote | None] = {}
    chosen: set[str] = set()
    full = False
    for index in list(by_index):
        basket = baskets[index]
        waits_on = stale_in(basket, stale) if stale else ()
        if waits_on:
            deferred.extend(Deferred(s.order_id, stale_reason(waits_on)) for s in by_index.pop(index))
            continue
        missing = None
        for a in basket.assets:
            if a.symbol not in quotes:
                quotes[a.symbol] = sell_quote(a.symbol, bids.get(a.symbol), asks.get(a.symbol),
                                              filters.get(a.symbol), limits, avg_prices.get(a.symbol))
            if quotes[a.symbol] is None:
                missing = a.symbol
                break
        if missing is not None:
            deferred.extend(Deferred(s.order_id, f"NO_LIQUIDITY:{missing}") for s in by_index.pop(index))
            continue
        full = full or len(chosen | set(basket.symbols)) > order_budget
        if full:
            deferred.extend(Deferred(s.order_id, "RATE_LIMIT") for s in by_index.pop(index))
        else:
            chosen |= set(basket.symbols)

    # Minimums: expected proceeds at the book for what all kept sells release together (they share the bids).
    # Dropping a sell only lightens the walk for the others, so the loop ends with every kept sell reaching its
    # minimum at the final walk; it runs at most once per dropped sell.
    cu = limits.collateral_unit
    kept = {index: list(group) for index, group in by_index.items()}
    while True:
        release = _release(kept, baskets, filters)
        totals: dict[str, int] = {}
        for per_symbol in release.values():
            for symbol, n in per_symbol.items():
                totals[symbol] = totals.get(symbol, 0) + n
        # Net quote per base unit of each asset: the walk's value over the quantity, less commission.
        per_unit = {}
        for symbol, n in totals.items():
            unit = filters[symbol].base_unit
            q = quotes[symbol]
            assert q is not None
            per_unit[symbol] = (q.value_of(n * unit) / n * (ONE - limits.commission_rate)) if n else ZERO
        expected: dict[str, Decimal] = {}
        dropped = False
        for index, group in kept.items():
            cohort = sum((per_unit[s] * n for s, n in release[index].items()), ZERO)
            total_units = sum((s.units for s in group), ZERO)
            still = []
            for s in group:
                e = quantize_down(cohort * s.units / total_units, cu)  # down: a promise never above the walk
                if e <= 0:
                    deferred.append(Deferred(s.order_id, TOO_SMALL_TO_SELL))
                    dropped = True
                elif s.min_proceeds is not None and e < s.min_proceeds:
                    deferred.append(Deferred(s.order_id, BELOW_MINIMUM))
                    dropped = True
                else:
                    expected[s.order_id] = e
                    still.append(s)
            kept[index] = still
        kept = {i: g for i, g in kept.items() if g}
        if not dropped:
            break

    engagements = tuple(SellEngagement(s.order_id, s.index, s.units, s.min_proceeds, expected[s.order_id])
                        for group in kept.values() for s in group)
    used = {sym for i in kept for sym in baskets[i].symbols}
    return SellPlan(engagements, _release(kept, baskets, filters),
                    {s: q for s, q in quotes.items() if q is not None and s in used}, tuple(deferred),
                    {s: filters[s].base_unit for s in used})


def _release(groups: Mapping[str, Sequence[PendingSell]], baskets: Mapping[str, Basket],
             filters: Mapping[str, SymbolFilters]) -> dict[str, dict[str, int]]:
    return {index: release_of(baskets[index], sum((s.units for s in group), ZERO), filters)
            for index, group in groups.items()}


def release_of(basket: Basket, units: Decimal, filters: Mapping[str, SymbolFilters]) -> dict[str, int]:
    """Base units `units` of the index release per asset: rounded DOWN, the redeemed tokens hold no more."""
    return {a.symbol: units_down(a.quantity * units, filters[a.symbol].base_unit) for a in basket.assets}

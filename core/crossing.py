"""Crossing inside the batch: what the batch's sells release of an asset serves what its buys need before anything
goes to the exchange, and only the net per asset is traded (one exchange order per asset at most, none on a net of
zero).

The buy planner sees the release as stock taken before inventory, so buys are sized, budgeted and netted by the
rules they always had. Per asset: crossed = what buys take of the release; a net sell goes out as one IOC at the sell
limit, on the step and above every minimum; what the exchange cannot take (the sub-step rest, a net below the
minimums) is taken by inventory, like the surplus of a padded buy. Crossed and inventory-taken units are priced the
same for both sides: the batch's average exchange price of the asset (its fills, either side), or the book's mid
when nothing of it traded."""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Collection, Iterable, Mapping, Sequence

from core.basket import Basket
from core.batch_planner import (SCALE_QUANTUM, BasketLeg, BatchPlan, Deferred, Level, PendingOrder, PlannerLimits,
                                plan_batch)
from core.lots import Lot
from core.market_status import closed_in, closed_reason
from core.money import ONE, ZERO, quantize_down, quantize_up, to_units
from core.sell_plan import PendingSell, SellPlan, plan_sells
from core.side import Side
from core.symbol_filters import SymbolFilters

#: Crossing prices are rounded DOWN to this: both sides get the same number, so the rounding moves value between
#: them by less than 1e-12 quote per whole asset, and a crossed price never exceeds the average it comes from.
CROSS_PRICE_QUANTUM = Decimal("1e-12")
CROSSED = "cross"  # lot ids of crossed units: cross:<batch>:<symbol>; taken by inventory: ...:<symbol>:inventory
TAKEN_BY_INVENTORY = ":inventory"


@dataclass(frozen=True, slots=True)
class Crossing:
    """One asset's netting in a batch, in the asset's base units."""

    symbol: str
    released: int  # what the batch's sells release
    crossed: int  # served to the batch's buys
    to_exchange: int  # the exchange sell's quantity (0: no sell order)
    to_inventory: int  # what the exchange cannot take: inventory takes it at the crossing price
    mid: Decimal  # the book's mid at plan time: the crossing price if nothing of the asset trades

    def __post_init__(self) -> None:
        if self.crossed + self.to_exchange + self.to_inventory != self.released:
            raise ValueError(f"{self.symbol}: crossed + exchange + inventory != released")


@dataclass(frozen=True)
class MixedPlan:
    """A batch of buys and sells: `batch` is the buy plan (its legs carry the sell legs too; its inventory_used is
    inventory only), `sells` the sell plan, `crossings` the netting per asset any sell releases."""

    batch: BatchPlan
    sells: SellPlan
    crossings: Mapping[str, Crossing]

    @property
    def is_empty(self) -> bool:
        return self.batch.is_empty and self.sells.is_empty

    @property
    def deferred(self) -> tuple[Deferred, ...]:
        return self.batch.deferred + self.sells.deferred


def plan_mixed(
    buys: Sequence[PendingOrder],
    sells: Sequence[PendingSell],
    baskets: Mapping[str, Basket],
    filters: Mapping[str, SymbolFilters],
    bids: Mapping[str, Sequence[Level]],
    asks: Mapping[str, Sequence[Level]],
    *,
    limits: PlannerLimits,
    order_budget: int,
    stale: Collection[str] = frozenset(),
    avg_prices: Mapping[str, Decimal] | None = None,
    inventory_units: Mapping[str, int] | None = None,
    inventory_prices: Mapping[str, Decimal] | None = None,
    fit_liquidity: bool = True,
    closed: Collection[str] = frozenset(),
) -> MixedPlan:
    """Plan one batch of buys and sells. Sells are planned first (they free what buys then take) and count every
    asset they touch against the order budget; the buy planner gets the rest (core.batch_planner.plan_batch).

    A net sell beyond the bids within the limit would sell part of a basket: the sells are then scaled by one
    factor (rounded down, like the buys') so the nets fit the bids, and the batch is planned again. Scaling the
    release by s scales each net by s or less (the buys' need is taken first), so one pass fits unless the buys'
    own sizing moved; then the IOC sells what the book holds and the sale is assigned at the rate it reached
    (`fit_liquidity` False: that second pass, no scaling). A sell whose index holds a `closed` pair waits, like a
    buy of it."""
    inventory_units = dict(inventory_units or {})
    halted: list[Deferred] = []
    if closed:
        open_sells = []
        for s in sells:
            pairs = closed_in(baskets[s.index], closed) if s.index in baskets else ()
            if pairs:
                halted.append(Deferred(s.order_id, closed_reason(pairs)))
            else:
                open_sells.append(s)
        sells = open_sells
    sell_plan = plan_sells(sells, baskets, bids, filters, order_budget=order_budget, limits=limits, asks=asks,
                           stale=stale, avg_prices=avg_prices)
    if halted:
        sell_plan = replace(sell_plan, deferred=tuple(halted) + sell_plan.deferred)
    released = sell_plan.released()

    held = dict(inventory_units)
    prices = dict(inventory_prices or {})
    keep = ONE - limits.commission_rate
    for symbol, r in released.items():
        if not r:
            continue
        # For sizing only: the release at the mid, on the planner's footing (a stock price per net unit is
        # multiplied by 1 - commission there; a crossed unit pays none).
        at_mid = sell_plan.quotes[symbol].mid / keep
        own = inventory_units.get(symbol, 0)
        known = prices.get(symbol, at_mid)
        prices[symbol] = (at_mid * r + known * own) / (r + own)
        held[symbol] = own + r

    plan = plan_batch(buys, baskets, asks, filters, inventory_units=held, inventory_prices=prices,
                      order_budget=order_budget, limits=limits, stale=stale, closed=closed,
                      reserved_symbols={s for s, r in released.items() if r})

    crossings: dict[str, Crossing] = {}
    inventory_used = dict(plan.inventory_used)
    sell_legs: list[BasketLeg] = []
    for symbol, r in released.items():
        used = inventory_used.pop(symbol, 0)
        crossed = min(r, used)  # the release is taken first: crossing before inventory, before the exchange
        if used > crossed:
            inventory_used[symbol] = used - crossed
        net = r - crossed
        quote = sell_plan.quotes[symbol]
        f = filters[symbol]
        qty = sell_quantity(f, net, quote.limit, limits)
        if qty:
            sell_legs.append(BasketLeg(symbol, Side.SELL, quote.limit, qty * f.base_unit, net * f.base_unit))
        crossings[symbol] = Crossing(symbol, r, crossed, qty, net - qty, quote.mid)
    mixed = MixedPlan(replace(plan, legs=plan.legs + tuple(sell_legs), inventory_used=inventory_used), sell_plan,
                      crossings)
    if not fit_liquidity:
        return mixed
    scale, short = ONE, ""
    for leg in mixed.batch.legs:
        room = mixed.sells.quotes[leg.symbol].liquidity if leg.side is Side.SELL else None
        if room is not None and leg.quantity > room and room / leg.quantity < scale:
            scale, short = room / leg.quantity, leg.symbol
    if scale == ONE:
        return mixed
    # The engaged sells, scaled DOWN (1e-12, then the index unit): a scaled sell never releases more than the bids
    # take. The sells deferred in the first pass stay deferred for their reason.
    scale = quantize_down(scale, SCALE_QUANTUM)
    iu, cu = limits.index_unit, limits.collateral_unit
    scaled: list[PendingSell] = []
    dropped = list(sell_plan.deferred)
    for e in sell_plan.engagements:
        units = quantize_down(e.units * scale, iu)
        if units < iu:
            dropped.append(Deferred(e.order_id, f"NO_LIQUIDITY:{short}"))
            continue
        # The minimum pro rata to the units engaged (a floor on the price per unit), rounded UP: never looser.
        minimum = None if e.min_proceeds is None else quantize_up(e.min_proceeds * units / e.units, cu)
        scaled.append(PendingSell(e.order_id, e.index, units, minimum))
    mixed = plan_mixed(buys, scaled, baskets, filters, bids, asks, limits=limits, order_budget=order_budget,
                       stale=stale, avg_prices=avg_prices, inventory_units=inventory_units,
                       inventory_prices=inventory_prices, fit_liquidity=False, closed=closed)
    return replace(mixed, sells=replace(mixed.sells, deferred=tuple(dropped) + mixed.sells.deferred))


def sell_quantity(f: SymbolFilters, net: int, limit: Decimal, limits: PlannerLimits) -> int:
    """Base units of the net sell that go to the exchange: down to the step (never more than released), nothing if
    that is below minQty or the minimum notional at the limit (a sell cannot be padded with what it does not hold),
    at most maxQty and the maximum notional (the IOC sells what it can; what it does not sell stays unsold)."""
    if net <= 0:
        return 0
    qty = net * f.base_unit
    if f.step_size > 0:
        qty = quantize_down(qty, f.step_size)
    minimum = max(limits.min_asset_notional, f.min_notional if f.notional_filter is not None else ZERO)
    if qty <= 0 or (f.min_qty > 0 and qty < f.min_qty) or qty * limit < minimum:
        return 0
    if f.max_qty > 0 and qty > f.max_qty:
        qty = quantize_down(f.max_qty, f.step_size) if f.step_size > 0 else f.max_qty
    if f.notional_filter is not None and f.max_notional > 0 and qty * limit > f.max_notional:
        qty = quantize_down(f.max_notional / limit, f.step_size if f.step_size > 0 else f.base_unit)
    return to_units(qty, f.base_unit)


def crossing_price(mid: Decimal, fills: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """The price of an asset's crossed units: the average of the batch's exchange fills of it, either side
    ((price, quantity) pairs, quantities gross), or `mid` when none; rounded DOWN to CROSS_PRICE_QUANTUM."""
    value = quantity = ZERO
    for price, qty in fills:
        value += price * qty
        quantity += qty
    price = value / quantity if quantity > 0 else mid
    return quantize_down(price, CROSS_PRICE_QUANTUM)


def crossed_lot_id(batch_id: str, symbol: str) -> str:
    return f"{CROSSED}:{batch_id}:{symbol}"


def inventory_lot_id(batch_id: str, symbol: str) -> str:
    return f"{crossed_lot_id(batch_id, symbol)}{TAKEN_BY_INVENTORY}"


def is_crossed(lot_id: str) -> bool:
    """A lot (or a slice, or an inventory piece of one) that came from crossing, not from the exchange."""
    return lot_id.startswith(CROSSED + ":")


def is_crossed_with_buys(lot_id: str) -> bool:
    """A crossed lot the batch's buys took (not the part inventory took)."""
    return is_crossed(lot_id) and not lot_id.endswith(TAKEN_BY_INVENTORY)


def crossing_lots(batch_id: str, crossing: Crossing, price: Decimal, unit: Decimal,
                  timestamp_ms: int = 0) -> tuple[Lot | None, Lot | None]:
    """(the buys' crossed lot, inventory's lot) of one asset at the crossing price, no fee (no exchange took one).
    The sells' side of the same units is the same two lots: core.sell_assignment takes them into its pool, reading
    only their quantity, value and fee. A lot is consumed as it is assigned: the buys' allocation and inventory get
    lots of their own (call again), never the pool's."""
    crossed = (Lot(crossed_lot_id(batch_id, crossing.symbol), crossing.symbol, crossing.crossed, unit, price, ZERO,
                   timestamp_ms) if crossing.crossed else None)
    taken = (Lot(inventory_lot_id(batch_id, crossing.symbol), crossing.symbol, crossing.to_inventory, unit, price,
                 ZERO, timestamp_ms) if crossing.to_inventory else None)
    return crossed, taken

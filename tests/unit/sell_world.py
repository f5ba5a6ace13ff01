"""A batch of buys and sells run end to end in core: the plan, an IOC exchange walking the books as the simulator
does (commission in the received asset), crossing lots, the buy assignment and the sell assignment. The sell core's
tests drive it; it owns no rule of its own, only the exchange's."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

from core.basket import Basket
from core.batch_planner import Level, PendingOrder, PlannerLimits
from core.crossing import MixedPlan, crossing_lots, crossing_price, plan_mixed
from core.lot_assignment import BatchAllocation
from core.lots import Lot, lot_from_fill
from core.money import quantize_up
from core.sell_assignment import SellAssignment, assign_sells, sale_lot_from_fill
from core.sell_plan import PendingSell
from core.side import Side
from core.symbol_filters import SymbolFilters

QUOTE_UNIT = Decimal("1e-8")


@dataclass
class Outcome:
    plan: MixedPlan
    allocation: BatchAllocation
    sale: SellAssignment
    inventory_taken: dict[str, int]  # base units inventory gave the buys
    bought: dict[str, int] = field(default_factory=dict)  # net base units the exchange buys delivered
    sold: dict[str, int] = field(default_factory=dict)  # base units the exchange sells took
    pools: dict[str, list[Lot]] = field(default_factory=dict)
    crossed_lots: dict[str, Lot] = field(default_factory=dict)
    inventory_lots: dict[str, Lot] = field(default_factory=dict)


def execute(levels: Sequence[Level], side: Side, limit: Decimal, quantity: Decimal) -> list[tuple[Decimal, Decimal]]:
    """An IOC: walk the levels within the limit, take what they hold, drop the rest."""
    out = []
    left = quantity
    for price, qty in levels:
        if left <= 0 or (price > limit if side is Side.BUY else price < limit):
            break
        take = min(left, qty)
        if take <= 0:
            continue
        out.append((price, take))
        left -= take
    return out


def run_batch(buys: Sequence[PendingOrder], sells: Sequence[PendingSell], baskets: Mapping[str, Basket],
              filters: Mapping[str, SymbolFilters], bids: Mapping[str, Sequence[Level]],
              asks: Mapping[str, Sequence[Level]], inventory: Mapping[str, Lot], limits: PlannerLimits,
              order_budget: int = 100, bids_then: Mapping[str, Sequence[Level]] | None = None) -> Outcome:
    """`bids_then`: the bids when the sells reach the exchange (the book moved since the plan); default `bids`."""
    plan = plan_mixed(buys, sells, baskets, filters, bids, asks,
                      inventory_units={s: l.remaining for s, l in inventory.items()},
                      inventory_prices={s: (l.value + l.fee) / (l.quantity * l.unit) for s, l in inventory.items()},
                      order_budget=order_budget, limits=limits)
    units = {s: f.base_unit for s, f in filters.items()}
    lots: list[Lot] = []
    taken: dict[str, int] = {}
    for symbol, n in plan.batch.inventory_used.items():
        head, _ = inventory[symbol].split(n)
        lots.append(head)
        taken[symbol] = n
    out = Outcome(plan, BatchAllocation("b1", plan.batch.engagements, baskets, units, limits.index_unit,
                                        limits.fee_factor), None, taken)  # type: ignore[arg-type]
    traded: dict[str, list[tuple[Decimal, Decimal]]] = {}
    rate = limits.commission_rate
    for k, leg in enumerate(plan.batch.legs):
        f = filters[leg.symbol]
        book = asks[leg.symbol] if leg.side is Side.BUY else (bids_then or bids)[leg.symbol]
        for t, (price, qty) in enumerate(execute(book, leg.side, leg.price, leg.quantity)):
            traded.setdefault(leg.symbol, []).append((price, qty))
            if leg.side is Side.BUY:
                lot = lot_from_fill(trade_id=f"{k}-{t}", symbol=leg.symbol, base_asset=f.base_asset,
                                    quote_asset="USDC", price=price, quantity=qty,
                                    commission=quantize_up(qty * rate, f.base_unit), commission_asset=f.base_asset,
                                    unit=f.base_unit)
                lots.append(lot)
                out.bought[leg.symbol] = out.bought.get(leg.symbol, 0) + lot.quantity
            else:
                lot = sale_lot_from_fill(trade_id=f"{k}-{t}", symbol=leg.symbol, quote_asset="USDC", price=price,
                                         quantity=qty, commission=quantize_up(price * qty * rate, QUOTE_UNIT),
                                         commission_asset="USDC", unit=f.base_unit)
                out.pools.setdefault(leg.symbol, []).append(lot)
                out.sold[leg.symbol] = out.sold.get(leg.symbol, 0) + lot.quantity
    for symbol, c in plan.crossings.items():
        price = crossing_price(c.mid, traded.get(symbol, ()))
        crossed, absorbed = crossing_lots("b1", c, price, filters[symbol].base_unit)
        for lot in (crossed, absorbed):
            if lot is not None:
                out.pools.setdefault(symbol, []).append(lot)
        if crossed is not None:
            out.crossed_lots[symbol] = crossed
            # The buys' own lot (a lot is consumed as it is assigned), ahead of the exchange's: the release first.
            lots.insert(len(taken), crossing_lots("b1", c, price, filters[symbol].base_unit)[0])
        if absorbed is not None:
            out.inventory_lots[symbol] = absorbed
    out.allocation.add_lots(lots)
    out.allocation.assign()
    out.allocation.check()
    out.sale = assign_sells(plan.sells.engagements, baskets, plan.sells.release, out.pools, plan.sells.units,
                            index_unit=limits.index_unit, collateral_unit=limits.collateral_unit)
    out.sale.check()
    return out

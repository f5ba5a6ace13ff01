"""Benchmark of the pure core: batch planner, lot assignment.

Each figure is printed next to a naive baseline run in the same command (machines are shared and noisy, so ratios
mean more than times): the planner against a per-order-per-asset planner computing the same plan (checked equal),
and cohort lot assignment against per-order-per-asset FIFO assignment of the same fills. The last line is one JSON
object."""
from __future__ import annotations

import json
import random
import statistics
import sys
import time
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401
from core.basket import Basket, BasketAsset  # noqa: E402
from core.batch_planner import SCALE_QUANTUM, PendingOrder, PlannerLimits, plan_batch  # noqa: E402
from core.lot_assignment import BatchAllocation  # noqa: E402
from core.lots import Lot  # noqa: E402
from core.money import ONE, ZERO, quantize_down, quantize_up  # noqa: E402
from core.side import Side  # noqa: E402
from core.symbol_filters import SymbolFilters, min_quantity_for, parse_exchange_info, round_price  # noqa: E402

N_ASSETS = 100
ORDER_COUNTS = (100, 1_000, 10_000)


def world(seed: int = 7):
    """100 real symbols with their real filters, two indexes over them, deep seeded books on each tick."""
    rng = random.Random(seed)
    info = json.loads((ROOT / "data/binance/exchangeInfo_spot_2024-09-08_usdt_usdc.json").read_text())
    filters = parse_exchange_info(info)
    symbols = sorted(s for s in filters if s.endswith("USDC"))
    symbols += sorted(s for s in filters if s.endswith("USDT") and s not in symbols)
    symbols = symbols[:N_ASSETS]
    asks = {}
    for s in symbols:
        f = filters[s]
        ticks = rng.randint(1000, 5_000_000)
        best = f.tick_size * ticks
        qty = quantize_up(Decimal(50_000) / best, f.step_size)
        asks[s] = [(best + f.tick_size * i, qty) for i in range(10)]
    quantities = {s: Decimal(rng.randint(1, 10**6)).scaleb(-6) * Decimal(1000) / asks[s][0][0] for s in symbols}
    baskets = {
        "IDX100": Basket("IDX100", tuple(BasketAsset(s, quantities[s]) for s in symbols)),
        "IDX30": Basket("IDX30", tuple(BasketAsset(s, quantities[s]) for s in symbols[:30])),
    }
    return filters, asks, baskets


def make_orders(n: int, seed: int = 11) -> list[PendingOrder]:
    rng = random.Random(seed)
    return [
        PendingOrder(f"o{i}", "IDX100" if rng.random() < 0.7 else "IDX30", Decimal(rng.randint(10, 5_000)))
        for i in range(n)
    ]


def _naive_limit(f: SymbolFilters, levels, limits: PlannerLimits):
    limit = round_price(f, levels[0][0] * (ONE + limits.slippage_cap), Side.BUY)
    counted = 0
    worst = None
    cut = False
    quantity = ZERO
    for p, q in levels:
        if p > limit:
            break
        if counted == limits.max_levels:
            cut = True
            break
        worst = p
        quantity += q
        counted += 1
    return (worst if cut else limit), min(quantity, f.max_qty) * (ONE - limits.commission_rate)


def _naive_average(f: SymbolFilters, levels, limits: PlannerLimits, gross: Decimal) -> Decimal:
    """The walk of the levels within the limit for `gross` (the planner's expected price), beyond them the limit."""
    price, _ = _naive_limit(f, levels, limits)
    left, cost = gross, ZERO
    for n, (p, q) in enumerate(levels):
        if p > price or n == limits.max_levels:
            break
        take = min(left, q)
        cost += take * p
        left -= take
        if left <= 0:
            break
    if left > 0:
        cost += left * price
    return cost / gross if gross > 0 else levels[0][0]


def naive_plan(orders, baskets, asks, filters, limits: PlannerLimits):
    """The same plan, computed the obvious way: every order walks every asset of its basket, every time."""
    def index_price(index: str, per_unit) -> Decimal:  # noqa: ANN001
        return sum((a.quantity * per_unit(a.symbol) for a in baskets[index].assets), ZERO)

    def expected(index_units) -> dict[str, Decimal]:  # noqa: ANN001
        """Per order, per asset: the demand of every order again, then the walk of the asks for it."""
        out = {}
        indexes = sorted({p.index for p in orders})
        for o in orders:
            def per_unit(symbol: str) -> Decimal:
                need = sum((a.quantity * index_units(x)
                            for x in indexes for a in baskets[x].assets if a.symbol == symbol), ZERO)
                return _naive_average(filters[symbol], asks[symbol], limits, need / (ONE - limits.commission_rate))
            out[o.index] = index_price(o.index, per_unit)
        return out

    capped = {i: sum((min(o.collateral, limits.max_order_notional) for o in orders if o.index == i), ZERO)
              for i in {o.index for o in orders}}
    at_limits = {o.index: index_price(o.index, lambda s: _naive_limit(filters[s], asks[s], limits)[0])
                 for o in orders}
    ffb = limits.fee_factor * (ONE + limits.price_buffer)
    first = expected(lambda i: capped[i] / (at_limits[i] * limits.fee_factor))
    second = expected(lambda i: capped[i] / (first[i] * ffb))
    engagements = []
    for o in orders:
        price = max(first[o.index], second[o.index]) * (ONE + limits.price_buffer)
        cap_q = quantize_down(limits.max_order_notional / (price * limits.fee_factor), limits.index_unit)
        q = min(quantize_down((o.collateral - limits.collateral_unit) / (price * limits.fee_factor),
                              limits.index_unit), cap_q)
        engagements.append((o, q, price))

    def demand():
        need: dict[str, Decimal] = {}
        for o, q, _p in engagements:
            for a in baskets[o.index].assets:  # per order, per asset demand
                need[a.symbol] = need.get(a.symbol, ZERO) + a.quantity * q
        return need

    need = demand()
    scale = ONE
    notional = ZERO
    for s, d in need.items():
        price, liquidity = _naive_limit(filters[s], asks[s], limits)
        if d > liquidity:
            scale = min(scale, liquidity / d)
        notional += d * price / (ONE - limits.commission_rate)
    if notional > min(limits.max_batch_notional, limits.in_flight_room):
        scale = min(scale, min(limits.max_batch_notional, limits.in_flight_room) / notional)
    if scale < ONE:
        scale = quantize_down(scale, SCALE_QUANTUM)
        engagements = [(o, quantize_down(q * scale, limits.index_unit), p) for o, q, p in engagements]
        need = demand()
    orders_out = {}
    for s, d in need.items():
        f = filters[s]
        price = _naive_limit(f, asks[s], limits)[0]
        gross = d / (ONE - limits.commission_rate)
        orders_out[s] = max(quantize_up(gross, f.step_size), min_quantity_for(f, price),
                            quantize_up(limits.min_asset_notional / price, f.step_size))
    return engagements, orders_out


def naive_assign(engagements, baskets, units, lots_by_symbol, index_unit):
    """Per order, per asset: take the order's share from the lots FIFO (the reference's loop shape)."""
    heads = {s: [list(l) for l in lots] for s, lots in lots_by_symbol.items()}
    results = []
    for e in engagements:
        cost = ZERO
        for a in baskets[e.index].assets:
            want = int((a.quantity * e.units / units[a.symbol]).to_integral_value(rounding=ROUND_FLOOR))
            for lot in heads[a.symbol]:
                if not want:
                    break
                take = min(want, lot[0])
                lot[0] -= take
                want -= take
                cost += lot[1] * units[a.symbol] * take
        results.append((e.order_id, e.units, cost))
    return results


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000, result


def main() -> dict:
    filters, asks, baskets = world()
    limits = PlannerLimits(max_batch_notional=Decimal(10**12), in_flight_room=Decimal(10**12))
    rows = []
    figures: dict[str, float] = {}
    for n in ORDER_COUNTS:
        orders = make_orders(n)
        fast_ms, plan = timed(lambda: plan_batch(orders, baskets, asks, filters, order_budget=1000, limits=limits), 5)
        naive_ms, (naive_eng, naive_orders) = timed(lambda: naive_plan(orders, baskets, asks, filters, limits), 1)
        assert {e.order_id: e.units for e in plan.engagements} == {o.order_id: q for o, q, _ in naive_eng}, \
            "baseline disagrees"
        assert {o.symbol: o.quantity for o in plan.legs} == naive_orders, "baseline disagrees"

        units = {s: filters[s].base_unit for s in asks}
        lots = {}
        for o in plan.legs:
            lots[o.symbol] = [
                Lot(f"{o.symbol}:{k}", o.symbol, int(o.quantity / 2 / units[o.symbol]) + k, units[o.symbol],
                    o.price - filters[o.symbol].tick_size * k, Decimal("0.01"))
                for k in range(2)
            ]

        def assign():
            alloc = BatchAllocation("b", plan.engagements, baskets, units, limits.index_unit, limits.fee_factor)
            alloc.add_lots([l for ls in lots.values() for l in ls])
            return alloc.assign()

        def fresh_lots():
            return {s: [(l.quantity, l.price) for l in ls] for s, ls in lots.items()}

        assign_ms, fills = timed(assign, 5)
        naive_assign_ms, _ = timed(lambda: naive_assign(plan.engagements, baskets, units, fresh_lots(),
                                                        limits.index_unit), 1)
        rows.append((n, fast_ms, naive_ms, assign_ms, naive_assign_ms, len(plan.legs), len(fills)))
        figures[f"planner_ms_{n // 1000}k" if n >= 1000 else f"planner_ms_{n}"] = round(fast_ms, 2)
        figures[f"planner_speedup_{n // 1000}k" if n >= 1000 else f"planner_speedup_{n}"] = round(naive_ms / fast_ms, 1)
        figures[f"assign_ms_{n // 1000}k" if n >= 1000 else f"assign_ms_{n}"] = round(assign_ms, 2)
        figures[f"assign_speedup_{n // 1000}k" if n >= 1000 else f"assign_speedup_{n}"] = round(
            naive_assign_ms / assign_ms, 1)

    print(f"core bench: {N_ASSETS} assets (real filters), 2 indexes (100 and 30 assets); best of 5 (baseline: 1 run)")
    print(f"{'orders':>7} {'plan ms':>9} {'naive ms':>10} {'x':>6} {'assign ms':>10} {'naive ms':>10} {'x':>6}"
          f" {'asset orders':>13} {'fills':>6}")
    for n, f_ms, n_ms, a_ms, na_ms, n_orders, n_fills in rows:
        print(f"{n:>7} {f_ms:>9.2f} {n_ms:>10.1f} {n_ms / f_ms:>6.1f} {a_ms:>10.2f} {na_ms:>10.1f} "
              f"{na_ms / a_ms:>6.1f} {n_orders:>13} {n_fills:>6}")
    return figures


if __name__ == "__main__":
    figures = main()
    print(json.dumps(figures))

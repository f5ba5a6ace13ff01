"""The solver's brain: one batch from all pending index orders, one exchange order per asset carrying the netted need.
Orders are summed per index first, so cost grows with orders + assets, never their product.

Orders are sized at the EXPECTED cost (sizing at the limits left ~1 % unspent) but reserve collateral at the
limits: a moving book fills an order less, never over its collateral. Rules: spec/domain.md §5.2, §12; each step
says its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Collection, Mapping, NamedTuple, Sequence

from core.basket import Basket
from core.money import ONE, ZERO, quantize_down, quantize_up, units_up
from core.side import Side
from core.market_status import closed_in, closed_reason
from core.stale_books import stale_in, stale_reason
from core.symbol_filters import SymbolFilters, min_quantity_for, round_price

Level = tuple[Decimal, Decimal]
SCALE_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """An index order's collateral that may be engaged now, in FIFO priority (the list order)."""

    order_id: str
    index: str
    collateral: Decimal


@dataclass(frozen=True, slots=True)
class PlannerLimits:
    slippage_cap: Decimal = Decimal("0.01")
    #: Orders are sized at the expected index price times (1 + price_buffer): room for the book moving a little
    #: between the plan and the fills. Fills above it make an order fill less, never cost more.
    price_buffer: Decimal = Decimal("0.0005")
    max_levels: int = 5
    fee_factor: Decimal = Decimal("1.002")
    commission_rate: Decimal = Decimal("0.001")
    max_order_notional: Decimal = Decimal("100000")
    max_batch_notional: Decimal = Decimal("250000")
    in_flight_room: Decimal = Decimal("500000")
    min_asset_notional: Decimal = Decimal("5")
    index_unit: Decimal = Decimal("1e-18")
    collateral_unit: Decimal = Decimal("0.000001")
    max_orders: int = 10000

    @classmethod
    def from_settings(cls, settings, in_flight_notional: Decimal = ZERO) -> "PlannerLimits":  # noqa: ANN001
        s, x = settings.solver, settings.exchange
        return cls(
            slippage_cap=s.slippage_cap, price_buffer=s.price_buffer, max_levels=s.max_levels, fee_factor=s.fee_factor,
            commission_rate=x.commission_rate, max_order_notional=s.max_order_notional,
            max_batch_notional=s.max_batch_notional,
            in_flight_room=max(ZERO, s.max_in_flight_notional - in_flight_notional),
            min_asset_notional=s.min_asset_notional, index_unit=s.index_unit,
            collateral_unit=settings.collateral.unit, max_orders=s.max_orders_per_batch,
        )


@dataclass(frozen=True, slots=True)
class BasketLeg:
    """One asset's buy in a batch's plan; sent, it becomes the sender's core.asset_order.AssetOrder."""

    symbol: str
    side: Side
    price: Decimal  # limit, on the tick
    quantity: Decimal  # gross, on the step, padded to the exchange minimum
    need: Decimal  # net quantity the engaged orders need from the exchange (after inventory)

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity


class Engagement(NamedTuple):
    """An index order's part in a batch (a NamedTuple: immutable and cheap to make 10,000 of)."""

    order_id: str
    index: str
    units: Decimal  # index units engaged, a multiple of the index unit
    collateral: Decimal  # reserved: units * index price at the limits * fee_factor, rounded up, <= the order's
    index_price: Decimal  # the sizing price (expected * (1 + buffer)): the charge per unit is capped at it * fee_factor


@dataclass(frozen=True, slots=True)
class Deferred:
    order_id: str
    #: UNKNOWN_INDEX (a reject), NO_LIQUIDITY:<symbol>, STALE_BOOK:<symbol,...>, RATE_LIMIT, TOO_SMALL, BATCH_FULL
    reason: str


@dataclass(frozen=True)
class BatchPlan:
    legs: tuple[BasketLeg, ...]
    engagements: tuple[Engagement, ...]
    inventory_used: Mapping[str, int]  # units of each asset taken from inventory into this batch
    deferred: tuple[Deferred, ...]
    scale: Decimal  # the factor that fitted the batch (1 = nothing was cut)
    notional: Decimal  # exchange notional at limit prices
    index_prices: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.engagements


@dataclass(slots=True)
class _Asset:
    symbol: str
    price: Decimal
    liquidity: Decimal  # net of commission, what the book can deliver within the limit
    filters: SymbolFilters
    levels: Sequence[Level] = ()  # the ask levels within the limit (gross quantities)

    def average_price(self, gross: Decimal) -> Decimal:
        """Volume-weighted price of buying `gross` (before commission) walking the levels; beyond them, the limit."""
        left = gross
        cost = ZERO
        for price, qty in self.levels:
            take = min(left, qty)
            cost += take * price
            left -= take
            if left <= 0:
                break
        if left > 0:
            cost += left * self.price
        return cost / gross if gross > 0 else self.levels[0][0] if self.levels else self.price


def _price_and_liquidity(
    symbol: str, levels: Sequence[Level] | None, f: SymbolFilters | None, limits: PlannerLimits
) -> _Asset | None:
    if not levels or f is None:
        return None
    best = levels[0][0]
    limit = round_price(f, best * (ONE + limits.slippage_cap), Side.BUY)  # down to the tick: inside the cap
    quantity = ZERO
    worst = None
    counted = 0
    cut_by_levels = False
    used: list[Level] = []
    for price, qty in levels:
        if price > limit:
            break
        if counted == limits.max_levels:
            cut_by_levels = True
            break
        quantity += qty
        worst = price
        counted += 1
        used.append((price, qty))
    if worst is None or quantity <= 0:
        return None
    price = worst if cut_by_levels else limit
    if f.max_qty > 0:
        quantity = min(quantity, f.max_qty)
    return _Asset(symbol, price, quantity * (ONE - limits.commission_rate), f, tuple(used))


def plan_batch(
    orders: Sequence[PendingOrder],
    baskets: Mapping[str, Basket],
    asks: Mapping[str, Sequence[Level]],
    filters: Mapping[str, SymbolFilters],
    *,
    inventory_units: Mapping[str, int] | None = None,
    inventory_prices: Mapping[str, Decimal] | None = None,
    order_budget: int,
    limits: PlannerLimits,
    stale: Collection[str] = frozenset(),
    closed: Collection[str] = frozenset(),
    reserved_symbols: Collection[str] = frozenset(),
) -> BatchPlan:
    """Plan one buy batch. `asks` are best-first (price, quantity) levels; `inventory_units` counts whole base units
    per symbol that are free to use and `inventory_prices` what they cost (quote per whole asset, commission included);
    `order_budget` is how many exchange orders the rate limits allow now; `stale` are the symbols whose book is stale
    (their asks, if given, are ignored); `reserved_symbols` already count against the budget (the batch's sells may
    send an order on each, and one asset takes one exchange order whichever side its net falls on)."""
    inventory_units = inventory_units or {}
    deferred: list[Deferred] = []

    # 1. Orders grouped by index, FIFO kept inside each group and across groups (first order decides).
    by_index: dict[str, list[PendingOrder]] = {}
    for i, o in enumerate(orders):
        if i >= limits.max_orders:
            deferred.append(Deferred(o.order_id, "BATCH_FULL"))
            continue
        if o.index not in baskets:
            deferred.append(Deferred(o.order_id, "UNKNOWN_INDEX"))
            continue
        if o.collateral <= 0:
            continue
        by_index.setdefault(o.index, []).append(o)

    # 2. Limit price and liquidity per asset, computed once per asset whatever the number of indexes holding it.
    assets: dict[str, _Asset | None] = {}
    index_prices: dict[str, Decimal] = {}
    for index in list(by_index):
        basket = baskets[index]
        halted = closed_in(basket, closed) if closed else ()
        waits_on = stale_in(basket, stale) if stale else ()
        if halted or waits_on:
            reason = closed_reason(halted) if halted else stale_reason(waits_on)
            deferred.extend(Deferred(o.order_id, reason) for o in by_index.pop(index))
            continue
        missing = None
        price = ZERO
        for a in basket.assets:
            if a.symbol not in assets:
                assets[a.symbol] = _price_and_liquidity(a.symbol, asks.get(a.symbol), filters.get(a.symbol), limits)
            info = assets[a.symbol]
            if info is None:
                missing = a.symbol
                break
            price += a.quantity * info.price
        if missing is not None:
            deferred.extend(Deferred(o.order_id, f"NO_LIQUIDITY:{missing}") for o in by_index.pop(index))
            continue
        index_prices[index] = price

    # 3. Units per order at the EXPECTED cost. The expected index price comes from the need, and the need from the
    #    units: two cheap passes on per-index sums (no per-order work) settle it, then one exact pass per order.
    #    Each pass only raises the need (a lower price buys more), so the second price is an upper bound for what
    #    the sized orders will pay at today's book; the larger of the two is taken.
    held_price = inventory_prices or {}
    capped: dict[str, Decimal] = {}
    for index, group in by_index.items():
        capped[index] = sum((min(o.collateral, limits.max_order_notional) for o in group), ZERO)

    def expected_prices(units_of: Mapping[str, Decimal]) -> dict[str, Decimal]:
        need: dict[str, Decimal] = {}
        for index, u in units_of.items():
            for a in baskets[index].assets:
                need[a.symbol] = need.get(a.symbol, ZERO) + a.quantity * u
        prices: dict[str, Decimal] = {}
        for symbol, d in need.items():
            info = assets[symbol]
            assert info is not None
            if d <= 0:
                prices[symbol] = info.levels[0][0] if info.levels else info.price
                continue
            from_stock = min(inventory_units.get(symbol, 0) * info.filters.base_unit, d)
            rest = d - from_stock
            # Inventory at what it cost, on the before-commission footing of the asks (a lot's cost per net unit
            # already carries the commission, which fee_factor covers again below).
            known = held_price.get(symbol)
            stock_price = info.price if known is None else known * (ONE - limits.commission_rate)  # unknown: limit
            ex_price = info.average_price(rest / (ONE - limits.commission_rate)) if rest > 0 else ZERO
            prices[symbol] = (from_stock * stock_price + rest * ex_price) / d
        return {index: sum((a.quantity * prices[a.symbol] for a in baskets[index].assets), ZERO)
                for index in units_of}

    ff_buffer = limits.fee_factor * (ONE + limits.price_buffer)
    first = expected_prices({i: capped[i] / (index_prices[i] * limits.fee_factor) for i in by_index})
    second = expected_prices({i: capped[i] / (first[i] * ff_buffer) for i in by_index})
    sizing_prices = {i: max(first[i], second[i]) * (ONE + limits.price_buffer) for i in by_index}

    units: dict[str, list[tuple[PendingOrder, int]]] = {}
    totals: dict[str, int] = {}
    cap_n, cap_d = limits.max_order_notional.as_integer_ratio()
    margin = limits.collateral_unit
    for index, group in by_index.items():
        n, d = (sizing_prices[index] * limits.fee_factor * limits.index_unit).as_integer_ratio()
        cap_q = (cap_n * d) // (cap_d * n)
        rows = []
        total = 0
        for o in group:
            # One collateral unit kept back: the assignment's price cap may be off by far less than that.
            cn, cd = (o.collateral - margin).as_integer_ratio()
            q = min((cn * d) // (cd * n), cap_q) if cn > 0 else 0
            if q > 0:
                rows.append((o, q))
                total += q
            else:
                deferred.append(Deferred(o.order_id, "TOO_SMALL"))
        if rows:
            units[index] = rows
            totals[index] = total

    def demand(selected: Mapping[str, list[tuple[PendingOrder, int]]]) -> dict[str, Decimal]:
        need: dict[str, Decimal] = {}
        for index in selected:
            total = Decimal(totals[index]) * limits.index_unit
            for a in baskets[index].assets:
                need[a.symbol] = need.get(a.symbol, ZERO) + a.quantity * total
        return need

    def inventory(symbol: str) -> Decimal:
        return inventory_units.get(symbol, 0) * assets[symbol].filters.base_unit  # type: ignore[union-attr]

    # 4. The rate-limit budget: whole indexes in FIFO order (of their first order) while their exchange orders fit;
    #    the first that does not fit stops the batch, so a large basket is never overtaken by smaller ones behind
    #    it window after window: every order waits at most for the windows the indexes ahead of it need.
    need = demand(units)
    chosen: set[str] = set(reserved_symbols)
    selected: dict[str, list[tuple[PendingOrder, int]]] = {}
    full = False
    for index, rows in units.items():
        wanted = {a.symbol for a in baskets[index].assets if need[a.symbol] > inventory(a.symbol)}
        full = full or len(chosen | wanted) > order_budget
        if full:
            deferred.extend(Deferred(o.order_id, "RATE_LIMIT") for o, _ in rows)
        else:
            chosen |= wanted
            selected[index] = rows
    need = demand(selected)

    # 5. One scale factor for liquidity, the batch cap and the in-flight room.
    scale = ONE
    notional = ZERO
    for symbol, d in need.items():
        info = assets[symbol]
        assert info is not None
        available = info.liquidity + inventory(symbol)
        if d > available:
            scale = min(scale, available / d)
        notional += max(ZERO, d - inventory(symbol)) * info.price / (ONE - limits.commission_rate)
    cap = min(limits.max_batch_notional, limits.in_flight_room)
    if notional > cap:
        scale = min(scale, cap / notional)
    if scale < ONE:
        # Rounded down to 1e-12: a coarser factor is cheaper per order and only ever engages a little less.
        scale = quantize_down(scale, SCALE_QUANTUM)
        rescaled: dict[str, list[tuple[PendingOrder, int]]] = {}
        sn, sd = scale.as_integer_ratio()
        for index, rows in selected.items():
            kept = []
            total = 0
            for o, q in rows:
                q2 = q * sn // sd  # down: a scaled order never engages more than the fit allows
                if q2 > 0:
                    kept.append((o, q2))
                    total += q2
                else:
                    deferred.append(Deferred(o.order_id, "TOO_SMALL"))
            if kept:
                rescaled[index] = kept
                totals[index] = total
        selected = rescaled
        need = demand(selected)  # totals recomputed after scaling

    # 6. Exchange orders: need net of inventory, grossed up for commission, rounded up and padded to minimums.
    legs: list[BasketLeg] = []
    inventory_used: dict[str, int] = {}
    notional = ZERO
    for symbol, d in need.items():
        info = assets[symbol]
        assert info is not None
        f = info.filters
        held = inventory_units.get(symbol, 0)
        use = min(held, units_up(d, f.base_unit))  # whole units; assignment never draws more than d
        if use:
            inventory_used[symbol] = use
        rest = d - use * f.base_unit
        if rest <= 0:
            continue
        gross = rest / (ONE - limits.commission_rate)
        qty = quantize_up(gross, f.step_size) if f.step_size > 0 else gross
        floor_qty = max(
            min_quantity_for(f, info.price),
            quantize_up(limits.min_asset_notional / info.price, f.step_size) if f.step_size > 0 else ZERO,
        )
        qty = max(qty, floor_qty)
        if f.max_qty > 0 and qty > f.max_qty:
            qty = quantize_down(f.max_qty, f.step_size)  # the IOC fills what it can; assignment takes what came
        legs.append(BasketLeg(symbol, Side.BUY, info.price, qty, rest))
        notional += info.price * qty

    # 7. Engagements: the reserve is units * P_limits * fee_factor rounded UP to the ledger unit (what the batch could
    #    cost at worst), never above the collateral; the price recorded is the sizing price, which caps the charge.
    engagements: list[Engagement] = []
    iu = limits.index_unit
    cu = limits.collateral_unit
    for index, rows in selected.items():
        p = sizing_prices[index]
        # The limits bound what the exchange can charge, the sizing price what the assignment will; the higher one.
        n, d = (max(index_prices[index], p) * limits.fee_factor * iu / cu).as_integer_ratio()
        for o, q in rows:
            # Never above the order's cap either: the charge is capped at q * p * fee_factor <= that cap.
            reserve = min(o.collateral, limits.max_order_notional, Decimal(-(-q * n // d)) * cu)
            engagements.append(Engagement(o.order_id, index, Decimal(q) * iu, reserve, p))

    return BatchPlan(
        tuple(legs), tuple(engagements), inventory_used, tuple(deferred), scale, notional, index_prices
    )

"""Assigning a batch's sale to its sell orders, exactly (integers of index quanta, base units and 1e-24 quote).

Per asset the sale is a pool of lots: the crossed lot, the exchange sells (value = price x quantity, fee = the
commission, in quote) and what inventory took, all at one price per unit source. Each index's sells form a cohort
that redeems at one rate: all its units when every asset of its release was sold, else the largest share every
asset's pool covers (a partial IOC). A cohort takes floor(quantity x redeemed units) base units of each asset, and
the pool's value and fee are split over cohorts by those units, then over each cohort's orders by units, all
rounded DOWN by telescoping: the shares add up to what was taken, and the payout (proceeds rounded DOWN to the
collateral unit) never exceeds what the sale fetched. What rounding leaves, and what was sold of units not redeemed,
is the house's: never a user's. The minimum is a floor on the price per unit (a part redeemed must pay its share of
it, rounded UP); an order paid less is stopped before the burn: it redeems nothing and what was sold for it is the
house's (inventory gives those units back to the unburnt tokens)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Mapping, Sequence

from core.basket import Basket
from core.lot_assignment import _cost_dec, _cost_int, _quanta
from core.lots import Lot
from core.crossing import is_crossed_with_buys
from core.money import ZERO, quantize_up, to_units
from core.sell_plan import SellEngagement

STOPPED_BELOW_MINIMUM = "BELOW_MINIMUM"


def sale_lot_from_fill(*, trade_id: str | int, symbol: str, quote_asset: str, price: Decimal, quantity: Decimal,
                       commission: Decimal, commission_asset: str | None, unit: Decimal, timestamp_ms: int = 0,
                       conversion: Mapping[str, Decimal] | None = None) -> Lot:
    """A sell fill as a lot of the sale: the base units that left, their value at the fill price and the commission
    in quote (Binance takes it in the received asset; a third asset, BNB, converts at `conversion[asset]`)."""
    if quantity <= 0 or price <= 0:
        raise ValueError(f"fill {trade_id}: quantity and price must be positive")
    if commission < 0:
        raise ValueError(f"fill {trade_id}: negative commission")
    if commission == 0 or commission_asset in (None, ""):
        fee = ZERO
    elif commission_asset == quote_asset:
        fee = commission
    else:
        rate = (conversion or {}).get(commission_asset)
        if rate is None:
            raise ValueError(f"fill {trade_id}: commission in {commission_asset}, no rate to {quote_asset}")
        fee = commission * rate
    return Lot(f"{symbol}:{trade_id}", symbol, to_units(quantity, unit), unit, price, fee, timestamp_ms)


@dataclass(frozen=True, slots=True)
class SellLine:
    """One asset of one sell order, for the Redeem Invoice."""

    symbol: str
    units: int  # base units sold for the order
    quantity: Decimal
    value: Decimal  # at the sale's prices
    fee: Decimal  # its share of the exchange commission
    crossed: Decimal  # of `quantity`, how much crossed with the batch's buys
    lot_ids: tuple[str, ...]  # the pool's lots (crossed ones: core.crossing.is_crossed)

    @property
    def proceeds(self) -> Decimal:
        return self.value - self.fee

    @property
    def average_price(self) -> Decimal | None:
        return self.value / self.quantity if self.quantity else None


@dataclass(frozen=True, slots=True)
class SellResult:
    order_id: str
    index: str
    units: Decimal  # index units redeemed: what to burn
    asked: Decimal  # index units the order engaged
    lines: tuple[SellLine, ...]
    proceeds: Decimal  # exact: value - fee over the lines
    payout: Decimal  # proceeds rounded DOWN to the collateral unit: what the user is credited
    stopped: str | None = None  # STOPPED_BELOW_MINIMUM: nothing redeemed, nothing paid

    @property
    def value(self) -> Decimal:
        return sum((l.value for l in self.lines), ZERO)

    @property
    def fee(self) -> Decimal:
        return sum((l.fee for l in self.lines), ZERO)


@dataclass(frozen=True, slots=True)
class PoolOutcome:
    """One asset of the sale, in base units and exact quote."""

    symbol: str
    released: int  # what the engaged sells released
    sold: int  # the pool: crossed + exchange + inventory-taken
    to_orders: int  # taken by redeemed units (the burnt tokens' share)
    house_value: Decimal  # value and fee of the pool not given to orders
    house_fee: Decimal

    @property
    def house_units(self) -> int:
        """Sold, but of units not redeemed: inventory gives these back to the unburnt tokens' backing."""
        return self.sold - self.to_orders

    @property
    def unsold(self) -> int:
        """Released but not sold: still the backing of the unburnt tokens."""
        return self.released - self.sold


@dataclass(frozen=True)
class SellAssignment:
    results: tuple[SellResult, ...]
    pools: Mapping[str, PoolOutcome]
    house_quote: Decimal  # proceeds the house keeps: house value - house fee + the payouts' rounding rests
    fetched: Decimal = ZERO  # what the sale fetched: value - fee of every pool

    def check(self) -> None:
        """Conservation, exactly: payouts + the house's == fetched; per asset, the orders' lines add up to what the
        redeemed units took, which is at most what was sold, itself at most what was released."""
        paid = sum((r.payout for r in self.results), ZERO)
        if paid + self.house_quote != self.fetched:
            raise AssertionError(f"paid {paid} + house {self.house_quote} != fetched {self.fetched}")
        for s, p in self.pools.items():
            lines = sum(l.units for r in self.results for l in r.lines if l.symbol == s)
            if not lines == p.to_orders <= p.sold <= p.released:
                raise AssertionError(f"{s}: lines {lines}, to orders {p.to_orders}, sold {p.sold}, "
                                     f"released {p.released}")


@dataclass(slots=True)
class _Cohort:
    index: str
    quantities: dict[str, Decimal]
    rows: list[SellEngagement]
    quanta: list[int]  # index quanta engaged per order


def assign_sells(
    engagements: Sequence[SellEngagement],
    baskets: Mapping[str, Basket],
    release: Mapping[str, Mapping[str, int]],
    pools: Mapping[str, Sequence[Lot]],
    units: Mapping[str, Decimal],
    *,
    index_unit: Decimal,
    collateral_unit: Decimal,
) -> SellAssignment:
    """The sale's outcome per sell order. `release` and `units` (base unit per symbol) are the plan's
    (core.sell_plan.SellPlan); `pools` the sale's lots per symbol (core.crossing.crossing_lots, sale_lot_from_fill),
    each lot's whole quantity sold; a symbol without lots sold nothing."""
    scale = -index_unit.as_tuple().exponent  # type: ignore[operator]
    cohorts: dict[str, _Cohort] = {}
    seen: set[str] = set()
    for e in engagements:
        if e.order_id in seen:
            raise ValueError(f"sell {e.order_id} engaged twice")
        seen.add(e.order_id)
        c = cohorts.get(e.index)
        if c is None:
            c = cohorts[e.index] = _Cohort(e.index, baskets[e.index].quantities(), [], [])
        c.rows.append(e)
        c.quanta.append(_quanta(e.units, scale))

    released: dict[str, int] = {}
    for index in cohorts:
        for symbol, n in release[index].items():
            released[symbol] = released.get(symbol, 0) + n
    strays = sorted(s for s, lots in pools.items() if lots and s not in released)
    if strays:
        raise ValueError(f"lots of {', '.join(strays)}, which no engaged sell released")
    pool = {s: _Pool.of(pools.get(s, ()), units[s]) for s in released}
    for symbol, p in pool.items():
        if p.sold > released[symbol]:
            raise ValueError(f"{symbol}: sold {p.sold} base units of {released[symbol]} released")
    # The exact need per asset (base units, before the release's rounding down): a partial rate's denominator.
    exact: dict[str, Decimal] = {}
    for c in cohorts.values():
        total = Decimal(sum(c.quanta)) * index_unit
        for symbol, q in c.quantities.items():
            exact[symbol] = exact.get(symbol, ZERO) + q * total / units[symbol]
    by_id = {e.order_id: e for e in engagements}

    def below_minimum(r: SellResult) -> bool:
        e = by_id[r.order_id]
        if e.min_proceeds is None or r.stopped is not None or r.units <= 0:
            return False
        return r.payout < quantize_up(e.min_proceeds * r.units / e.units, collateral_unit)

    stopped: set[str] = set()
    while True:  # each pass stops at least one more order, or ends
        results: list[SellResult] = []
        redeemed: dict[str, list[int]] = {}
        taken: dict[str, dict[str, int]] = {}
        cohort_shares: dict[str, dict[str, _Share]] = {}
        for c in cohorts.values():
            redeemed[c.index] = _redeemed(c, pool, released, exact, stopped)
            u = Decimal(sum(redeemed[c.index])) * index_unit
            # Down: a cohort never takes more of an asset than its redeemed units hold.
            taken[c.index] = {s: int((q * u / units[s]).to_integral_value(rounding=ROUND_FLOOR))
                              for s, q in c.quantities.items()}
            cohort_shares[c.index] = {}
        for symbol, p in pool.items():
            for index, share in p.split([(i, t[symbol]) for i, t in taken.items() if symbol in t]):
                cohort_shares[index][symbol] = share
        for c in cohorts.values():
            results.extend(_orders(c, redeemed[c.index], cohort_shares[c.index], pool, units, index_unit,
                                   collateral_unit, stopped))
        newly = {r.order_id for r in results if below_minimum(r)}
        if not newly:
            break
        stopped |= newly

    outcomes: dict[str, PoolOutcome] = {}
    house = 0
    for symbol, p in pool.items():
        shares = [cohort_shares[i][symbol] for i in cohort_shares if symbol in cohort_shares[i]]
        v = p.value - sum(s.value for s in shares)
        f = p.fee - sum(s.fee for s in shares)
        outcomes[symbol] = PoolOutcome(symbol, released[symbol], p.sold, sum(s.units for s in shares),
                                       _cost_dec(v), _cost_dec(f))
        house += v - f
    house_quote = _cost_dec(house) + sum((r.proceeds - r.payout for r in results), ZERO)
    fetched = _cost_dec(sum(p.value - p.fee for p in pool.values()))
    return SellAssignment(tuple(results), outcomes, house_quote, fetched)


@dataclass(frozen=True, slots=True)
class _Share:
    """A part of a pool, in base units and 1e-24 quote."""

    units: int
    value: int
    fee: int
    crossed: int


@dataclass(frozen=True, slots=True)
class _Pool:
    sold: int
    value: int
    fee: int
    crossed: int
    lot_ids: tuple[str, ...]

    @classmethod
    def of(cls, lots: Sequence[Lot], unit: Decimal) -> "_Pool":
        for lot in lots:
            if lot.unit != unit:
                raise ValueError(f"lot {lot.lot_id} counts in {lot.unit}, the sale in {unit}")
        return cls(sum(l.quantity for l in lots), sum(_cost_int(l.value) for l in lots),
                   sum(_cost_int(l.fee) for l in lots),
                   sum(l.quantity for l in lots if is_crossed_with_buys(l.lot_id)),
                   tuple(l.lot_id for l in lots))

    def split(self, parts: Sequence[tuple[str, int]]) -> list[tuple[str, _Share]]:
        """The pool's value, fee and crossed units over `parts` (key, base units taken), pro rata to the units and
        rounded DOWN by telescoping: each gets the pool's average, and the parts never add up to more than it."""
        out = []
        run = 0
        prev = _Share(0, 0, 0, 0)
        for key, n in parts:
            run += n
            if run > self.sold:  # proven impossible (core/sell_assignment.py's _redeemed): a bug, not bad input
                raise AssertionError(f"the sale's parts take {run} base units of {self.sold} sold")
            here = (_Share(run, self.value * run // self.sold, self.fee * run // self.sold, self.crossed * run // self.sold)
                    if self.sold else _Share(run, 0, 0, 0))
            out.append((key, _Share(n, here.value - prev.value, here.fee - prev.fee, here.crossed - prev.crossed)))
            prev = here
        return out


def _redeemed(c: _Cohort, pool: Mapping[str, _Pool], released: Mapping[str, int], exact: Mapping[str, Decimal],
              stopped: set[str]) -> list[int]:
    """Index quanta each order of the cohort redeems: all of them when every asset of the release was sold; else the
    largest rate r every asset's pool covers (r <= sold / exact need, so the cohorts' floors fit in the pool), each
    order's share rounded DOWN. Stopped orders redeem nothing."""
    active = [0 if r.order_id in stopped else q for r, q in zip(c.rows, c.quanta)]
    if all(pool[s].sold >= released[s] for s in c.quantities):
        return active
    num, den = 1, 1
    for s in c.quantities:
        n, d = exact[s].as_integer_ratio()
        rn, rd = pool[s].sold * d, n  # sold / (n / d)
        if rn * den < num * rd:
            num, den = rn, rd
    return [q * num // den for q in active]


def _orders(c: _Cohort, redeemed: Sequence[int], shares: Mapping[str, _Share], pool: Mapping[str, _Pool],
            units: Mapping[str, Decimal], index_unit: Decimal, collateral_unit: Decimal,
            stopped: set[str]) -> list[SellResult]:
    """The cohort's shares over its orders by redeemed units, telescoping down (the orders' lines add up to the
    cohort's exactly)."""
    whole = sum(redeemed)
    cu = _cost_int(collateral_unit)
    out = []
    run = 0
    prev = {s: _Share(0, 0, 0, 0) for s in shares}
    for row, n in zip(c.rows, redeemed):
        run += n
        lines = []
        proceeds = 0
        for s, share in shares.items():
            here = (_Share(share.units * run // whole, share.value * run // whole, share.fee * run // whole,
                           share.crossed * run // whole) if whole else _Share(0, 0, 0, 0))
            mine = _Share(here.units - prev[s].units, here.value - prev[s].value, here.fee - prev[s].fee,
                          here.crossed - prev[s].crossed)
            prev[s] = here
            if mine.units or mine.value:
                lines.append(SellLine(s, mine.units, Decimal(mine.units) * units[s], _cost_dec(mine.value),
                                      _cost_dec(mine.fee), Decimal(mine.crossed) * units[s], pool[s].lot_ids))
                proceeds += mine.value - mine.fee
        payout = max(proceeds, 0) // cu * cu  # down to the collateral unit: never more than the sale fetched
        out.append(SellResult(row.order_id, row.index, Decimal(n) * index_unit, row.units, tuple(lines),
                              _cost_dec(proceeds), _cost_dec(payout),
                              STOPPED_BELOW_MINIMUM if row.order_id in stopped else None))
    return out

"""Assigning a batch's fills to the index orders it serves, to the last unit (spec/domain.md §6, made exact).

Orders of one index form a cohort filling at one rate, set by the scarcest asset; it takes whole base units from the
lots first in first out, rounded DOWN, so assigned + inventory == received exactly. Telescoping rounding splits
its cost: one price per round. Capped at engagement price * fee_factor, a cohort fills less, never over reserve."""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Iterable, Mapping, NamedTuple, Sequence

from core.basket import Basket
from core.batch_planner import Engagement
from core.lots import FEE_QUANTUM_EXP, Lot, Slice
from core.money import ZERO

_SCALE = FEE_QUANTUM_EXP  # costs are allocated as integers of 1e-24 quote


def _cost_int(value: Decimal) -> int:
    scaled = value.scaleb(_SCALE)
    n = int(scaled)
    if n != scaled:
        raise ValueError(f"cost {value} has more than {_SCALE} decimals")
    return n


def _quanta(units: Decimal, scale: int) -> int:
    n = units.scaleb(scale)
    i = int(n)
    if i != n:
        raise ValueError(f"{units} is not a whole number of 1e-{scale}")
    return i


def _cost_dec(n: int) -> Decimal:
    return Decimal(n).scaleb(-_SCALE)


class AssignedFill(NamedTuple):
    """What one assignment round gave one index order: units of index and their exact cost.

    Kept as integers (index quanta, 1e-24 quote) on the hot path; the Decimal views are computed when read."""

    order_id: str
    index: str
    units_q: int
    index_unit: Decimal
    value_q: int  # asset value at fill prices
    fee_q: int  # its share of exchange fees, in quote

    @property
    def units(self) -> Decimal:
        return Decimal(self.units_q) * self.index_unit

    @property
    def value(self) -> Decimal:
        return _cost_dec(self.value_q)

    @property
    def fee(self) -> Decimal:
        return _cost_dec(self.fee_q)

    @property
    def cost(self) -> Decimal:
        return _cost_dec(self.value_q + self.fee_q)


@dataclass(frozen=True, slots=True)
class AssetLine:
    """One asset of one order's fill, for the invoice."""

    symbol: str
    units: int  # base units assigned to the order
    quantity: Decimal
    value: Decimal
    fee: Decimal
    lot_ids: tuple[str, ...]

    @property
    def average_price(self) -> Decimal | None:
        return self.value / self.quantity if self.quantity else None


@dataclass(slots=True)
class _Round:
    filled: int  # cohort units filled in this round (index quanta)
    units: dict[str, int]  # base units taken per asset
    value: dict[str, int]  # per asset, 1e-24 quote
    fee: dict[str, int]
    lot_ids: dict[str, list[str]]
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (order position, filled before, filled)


@dataclass(slots=True)
class _Cohort:
    """The orders of one index in the batch, as parallel lists (cheap per order)."""

    index: str
    quantities: dict[str, Decimal]
    ids: list[str] = field(default_factory=list)
    engaged: list[int] = field(default_factory=list)  # index quanta per order
    filled: list[int] = field(default_factory=list)
    engaged_total: int = 0
    filled_total: int = 0
    cost_total: int = 0  # value + fee of everything taken, 1e-24 quote
    cap: tuple[int, int] | None = None  # most cost per index quantum, in 1e-24 quote, as a fraction
    taken: dict[str, int] = field(default_factory=dict)
    rounds: list[_Round] = field(default_factory=list)


class BatchAllocation:
    """The fills of one batch and their assignment to its engaged index orders."""

    def __init__(
        self,
        batch_id: str,
        engagements: Sequence[Engagement],
        baskets: Mapping[str, Basket],
        units: Mapping[str, Decimal],
        index_unit: Decimal,
        fee_factor: Decimal | None = None,
    ) -> None:
        """`fee_factor` given: each cohort's cost is capped at its engagements' index_price * fee_factor per unit."""
        self.batch_id = batch_id
        self.index_unit = index_unit
        self.units = dict(units)
        self._cohorts: dict[str, _Cohort] = {}
        self._where: dict[str, tuple[_Cohort, int]] = {}
        scale = -index_unit.as_tuple().exponent  # type: ignore[operator]
        if index_unit != Decimal(1).scaleb(-scale):
            raise ValueError(f"index unit {index_unit} must be a power of ten")
        for e in engagements:
            if e.order_id in self._where:
                raise ValueError(f"order {e.order_id} engaged twice in batch {batch_id}")
            c = self._cohorts.get(e.index)
            if c is None:
                c = self._cohorts[e.index] = _Cohort(e.index, baskets[e.index].quantities())
                for symbol in c.quantities:
                    if symbol not in self.units:
                        raise ValueError(f"no base unit for {symbol}")
                    c.taken[symbol] = 0
            q = _quanta(e.units, scale)
            if fee_factor is not None:
                cap = (e.index_price * fee_factor * index_unit).scaleb(_SCALE).as_integer_ratio()
                if c.cap is None or cap[0] * c.cap[1] < c.cap[0] * cap[1]:
                    c.cap = cap
            self._where[e.order_id] = (c, len(c.ids))
            c.ids.append(e.order_id)
            c.engaged.append(q)
            c.filled.append(0)
            c.engaged_total += q
        # Engaged need per asset, in base units (exact Decimal): the denominators of every fill rate.
        self._need: dict[str, Decimal] = {}
        for c in self._cohorts.values():
            for symbol, q in c.quantities.items():
                self._need[symbol] = self._need.get(symbol, ZERO) + q * c.engaged_total * index_unit / self.units[symbol]
        self._lots: dict[str, list[Lot]] = {s: [] for s in self._need}
        self._head: dict[str, int] = {s: 0 for s in self._need}  # index of the first lot with units left
        self._received: dict[str, int] = {s: 0 for s in self._need}
        self._seen: set[str] = set()
        self._round = 0

    # ---- fills in ----------------------------------------------------------------------------------------------
    def add_lots(self, lots: Iterable[Lot]) -> int:
        """Add fills (or carried-in inventory). A lot id seen before is ignored: replays are safe."""
        added = 0
        for lot in lots:
            if lot.lot_id in self._seen:
                continue
            if lot.symbol not in self._lots:
                if lot.symbol not in self.units:
                    raise ValueError(f"batch {self.batch_id} has no position in {lot.symbol}")
                # An asset no engaged order needs (its orders were cancelled before the engage, and the exchange
                # order had already left): it is received, never assigned, and left over whole.
                self._lots[lot.symbol], self._head[lot.symbol], self._received[lot.symbol] = [], 0, 0
            if lot.unit != self.units[lot.symbol]:
                raise ValueError(f"lot {lot.lot_id} counts in {lot.unit}, the batch in {self.units[lot.symbol]}")
            self._seen.add(lot.lot_id)
            self._lots[lot.symbol].append(lot)
            self._received[lot.symbol] += lot.remaining
            added += 1
        return added

    # ---- assignment --------------------------------------------------------------------------------------------
    def _rate(self, c: _Cohort) -> tuple[int, int]:
        """min(1, min_a received_a / need_a) as an exact fraction (numerator, denominator)."""
        num, den = 1, 1
        for symbol in c.quantities:
            n, d = self._need[symbol].as_integer_ratio()
            # received / (n / d) = received * d / n
            rn, rd = self._received[symbol] * d, n
            if rn * den < num * rd:
                num, den = rn, rd
        return num, den

    def assign(self) -> list[AssignedFill]:
        """Hand out what arrived since the last call. Returns one AssignedFill per order whose filled units grew."""
        fills: list[AssignedFill] = []
        self._round += 1
        for c in self._cohorts.values():
            num, den = self._rate(c)
            filled = c.filled
            deltas, grown = self._deltas(c, num, den)
            if grown and c.cap is not None:
                total = c.filled_total + grown
                if self._cost_at(c, total) * c.cap[1] > c.cap[0] * total:  # over the cap at the full rate
                    num, den = self._capped_rate(c, num, den)
                    deltas, grown = self._deltas(c, num, den)
            if not grown:
                continue
            c.filled_total += grown
            rnd = _Round(grown, {}, {}, {}, {})
            value_total = fee_total = 0
            filled_dec = Decimal(c.filled_total) * self.index_unit
            for symbol, q in c.quantities.items():
                target = int((q * filled_dec / self.units[symbol]).to_integral_value(rounding=ROUND_FLOOR))
                take = target - c.taken[symbol]
                if take <= 0:
                    continue
                slices = self._take(symbol, take)
                c.taken[symbol] = target
                v = sum(_cost_int(s.value) for s in slices)
                fe = sum(_cost_int(s.fee) for s in slices)
                rnd.units[symbol], rnd.value[symbol], rnd.fee[symbol] = take, v, fe
                rnd.lot_ids[symbol] = [s.lot_id for s in slices]
                value_total += v
                fee_total += fe
            c.rounds.append(rnd)
            c.cost_total += value_total + fee_total
            # Telescoping split of the round's cost over its orders, by units filled.
            running = 0
            v_prev = f_prev = 0
            index_unit = self.index_unit
            entries = rnd.entries
            ids = c.ids
            index = c.index
            append = fills.append
            for i, d in deltas:
                entries.append((i, running, d))
                running += d
                v_here = value_total * running // grown
                f_here = fee_total * running // grown
                filled[i] += d
                append(AssignedFill(ids[i], index, d, index_unit, v_here - v_prev, f_here - f_prev))
                v_prev, f_prev = v_here, f_here
        return fills

    @staticmethod
    def _deltas(c: _Cohort, num: int, den: int) -> tuple[list[tuple[int, int]], int]:
        """(order position, units it grows by) at rate num/den, and their sum."""
        deltas: list[tuple[int, int]] = []
        grown = 0
        filled = c.filled
        for i, e in enumerate(c.engaged):
            target = e * num // den
            if target > filled[i]:
                deltas.append((i, target - filled[i]))
                grown += target - filled[i]
        return deltas, grown

    def _total_at(self, c: _Cohort, num: int, den: int) -> int:
        return sum(max(f, e * num // den) for e, f in zip(c.engaged, c.filled))

    def _cost_at(self, c: _Cohort, total: int) -> int:
        """Cumulative cost (1e-24 quote) if the cohort had `total` index quanta filled: taken so far + a peek."""
        cost = c.cost_total
        filled_dec = Decimal(total) * self.index_unit
        for symbol, q in c.quantities.items():
            target = int((q * filled_dec / self.units[symbol]).to_integral_value(rounding=ROUND_FLOOR))
            cost += self._peek(symbol, target - c.taken[symbol])
        return cost

    def _affordable(self, c: _Cohort, num: int, den: int) -> bool:
        total = self._total_at(c, num, den)
        assert c.cap is not None
        return self._cost_at(c, total) * c.cap[1] <= c.cap[0] * total

    def _capped_rate(self, c: _Cohort, num: int, den: int) -> tuple[int, int]:
        """The full rate if the cohort can pay for it under its cap; else the highest k / 2^30 of it that it can
        (k = 0, no growth, is always affordable: the cumulative cost already obeys the cap)."""
        if num == 0:
            return num, den
        # Affordability need not fall steadily as the rate rises (cheap lots may follow dear ones), so a bisection
        # alone may stop at a low boundary: the highest affordable point of a coarse grid is found first, and the
        # bisection then refines between it and the next grid point up.
        steps = 1 << 30
        grid = 64
        lo = 0
        for k in range(grid - 1, 0, -1):
            if self._affordable(c, num * k, den * grid):
                lo = k * (steps // grid)
                break
        hi = lo + steps // grid
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._affordable(c, num * mid, den * steps):
                lo = mid
            else:
                hi = mid
        return num * lo, den * steps

    def _peek(self, symbol: str, units: int) -> int:
        """What taking `units` from the front of the symbol's lots would cost, without taking them."""
        if units <= 0:
            return 0
        lots = self._lots[symbol]
        i = self._head[symbol]
        cost = 0
        while units and i < len(lots):
            lot = lots[i]
            n = min(units, lot.remaining)
            if n:
                start = lot.consumed
                cost += _cost_int(lot.price * lot.unit * n) + _cost_int(lot.fee_upto(start + n) - lot.fee_upto(start))
                units -= n
            i += 1
        return cost

    def _take(self, symbol: str, units: int) -> list[Slice]:
        lots = self._lots[symbol]
        i = self._head[symbol]
        out: list[Slice] = []
        while units:
            if i >= len(lots):
                raise AssertionError(f"{symbol}: assignment drew more than was received")  # proven impossible
            lot = lots[i]
            n = min(units, lot.remaining)
            if n:
                out.append(lot.take(n))
                units -= n
            if lot.remaining == 0:
                i += 1
        self._head[symbol] = i
        return out

    # ---- results -----------------------------------------------------------------------------------------------
    def filled_units(self, order_id: str) -> Decimal:
        c, i = self._where[order_id]
        return Decimal(c.filled[i]) * self.index_unit

    def leftovers(self) -> list[Lot]:
        """Unassigned units of every lot, as inventory lots with their exact unshared fees (FIFO order kept)."""
        out = []
        for symbol, lots in self._lots.items():
            for lot in lots[self._head[symbol]:]:
                if lot.remaining:
                    out.append(lot.leftover())
        return out

    def received_units(self) -> dict[str, int]:
        return dict(self._received)

    def assigned_units(self) -> dict[str, int]:
        out = {s: 0 for s in self._lots}
        for c in self._cohorts.values():
            for s, n in c.taken.items():
                out[s] += n
        return out

    def breakdown(self, order_id: str) -> list[AssetLine]:
        """One order's share of each asset its cohort took, per round, by telescoping the round's units and costs
        over the round's orders: the order's lines of all orders add up to the cohort's exactly."""
        c, pos = self._where[order_id]
        units: dict[str, int] = {}
        value: dict[str, int] = {}
        fee: dict[str, int] = {}
        lot_ids: dict[str, list[str]] = {}
        for rnd in c.rounds:
            k = bisect_left(rnd.entries, (pos,))
            if k == len(rnd.entries) or rnd.entries[k][0] != pos:
                continue
            _, before, d = rnd.entries[k]
            after = before + d
            for symbol, n in rnd.units.items():
                units[symbol] = units.get(symbol, 0) + n * after // rnd.filled - n * before // rnd.filled
                v, fe = rnd.value[symbol], rnd.fee[symbol]
                value[symbol] = value.get(symbol, 0) + v * after // rnd.filled - v * before // rnd.filled
                fee[symbol] = fee.get(symbol, 0) + fe * after // rnd.filled - fe * before // rnd.filled
                known = lot_ids.setdefault(symbol, [])
                known.extend(x for x in rnd.lot_ids[symbol] if x not in known)
        return [
            AssetLine(s, units[s], Decimal(units[s]) * self.units[s], _cost_dec(value[s]), _cost_dec(fee[s]),
                      tuple(lot_ids[s]))
            for s in units
        ]

    def check(self) -> None:
        """Conservation, exactly: assigned + left over == received, per asset, in base units."""
        assigned = self.assigned_units()
        left: dict[str, int] = {s: 0 for s in self._lots}
        for symbol, lots in self._lots.items():
            left[symbol] = sum(l.remaining for l in lots)
        for s in self._lots:
            if assigned[s] + left[s] != self._received[s]:
                raise AssertionError(f"{s}: assigned {assigned[s]} + left {left[s]} != received {self._received[s]}")

"""Lot assignment: exact conservation, no over-fill, the spec's worked example, replay safety."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.basket import Basket, BasketAsset
from core.batch_planner import Engagement
from core.lot_assignment import BatchAllocation
from core.lots import Lot, lot_from_fill

UNIT = Decimal("1e-8")
IU = Decimal("1e-18")


def lot(symbol: str, trade: int, qty: str, price: str, fee: str = "0") -> Lot:
    return Lot(f"{symbol}:{trade}", symbol, int(Decimal(qty) / UNIT), UNIT, Decimal(price), Decimal(fee))


def test_spec_worked_example_two_orders_one_asset():
    """spec/domain.md §6.3: A engages 0.6, B 0.4 of X; fills 0.5 @ 100 (fee 0.05) then 0.7 @ 101 (fee 0.0707)."""
    baskets = {"X1": Basket("X1", (BasketAsset("XUSDC", Decimal(1)),))}
    engagements = [Engagement("A", "X1", Decimal("0.6"), Decimal(61), Decimal(101)),
                   Engagement("B", "X1", Decimal("0.4"), Decimal(41), Decimal(101))]
    alloc = BatchAllocation("b", engagements, baskets, {"XUSDC": UNIT}, IU)

    alloc.add_lots([lot("XUSDC", 1, "0.5", "100", "0.05")])
    first = {f.order_id: f for f in alloc.assign()}
    assert first["A"].units == Decimal("0.3") and first["B"].units == Decimal("0.2")
    assert first["A"].cost == Decimal("30.03") and first["B"].cost == Decimal("20.02")

    alloc.add_lots([lot("XUSDC", 2, "0.7", "101", "0.0707")])
    second = {f.order_id: f for f in alloc.assign()}
    assert second["A"].units == Decimal("0.3") and second["B"].units == Decimal("0.2")
    assert second["A"].cost == Decimal("30.3303") and second["B"].cost == Decimal("20.2202")

    left = alloc.leftovers()
    assert [(l.symbol, l.remaining * UNIT) for l in left] == [("XUSDC", Decimal("0.2"))]
    assert left[0].fee == Decimal("0.0202")  # 0.0707 * 0.2 / 0.7, exactly what the slices did not take
    alloc.check()


def test_replayed_lots_and_empty_rounds_change_nothing():
    baskets = {"X1": Basket("X1", (BasketAsset("XUSDC", Decimal(1)),))}
    alloc = BatchAllocation("b", [Engagement("A", "X1", Decimal(1), Decimal(101), Decimal(101))], baskets,
                            {"XUSDC": UNIT}, IU)
    assert alloc.add_lots([lot("XUSDC", 1, "0.4", "100")]) == 1
    assert len(alloc.assign()) == 1
    assert alloc.add_lots([lot("XUSDC", 1, "0.4", "100")]) == 0  # the same trade id again
    assert alloc.assign() == []
    assert alloc.filled_units("A") == Decimal("0.4")


def test_scarcest_asset_sets_the_pace():
    baskets = {"I": Basket("I", (BasketAsset("AUSDC", Decimal(2)), BasketAsset("BUSDC", Decimal(3))))}
    alloc = BatchAllocation("b", [Engagement("o", "I", Decimal(1), Decimal(10), Decimal(5))], baskets,
                            {"AUSDC": UNIT, "BUSDC": UNIT}, IU)
    alloc.add_lots([lot("AUSDC", 1, "2", "1"), lot("BUSDC", 1, "1.5", "1")])  # all of A, half of B
    (fill,) = alloc.assign()
    assert fill.units == Decimal("0.5")
    assert alloc.assigned_units() == {"AUSDC": 100_000_000, "BUSDC": 150_000_000}


def test_commission_in_base_reduces_the_lot_and_becomes_fee():
    l = lot_from_fill(trade_id=7, symbol="BTCUSDC", base_asset="BTC", quote_asset="USDC", price=Decimal("60000"),
                      quantity=Decimal("0.01"), commission=Decimal("0.00001"), commission_asset="BTC", unit=UNIT)
    assert l.quantity == 999_000 and l.fee == Decimal("0.6")
    assert l.value + l.fee == Decimal("600")
    with pytest.raises(ValueError):
        lot_from_fill(trade_id=8, symbol="BTCUSDC", base_asset="BTC", quote_asset="USDC", price=Decimal("1"),
                      quantity=Decimal("1"), commission=Decimal("0.1"), commission_asset="BNB", unit=UNIT)


SYMBOLS = ["AUSDC", "BUSDC", "CUSDC", "DUSDC"]


@st.composite
def batches(draw):
    n_idx = draw(st.integers(1, 3))
    baskets = {}
    for i in range(n_idx):
        syms = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
        assets = tuple(
            BasketAsset(s, Decimal(draw(st.integers(1, 10**9))).scaleb(-draw(st.integers(0, 12)))) for s in syms
        )
        baskets[f"I{i}"] = Basket(f"I{i}", assets)
    engagements = []
    for k in range(draw(st.integers(1, 12))):
        index = draw(st.sampled_from(sorted(baskets)))
        units = Decimal(draw(st.integers(1, 10**18))).scaleb(-18)
        engagements.append(Engagement(f"o{k}", index, units, Decimal(10**9), Decimal(1)))
    need: dict[str, Decimal] = {}
    for e in engagements:
        for a in baskets[e.index].assets:
            need[a.symbol] = need.get(a.symbol, Decimal(0)) + a.quantity * e.units
    lots = []
    for s, n in need.items():
        target = int(n / UNIT) + 1
        for t in range(draw(st.integers(0, 4))):
            permille = draw(st.integers(0, 800))
            qty = max(1, target * permille // 1000)
            price = Decimal(draw(st.integers(1, 10**12))).scaleb(-8)
            fee = Decimal(draw(st.integers(0, 10**10))).scaleb(-16)
            lots.append(Lot(f"{s}:{t}", s, qty, UNIT, price, fee))
    order = draw(st.permutations(lots))
    cuts = sorted(draw(st.lists(st.integers(0, len(lots)), max_size=4)))
    return baskets, engagements, order, cuts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_conservation_and_no_overfill(case):
    baskets, engagements, lots, cuts = case
    alloc = BatchAllocation("b", engagements, baskets, {s: UNIT for s in SYMBOLS}, IU)
    fills = []
    start = 0
    for cut in cuts + [len(lots)]:
        alloc.add_lots(lots[start:cut])
        start = max(start, cut)
        fills.extend(alloc.assign())
    alloc.check()

    # Units: assigned + left over == received, exactly, per asset.
    left = alloc.leftovers()
    received = alloc.received_units()
    assigned = alloc.assigned_units()
    for s in received:
        assert assigned[s] + sum(l.remaining for l in left if l.symbol == s) == received[s]

    # Money: what orders were charged + what inventory carries == what the fills cost, exactly.
    total_in = sum((l.value + l.fee for l in lots), Decimal(0))
    charged = sum((f.cost for f in fills), Decimal(0))
    carried = sum((l.value + l.fee for l in left), Decimal(0))
    assert charged + carried == total_in

    # No order over-filled; each cohort is backed to within one base unit per asset.
    per_order: dict[str, Decimal] = {}
    for f in fills:
        per_order[f.order_id] = per_order.get(f.order_id, Decimal(0)) + f.units
    for e in engagements:
        assert per_order.get(e.order_id, Decimal(0)) <= e.units
        assert per_order.get(e.order_id, Decimal(0)) == alloc.filled_units(e.order_id)

    # The breakdown of all orders adds up to what the cohorts took, per asset.
    by_symbol: dict[str, int] = {}
    for e in engagements:
        for line in alloc.breakdown(e.order_id):
            by_symbol[line.symbol] = by_symbol.get(line.symbol, 0) + line.units
    for s, n in assigned.items():
        assert by_symbol.get(s, 0) == n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=20), st.integers(1, 100))
def test_full_fill_fills_every_order_and_equal_orders_fill_equally(sizes, extra_pct):
    baskets = {"I": Basket("I", (BasketAsset("AUSDC", Decimal("0.37")), BasketAsset("BUSDC", Decimal("12.5"))))}
    engagements = [Engagement(f"o{i}", "I", Decimal(n).scaleb(-6), Decimal(10**9), Decimal(1))
                   for i, n in enumerate(sizes)]
    total = sum(e.units for e in engagements)
    lots = [lot("AUSDC", 1, str((total * Decimal("0.37") * (100 + extra_pct) / 100).quantize(UNIT)), "3"),
            lot("BUSDC", 1, str((total * Decimal("12.5") * (100 + extra_pct) / 100).quantize(UNIT)), "0.5")]
    alloc = BatchAllocation("b", engagements, baskets, {"AUSDC": UNIT, "BUSDC": UNIT}, IU)
    alloc.add_lots(lots)
    alloc.assign()
    for e in engagements:
        assert alloc.filled_units(e.order_id) == e.units
    # Half the fills: orders of equal size fill equally (one rate per cohort).
    alloc2 = BatchAllocation("b", engagements, baskets, {"AUSDC": UNIT, "BUSDC": UNIT}, IU)
    alloc2.add_lots([Lot(l.lot_id, l.symbol, l.quantity // 2, UNIT, l.price, l.fee) for l in lots])
    alloc2.assign()
    by_size: dict[Decimal, set[Decimal]] = {}
    for e in engagements:
        by_size.setdefault(e.units, set()).add(alloc2.filled_units(e.order_id))
    assert all(len(v) == 1 for v in by_size.values())


# ---- the price cap: orders sized at the expected price are never charged over it --------------------------------
FF = Decimal("1.002")


def test_dearer_fills_fill_less_and_never_charge_over_the_cap():
    """Sized at 100 per unit; the exchange filled at 100 then 110. The cohort may pay at most 100.2 per unit, so it
    takes all of the cheap lot and only as much of the dear one as keeps its average under the cap."""
    baskets = {"X1": Basket("X1", (BasketAsset("XUSDC", Decimal(1)),))}
    engagements = [Engagement("A", "X1", Decimal("0.6"), Decimal("60.12"), Decimal(100)),
                   Engagement("B", "X1", Decimal("0.4"), Decimal("40.08"), Decimal(100))]
    alloc = BatchAllocation("b", engagements, baskets, {"XUSDC": UNIT}, IU, FF)
    alloc.add_lots([lot("XUSDC", 1, "0.5", "100"), lot("XUSDC", 2, "0.5", "110")])
    fills = alloc.assign()
    cost = {f.order_id: f.cost for f in fills}
    units = {f.order_id: f.units for f in fills}
    for e in engagements:
        assert cost[e.order_id] <= units[e.order_id] * Decimal(100) * FF  # under the cap per unit
        assert cost[e.order_id] <= e.collateral
    total_units = sum(units.values())
    # Uncapped it would fill 1.0 at 105 average; capped: 0.5 @ 100 + x @ 110 <= 100.2 (0.5 + x) -> x <= 0.0102...
    assert Decimal("0.51") < total_units < Decimal("0.5103")
    assert units["A"] / units["B"] == pytest.approx(Decimal("1.5"), rel=Decimal("1e-6"))  # same fraction each
    alloc.check()  # what the cohort could not pay for stays as inventory, exactly
    left = sum(l.remaining for l in alloc.leftovers())
    assert left + alloc.assigned_units()["XUSDC"] == 10**8 and left * UNIT > Decimal("0.48")


def test_cheap_fills_are_not_capped():
    baskets = {"X1": Basket("X1", (BasketAsset("XUSDC", Decimal(1)),))}
    engagements = [Engagement("A", "X1", Decimal(1), Decimal("100.2"), Decimal(100))]
    alloc = BatchAllocation("b", engagements, baskets, {"XUSDC": UNIT}, IU, FF)
    alloc.add_lots([lot("XUSDC", 1, "1", "99.9", "0.0999")])
    (f,) = alloc.assign()
    assert f.units == Decimal(1) and f.cost == Decimal("99.9999")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 10**6), min_size=1, max_size=12),
    rounds=st.lists(st.lists(st.tuples(st.integers(1, 300), st.integers(9000, 11500)), min_size=1, max_size=3),
                    min_size=1, max_size=4),
)
def test_no_order_is_ever_charged_over_its_reserve(sizes, rounds):
    """Orders sized like the planner sizes them (collateral less one micro-unit, at 100 * 1.002 per unit); lots at
    prices from 10 % under to 15 % over the sizing price, in several rounds: each order's cumulative cost stays
    within its reserve (the order's collateral), whatever the prices."""
    price = Decimal(100)
    baskets = {"I": Basket("I", (BasketAsset("AUSDC", Decimal(2)), BasketAsset("BUSDC", Decimal("0.5"))))}
    engagements = []
    for k, cents in enumerate(sizes):
        collateral = Decimal(cents).scaleb(-2)
        units = ((collateral - Decimal("0.000001")) / (price * FF)).quantize(IU, rounding="ROUND_DOWN")
        if units > 0:
            # Basket value per index unit at the sizing prices: 2 * 40 + 0.5 * 40 = 100 (both assets priced 40).
            engagements.append(Engagement(f"o{k}", "I", units, collateral, price))
    if not engagements:
        return
    alloc = BatchAllocation("b", engagements, baskets, {"AUSDC": UNIT, "BUSDC": UNIT}, IU, FF)
    spent: dict[str, Decimal] = {}
    trade = 0
    for rnd in rounds:
        lots = []
        for pct, p in rnd:
            for symbol, q in (("AUSDC", Decimal(2)), ("BUSDC", Decimal("0.5"))):
                trade += 1
                need = sum((e.units for e in engagements), Decimal(0)) * q
                qty = (need * pct / 300).quantize(UNIT, rounding="ROUND_DOWN")
                if qty > 0:
                    px = Decimal(40) * p / 10000
                    lots.append(Lot(f"{symbol}:{trade}", symbol, int(qty / UNIT), UNIT, px, px * qty / 1000))
        alloc.add_lots(lots)
        for f in alloc.assign():
            spent[f.order_id] = spent.get(f.order_id, Decimal(0)) + f.cost
    for e in engagements:
        assert spent.get(e.order_id, Decimal(0)) <= e.collateral - Decimal("0.000001") + Decimal("1e-9")
        assert alloc.filled_units(e.order_id) <= e.units
    alloc.check()

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

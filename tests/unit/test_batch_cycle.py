"""A whole batch cycle in core, no I/O: plan -> exchange fills (any price up to the limit, commission in the asset,
any partial fill) -> lot assignment -> the users' index order books, with orders of three indexes that share assets
netted into one exchange order per asset. No order is charged above what it engaged or over its collateral, the
orders' charges plus inventory equal what the exchange was paid, every asset's units received are the units given
to the orders of every index plus inventory, and releasing the unspent engagement puts every order back in a
consistent state."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.basket import Basket, BasketAsset, load_indexes
from core.batch_planner import PendingOrder, PlannerLimits, plan_batch
from core.collateral_ledger import CollateralLedger
from core.index_order_book import UserOrderBook
from core.lot_assignment import BatchAllocation
from core.lots import lot_from_fill
from core.money import quantize_down, quantize_up
from core.symbol_filters import parse_exchange_info

BEST = {"BTCUSDC": "60000.00", "ETHUSDC": "2500.00", "XRPUSDC": "0.5000", "SOLUSDC": "140.00",
        "BNBUSDC": "550.0", "DOGEUSDC": "0.10000"}
U = Decimal("0.000001")
INDEXES = ("SY100.dev", "MAJORS", "ALTS")


@pytest.fixture(scope="module")
def world(exchange_info, data_dir):
    baskets = load_indexes(data_dir / "indexes")
    # Two more indexes over SY100.dev's pairs, each sharing some with it and with each other.
    baskets["MAJORS"] = Basket("MAJORS", (BasketAsset("BTCUSDC", Decimal("0.01")), BasketAsset("ETHUSDC", Decimal("0.2")),
                                          BasketAsset("SOLUSDC", Decimal("3"))))
    baskets["ALTS"] = Basket("ALTS", (BasketAsset("ETHUSDC", Decimal("0.05")), BasketAsset("XRPUSDC", Decimal("400")),
                                      BasketAsset("DOGEUSDC", Decimal("2500")), BasketAsset("BNBUSDC", Decimal("0.3"))))
    return parse_exchange_info(exchange_info), baskets


@st.composite
def cycles(draw):
    users = draw(st.integers(1, 4))
    orders = [(f"u{draw(st.integers(0, users - 1))}", draw(st.sampled_from(INDEXES)),
               Decimal(draw(st.integers(20, 20_000)))) for _ in range(draw(st.integers(1, 8)))]
    pct = st.one_of(st.just(100), st.integers(0, 100))  # complete fills are common and the hardest case
    fills = {s: (draw(pct), draw(pct), draw(st.integers(1, 3))) for s in BEST}
    return orders, fills


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles())
def test_one_batch_cycle_keeps_every_book_whole(world, case):
    filters, baskets = world
    orders, fills = case
    limits = PlannerLimits()
    books: dict[str, UserOrderBook] = {}
    pending = []
    for k, (user, index, amount) in enumerate(orders):
        book = books.get(user)
        if book is None:
            ledger = CollateralLedger(U)
            ledger.credit(f"dep-{user}", Decimal(10**6))
            book = books[user] = UserOrderBook(user, ledger, unit=U, max_open_orders=100,
                                               known_indexes=baskets.keys())
        book.new_order(f"c{k}", index, "BUY", amount, now_ms=k)
        pending.append(PendingOrder(f"{user}:c{k}", index, amount))

    asks = {s: [(Decimal(p) + filters[s].tick_size * i, Decimal(10**6)) for i in range(5)] for s, p in BEST.items()}
    plan = plan_batch(pending, baskets, asks, filters, order_budget=10, limits=limits)
    assert len({leg.symbol for leg in plan.legs}) == len(plan.legs)  # one exchange order per asset, across indexes
    for e in plan.engagements:
        user, cl = e.order_id.split(":")
        books[user].engage(cl, e.collateral)

    # The exchange fills each asset order partly, in up to 3 fills, at prices between the best ask and the limit.
    lots = []
    paid = Decimal(0)
    for o in plan.legs:
        pct, price_pct, n = fills[o.symbol]
        f = filters[o.symbol]
        filled = quantize_down(o.quantity * pct / 100, f.step_size)
        best = asks[o.symbol][0][0]
        price = quantize_down(best + (o.price - best) * price_pct / 100, f.tick_size)
        parts = [quantize_down(filled / n, f.step_size)] * (n - 1)
        parts.append(filled - sum(parts, Decimal(0)))
        for t, qty in enumerate(parts):
            if qty <= 0:
                continue
            commission = quantize_up(qty * limits.commission_rate, Decimal("1e-8"))
            lots.append(lot_from_fill(trade_id=t, symbol=o.symbol, base_asset=f.base_asset, quote_asset="USDC",
                                      price=price, quantity=qty, commission=commission,
                                      commission_asset=f.base_asset, unit=f.base_unit))
            paid += qty * price

    alloc = BatchAllocation("b1", plan.engagements, baskets, {s: filters[s].base_unit for s in BEST},
                            limits.index_unit, limits.fee_factor)
    alloc.add_lots(lots)
    charged = Decimal(0)
    for fill in alloc.assign():
        user, cl = fill.order_id.split(":")
        books[user].apply_fill(cl, fill.units, fill.cost)  # raises if a charge exceeded the engagement
        charged += fill.cost
    carried = sum((l.value + l.fee for l in alloc.leftovers()), Decimal(0))
    assert charged + carried == paid  # every unit of quote the exchange took is accounted for, exactly
    # Per asset: the units received are the units in the invoices of the orders of every index, plus inventory.
    given: dict[str, int] = {}
    for e in plan.engagements:
        for line in alloc.breakdown(e.order_id):
            given[line.symbol] = given.get(line.symbol, 0) + line.units
    for symbol, received in alloc.received_units().items():
        left = sum(l.remaining for l in alloc.leftovers() if l.symbol == symbol)
        assert given.get(symbol, 0) + left == received, symbol

    # Batch complete: unspent engagement goes back; each book balances and no order spent over its collateral.
    for e in plan.engagements:
        user, cl = e.order_id.split(":")
        order = books[user].get(cl)
        books[user].release(cl, order.engaged)
    for book in books.values():
        book.check()
        for order in book:
            assert order.spent <= order.collateral
            assert order.engaged == 0

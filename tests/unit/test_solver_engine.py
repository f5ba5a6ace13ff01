"""The solver engine over several batches: inventory carried from one batch nets the next, every base unit the
exchange delivered is either assigned or in inventory, and a snapshot taken mid-batch and restored in a fresh engine
continues with exactly the same fills as an engine that never stopped."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.asset_order import ExchangeFill
from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits
from core.money import quantize_down, quantize_up
from core.solver_engine import SolverEngine
from core.symbol_filters import parse_exchange_info

BEST = {"BTCUSDC": "60000.00", "ETHUSDC": "2500.00", "XRPUSDC": "0.5000", "SOLUSDC": "140.00",
        "BNBUSDC": "550.0", "DOGEUSDC": "0.10000"}


@pytest.fixture(scope="module")
def world(exchange_info, data_dir):
    filters = parse_exchange_info(exchange_info)
    baskets = {"SY100.dev": load_indexes(data_dir / "indexes")["SY100.dev"]}
    asks = {s: [(Decimal(p) + filters[s].tick_size * i, Decimal(10**5)) for i in range(5)] for s, p in BEST.items()}
    return filters, baskets, asks


def exchange_fills(engine, batch_id, filters, pct: int, trade_base: int):
    """The exchange fills `pct`% of each asset order in two trades at its limit, commission 0.1% in the asset."""
    out = []
    for k, sent in enumerate(engine.sent_orders(batch_id)):
        o, f = sent.order, filters[sent.order.symbol]
        qty = quantize_down(o.quantity * pct / 100, f.step_size)
        half = quantize_down(qty / 2, f.step_size)
        for j, part in enumerate((half, qty - half)):
            if part > 0:
                fee = quantize_up(part * Decimal("0.001"), Decimal("1e-8"))
                out.append((sent.client_order_id,
                            ExchangeFill(trade_base + 10 * k + j, o.price, part, fee, f.base_asset)))
    return out


def engine_holding_inventory(world, user: str = "u0"):
    """An engine whose first batch (one 300 USDC order) filled wholly: padding and rounding left inventory."""
    filters, baskets, asks = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    b1, _ = engine.plan([PendingOrder(f"{user}:c1", "SY100.dev", Decimal(300))], asks, order_budget=10)
    engine.on_fills(exchange_fills(engine, b1, filters, 100, 1000))
    engine.on_settled(s.client_order_id for s in engine.sent_orders(b1))
    return engine


def test_two_batches_inventory_and_conservation(world):
    filters, baskets, asks = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    received: dict[str, int] = {}
    assigned: dict[str, int] = {}
    pending = [PendingOrder(f"u{i}:c1", "SY100.dev", Decimal(300 + 7 * i)) for i in range(3)]
    b1, plan1 = engine.plan(pending, asks, order_budget=10)
    assert b1 == "b1" and len(plan1.legs) == 6
    fills = exchange_fills(engine, b1, filters, 100, 1000)
    deltas = engine.on_fills(fills)
    assert {d.order_id for d in deltas} == {o.order_id for o in pending}
    # A second plan while b1 is in flight does not engage its orders again.
    again, _ = engine.plan(pending, asks, order_budget=10)
    assert again is None
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(b1))
    for cid, f in fills:
        sym = cid.split(".")[1]
        received[sym] = received.get(sym, 0) + int((f.quantity - f.commission) / filters[sym].base_unit)
    for lines in done.lines.values():
        for line in lines:
            assigned[line.symbol] = assigned.get(line.symbol, 0) + line.units
    inv = engine.inventory_units()
    for sym in received:
        assert assigned.get(sym, 0) + inv.get(sym, 0) == received[sym]
    assert any(inv.values())  # padding and rounding left inventory

    # A small second order is served partly from that inventory: the exchange order shrinks or disappears.
    b2, plan2 = engine.plan([PendingOrder("u9:c1", "SY100.dev", Decimal(20))], asks, order_budget=10)
    assert b2 == "b2" and plan2.inventory_used
    carried = engine.assign_carried(b2)
    held_before = sum(inv.values())
    assert sum(engine.inventory_units().values()) < held_before
    if not plan2.legs:
        assert carried and engine.complete_if_no_orders(b2) is not None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 100), st.integers(1, 5), st.integers(0, 2))
def test_restore_mid_batch_continues_identically(world, pct, n_orders, cut):
    filters, baskets, asks = world
    pending = [PendingOrder(f"u{i}:c", "SY100.dev", Decimal(100 * (i + 1))) for i in range(n_orders)]

    def run(restart: bool):
        engine = SolverEngine(baskets, filters, PlannerLimits())
        batch_id, _ = engine.plan(pending, asks, order_budget=10)
        fills = exchange_fills(engine, batch_id, filters, pct, 5000)
        results = []
        chunks = [fills[: cut * 3], fills[cut * 3:]]
        for i, chunk in enumerate(chunks):
            results.extend((d.order_id, d.units_q, d.value_q, d.fee_q) for d in engine.on_fills(chunk))
            if restart and i == 0:
                snap = json.loads(json.dumps(engine.snapshot()))  # what Redis would hold
                engine = SolverEngine(baskets, filters, PlannerLimits())
                engine.restore(snap)
        (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(batch_id))
        return results, dict(done.filled_units), engine.inventory_units()

    assert run(restart=True) == run(restart=False)


def test_unknown_fills_are_refused(world):
    filters, baskets, asks = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    with pytest.raises(KeyError):
        engine.on_fills([("b9.BTCUSDC.0", ExchangeFill(1, Decimal(1), Decimal(1), Decimal(0), None))])
    with pytest.raises(KeyError):
        engine.on_fills([("manual-order", ExchangeFill(1, Decimal(1), Decimal(1), Decimal(0), None))])
    assert engine.on_settled(["b9.BTCUSDC.0"]) == []


def test_restore_after_carried_inventory_replays_what_arrived(world):
    """A batch that starts with inventory has a round assigned before any fill: its snapshot must hold the lots as
    they arrived (nothing consumed), or the replay sees less received and the restored batch drifts."""
    filters, baskets, asks = world
    engine = engine_holding_inventory(world)
    assert any(engine.inventory_units().values())

    pending = [PendingOrder(f"u{i}:c2", "SY100.dev", Decimal(200 + i)) for i in range(2)]
    b2, plan2 = engine.plan(pending, asks, order_budget=10)
    assert plan2.inventory_used
    carried = engine.assign_carried(b2)
    assert carried
    snap = json.loads(json.dumps(engine.snapshot()))
    restored = SolverEngine(baskets, filters, PlannerLimits())
    restored.restore(snap)
    fills = exchange_fills(engine, b2, filters, 100, 2000)
    a = [(d.order_id, d.units_q, d.value_q, d.fee_q) for d in engine.on_fills(fills)]
    b = [(d.order_id, d.units_q, d.value_q, d.fee_q) for d in restored.on_fills(fills)]
    assert a == b
    (da,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(b2))
    (db,) = restored.on_settled(s.client_order_id for s in restored.sent_orders(b2))
    assert da.filled_units == db.filled_units and engine.inventory_units() == restored.inventory_units()


@pytest.mark.parametrize("pct", [0, 100])
def test_carried_inventory_left_pending_is_assigned_with_the_fills_or_at_completion(world, pct):
    """The solver leaves carried inventory pending while the batch has exchange orders: it is assigned in the same
    round as the first exchange fills, or, when none come (pct 0: every IOC expired), at completion, whose
    last_fills then carry it, never dropped."""
    filters, baskets, asks = world
    engine = engine_holding_inventory(world, "u1")
    held = engine.inventory_units()
    b2, plan2 = engine.plan([PendingOrder("u2:c1", "SY100.dev", Decimal(400))], asks, order_budget=10)
    assert plan2.inventory_used and plan2.legs  # partly from inventory, partly bought
    carried_units = sum(held.values()) - sum(engine.inventory_units().values())
    assert carried_units > 0
    fills = exchange_fills(engine, b2, filters, pct, 2000)
    deltas = engine.on_fills(fills) if fills else []
    assert len(engine.batches[b2].rounds) == (1 if fills else 0)  # carried and exchange lots: one round
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(b2))
    assert bool(done.last_fills) == (not fills) and done.rounds == 1
    units = sum(d.units_q for d in (*deltas, *done.last_fills))
    assert Decimal(units).scaleb(-18) == done.filled_units["u2:c1"] and units > 0  # units_q: 1e-18 units
    # Every carried unit is either in the order's lines or back in inventory.
    in_lines = sum(line.units for line in done.lines["u2:c1"])
    back = sum(done.inventory_in.values())
    received = sum(int((f.quantity - f.commission) / filters[c.split(".")[1]].base_unit) for c, f in fills)
    assert in_lines + back == carried_units + received


@pytest.mark.parametrize("orders_out", [False, True])
def test_a_batch_nobody_engaged_is_dropped_or_buys_inventory_once_its_orders_left(world, orders_out):
    """Every order was cancelled between the plan and the engage. If the exchange orders were still to go out, the
    batch closes with its carried inventory back in stock; if they left with the engage (the solver sends the
    batch while the shards engage it), the batch stays open with no order, and everything it receives, carried
    or bought, is inventory when it completes: no fill is refused, none is assigned, none is lost."""
    filters, baskets, asks = world
    engine = engine_holding_inventory(world)
    before = engine.inventory_units()
    b2, plan2 = engine.plan([PendingOrder(f"u{i}:c2", "SY100.dev", Decimal(200 + i)) for i in range(2)], asks,
                            order_budget=10)
    assert plan2.inventory_used and plan2.legs
    assert engine.adjust_engagements(b2, {}, orders_out=orders_out) is False
    if not orders_out:
        assert b2 not in engine.batches and engine.inventory_units() == before
        return
    assert engine.batches[b2].plan.engagements == ()
    fills = exchange_fills(engine, b2, filters, 100, 2000)
    assert engine.on_fills(fills) == []  # nobody to assign to
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(b2))
    assert done.engagements == () and done.filled_units == {} and done.last_fills == ()
    received: dict[str, int] = {}
    for cid, f in fills:
        sym = cid.split(".")[1]
        received[sym] = received.get(sym, 0) + int((f.quantity - f.commission) / filters[sym].base_unit)
    after = engine.inventory_units()
    for sym in set(before) | set(received):
        assert after.get(sym, 0) == before.get(sym, 0) + received.get(sym, 0)


def test_holdings_count_inventory_in_flight_and_assigned_units_per_base_asset(world):
    """What the reserves check reads of the solver: inventory left by a completed batch, a second batch's lots
    still in flight, and what completed batches assigned (none of those counted twice)."""
    filters, baskets, asks = world
    engine = engine_holding_inventory(world)
    stock = engine.inventory_units()
    assert stock
    held = engine.holdings()
    for symbol, units in stock.items():
        f = filters[symbol]
        assert Decimal(held["inventory"][f.base_asset]) == units * f.base_unit
    assert held["in_flight"] == {} and Decimal(held["in_flight_cost"]) == 0 < Decimal(held["inventory_cost"])
    assert held["quote_asset"] == "USDC" and set(held["baskets"]) == {"SY100.dev"}
    b2, _ = engine.plan([PendingOrder("u1:c2", "SY100.dev", Decimal(500))], asks, order_budget=10)
    engine.on_fills(exchange_fills(engine, b2, filters, 50, 2000))
    moving = engine.holdings()
    assert moving["in_flight"] and Decimal(moving["in_flight_cost"]) > 0
    assert moving["assigned"] and all(Decimal(q) > 0 for q in moving["assigned"].values())
    assert set(moving["assigned"]) <= set(moving["base_assets"].values())

"""The solver engine plans sells with buys (core.crossing.plan_mixed): buys alone plan as they always did; a batch with
sells keeps them, their release and the crossings across a restart, and a sell engaged short shrinks its release."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.asset_order import ExchangeFill
from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits
from core.crossing import is_crossed, is_crossed_with_buys, plan_mixed
from core.money import quantize_down, quantize_up
from core.sell_assignment import STOPPED_BELOW_MINIMUM
from core.sell_plan import BELOW_MINIMUM, PendingSell
from core.side import Side
from core.solver_engine import SolverEngine
from core.symbol_filters import parse_exchange_info
from store.solver_records import SolverState
from tests.unit.test_solver_engine import BEST

INDEX = "SY100.dev"


@pytest.fixture(scope="module")
def world(exchange_info, data_dir):
    filters = parse_exchange_info(exchange_info)
    baskets = {INDEX: load_indexes(data_dir / "indexes")[INDEX]}
    asks = {s: [(Decimal(p) + filters[s].tick_size * (i + 1), Decimal(10**5)) for i in range(5)]
            for s, p in BEST.items()}
    bids = {s: [(Decimal(p) - filters[s].tick_size * i, Decimal(10**5)) for i in range(5)] for s, p in BEST.items()}
    return filters, baskets, asks, bids


def _sell_legs(engine, batch_id):
    return {s.order.symbol: s.order for s in engine.sent_orders(batch_id) if s.order.side is Side.SELL}


def test_buys_alone_plan_as_before_even_with_bids_given(world):
    filters, baskets, asks, bids = world
    buys = [PendingOrder("u1:c1", INDEX, Decimal(700)), PendingOrder("u2:c1", INDEX, Decimal(300))]
    plain = SolverEngine(baskets, filters, PlannerLimits())
    with_bids = SolverEngine(baskets, filters, PlannerLimits())
    b1, p1 = plain.plan(buys, asks, 10)
    b2, p2 = with_bids.plan(buys, asks, 10, sells=[], bids=bids)
    assert (b1, p1) == (b2, p2) and with_bids.sells_of(b2) == () and with_bids.crossings_of(b2) == {}
    assert with_bids.snapshot() == plain.snapshot()


def test_a_mixed_batch_keeps_the_plan_mixed_made(world):
    filters, baskets, asks, bids = world
    buys = [PendingOrder("u1:c1", INDEX, Decimal(400))]
    sells = [PendingSell("u2:c1", INDEX, Decimal("0.5"))]
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, plan = engine.plan(buys, asks, 10, sells=sells, bids=bids)
    expected = plan_mixed(buys, sells, baskets, filters, bids, asks, limits=PlannerLimits(), order_budget=10)
    assert batch_id == "b1"
    assert plan.legs == expected.batch.legs and plan.engagements == expected.batch.engagements
    assert engine.sells_of(batch_id) == expected.sells.engagements
    assert engine.crossings_of(batch_id) == dict(expected.crossings)
    # The sells outweigh the buy: every asset crosses what the buy needs and sells the net, one order per asset.
    legs = _sell_legs(engine, batch_id)
    assert legs and all(engine.crossings_of(batch_id)[s].crossed > 0 for s in legs)
    assert len({s.order.symbol for s in engine.sent_orders(batch_id)}) == len(engine.sent_orders(batch_id))
    # Engaged: neither order is planned again while the batch is open; the shards engage the sell by its units.
    again, _ = engine.plan(buys, asks, 10, sells=sells, bids=bids)
    assert again is None
    requests = {e.order_id: e for e in engine.engage_requests(batch_id)}
    assert requests["u2:c1"].collateral == Decimal("0.5") and requests["u1:c1"] == plan.engagements[0]


def test_a_sell_below_its_minimum_is_deferred_and_alone_plans_nothing(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, plan = engine.plan([], asks, 10, sells=[PendingSell("u2:c1", INDEX, Decimal("0.01"), Decimal(10**6))],
                                 bids=bids)
    assert batch_id is None and [(d.order_id, d.reason) for d in plan.deferred] == [("u2:c1", BELOW_MINIMUM)]


def test_a_sell_of_a_closed_pair_waits_like_a_buy(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, plan = engine.plan([], asks, 10, sells=[PendingSell("u2:c1", INDEX, Decimal("0.5"))], bids=bids,
                                 closed={"BTCUSDC"})
    assert batch_id is None
    assert [d.order_id for d in plan.deferred] == ["u2:c1"] and "BTCUSDC" in plan.deferred[0].reason


def test_sells_crossings_and_release_survive_a_restart(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, _ = engine.plan([PendingOrder("u1:c1", INDEX, Decimal(400))], asks, 10,
                              sells=[PendingSell("u2:c1", INDEX, Decimal("0.5"), Decimal(100))], bids=bids)
    raw = SolverState.model_validate({"engine": engine.snapshot(), "cursor": 0, "outbox": [], "step_seqs": {},
                                      "counts": {}, "errors": []}).dump()
    again = SolverEngine(baskets, filters, PlannerLimits())
    again.restore(SolverState.load(raw).engine.model_dump(mode="json"))
    assert again.sells_of(batch_id) == engine.sells_of(batch_id)
    assert again.crossings_of(batch_id) == engine.crossings_of(batch_id)
    assert again.batches[batch_id].release == engine.batches[batch_id].release
    assert again.sent_orders(batch_id) == engine.sent_orders(batch_id)
    assert again.snapshot() == engine.snapshot()


def test_a_sell_engaged_short_shrinks_its_release_crossing_first(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    buy = PendingOrder("u1:c1", INDEX, Decimal(400))
    batch_id, plan = engine.plan([buy], asks, 10, sells=[PendingSell("u2:c1", INDEX, Decimal("0.5"), Decimal(100))],
                                 bids=bids)
    before = engine.crossings_of(batch_id)
    (sell,) = engine.sells_of(batch_id)
    engaged = {buy.order_id: plan.engagements[0].collateral, "u2:c1": Decimal("0.2")}  # cancelled meanwhile
    assert engine.adjust_engagements(batch_id, engaged)
    (short,) = engine.sells_of(batch_id)
    assert short.units == Decimal("0.2")
    assert short.min_proceeds == Decimal(40) and short.expected <= sell.expected * 2 / 5
    after = engine.crossings_of(batch_id)
    legs = _sell_legs(engine, batch_id)
    for symbol, c in after.items():
        assert c.released == engine.batches[batch_id].release[INDEX][symbol] <= before[symbol].released
        assert c.crossed == min(before[symbol].crossed, c.released)  # the buys keep what they were sized on
        assert c.to_exchange <= before[symbol].to_exchange
        if c.to_exchange:
            assert legs[symbol].quantity == c.to_exchange * filters[symbol].base_unit
        else:
            assert symbol not in legs
    assert set(engine.batches[batch_id].open) == {s.order.symbol for s in engine.sent_orders(batch_id)}


def test_a_sell_cannot_shrink_once_its_exchange_order_left(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, _ = engine.plan([], asks, 10, sells=[PendingSell("u2:c1", INDEX, Decimal("0.5"))], bids=bids)
    assert _sell_legs(engine, batch_id)
    with pytest.raises(AssertionError, match="engaged short"):
        engine.adjust_engagements(batch_id, {"u2:c1": Decimal("0.1")}, orders_out=True)


def test_a_batch_whose_sells_were_all_cancelled_closes(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    batch_id, _ = engine.plan([], asks, 10, sells=[PendingSell("u2:c1", INDEX, Decimal("0.5"))], bids=bids)
    assert not engine.adjust_engagements(batch_id, {})
    assert batch_id not in engine.batches and engine.inventory_units() == {}


def test_a_state_stored_before_sells_loads_with_batches_that_have_none():
    from pathlib import Path
    old = (Path(__file__).parent.parent / "fixtures" / "records" / "solver.state.v4.json").read_text()
    batches = SolverState.load(old).engine.batches
    assert batches and all(b.sells == [] and b.release == {} and b.crossings == [] for b in batches)


# ---- fills of a mixed batch, its completion and the sale ---------------------------------------------------------

def mixed_fills(engine, batch_id, world, pct: int, trade_base: int, sell_at_limit: bool = False):
    """The exchange fills `pct`% of each order at the best level of its side (the books are deep; a sell at its
    limit if `sell_at_limit`: the bids fell), in two trades; commission 0.1% in the received asset: base for a buy,
    USDC for a sell."""
    filters, _, asks, bids = world
    out = []
    for k, sent in enumerate(engine.sent_orders(batch_id)):
        o, f = sent.order, filters[sent.order.symbol]
        qty = quantize_down(o.quantity * pct / 100, f.step_size)
        half = quantize_down(qty / 2, f.step_size)
        price = (asks if o.side is Side.BUY else bids)[o.symbol][0][0]
        if sell_at_limit and o.side is Side.SELL:
            price = o.price
        for j, part in enumerate((half, qty - half)):
            if part <= 0:
                continue
            if o.side is Side.BUY:
                fee, asset = quantize_up(part * Decimal("0.001"), Decimal("1e-8")), f.base_asset
            else:
                fee, asset = quantize_up(part * price * Decimal("0.001"), Decimal("1e-8")), "USDC"
            out.append((sent.client_order_id, ExchangeFill(trade_base + 10 * k + j, price, part, fee, asset)))
    return out


def _run(world, buys, sells, pct, engine=None, restore_after_fills=False, sell_at_limit=False):
    filters, baskets, asks, bids = world
    engine = engine or SolverEngine(baskets, filters, PlannerLimits())
    inventory_before = engine.inventory_units()
    batch_id, _ = engine.plan(buys, asks, 10, sells=sells, bids=bids)
    fills = mixed_fills(engine, batch_id, world, pct, 5000, sell_at_limit)
    engine.assign_carried(batch_id)
    if not engine.sent_orders(batch_id):  # crossed and taken by inventory wholly: nothing to wait for
        return engine, batch_id, fills, engine.complete_if_no_orders(batch_id), inventory_before
    engine.on_fills(fills)
    if restore_after_fills:
        again = SolverEngine(baskets, filters, PlannerLimits())
        again.restore(SolverState.load(SolverState.model_validate(
            {"engine": engine.snapshot(), "cursor": 0, "outbox": [], "step_seqs": {}, "counts": {},
             "errors": []}).dump()).engine.model_dump(mode="json"))
        engine = again
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(batch_id))
    return engine, batch_id, fills, done, inventory_before


def _conservation(world, engine, fills, done, inventory_before):
    """Per asset: units for buys + inventory change = exchange buys - exchange sells + units from sells, where what
    was sold of unburnt tokens' units and inventory could not give back (backing_short) counts as owed."""
    filters = world[0]
    bought: dict[str, int] = {}
    sold: dict[str, int] = {}
    for cid, f in fills:
        symbol = cid.split(".")[1]
        unit = filters[symbol].base_unit
        if f.commission_asset == "USDC":
            sold[symbol] = sold.get(symbol, 0) + int(f.quantity / unit)
        else:
            bought[symbol] = bought.get(symbol, 0) + int((f.quantity - f.commission) / unit)
    to_buys: dict[str, int] = {}
    for lines in done.lines.values():
        for line in lines:
            to_buys[line.symbol] = to_buys.get(line.symbol, 0) + line.units
    from_sells = {s: p.to_orders for s, p in done.sale.pools.items()}
    after = engine.inventory_units()
    for s in set(bought) | set(sold) | set(to_buys) | set(from_sells):
        change = after.get(s, 0) - inventory_before.get(s, 0)
        owed = done.backing_short.get(s, 0)
        assert to_buys.get(s, 0) + change - owed == bought.get(s, 0) - sold.get(s, 0) + from_sells.get(s, 0), s


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.sampled_from([0, 40, 100]), st.sampled_from(["0.5", "0.004", "0.00001"]), st.sampled_from([0, 300, 4000]))
def test_a_mixed_batch_completes_exactly(world, pct, units, buy):
    buys = [PendingOrder("u1:c1", INDEX, Decimal(buy))] if buy else []
    sells = [PendingSell("u2:c1", INDEX, Decimal(units)), PendingSell("u3:c1", INDEX, Decimal(units) / 2)]
    engine, batch_id, fills, done, before = _run(world, buys, sells, pct)
    assert done.sale is not None and batch_id not in engine.batches
    _conservation(world, engine, fills, done, before)
    paid = {r.order_id: r for r in done.sale.results}
    assert set(paid) == {"u2:c1", "u3:c1"}
    for r in paid.values():
        assert r.units <= r.asked and r.payout <= r.proceeds
    crossed = [c for c in done.crossings.values() if c.crossed]
    if buy and crossed:  # the buys' lines name crossed lots the sells' lines name too (all, when the buys filled)
        buy_lots = {i for lines in done.lines.values() for l in lines for i in l.lot_ids if is_crossed(i)}
        sell_lots = {i for r in paid.values() for l in r.lines for i in l.lot_ids if is_crossed_with_buys(i)}
        assert buy_lots <= sell_lots
        if pct == 100:
            assert buy_lots == sell_lots == {f"cross:{batch_id}:{c.symbol}" for c in crossed}


def test_a_whole_sale_redeems_every_unit_and_pays_the_proceeds(world):
    engine, _, fills, done, before = _run(world, [PendingOrder("u1:c1", INDEX, Decimal(300))],
                                          [PendingSell("u2:c1", INDEX, Decimal("0.01"))], 100)
    (r,) = done.sale.results
    assert r.units == r.asked == Decimal("0.01") and r.stopped is None and r.payout > 0
    assert r.payout == quantize_down(r.proceeds, PlannerLimits().collateral_unit)
    _conservation(world, engine, fills, done, before)


def test_a_sale_below_the_minimum_is_stopped_and_inventory_gives_the_units_back(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    sell = PendingSell("u2:c1", INDEX, Decimal("0.01"))
    batch_id, _ = engine.plan([], asks, 10, sells=[sell], bids=bids)
    expected = engine.sells_of(batch_id)[0].expected
    # The same sell asking what the plan expected, filled in part at the limit (the bids fell 1%): stopped.
    engine, _, fills, done, before = _run(world, [], [PendingSell("u2:c1", INDEX, Decimal("0.01"), expected)], 40,
                                          sell_at_limit=True)
    (r,) = done.sale.results
    assert r.stopped == STOPPED_BELOW_MINIMUM and r.units == 0 and r.payout == 0
    assert all(p.to_orders == 0 for p in done.sale.pools.values())
    _conservation(world, engine, fills, done, before)


def test_a_mixed_batch_restored_after_its_fills_completes_the_same(world):
    buys = [PendingOrder("u1:c1", INDEX, Decimal(400))]
    sells = [PendingSell("u2:c1", INDEX, Decimal("0.5"), Decimal(100))]
    _, _, _, straight, _ = _run(world, buys, sells, 70)
    _, _, _, restored, _ = _run(world, buys, sells, 70, restore_after_fills=True)
    assert restored.sale == straight.sale and restored.lines == straight.lines
    assert restored.inventory_in == straight.inventory_in and restored.crossings == straight.crossings


def test_when_the_buys_were_cancelled_inventory_takes_the_crossed_units(world):
    filters, baskets, asks, bids = world
    engine = SolverEngine(baskets, filters, PlannerLimits())
    sell = PendingSell("u2:c1", INDEX, Decimal("0.5"))
    batch_id, _ = engine.plan([PendingOrder("u1:c1", INDEX, Decimal(400))], asks, 10, sells=[sell], bids=bids)
    crossed = {s: c.crossed for s, c in engine.crossings_of(batch_id).items()}
    taken = {s: c.crossed + c.to_inventory for s, c in engine.crossings_of(batch_id).items()}
    assert any(crossed.values())
    assert engine.adjust_engagements(batch_id, {"u2:c1": sell.units})  # the buy was cancelled before the engage
    fills = mixed_fills(engine, batch_id, world, 100, 7000)
    engine.on_fills(fills)
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(batch_id))
    (r,) = done.sale.results
    assert r.units == sell.units and done.engagements == ()
    # The crossed units and the sub-step rests: all inventory's, at the crossing price.
    assert engine.inventory_units() == {s: n for s, n in taken.items() if n}
    _conservation(world, engine, fills, done, {})

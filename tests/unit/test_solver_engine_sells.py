"""The solver engine plans sells with buys (core.crossing.plan_mixed): buys alone plan as they always did; a batch with
sells keeps them, their release and the crossings across a restart, and a sell engaged short shrinks its release."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits
from core.crossing import plan_mixed
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

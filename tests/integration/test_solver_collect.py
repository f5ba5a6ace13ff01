"""The solver's collect window reads the demand early, and never plans on a stale read.

The solver class runs here outside Ray (its calls to other actors go to fakes), over a real redis-server: a wake
starts the reads of the budget, the books and the pending orders while the window collects; the tick uses the early
demand read only if nothing changed after it was asked. An order that woke the solver after that read must be in the
same batch (a stale read would leave it for a second batch: two exchange orders per asset instead of one).
"""
from __future__ import annotations

import asyncio
import pickle
from decimal import Decimal
from typing import Any

import pytest

from actors.solver import Solver, SolverOptions
from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits
from core.sender_messages import SubmitResult
from core.symbol_filters import parse_exchange_info

INDEX = "SY100.dev"
BEST = {"BTCUSDC": "60000.00", "ETHUSDC": "2500.00", "XRPUSDC": "0.5000", "SOLUSDC": "140.00",
        "BNBUSDC": "550.0", "DOGEUSDC": "0.10000"}
WAIT_S = 10


class FakeWorld:
    """The shards, the market data and the sender as the solver calls them: answers from plain state."""

    def __init__(self, filters: Any) -> None:
        self.pending: list[PendingOrder] = []
        self.pending_calls = 0
        self.pending_asked = asyncio.Event()
        self.engaged: dict[str, list[str]] = {}
        self.submitted: dict[str, list[Any]] = {}
        self.submit_called = asyncio.Event()
        #: Set by a test: the engage answers only once the batch's submit has been called (a solver that waited
        #: for the engage before submitting would never get there), and engages nothing (every order cancelled).
        self.engage_waits_for_submit = False
        self.engage_nothing = False
        self.asks = {s: [(Decimal(p) + filters[s].tick_size * i, Decimal(10**5)) for i in range(5)]
                     for s, p in BEST.items()}

    async def call(self, name: str, method: str, *args: Any) -> Any:
        args = pickle.loads(pickle.dumps(args))  # what a Ray call does to them (packed payloads arrive unwrapped)
        if method == "order_budget":
            return (100, 100, [])
        if method == "liquidity":  # (levels, stale symbols): the solver's read
            assert args[3] is True
            return {s: self.asks[s] for s in args[0]}, []
        if method == "demand":  # (buys, sells): no sells here
            self.pending_calls += 1
            self.pending_asked.set()
            return list(self.pending), []
        if method == "engage":
            batch_id, engagements = args
            if self.engage_waits_for_submit:
                await asyncio.wait_for(self.submit_called.wait(), WAIT_S / 2)
            if self.engage_nothing:
                self.engaged[batch_id] = []
                return []
            self.engaged[batch_id] = [e.order_id for e in engagements]
            taken = {e.order_id for e in engagements}
            self.pending = [p for p in self.pending if p.order_id not in taken]
            return [(e.order_id, e.collateral) for e in engagements]
        if method == "submit":
            batch_id, orders = args
            self.submitted[batch_id] = orders
            self.submit_called.set()
            return [SubmitResult(o.symbol, o.side, True, f"{batch_id}.{o.symbol}.0", o.quantity, o.price,
                                 "INTENDED")
                    for o in orders]
        raise AssertionError(f"unexpected call {name}.{method}")


@pytest.fixture
def solver_and_world(redis_server, exchange_info, data_dir):
    filters = parse_exchange_info(exchange_info)
    baskets = {INDEX: load_indexes(data_dir / "indexes")[INDEX]}
    world = FakeWorld(filters)
    options = SolverOptions(redis_server.url, order_shards=1, market_shards=1, name="solver-collect",
                            collect_quiet_ms=50, collect_max_ms=2_000)
    redis_server.client().flushall()
    solver = Solver.__ray_metadata__.modified_class(options, baskets, filters, PlannerLimits())
    solver._call = world.call  # noqa: SLF001  (the other actors are fakes here)
    return solver, world


def order(i: int) -> PendingOrder:
    return PendingOrder(f"0xuser{i}:c1", INDEX, Decimal(500 + i))


def plan_one_batch(solver: Any, world: FakeWorld, during: Any = None, after: Any = None) -> str:
    """Order 1 wakes the solver; `during` runs once the early demand read was answered, while the window still
    collects; `after` runs when the window closed, before the tick. Returns the batch the tick planned."""
    async def run() -> str | None:
        world.pending = [order(1)]
        await solver.wake()
        collecting = asyncio.ensure_future(solver._collect())  # noqa: SLF001
        if during is not None:
            await asyncio.wait_for(world.pending_asked.wait(), WAIT_S)
            await during()
        await collecting
        if after is not None:
            after()
        batch_id = await solver.tick()
        assert not solver.cycle.errors, solver.cycle.errors
        await solver._redis.aclose()  # noqa: SLF001
        return batch_id

    batch_id = asyncio.run(asyncio.wait_for(run(), WAIT_S))
    assert batch_id is not None
    return batch_id


def test_a_lone_order_is_planned_on_the_demand_read_during_the_window(solver_and_world):
    solver, world = solver_and_world
    batch_id = plan_one_batch(solver, world)
    assert world.engaged[batch_id] == ["0xuser1:c1"]
    assert world.pending_calls == 1  # the early read was used: no second read after the window
    assert len(world.submitted[batch_id]) == 6


def test_an_order_that_wakes_the_solver_after_the_early_read_joins_the_same_batch(solver_and_world):
    solver, world = solver_and_world

    async def second_order() -> None:
        world.pending.append(order(2))  # a shard takes a second order, then wakes the solver
        await solver.wake()

    batch_id = plan_one_batch(solver, world, during=second_order)
    assert sorted(world.engaged[batch_id]) == ["0xuser1:c1", "0xuser2:c1"]  # one batch, both orders
    assert world.pending_calls == 2  # the early read was stale: the tick read the demand again
    assert len(world.submitted[batch_id]) == 6  # one exchange order per asset for both


def test_a_step_of_the_solver_after_the_early_read_makes_it_stale(solver_and_world):
    """What the solver's own steps change (an engage, a settle that puts a rest back) counts as a change too."""
    solver, world = solver_and_world

    def a_step_and_an_order() -> None:
        solver._demand_version += 1  # noqa: SLF001  (what _run does after any step on the shards)
        world.pending.append(order(3))

    batch_id = plan_one_batch(solver, world, after=a_step_and_an_order)
    assert sorted(world.engaged[batch_id]) == ["0xuser1:c1", "0xuser3:c1"]
    assert world.pending_calls == 2


def test_the_exchange_orders_go_out_while_the_shards_engage(solver_and_world):
    """The batch's submit does not wait for the engage's answer: here the engage answers only after the submit was
    called, which a solver that waited would never see (the engage would time out and be dropped)."""
    solver, world = solver_and_world
    world.engage_waits_for_submit = True
    batch_id = plan_one_batch(solver, world)
    assert world.engaged[batch_id] == ["0xuser1:c1"] and len(world.submitted[batch_id]) == 6
    assert not solver.cycle.errors
    assert solver.engine.batches[batch_id].plan.engagements[0].order_id == "0xuser1:c1"
    assert not solver.cycle.outbox  # (both steps done and committed)


def test_a_batch_whose_orders_were_all_cancelled_before_the_engage_buys_inventory(solver_and_world):
    """Every order was cancelled between the demand read and the engage: the exchange orders had already left with
    the engage, so the batch stays open with no order, and what it buys will be inventory (said in the errors)."""
    solver, world = solver_and_world
    world.engage_nothing = True
    batch_id = plan_one_batch(solver, world)
    assert len(world.submitted[batch_id]) == 6
    batch = solver.engine.batches[batch_id]
    assert batch.plan.engagements == () and len(batch.sent) == 6
    assert any("no order could be engaged" in e and "inventory" in e for e in solver.cycle.notes)
    assert not solver.cycle.errors  # a handled race is a note, not an error


def test_executions_wait_for_their_batch_only_while_one_of_its_orders_has_no_completion(solver_and_world):
    """The reader lingers for the rest of a batch (one settle instead of several) only while a completion is
    missing: once every exchange order's OrderDone is read, it goes on at once."""
    from core.sender_messages import OrderDone
    from core.side import Side

    solver, world = solver_and_world
    batch_id = plan_one_batch(solver, world)
    sent = solver.engine.sent_orders(batch_id)
    dones = [OrderDone(i + 1, batch_id, s.client_order_id, s.order.symbol, Side.BUY, "EXPIRED", Decimal(0))
             for i, s in enumerate(sent)]
    assert len(dones) > 1
    assert solver.cycle.batch_still_open(dones[:-1])
    assert not solver.cycle.batch_still_open(dones)
    assert not solver.cycle.batch_still_open([])

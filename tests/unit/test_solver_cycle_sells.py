"""The solver's decisions for a batch of buys and sells, in core: the sells are engaged before the exchange orders
leave, and the completion hands each shard its sells' sales with its buys' results, through the step record, for
the shard to book (core.shard_books)."""
from __future__ import annotations

from decimal import Decimal

from core.batch_planner import PendingOrder, PlannerLimits
from core.chain_events import TokenDeposit
from core.clock import ManualClock
from core.index_order import IndexOrderStatus
from core.sender_messages import OrderDone, SenderFill
from core.shard_books import ShardBooks
from core.side import Side
from core.solver_cycle import SolverCycle
from core.solver_engine import SolverEngine
from core.solver_reads import Books
from store.solver_records import ShardStepRecord, step_record
from tests.unit.test_solver_engine_sells import INDEX, mixed_fills, world  # noqa: F401  (the fixture)

T0 = 1_700_000_000_000
SELLER = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
BUY, SELL = "0xaaa:c1", f"{SELLER}:s1"  # the buyer on shard 0, the seller on shard 1
D = Decimal


def shard_of(order_id: str) -> int:
    return 0 if order_id.startswith("0xaaa") else 1


def new_cycle(world) -> SolverCycle:  # noqa: F811
    filters, baskets, _, _ = world
    return SolverCycle(SolverEngine(baskets, filters, PlannerLimits()), shard_of_order=shard_of, name="solver",
                       reject_after_ms=1_000, stale_reject_after_ms=5_000, max_in_flight_notional=D(10**6))


def seller_shard(units: str) -> ShardBooks:
    shard = ShardBooks({INDEX}, clock=ManualClock(), unit=D("0.000001"), max_open_orders=3, token_decimals=18,
                       order_dust=D("0.05"), rest_return_ratio=D("0.005"))
    shard.credit_tokens([TokenDeposit(8453, "0x" + "01" * 32, 0, 100, SELLER, INDEX, D(units))])
    shard.new_order(SELLER, "s1", INDEX, Side.SELL, D(units))
    return shard


def test_buys_alone_still_engage_and_submit_together(world) -> None:  # noqa: F811
    cycle = new_cycle(world)
    batch_id, _ = cycle.plan([PendingOrder(BUY, INDEX, D(400))], Books(world[2], frozenset()), 10, T0,
                             sells=[], bids=world[3])
    assert [(c.kind, c.with_submit) for c in cycle.outbox] == [("engage", True), ("submit", False)]


def test_a_batch_with_sells_engages_first_then_sends_and_completes_with_the_sales(world) -> None:  # noqa: F811
    filters = world[0]
    cycle = new_cycle(world)
    shard = seller_shard("0.01")
    [pending_sell] = shard.pending_sells(10)
    assert cycle.nothing_to_plan(10, [], [pending_sell]) is False
    batch_id, plan = cycle.plan([PendingOrder(BUY, INDEX, D(400))], Books(world[2], frozenset()), 10, T0,
                                sells=[pending_sell], bids=world[3])
    [engage] = cycle.outbox  # no submit yet: the sells must be engaged first
    assert (engage.kind, engage.with_submit) == ("engage", False)
    assert {k: [e.order_id for e in rows] for k, rows in engage.by_shard.items()} == {0: [BUY], 1: [SELL]}
    sell_step = shard.engage(batch_id, engage.by_shard[1])
    assert sell_step.engaged == [(SELL, D("0.01"))]
    cycle.engaged(batch_id, [[(BUY, plan.engagements[0].collateral)], sell_step.engaged], T0)
    submit = cycle.outbox[-1]
    assert submit.kind == "submit" and any(o.side is Side.SELL for o in submit.orders)

    fills = mixed_fills(cycle.engine, batch_id, world, 100, 9000)
    entries = [SenderFill(i + 1, batch_id, cid, cid.split(".")[1],
                          cycle.engine.batches[batch_id].sent[cid.split(".")[1]].order.side, f)
               for i, (cid, f) in enumerate(fills)]
    sent = cycle.engine.sent_orders(batch_id)
    entries += [OrderDone(len(fills) + 1 + i, batch_id, s.client_order_id, s.order.symbol, s.order.side, "FILLED",
                          s.order.quantity) for i, s in enumerate(sent)]
    cycle.consume(entries, T0 + 5)
    completes = {k: s for k, rows in cycle.steps_out.items() for s in rows if s.kind == "complete"}
    assert set(completes) == {0, 1}
    assert [r.order_id for r in completes[0].payload] == [BUY] and completes[0].sales == ()
    assert completes[1].payload == () and [s.order_id for s in completes[1].sales] == [SELL]

    # Through the hand-off record, as the shard reads it: the sale is booked.
    step = ShardStepRecord.load(step_record(completes[1])).step
    assert step.sales == list(completes[1].sales)
    usdc = shard.books[SELLER.lower()].ledger.available
    done = shard.complete_batch(step.key, step.results, step.sales)
    [order] = done.closed
    [sale] = step.sales
    assert order.status is IndexOrderStatus.FILLED and order.filled_units == sale.units == D("0.01")
    assert shard.books[SELLER.lower()].ledger.available == usdc + sale.payout > usdc
    assert shard.tokens[SELLER.lower()].of(INDEX).redeemed == D("0.01")

"""The solver's decisions without Ray or Redis (core/solver_cycle.py): what a plan queues, how the shards' and the
sender's answers change the batch, which steps go to which shard under which key, what a failed commit forgets."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.batch_planner import PendingOrder, PlannerLimits
from core.sender_messages import OrderDone, SenderFill, SubmitResult
from core.side import Side
from core.solver_cycle import OutboxCall, SolverCycle, call_of
from core.solver_engine import SolverEngine
from core.solver_reads import Books
from store.solver_records import SolverState, step_data
from tests.unit.test_solver_engine import exchange_fills, world  # noqa: F401  (the fixture)

T0 = 1_700_000_000_000
A, B = "0xaaa:c1", "0xbbb:c1"  # two users, on shards 0 and 1


def shard_of(order_id: str) -> int:
    return 0 if order_id.startswith("0xaaa") else 1


def new_cycle(world, **overrides) -> SolverCycle:  # noqa: F811
    filters, baskets, _ = world
    options = {"shard_of_order": shard_of, "name": "solver", "reject_after_ms": 1_000,
               "stale_reject_after_ms": 5_000, "max_in_flight_notional": Decimal(10**6)} | overrides
    return SolverCycle(SolverEngine(baskets, filters, PlannerLimits()), **options)


def planned(world, orders=(A, B)) -> tuple[SolverCycle, str]:  # noqa: F811
    cycle = new_cycle(world)
    pending = [PendingOrder(o, "SY100.dev", Decimal(400)) for o in orders]
    batch_id, _ = cycle.plan(pending, Books(world[2], frozenset()), 10, T0)
    assert batch_id is not None
    return cycle, batch_id


def executions(cycle: SolverCycle, batch_id: str, filters, pct: int, first_seq: int = 1):
    """The sender's log for a batch: every fill, then every order's completion."""
    fills = [SenderFill(first_seq + i, batch_id, cid, cid.split(".")[1], Side.BUY, f)
             for i, (cid, f) in enumerate(exchange_fills(cycle.engine, batch_id, filters, pct, 1000))]
    seq = first_seq + len(fills)
    dones = [OrderDone(seq + i, batch_id, s.client_order_id, s.order.symbol, Side.BUY, "FILLED", s.order.quantity)
             for i, s in enumerate(cycle.engine.sent_orders(batch_id))]
    return fills, dones


def steps(cycle: SolverCycle) -> list[tuple[int, int, str, str]]:
    return [(k, s.seq, s.kind, s.key) for k, rows in sorted(cycle.steps_out.items()) for s in rows]


def test_a_plan_queues_the_engage_per_shard_with_its_exchange_orders(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    engage, submit = cycle.outbox
    assert (engage.kind, engage.key, engage.with_submit) == ("engage", batch_id, True)
    assert {k: [e.order_id for e in rows] for k, rows in engage.by_shard.items()} == {0: [A], 1: [B]}
    assert (submit.kind, submit.key) == ("submit", batch_id)
    assert [o.symbol for o in submit.orders] == [s.order.symbol for s in cycle.engine.sent_orders(batch_id)]
    assert cycle.next_calls() == (engage, submit)  # they run at the same time
    assert cycle.counts["batches"] == 1 and cycle.counts["asset_orders"] == len(submit.orders) > 0
    assert cycle.busy() and not cycle.has_steps()


def test_the_history_entry_names_the_batch_and_its_exchange_orders(world) -> None:  # noqa: F811
    cycle = new_cycle(world, history_kept=2)
    for i in range(3):
        pending = [PendingOrder(f"0xaaa:c{i}", "SY100.dev", Decimal(400))]
        batch_id, plan = cycle.plan(pending, Books(world[2], frozenset()), 10, T0)
        entry = cycle.remember(batch_id, plan, T0 + i, {"planned": 1.5})
    assert [h["batch_id"] for h in cycle.history] == ["b2", "b3"]  # capped, newest last
    assert entry["planned_ms"] == T0 + 2 and entry["orders"] == 1 and entry["tick_ms"] == {"planned": 1.5}
    assert [row[0] for row in entry["asset_orders"]] == [s.client_order_id for s in cycle.engine.sent_orders("b3")]
    cycle.step_took("b3", "engage+submit", 2.5)
    cycle.step_took("b2:1", "fills", 9.0)  # not the latest batch: not recorded
    assert cycle.history[-1]["step_ms"] == {"engage+submit": 2.5} and "step_ms" not in cycle.history[0]


def test_nothing_to_plan_without_budget_or_demand(world) -> None:  # noqa: F811
    cycle = new_cycle(world)
    assert cycle.nothing_to_plan(0, [PendingOrder(A, "SY100.dev", Decimal(400))]) and cycle.deferred == 1
    cycle.waiting_on_stale = {"BTCUSDC": 2}
    assert cycle.nothing_to_plan(5, []) and cycle.deferred == 0 and cycle.waiting_on_stale == {}
    assert not cycle.nothing_to_plan(5, [PendingOrder(A, "SY100.dev", Decimal(400))])


def test_an_engage_answered_short_resizes_and_an_engage_alone_queues_its_submit(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    engage = cycle.outbox[0]
    a = engage.by_shard[0][0]
    # Without its submit (an engage an older state stored): B's shard engaged nothing (cancelled meanwhile).
    cycle.outbox[:] = [OutboxCall("engage", batch_id, engage.by_shard)]
    assert cycle.engaged(batch_id, [[(A, a.collateral)], []], T0) is None
    assert [e.order_id for e in cycle.engine.batches[batch_id].plan.engagements] == [A]
    assert [c.kind for c in cycle.outbox] == ["engage", "submit"]  # the engage is popped by the caller
    assert cycle.outbox[1].orders == tuple(s.order for s in cycle.engine.sent_orders(batch_id))
    assert cycle.next_calls() == (cycle.outbox[0],)  # an engage without with_submit runs alone


def test_a_shard_saying_the_batch_completed_queues_nothing(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    before = cycle.engine.snapshot()
    assert cycle.engaged(batch_id, [None, [(B, Decimal(1))]], T0) is None
    assert cycle.engine.snapshot() == before and len(cycle.outbox) == 2 and not cycle.has_steps()


@pytest.mark.parametrize("with_submit", [True, False])
def test_an_engage_nobody_answered_keeps_the_batch_only_if_its_orders_are_out(world, with_submit) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    note = cycle.engaged(batch_id, [[], []], T0, with_submit=with_submit)
    assert note is not None and "no order could be engaged" in note
    assert ("inventory" in note) == with_submit and ("batch dropped" in note) != with_submit
    assert (batch_id in cycle.engine.batches) == with_submit


def test_executions_become_fill_steps_then_completions_per_shard(world) -> None:  # noqa: F811
    filters = world[0]
    cycle, batch_id = planned(world)
    engage = cycle.outbox[0]
    cycle.engaged(batch_id, [[(e.order_id, e.collateral) for e in engage.by_shard[k]] for k in (0, 1)], T0,
                  with_submit=True)
    cycle.remember(batch_id, cycle.engine.batches[batch_id].plan, T0, {})
    fills, dones = executions(cycle, batch_id, filters, 100)
    assert cycle.batch_still_open(fills) and cycle.batch_still_open(fills + dones[:-1])
    assert not cycle.batch_still_open(fills + dones) and not cycle.batch_still_open([])
    assert cycle.consume(fills, T0) == len(fills) and cycle.cursor == fills[-1].seq
    assert steps(cycle) == [(0, 1, "fills", f"{batch_id}:1"), (1, 1, "fills", f"{batch_id}:1")]
    assert {d.order_id for d in cycle.steps_out[0][0].payload} == {A}
    # The same entries read again (a cursor moved back by a reload) are duplicates: nothing new is queued.
    assert cycle.consume(fills, T0) == 0 and cycle.counts["duplicates"] == len(fills) and len(steps(cycle)) == 2
    assert cycle.consume(dones, T0 + 50) == len(dones)
    assert steps(cycle) == [(0, 1, "fills", f"{batch_id}:1"), (0, 2, "complete", batch_id),
                            (1, 1, "fills", f"{batch_id}:1"), (1, 2, "complete", batch_id)]
    result = cycle.steps_out[1][-1].payload[0]
    assert result.order_id == B and result.filled_units > 0
    assert batch_id not in cycle.engine.batches and cycle.counts["completed"] == 1
    assert cycle.history[-1]["completed_ms"] == T0 + 50
    # An execution of a batch already completed is foreign: counted, never an error.
    late = SenderFill(dones[-1].seq + 1, batch_id, fills[0].client_order_id, fills[0].symbol, Side.BUY, fills[0].fill)
    assert cycle.consume([late], T0) == 1 and cycle.counts["foreign"] == 1 and len(steps(cycle)) == 4


def test_orders_the_sender_refused_settle_and_a_batch_all_refused_completes(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    engage = cycle.outbox[0]
    cycle.engaged(batch_id, [[(e.order_id, e.collateral) for e in engage.by_shard[k]] for k in (0, 1)], T0,
                  with_submit=True)
    sent = cycle.engine.sent_orders(batch_id)
    accepted = [SubmitResult(s.order.symbol, Side.BUY, True, s.client_order_id, s.order.quantity, s.order.price,
                             "INTENDED") for s in sent]
    assert cycle.submitted(batch_id, accepted, T0) is None and cycle.engine.batches[batch_id].open == {
        s.order.symbol for s in sent}
    refused = [SubmitResult(s.order.symbol, Side.BUY, False, None, None, None, "REJECTED", "too small",
                            "NOTIONAL") for s in sent]
    note = cycle.submitted(batch_id, refused, T0)
    assert note is not None and "sender refused before sending" in note and "NOTIONAL" in note
    assert cycle.counts["rejected_orders"] == len(sent) and batch_id not in cycle.engine.batches
    assert [s[2:] for s in steps(cycle)] == [("complete", batch_id), ("complete", batch_id)]


def test_an_order_stuck_without_liquidity_is_given_up_on_its_shard(world) -> None:  # noqa: F811
    _, _, asks = world
    cycle = new_cycle(world)
    thin = {s: levels for s, levels in asks.items() if s != "XRPUSDC"}
    pending = [PendingOrder(A, "SY100.dev", Decimal(400)), PendingOrder(B, "SY100.dev", Decimal(400))]
    assert cycle.plan(pending, Books(thin, frozenset()), 10, T0)[0] is None
    assert cycle.deferred == 2 and not cycle.has_steps()
    assert cycle.plan(pending, Books(thin, frozenset()), 10, T0 + 999)[0] is None and not cycle.has_steps()
    cycle.plan(pending, Books(thin, frozenset()), 10, T0 + 1_000)
    key = f"reject:solver:{T0 + 1_000}:1"
    assert steps(cycle) == [(0, 1, "reject", key), (1, 1, "reject", key)]
    (oid, reason), = cycle.steps_out[0][0].payload
    assert oid == A and "no liquidity" in reason and cycle.counts["late_rejects"] == 2


def test_orders_waiting_on_a_stale_book_are_counted_per_book(world) -> None:  # noqa: F811
    _, _, asks = world
    cycle = new_cycle(world)
    fresh = {s: levels for s, levels in asks.items() if s != "BTCUSDC"}
    pending = [PendingOrder(A, "SY100.dev", Decimal(400)), PendingOrder(B, "SY100.dev", Decimal(400))]
    assert cycle.plan(pending, Books(fresh, frozenset({"BTCUSDC"})), 10, T0)[0] is None
    assert cycle.waiting_on_stale == {"BTCUSDC": 2}
    assert cycle.view()["waiting_on_stale_books"] == {"BTCUSDC": 2}


def test_no_plan_beyond_the_notional_in_flight(world) -> None:  # noqa: F811
    cycle, first = planned(world, orders=(A,))
    cycle.max_in_flight_notional = cycle.engine.in_flight_notional()  # no room left
    batch_id, plan = cycle.plan([PendingOrder(B, "SY100.dev", Decimal(400))], Books(world[2], frozenset()), 10, T0)
    assert batch_id is None and [d.order_id for d in plan.deferred] == [B]


def test_committed_steps_leave_the_queue_and_later_ones_stay(world) -> None:  # noqa: F811
    cycle = new_cycle(world)
    cycle.restore(cycle.engine.snapshot(), 0,
                  [OutboxCall("reject", "reject:solver:1:1", {0: [(A, "x")], 1: [(B, "y")]})], {}, {}, [])
    taken = cycle.steps_to_commit()
    cycle.restore(cycle.engine.snapshot(), 0, [OutboxCall("reject", "reject:solver:2:1", {0: [(A, "z")]})],
                  cycle.step_seqs, {}, [])
    cycle.committed(taken)
    assert steps(cycle) == [(0, 2, "reject", "reject:solver:2:1")] and cycle.counts["commits"] == 1


def test_an_older_outbox_loads_with_its_shard_calls_as_steps_numbered_after_the_stored_ones(world) -> None:  # noqa: F811
    from tests.unit.store_examples import solver_world

    engine, outbox = solver_world()
    cycle = new_cycle(world, shard_of_order=lambda _: 0)
    cycle.restore(engine.snapshot(), 41, outbox, {0: 4}, {"ticks": 9}, ["e"])
    assert [c.kind for c in cycle.outbox] == ["engage", "submit"]
    assert [(s.seq, s.kind) for s in cycle.steps_out[0]] == [(5, "complete"), (6, "fills"), (7, "reject")]
    assert (cycle.cursor, cycle.counts["ticks"], cycle.errors) == (41, 9, ["e"])
    assert cycle.engine.snapshot() == engine.snapshot()


def test_the_state_round_trips_through_its_record(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    state = cycle.state()
    record = SolverState.load(SolverState.model_validate(
        state | {"outbox": [step_data(a) for a in state["outbox"]]}).dump())
    again = new_cycle(world)
    again.restore(record.engine.model_dump(mode="json"), record.cursor, [call_of(s) for s in record.outbox],
                  record.step_seqs, record.counts, record.errors)
    assert again.engine.snapshot() == cycle.engine.snapshot() and again.outbox == cycle.outbox


def test_a_failed_commit_forgets_what_it_would_have_stored_but_not_the_counts(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    cycle.restore(cycle.engine.snapshot(), 7, list(cycle.outbox) + [OutboxCall("reject", "k", {0: [(A, "x")]})],
                  {}, {}, [])
    cycle.notes.append("seen")
    cycle.rollback()
    assert not cycle.engine.batches and cycle.engine.batch_seq == 0
    assert (cycle.cursor, cycle.outbox, cycle.step_seqs, cycle.steps_out) == (0, [], {}, {})
    assert cycle.counts["batches"] == 1 and list(cycle.notes) == ["seen"]


def test_the_view_shows_the_batches_and_the_outbox(world) -> None:  # noqa: F811
    cycle, batch_id = planned(world)
    view = cycle.view()
    assert view["batches_in_flight"][batch_id]["orders"] == [A, B]
    assert view["outbox"] == [["engage", batch_id], ["submit", batch_id]]
    assert Decimal(view["in_flight_notional"]) == cycle.engine.in_flight_notional() > 0

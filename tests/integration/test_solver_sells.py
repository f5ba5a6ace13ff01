"""Sells through the real parts: a local Ray instance, a real redis-server and the exchange simulator. User A buys,
brings part of the tokens back (a token deposit credited in the shard) and sells them while user B buys the same
index, in one batch: B's buy is served by what A's sell releases (no exchange buy in that batch), only the net
goes to the exchange as one SELL per asset, A's shard redeems the units and credits the payout to A's USDC exactly
once. The wire's sells are switched on for this shard only (`accept_sells`); the burn is not wired yet."""
from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.solver import SolverOptions, start_solver  # noqa: E402
from core.batch_planner import PlannerLimits  # noqa: E402
from core.chain_events import CollateralDeposit, TokenDeposit  # noqa: E402
from core.money import quantize_down  # noqa: E402
from core.reserves import books_holdings, by_asset  # noqa: E402
from core.side import Side  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.indexmaker_app import NewOrder, OrderAccepted  # noqa: E402
from tests.integration.ray_calls import call_until_back  # noqa: E402
from tests.integration.test_flow_core import index_simulator, start_markets, start_sender_and_shard  # noqa: E402

WAIT_S = 45.0
INDEX = "SY100.dev"
CHAIN = 42161
A = "0x1111111111111111111111111111111111111111"
B = "0x2222222222222222222222222222222222222222"
D = Decimal


def test_a_sell_crosses_a_buy_in_one_batch_and_pays_the_seller(ray_cluster, redis_server, data_dir):
    tag = uuid.uuid4().hex[:8]
    actors: list = []
    with index_simulator(data_dir, INDEX) as (basket, symbols, sim):
        try:
            filters, markets = start_markets(sim, symbols, 1, ray_cluster)
            actors += markets
            sender_name, sender, shard, sink = start_sender_and_shard(
                sim, redis_server.url, tag, f"sells{tag}", ray_cluster, actors, indexes=(INDEX,),
                solver_name=f"solver-{tag}", accept_sells=True)
            assert all(ray.get([m.wait_ready.remote(WAIT_S) for m in markets]))
            ray.get(shard.credit.remote([CollateralDeposit(CHAIN, f"0x{1:064x}", 0, 1, A, D(2000)),
                                         CollateralDeposit(CHAIN, f"0x{2:064x}", 0, 1, B, D(1000))]))
            solver = start_solver(SolverOptions(redis_server.url, 1, 1, namespace=ray_cluster, name=f"solver-{tag}",
                                                sender_name=sender_name, tick_interval_ms=50,
                                                sender_account=f"sells{tag}", shard_prefix=f"orders-{tag}"),
                                  {INDEX: basket}, filters, PlannerLimits())
            actors.append(solver)
            ray.get(solver.start.remote())

            # A buys; the house then holds the basket on the exchange for A's tokens.
            (ok,) = ray.get(shard.handle.remote([NewOrder(UserRef(CHAIN, A), "c1", INDEX, Side.BUY, D(1000))]))
            assert ok == OrderAccepted(UserRef(CHAIN, A), "c1")
            assert ray.get(sink.wait_for.remote("OrderProgress", 1, "filled")) == 1
            assert call_until_back(solver.wait_quiet, WAIT_S)
            (bought,) = ray.get(shard.user.remote(A))["orders"]
            units = quantize_down(D(bought["filled_units"]) / 2, D("0.000001"))
            assert units > 0
            # A brings half of them back to custody: credited for redemption.
            ray.get(shard.credit_tokens.remote([TokenDeposit(8453, "0x" + "02" * 32, 0, 5, A, INDEX, units)]))
            before = ray.get(shard.user.remote(A))["ledger"]
            batches_before = {h["batch_id"] for h in ray.get(solver.inspect.remote())["history"]}

            # A sells them while B buys the same index: one call, one wake, one batch.
            answers = ray.get(shard.handle.remote([NewOrder(UserRef(CHAIN, A), "s1", INDEX, Side.SELL, units),
                                                   NewOrder(UserRef(CHAIN, B), "c1", INDEX, Side.BUY, D(300))]))
            assert [type(a).__name__ for a in answers] == ["OrderAccepted", "OrderAccepted"]
            assert ray.get(sink.wait_for.remote("OrderProgress", 3, "filled")) == 3
            assert call_until_back(solver.wait_quiet, WAIT_S)
            info = ray.get(solver.inspect.remote())
            assert info["errors"] == [] and info["outbox"] == []

            a_view, b_view = ray.get(shard.user.remote(A)), ray.get(shard.user.remote(B))
            sold = next(o for o in a_view["orders"] if o["cl_ord_id"] == "s1")
            assert sold["status"] == "FILLED" and D(sold["filled_units"]) == units
            proceeds = D(sold["proceeds"])
            # The payout reached A's USDC, once, to the unit: about half of what A's 1000 bought, less the spreads.
            assert D(a_view["ledger"]["available"]) - D(before["available"]) == proceeds
            assert D(a_view["ledger"]["credited"]) - D(before["credited"]) == proceeds
            assert D(400) < proceeds < D(500)
            (b_order,) = b_view["orders"]
            assert b_order["status"] == "FILLED" and D(b_order["filled_units"]) > 0

            # The exchange saw one order per asset in that batch, all SELLs: B's buy crossed A's release.
            (mixed,) = {h["batch_id"] for h in info["history"]} - batches_before
            sent = ray.get(sender.orders.remote(mixed))
            exchange = {o["clientOrderId"] for o in sim.get("/_admin/test/orders")
                        if o["clientOrderId"].startswith(f"{mixed}.")}
            assert exchange == {o["client_order_id"] for o in sent}
            per_symbol: dict[str, list[str]] = defaultdict(list)
            for o in sent:
                per_symbol[o["symbol"]].append(o["side"])
            assert per_symbol and all(sides == ["SELL"] for sides in per_symbol.values())
            assert set(per_symbol) <= set(symbols)
            assert ray.get(sender.wait_idle.remote(WAIT_S))

            # Per asset, what the exchange holds is what the books say: delivered to buys less what sales took for
            # redeemed units, plus the solver's inventory (what crossing and the sale left the house).
            held = ray.get(solver.holdings.remote())
            assert held["unconsumed"] == [] and held["in_flight"] == {} and held["assigned"] == {}
            books = books_holdings([by_asset({s: D(q) for s, q in ray.get(shard.holdings.remote())["delivered"]
                                              .items()}, held["base_assets"]),
                                    {a: D(q) for a, q in held["inventory"].items()}])
            balances = {a: D(q) for a, q in ray.get(sender.balances.remote()).items()}
            assets = set(held["baskets"][INDEX])
            assert {a: books.get(a, D(0)) for a in assets} == {a: balances.get(a, D(0)) for a in assets}
        finally:
            for a in actors:
                ray.kill(a)

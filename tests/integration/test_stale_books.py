"""No plan on a stale book, with the real parts: the exchange simulator (its own process, prices moving), a market-data
shard, an index-order shard, the order sender and the solver on a local Ray instance and a real redis-server.

One symbol of a two-asset index has its depth feed silenced at the exchange (`/_admin/faults` silence_depth) while
the other keeps flowing: its book goes stale; a quote for the index is refused naming that book; an order for it is
accepted and waits, with no exchange order at all, well past the solver's reject_after_ms (which must not reject it:
the cause is our feed, not the market); the solver, /health's verdict and `indexmaker status` name the book. Once the
feed is heard again the order goes out and fills.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.market_data import MarketDataOptions, start_market_data  # noqa: E402
from actors.metrics import Metrics  # noqa: E402
from actors.solver import SolverOptions, start_solver  # noqa: E402
from actors.system_view import Observation, SystemView  # noqa: E402
from core.basket import Basket, BasketAsset  # noqa: E402
from core.batch_planner import PlannerLimits  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from core.side import Side  # noqa: E402
from core.symbol_filters import parse_exchange_info  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.indexmaker_app import NewOrder, NewQuote, OrderAccepted  # noqa: E402
from protocol.reason_codes import ReasonCode  # noqa: E402
from tests.integration.ray_calls import kill_all  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402
from tests.integration.test_flow_core import rate_limits, start_sender_and_shard  # noqa: E402
from world.system_status import key_figures  # noqa: E402

WAIT_S = 30.0
INDEX = "PAIR.stale"
SILENCED = "ETHUSDC"
LIVE = "BTCUSDC"
BASKET = Basket(INDEX, (BasketAsset(LIVE, Decimal("0.001")), BasketAsset(SILENCED, Decimal("0.02"))))
STALE_AFTER_MS = 400
REJECT_AFTER_MS = 300  # the liquidity timeout, far shorter than the stale wait below
USER = "0x4444444444444444444444444444444444444444"
CHAIN = 42161


def wait_until(what: str, condition, timeout_s: float = WAIT_S):  # noqa: ANN001, ANN201
    """Poll an actor-state condition (each poll is an actor call) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def test_an_index_waits_for_its_stale_book_then_fills(ray_cluster, redis_server):
    tag = uuid.uuid4().hex[:8]
    actors: list = []
    with SimulatorProcess(symbols=[LIVE, SILENCED], update_ms=50, depth_interval_ms=50,
                          rate_limits=rate_limits()) as sim:
        try:
            filters = parse_exchange_info(sim.get("/api/v3/exchangeInfo"))
            (market,) = start_market_data(MarketDataOptions(sim.url, sim.ws_url, book_limit=100,
                                                            stale_after_ms=STALE_AFTER_MS),
                                          [LIVE, SILENCED], 1, namespace=ray_cluster)
            actors.append(market)
            sender_name, sender, shard, sink = start_sender_and_shard(sim, redis_server.url, tag, f"stale{tag}",
                                                                      ray_cluster, actors, indexes=(INDEX,))
            assert ray.get(market.wait_stale.remote([LIVE, SILENCED], False, WAIT_S))
            ray.get(shard.credit.remote([CollateralDeposit(CHAIN, f"0x{7:064x}", 0, 1, USER, Decimal(500))]))
            solver = start_solver(SolverOptions(redis_server.url, 1, 1, namespace=ray_cluster, name=f"solver-{tag}",
                                                sender_name=sender_name, sender_account=f"stale{tag}", shard_prefix=f"orders-{tag}", tick_interval_ms=50,
                                                reject_after_ms=REJECT_AFTER_MS, stale_reject_after_ms=0),
                                  {INDEX: BASKET}, filters, PlannerLimits())
            actors.append(solver)
            ray.get(solver.start.remote())

            # ---- one symbol's depth goes silent at the exchange; the other keeps flowing
            sim.post("/_admin/faults", {"silence_depth": [SILENCED]})
            assert ray.get(market.wait_stale.remote([SILENCED], True, WAIT_S))
            assert ray.get(market.stale.remote()) == [SILENCED]  # the live book stays fresh
            levels, stale = ray.get(market.liquidity.remote([LIVE, SILENCED], Side.BUY, 5, True))
            assert stale == [SILENCED] and levels[SILENCED] == [] and levels[LIVE]

            user = UserRef(CHAIN, USER)
            ((refused,),) = ray.get(solver.quote.remote([NewQuote(user, "q1", INDEX, Side.BUY, Decimal(200))]))
            assert type(refused).__name__ == "QuoteRefused" and refused.code is ReasonCode.MARKET_UNAVAILABLE
            assert SILENCED in refused.text and LIVE not in refused.text

            (answer,) = ray.get(shard.handle.remote([NewOrder(user, "c1", INDEX, Side.BUY, Decimal(200))]))
            assert answer == OrderAccepted(user, "c1")
            waiting = wait_until("the solver to defer the order on the stale book",
                                 lambda: ray.get(solver.inspect.remote())["waiting_on_stale_books"])
            assert waiting == {SILENCED: 1}
            # It keeps waiting, planned again every tick, well past reject_after_ms: never rejected for it.
            since, ticks = time.monotonic(), ray.get(solver.inspect.remote())["counts"]["ticks"]
            info = wait_until("ticks past reject_after_ms", lambda: (lambda i: i if (
                i["counts"]["ticks"] >= ticks + 10 and time.monotonic() - since > 3 * REJECT_AFTER_MS / 1000)
                else None)(ray.get(solver.inspect.remote())))
            assert info["waiting_on_stale_books"] == {SILENCED: 1} and info["stale_books"] == [SILENCED]
            assert info["counts"]["batches"] == 0 and info["counts"]["late_rejects"] == 0, info["counts"]
            assert info["errors"] == []
            assert sim.get("/_admin/test/orders") == []  # nothing reached the exchange
            (order,) = ray.get(shard.user.remote(USER))["orders"]
            assert order["status"] not in ("rejected", "filled") and Decimal(order["engaged"]) == 0, order
            assert ray.get(sink.wait_for.remote("OrderProgress", 1, None, 0.0)) == 0

            # ---- what the operator sees: /health's verdict (the monitor's view of the same inspect()s), status
            health = SystemView(Metrics(export=False)).update(
                {"market-0": Observation(ray.get(market.inspect.remote())),
                 "solver": Observation(ray.get(solver.inspect.remote()))}, int(time.time() * 1000))
            assert health["status"] == "degraded" and not health["healthy"]
            assert health["stale_books"] == {SILENCED: 1}
            assert any(SILENCED in p for p in health["problems"])
            _, warnings = key_figures("solver", ray.get(solver.inspect.remote()))
            assert f"orders waiting on stale books: {SILENCED} (1)" in warnings

            # ---- the feed is heard again: the order goes out and fills
            sim.post("/_admin/faults", {"silence_depth": []})
            assert ray.get(market.wait_stale.remote([SILENCED], False, WAIT_S))
            assert ray.get(sink.wait_for.remote("OrderProgress", 1, "filled", WAIT_S)) == 1
            assert ray.get(solver.wait_quiet.remote(WAIT_S))
            info = ray.get(solver.inspect.remote())
            assert info["waiting_on_stale_books"] == {} and info["counts"]["late_rejects"] == 0
            assert info["errors"] == []
            sent = sim.get("/_admin/test/orders")
            assert {o["symbol"] for o in sent} == {LIVE, SILENCED}
            assert all(Decimal(o["executedQty"]) > 0 for o in sent)
            (order,) = ray.get(shard.user.remote(USER))["orders"]
            assert Decimal(order["filled_units"]) > 0 and Decimal(order["remaining"]) == 0
        finally:
            kill_all(actors)

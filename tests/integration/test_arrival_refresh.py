"""An order shard's arrival values with the real parts: the exchange simulator (its own process, prices moving), a
market-data shard and an index-order shard on a local Ray instance, a real redis-server.

The shard reads the market shard's tops in the background (no call on the accept path) and keeps, per index, the
basket's value at mid and at the best asks, refreshed every period; an order accepted meanwhile is stamped with
the latest value and its time. Once the market shard is gone the value ages out and an order carries none.
"""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.market_data import MarketDataOptions, start_market_data  # noqa: E402
from actors.order_books import OrderBooksOptions, start_order_books  # noqa: E402
from core.arrival import basket_value  # noqa: E402
from core.basket import Basket, BasketAsset  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from core.side import Side  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.indexmaker_app import NewOrder, OrderAccepted  # noqa: E402
from tests.integration.ray_calls import kill_all  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402
from tests.integration.test_stale_books import wait_until  # noqa: E402

WAIT_S = 30.0
INDEX = "PAIR.arrival"
BASKET = Basket(INDEX, (BasketAsset("BTCUSDC", Decimal("0.001")), BasketAsset("ETHUSDC", Decimal("0.02"))))
REFRESH_MS = 50
MAX_AGE_MS = 600
USER = "0x5555555555555555555555555555555555555555"
CHAIN = 42161


def test_the_shard_refreshes_arrival_values_in_the_background_and_stamps_orders(ray_cluster, redis_server):
    tag = uuid.uuid4().hex[:8]
    actors: list = []
    with SimulatorProcess(symbols=list(BASKET.symbols), update_ms=50, depth_interval_ms=50) as sim:
        try:
            (market,) = start_market_data(MarketDataOptions(sim.url, sim.ws_url, book_limit=100),
                                          list(BASKET.symbols), 1, namespace=ray_cluster)
            actors.append(market)
            assert ray.get(market.wait_ready.remote(WAIT_S))
            (shard,) = start_order_books(OrderBooksOptions(
                redis_server.url, 1, (INDEX,), key_prefix=f"arr-{tag}", solver_name=None,
                baskets={INDEX: BASKET.quantities()}, market_shards=1, arrival_refresh_ms=REFRESH_MS,
                arrival_max_age_ms=MAX_AGE_MS), namespace=ray_cluster)
            actors.append(shard)

            first = wait_until("a first arrival value", lambda: ray.get(shard.inspect.remote())["arrival"].get(INDEX))
            # Refreshed in the background, period after period, with no order to trigger it.
            later = wait_until("a later value", lambda: (lambda v: v if v["at_ms"] > first["at_ms"] else None)(
                ray.get(shard.inspect.remote())["arrival"][INDEX]))
            mid, touch = Decimal(later["mid"]), Decimal(later["touch"])
            assert touch > mid > 0
            # The basket's value from the market shard's own tops a moment later: the same market, give or take
            # the random walk of a few updates.
            now = basket_value(BASKET.quantities(), ray.get(market.top.remote()), 0)
            assert now is not None and abs(now.mid - mid) / mid < Decimal("0.01")

            ray.get(shard.credit.remote([CollateralDeposit(CHAIN, f"0x{9:064x}", 0, 1, USER, Decimal(500))]))
            user = UserRef(CHAIN, USER)
            (answer,) = ray.get(shard.handle.remote([NewOrder(user, "c1", INDEX, Side.BUY, Decimal(100))]))
            assert answer == OrderAccepted(user, "c1")
            (order,) = ray.get(shard.user.remote(USER))["orders"]
            stamp = order["arrival"]
            assert stamp is not None and set(stamp["assets"]) == set(BASKET.symbols)
            assert 0 <= order["created_ms"] - stamp["at_ms"] <= MAX_AGE_MS  # its age is known and bounded
            assert Decimal(stamp["touch"]) > Decimal(stamp["mid"]) > 0

            # The market shard gone: no more tops, the value ages out, and an order carries none. Gone means dead
            # (a call fails), then a read of the shard's failed after that (an earlier failure, or a stalled loop,
            # says nothing about the kill).
            failures = ray.get(shard.inspect.remote())["arrival_reads"]["failures"]
            ray.kill(market, no_restart=True)
            wait_until("the market shard dead", lambda: _dead(market))
            wait_until("the last value to age out", lambda: (lambda i: i["arrival_reads"]["failures"] > failures and (
                time.time() * 1000 - i["arrival"][INDEX]["at_ms"] > MAX_AGE_MS))(ray.get(shard.inspect.remote())))
            (answer,) = ray.get(shard.handle.remote([NewOrder(user, "c2", INDEX, Side.BUY, Decimal(100))]))
            assert answer == OrderAccepted(user, "c2")
            orders = {o["cl_ord_id"]: o for o in ray.get(shard.user.remote(USER))["orders"]}
            assert orders["c2"]["arrival"] is None and orders["c1"]["arrival"] == stamp
        finally:
            kill_all(actors)


def _dead(actor) -> bool:
    try:
        ray.get(actor.top.remote(), timeout=WAIT_S)
    except ray.exceptions.RayActorError:
        return True
    return False

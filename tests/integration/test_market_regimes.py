"""How the system serves orders as the market changes (M13 item 3), with the real parts: the exchange simulator in
its own process switched between regimes (/_admin/regime), a market-data shard, an index-order shard, the sender
and the solver on a local Ray instance and a real redis-server.

- A halted pair (status BREAK): the order for its index is accepted and waits, past the solver's reject_after_ms,
  charged nothing and rejected never, its quote refused naming the pair; once the exchange lists it TRADING again
  the order fills.
- A wide market: a quote says so (its spread at the touch, `wide_market`); a calm one does not.
- A thin market: an order bigger than the books' depth within the slippage cap is served over several batches, no
  batch paying more than the cap above its cheapest fill.
- A gap up while a batch's orders are on their way: their limits (inside the cap of the books they were planned on)
  keep them from paying the new prices; the order is never charged beyond what it engaged, and fills later.
"""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.market_data import MarketDataOptions, start_market_data  # noqa: E402
from actors.order_books import OrderBooksOptions, start_order_books  # noqa: E402
from actors.order_sender import OrderSender, SenderOptions  # noqa: E402
from actors.solver import SolverOptions, start_solver  # noqa: E402
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
from tests.integration.test_flow_core import ReportSink, rate_limits  # noqa: E402
from tests.integration.test_stale_books import wait_until  # noqa: E402

WAIT_S = 60.0
INDEX = "PAIR.regimes"
BTC, ETH = "BTCUSDC", "ETHUSDC"
BASKET = Basket(INDEX, (BasketAsset(BTC, Decimal("0.001")), BasketAsset(ETH, Decimal("0.02"))))
REJECT_AFTER_MS = 300  # the liquidity timeout: a halt must outlast it without a reject
CAP = Decimal("0.01")  # the planner's slippage cap (PlannerLimits' default)
CHAIN = 42161


class World:
    def __init__(self, sim: SimulatorProcess, ray_ns: str, redis_url: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.sim, self.actors, self.users = sim, [], 0
        filters = parse_exchange_info(sim.get("/api/v3/exchangeInfo"))
        (self.market,) = start_market_data(MarketDataOptions(sim.url, sim.ws_url, book_limit=100), [BTC, ETH], 1,
                                           namespace=ray_ns)
        sender_name = f"sender-{tag}"
        self.sender = OrderSender.options(name=sender_name).remote(SenderOptions(
            sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_url, account=f"regimes{tag}",
            closed_poll_ms=100))
        (self.shard,) = start_order_books(OrderBooksOptions(redis_url, 1, (INDEX,), key_prefix=f"orders-{tag}"),
                                          namespace=ray_ns)
        self.sink = ReportSink.options(name=f"reports-{tag}").remote()
        self.actors += [self.market, self.sender, self.shard, self.sink]
        ray.get(self.sink.follow.remote(redis_url, f"orders-{tag}", 1))
        ray.get(self.sender.start.remote())
        assert ray.get(self.market.wait_stale.remote([BTC, ETH], False, WAIT_S))
        self.solver = start_solver(SolverOptions(redis_url, 1, 1, namespace=ray_ns, name=f"solver-{tag}",
                                                 sender_name=sender_name, sender_account=f"regimes{tag}",
                                                 shard_prefix=f"orders-{tag}", tick_interval_ms=50,
                                                 reject_after_ms=REJECT_AFTER_MS),
                                   {INDEX: BASKET}, filters, PlannerLimits())
        self.actors.append(self.solver)
        ray.get(self.solver.start.remote())

    def regime(self, name: str, **body) -> dict:  # noqa: ANN003
        return self.sim.post("/_admin/regime", {"name": name, **body})

    def user(self, usdc: int) -> UserRef:
        self.users += 1
        address = f"0x{0x5000 + self.users:040x}"
        ray.get(self.shard.credit.remote([CollateralDeposit(CHAIN, f"0x{0x900 + self.users:064x}", 0, 1, address,
                                                            Decimal(usdc))]))
        return UserRef(CHAIN, address)

    def order(self, user: UserRef, amount: int, cl: str = "c1") -> None:
        (answer,) = ray.get(self.shard.handle.remote([NewOrder(user, cl, INDEX, Side.BUY, Decimal(amount))]))
        assert answer == OrderAccepted(user, cl)

    def order_state(self, user: UserRef) -> dict:
        (order,) = ray.get(self.shard.user.remote(user.address))["orders"]
        return order

    def filled(self, user: UserRef) -> dict:
        return wait_until("the order to fill", lambda: (lambda o: o if Decimal(o["remaining"]) == 0 and Decimal(
            o["filled_units"]) > 0 and Decimal(o["engaged"]) == 0 else None)(self.order_state(user)))

    def quote(self, user: UserRef, amount: int = 200):  # noqa: ANN201
        answer = ray.get(self.solver.quote.remote([NewQuote(user, "q", INDEX, Side.BUY, Decimal(amount))]))[0]
        return answer[-1]

    def batch_ids(self) -> list[str]:
        """The batches the solver's history keeps, oldest first."""
        return [h["batch_id"] for h in ray.get(self.solver.inspect.remote())["history"]]

    def exchange_orders(self, batch_ids: list[str]) -> dict[str, list[dict]]:
        return {b: ray.get(self.sender.orders.remote(b)) for b in batch_ids}


@pytest.fixture(scope="module")
def world(ray_cluster, redis_server):
    with SimulatorProcess(symbols=[BTC, ETH], update_ms=50, depth_interval_ms=50, rate_limits=rate_limits()) as sim:
        w = World(sim, ray_cluster, redis_server.url)
        try:
            yield w
        finally:
            kill_all(w.actors)


def test_a_halted_pair_holds_its_index_back_charges_nothing_and_it_fills_once_the_pair_trades(world) -> None:
    user = world.user(500)
    world.regime("halted", symbols=[ETH])
    try:
        world.order(user, 200)
        # The first batch may meet the halt (-1013); from then on the solver knows it and plans nothing for the index.
        wait_until("the solver to know the halt", lambda: ray.get(world.solver.inspect.remote())["closed_pairs"])
        counts = ray.get(world.solver.inspect.remote())["counts"]
        since = time.monotonic()
        info = wait_until("ticks past reject_after_ms", lambda: (lambda i: i if (
            i["counts"]["ticks"] >= counts["ticks"] + 10 and time.monotonic() - since > 3 * REJECT_AFTER_MS / 1000)
            else None)(ray.get(world.solver.inspect.remote())))
        assert info["closed_pairs"] == [ETH] and info["counts"]["late_rejects"] == 0
        assert info["counts"]["batches"] - counts["batches"] == 0  # nothing planned while it is halted
        order = world.order_state(user)
        assert order["status"] not in ("rejected", "filled") and Decimal(order["filled_units"]) == 0
        assert Decimal(order["spent"]) == 0 and Decimal(order["engaged"]) == 0  # the half-bought basket is not his
        refused = world.quote(user)
        assert type(refused).__name__ == "QuoteRefused" and refused.code is ReasonCode.MARKET_UNAVAILABLE
        assert "halted on the exchange: ETHUSDC" in refused.text
    finally:
        world.regime("calm")
    order = world.filled(user)
    assert Decimal(order["spent"]) <= Decimal(order["collateral"])
    assert ray.get(world.solver.inspect.remote())["closed_pairs"] == []


def test_a_quote_says_when_the_market_is_wide(world) -> None:
    user = world.user(10)
    calm = wait_until("a calm quote", lambda: (lambda q: q if type(q).__name__ == "QuoteResult" else None)(
        world.quote(user)))
    assert calm.spread_bps is not None and calm.spread_bps < 10 and not calm.wide_market
    world.regime("wide")
    try:
        # Each pair's requote reaches the market shard in its own diff: wait until the quote says wide. (BTCUSDC's
        # calm spread is one tick, a tiny part of the basket's, so the basket widens by less than the pairs' 10x.)
        wide = wait_until("the wide books to reach the market shard", lambda: (lambda q: q if (
            type(q).__name__ == "QuoteResult" and q.wide_market) else None)(world.quote(user)))
        assert wide.spread_bps > 2 * calm.spread_bps and wide.quantity_possible > 0
    finally:
        world.regime("calm")


def test_a_thin_market_serves_a_big_order_over_several_batches_within_the_slippage_cap(world) -> None:
    user = world.user(40_000)
    known = set(world.batch_ids())
    world.regime("thin")
    try:
        world.order(user, 30_000)  # each book holds about a third of what it needs within the cap
        order = world.filled(user)
    finally:
        world.regime("calm")
    assert Decimal(order["spent"]) <= Decimal(order["collateral"])
    batches = world.exchange_orders([b for b in world.batch_ids() if b not in known])
    bought = [b for b, orders in batches.items() if any(Decimal(o["executed_qty"]) > 0 for o in orders)]
    assert len(bought) >= 2, batches
    for orders in batches.values():
        for o in orders:
            prices = [Decimal(f["price"]) for f in o["fills"]]
            if prices:  # a batch walks at most the cap above its cheapest fill, never past its limit
                assert max(prices) <= Decimal(o["price"]) and max(prices) <= min(prices) * (1 + CAP), o


def test_a_gap_while_the_orders_are_on_their_way_never_charges_beyond_what_was_engaged(world) -> None:
    user = world.user(1_000)
    known = set(world.batch_ids())
    world.sim.post("/_admin/faults", {"order_delay_ms": 1_500, "order_delay_count": 2})
    try:
        world.order(user, 500)
        wait_until("the batch's two orders to be on their way",
                   lambda: ray.get(world.sender.inspect.remote())["in_flight"] >= 2)
        world.regime("gap", percent="5")  # every price 5 % up while both orders are held before matching
        order = world.filled(user)
    finally:
        world.sim.post("/_admin/faults", {"clear": True})
    assert Decimal(order["spent"]) <= Decimal(order["collateral"])
    first, *later = [b for b in world.batch_ids() if b not in known]
    # The held orders' limits were inside the cap of the pre-gap books: 5 % up, they bought nothing.
    held = world.exchange_orders([first])[first]
    assert len(held) == 2 and all(o["status"] == "EXPIRED" and Decimal(o["executed_qty"]) == 0 for o in held), [
        (o["symbol"], o["status"], o["executed_qty"], o["price"], o["fills"]) for o in held]
    assert later  # the order was planned again on the new books, and filled there
    for orders in world.exchange_orders(later).values():
        assert all(Decimal(f["price"]) <= Decimal(o["price"]) for o in orders for f in o["fills"])

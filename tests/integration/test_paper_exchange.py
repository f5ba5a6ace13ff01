"""Paper mode against the simulator as the "live" exchange (M11 5c): the paper exchange mirrors the simulator's
books, the system's gateway (real ccxt) trades on the paper exchange, the orders fill against the simulator's
levels, and the simulator's account sees no order, no trade and no balance change."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

import core  # noqa: F401
from core.money import quantize_down
from core.side import Side
from exchange import errors
from exchange.gateway import BinanceGateway
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, AccountSpec, PriceProcessConfig, SimulatorConfig
from exchange.simulator.paper import PaperExchange, PaperOptions
from exchange.simulator.server import Simulator
from world.ports import LOOPBACK

D = Decimal
SYMBOLS = ("BTCUSDC", "ETHUSDC")
TIMEOUT = 10


async def until(predicate, timeout: float = TIMEOUT, tick=None) -> None:
    """Wait for `predicate()` on each of the paper exchange's upstream updates (`tick`: an awaitable factory)."""
    async def loop() -> None:
        while not predicate():
            await tick()
    await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def upstream():
    cfg = SimulatorConfig(host=LOOPBACK, symbols=SYMBOLS, process=PriceProcessConfig(update_ms=0, trade_percent=0),
                          depth_interval_ms=20)
    async with Simulator(cfg) as sim:
        yield sim


@pytest.fixture
async def paper(upstream):
    account = AccountSpec(TEST_API_KEY, TEST_SECRET, {"USDC": D("100000")})
    options = PaperOptions(upstream.url, upstream.ws_url, SYMBOLS, account, LOOPBACK, depth_interval_ms=20,
                           avg_price_poll_ms=60_000, book_depth=20)
    async with PaperExchange(options) as p:
        yield p


@pytest.fixture
async def gw(paper):
    g = BinanceGateway(paper.url, paper.ws_url, TEST_API_KEY, TEST_SECRET)
    g.ccxt.timeout_on_exit = 0
    yield g
    await g.close()


def top(sim: Simulator, symbol: str, n: int = 20):
    _, bids, asks = sim.engine.depth(symbol, n)
    return bids, asks


async def test_orders_fill_against_the_upstream_books_and_the_upstream_sees_none(upstream, paper, gw):
    upstream_account = upstream.engine.accounts[TEST_API_KEY]
    balances_before = dict(upstream_account.free)
    # The paper books are the upstream's (the mirror waited for every one before serving).
    assert all(top(paper.sim, s) == top(upstream, s) for s in SYMBOLS)
    assert (await gw.fetch_order_book("ETHUSDC", 20)).asks == top(upstream, "ETHUSDC")[1]
    best_ask, first_qty = top(upstream, "ETHUSDC")[1][0]
    step = upstream.markets["ETHUSDC"].step
    qty = first_qty + quantize_down(top(upstream, "ETHUSDC")[1][1][1] / 2, step)  # the best level and half the next
    order = await gw.create_order("ETHUSDC", Side.BUY, "MARKET", qty, client_order_id="paper-1")
    assert order.status == "FILLED" and order.executed_qty == qty
    assert [f.price for f in order.fills][0] == best_ask
    assert sum(f.qty for f in order.fills) == qty
    balances = await gw.fetch_balance()
    assert balances["ETH"].free == qty - sum(f.commission for f in order.fills)
    assert balances["USDC"].free == D("100000") - order.cum_quote
    # The upstream knows nothing of it: no order, no trade, the same balances and the same book.
    assert upstream_account.orders == {} and all(not f for f in upstream_account.fills.values())
    assert dict(upstream_account.free) == balances_before
    assert top(upstream, "ETHUSDC")[1][0] == (best_ask, first_qty)
    # Locally the level it ate is gone until the upstream reports a new quantity there.
    assert top(paper.sim, "ETHUSDC")[1][0][0] != best_ask
    upstream.engine.mm_set_level("ETHUSDC", Side.SELL, best_ask, first_qty * 2)
    upstream.dispatch()
    await until(lambda: top(paper.sim, "ETHUSDC")[1][0] == (best_ask, first_qty * 2),
                tick=lambda: upstream.wait_depth_ticks(1))


async def test_a_moving_upstream_moves_the_paper_books_and_limits_and_filters_apply(upstream, paper, gw):
    upstream.step(20, symbols=["BTCUSDC"])
    await until(lambda: top(paper.sim, "BTCUSDC") == top(upstream, "BTCUSDC"),
                tick=lambda: upstream.wait_depth_ticks(1))
    bid = top(upstream, "BTCUSDC")[0][0][0]
    resting = await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.001"), bid, client_order_id="paper-rest",
                                     time_in_force="GTC")
    assert resting.status == "NEW"
    assert (await gw.fetch_open_orders("BTCUSDC"))[0].client_order_id == "paper-rest"
    with pytest.raises(errors.FilterRejected):  # the simulator's filters, on the upstream's exchangeInfo entry
        await gw.create_order("BTCUSDC", Side.BUY, "MARKET", D("0.0000001"), client_order_id="paper-tiny")
    with pytest.raises(errors.InsufficientBalance):  # the paper account's own balances: it holds no BTC
        await gw.create_order("BTCUSDC", Side.SELL, "MARKET", D("0.01"), client_order_id="paper-sell")
    assert upstream.engine.accounts[TEST_API_KEY].orders == {}


async def test_a_resumed_paper_exchange_keeps_the_account_and_mirrors_the_books_again(upstream, paper, gw):
    from exchange.simulator.persistence import snapshot

    bid = top(upstream, "BTCUSDC")[0][-1][0]  # the lowest bid: a resting order far from the market
    await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.001"), bid, client_order_id="paper-keep",
                          time_in_force="GTC")
    bought = await gw.create_order("ETHUSDC", Side.BUY, "MARKET", D("0.01"), client_order_id="paper-eth")
    balances = await gw.fetch_balance()
    saved = snapshot(paper.sim)
    await paper.stop()
    resumed = PaperExchange(paper.o, state=saved)
    await resumed.start()
    g = BinanceGateway(resumed.url, resumed.ws_url, TEST_API_KEY, TEST_SECRET)
    g.ccxt.timeout_on_exit = 0
    try:
        again = await g.fetch_balance()
        assert {a: (b.free, b.locked) for a, b in again.items()} == {a: (b.free, b.locked) for a, b in
                                                                      balances.items()}
        assert [o.client_order_id for o in await g.fetch_open_orders("BTCUSDC")] == ["paper-keep"]
        assert [t.order_id for t in await g.fetch_my_trades("ETHUSDC")] == [bought.order_id] * len(bought.fills)
        # The mirrored levels are the upstream's again; the resting paper order is on the book beside them.
        _, asks = top(resumed.sim, "ETHUSDC")
        assert asks == top(upstream, "ETHUSDC")[1]
        bids = dict(top(resumed.sim, "BTCUSDC", 100)[0])
        assert bids[bid] == dict(top(upstream, "BTCUSDC", 100)[0])[bid] + D("0.001")
    finally:
        await g.close()
        await resumed.stop()

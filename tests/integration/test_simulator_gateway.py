"""exchange/gateway.py against the running simulator: exact Decimal values from the exchange's strings, and ccxt's
errors turned into the project's own types carrying Binance's codes."""
from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest

import core  # noqa: F401
from core.clock import SystemClock
from core.config import REPO_ROOT, ExchangeConfig
from core.side import Side
from exchange import errors
from exchange.gateway import BinanceGateway, map_error
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator

D = Decimal
TIMEOUT = 10


def config(**kw) -> SimulatorConfig:
    return SimulatorConfig(host=LOOPBACK, symbols=("BTCUSDC", "ETHUSDC", "DOGEUSDC"),
                           process=PriceProcessConfig(update_ms=0, trade_percent=0), **kw)


@pytest.fixture
async def sim():
    async with Simulator(config()) as s:
        yield s


@pytest.fixture
async def gw(sim):
    cfg = ExchangeConfig(rest_url=sim.url, ws_url=sim.ws_url)
    g = BinanceGateway.from_config(cfg, TEST_API_KEY, TEST_SECRET)
    g.ccxt.timeout_on_exit = 0
    g.ccxt.enableRateLimit = False
    yield g
    await g.close()


async def test_orders_and_fills_are_exact_decimals(sim, gw):
    markets = await gw.load_markets()
    assert set(markets) == {"BTCUSDC", "ETHUSDC", "DOGEUSDC"}
    assert markets["BTCUSDC"]["filters"][0]["tickSize"] == "0.01000000"  # raw strings, not ccxt's floats
    book = await gw.fetch_order_book("ETHUSDC", 100)
    last, bids, asks = sim.engine.depth("ETHUSDC", 100)
    assert (book.nonce, book.bids, book.asks) == (last, bids, asks)
    order = await gw.create_order("ETHUSDC", Side.BUY, "MARKET", D("0.7"), client_order_id="g-1")
    assert isinstance(order.executed_qty, Decimal) and order.executed_qty == D("0.7")
    assert sum(f.qty for f in order.fills) == order.executed_qty
    assert sum(f.price * f.qty for f in order.fills) == order.cum_quote
    assert order.average_price == order.cum_quote / order.executed_qty
    assert all(f.commission == f.qty * D("0.001") and f.commission_asset == "ETH" for f in order.fills)
    trades = await gw.fetch_my_trades("ETHUSDC", order_id=order.order_id)
    assert [(t.trade_id, t.price, t.qty, t.commission) for t in trades] == [
        (f.trade_id, f.price, f.qty, f.commission) for f in order.fills]
    balances = await gw.fetch_balance()
    assert balances["ETH"].free == D("0.7") - sum(f.commission for f in order.fills)
    assert balances["USDC"].free == D("1000000") - order.cum_quote
    quote = await gw.create_order("DOGEUSDC", Side.BUY, "MARKET", quote_order_qty=D("12.5"), client_order_id="g-2")
    assert quote.cum_quote <= D("12.5") and quote.executed_qty % D(1) == 0  # DOGE's step is 1
    rest = await gw.create_order("ETHUSDC", Side.BUY, "LIMIT_MAKER", D("0.01"), bids[-1][0], client_order_id="g-3")
    assert rest.is_open and rest.type == "LIMIT_MAKER"
    assert [o.client_order_id for o in await gw.fetch_open_orders("ETHUSDC")] == ["g-3"]
    assert (await gw.fetch_order("ETHUSDC", client_order_id="g-3")).order_id == rest.order_id
    canceled = await gw.cancel_order("ETHUSDC", client_order_id="g-3")
    assert canceled.status == "CANCELED" and canceled.client_order_id == "g-3"
    tickers = await gw.fetch_tickers(["BTCUSDC"])
    assert D(tickers["BTCUSDC"]["bidPrice"]) == sim.engine.books["BTCUSDC"].best_price(Side.BUY)
    assert await gw.fetch_avg_price("ETHUSDC") == sim.engine.avg_price("ETHUSDC")


async def test_user_stream_orders_and_trades(sim, gw):
    await gw.load_markets()
    orders_task = asyncio.ensure_future(gw.watch_orders())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    trades_task = asyncio.ensure_future(gw.watch_my_trades())
    placed = await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.2"), D("70000"), client_order_id="s-1",
                                   time_in_force="IOC")
    seen = await asyncio.wait_for(orders_task, TIMEOUT)
    while seen[-1].is_open:
        seen = await asyncio.wait_for(gw.watch_orders(), TIMEOUT)
    final = seen[-1]
    assert (final.client_order_id, final.status) == ("s-1", placed.status)
    assert final.executed_qty == placed.executed_qty and final.cum_quote == placed.cum_quote
    fills = list(await asyncio.wait_for(trades_task, TIMEOUT))
    while sum(f.qty for f in fills) < placed.executed_qty:
        fills += await asyncio.wait_for(gw.watch_my_trades(), TIMEOUT)
    assert sorted(f.trade_id for f in fills) == sorted(f.trade_id for f in placed.fills)
    assert all(f.client_order_id == "s-1" and f.side is Side.BUY for f in fills)


async def test_lean_execution_stream_gives_each_report_once_and_raises_when_dropped(sim, gw):
    await gw.load_markets()
    first = asyncio.ensure_future(gw.watch_executions())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    placed = await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.2"), D("70000"), client_order_id="x-1",
                                   time_in_force="IOC")
    seen = list(await asyncio.wait_for(first, TIMEOUT))
    while not seen or seen[-1].is_open:
        seen += await asyncio.wait_for(gw.watch_executions(), TIMEOUT)
    assert {o.client_order_id for o in seen} == {"x-1"}
    final = seen[-1]
    assert (final.status, final.executed_qty, final.cum_quote) == (placed.status, placed.executed_qty,
                                                                  placed.cum_quote)
    fills = [f for o in seen for f in o.fills]  # each TRADE report carries its own fill, exact
    assert sorted((f.trade_id, f.price, f.qty, f.commission) for f in fills) == sorted(
        (f.trade_id, f.price, f.qty, f.commission) for f in placed.fills)
    assert not gw.ccxt.orders and not gw.ccxt.myTrades  # ccxt's own parsing was skipped
    assert not (gw.ccxt.balance or {}).get("spot")  # and so were the account events nobody reads
    # A dropped stream raises (events may be lost), and the next call subscribes again.
    waiting = asyncio.ensure_future(gw.watch_executions())
    sim.user_streams.subscribed.clear()
    await sim.user_streams.drop_all()
    with pytest.raises(errors.ExchangeError):
        await asyncio.wait_for(waiting, TIMEOUT)
    again = asyncio.ensure_future(gw.watch_executions())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.01"), D("70000"), client_order_id="x-2",
                          time_in_force="IOC")
    assert (await asyncio.wait_for(again, TIMEOUT))[0].client_order_id == "x-2"


async def test_exchange_errors_become_project_errors_with_codes(sim, gw):
    await gw.load_markets()
    async def reject(**kw):
        with pytest.raises(errors.ExchangeError) as e:
            await gw.create_order("BTCUSDC", Side.BUY, kw.pop("type", "LIMIT"), client_order_id=kw.pop("cid", "e"),
                                  **kw)
        return e.value
    e = await reject(quantity=D("9001"), price=D("60000"), time_in_force="GTC")
    assert type(e) is errors.FilterRejected and (e.code, e.filter) == (-1013, "LOT_SIZE")
    e = await reject(quantity=D("0.00001"), price=D("60000"), time_in_force="GTC")
    assert type(e) is errors.FilterRejected and e.filter == "NOTIONAL"
    e = await reject(quantity=D("100"), price=D("60000"), time_in_force="GTC")
    assert type(e) is errors.InsufficientBalance and e.code == -2010
    e = await reject(type="LIMIT_MAKER", quantity=D("0.001"), price=D("70000"))
    assert type(e) is errors.WouldTakeLiquidity and e.code == -2010
    await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("0.001"), D("55000"), client_order_id="dup",
                          time_in_force="GTC")
    e = await reject(quantity=D("0.001"), price=D("55000"), time_in_force="GTC", cid="dup")
    assert type(e) is errors.DuplicateOrder
    with pytest.raises(errors.OrderNotFound) as nf:
        await gw.cancel_order("BTCUSDC", 424242)
    assert nf.value.code == -2011
    with pytest.raises(errors.OrderNotFound) as nf:
        await gw.fetch_order("BTCUSDC", 424242)
    assert nf.value.code == -2013
    with pytest.raises(errors.BadSymbol):
        await gw.fetch_order_book("NOPEUSDC")


async def test_authentication_timestamp_and_ban_errors():
    class Behind:
        def now_ms(self) -> int:
            return SystemClock().now_ms() + 30_000

    cfg = config(rate_limits=[{"rateLimitType": "REQUEST_WEIGHT", "interval": "DAY", "intervalNum": 1,
                               "limit": 45}], ban_after_429s=0)
    async with Simulator(cfg, clock=Behind()) as sim:
        wrong = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, "wrong-secret", enable_rate_limit=False)
        good = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET, enable_rate_limit=False)
        for g in (wrong, good):
            g.ccxt.timeout_on_exit = 0
        try:
            await good.load_markets()  # 20
            with pytest.raises(errors.InvalidTimestamp) as e:
                await good.fetch_balance()  # 40: the server's clock is 30 s ahead of ours
            assert e.value.code == -1021
            with pytest.raises(errors.IpBanned) as ban:
                await wrong.fetch_order_book("BTCUSDC")  # 45 + 5 over the limit, and no 429 is tolerated
            assert ban.value.http_status == 418 and ban.value.retry_after_s == 120
        finally:
            await wrong.close()
            await good.close()


def test_map_error_reads_codes_from_bodies_and_bare_messages():
    cases = [
        (ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: PRICE_FILTER"}'), errors.FilterRejected,
         -1013),
        (ccxt.InvalidOrder("binance Filter failure: MIN_NOTIONAL"), errors.FilterRejected, -1013),
        (ccxt.InsufficientFunds("binance Account has insufficient balance for requested action."),
         errors.InsufficientBalance, -2010),
        (ccxt.MarketClosed("binance Market is closed."), errors.MarketClosed, -1013),
        (ccxt.DDoSProtection('binance 429 Too Many Requests {"code":-1003,"msg":"Too much request weight used"}'),
         errors.RateLimited, -1003),
        (ccxt.ExchangeError('binance {"code":-1008,"msg":"Server is currently overloaded"}'), errors.StatusUnknown,
         -1008),
        (ccxt.RequestTimeout("binance GET http://x timed out"), errors.StatusUnknown, None),
        (ccxt.ExchangeNotAvailable("binance connection refused"), errors.ExchangeUnavailable, None),
        (ccxt.BadRequest('binance {"code":-1102,"msg":"Mandatory parameter \'symbol\' was not sent"}'),
         errors.BadRequest, -1102),
    ]
    for exc, cls, code in cases:
        mapped = map_error(exc)
        assert type(mapped) is cls and mapped.code == code, exc
    assert map_error(cases[1][0]).filter == "MIN_NOTIONAL"
    rl = map_error(ccxt.DDoSProtection("binance 418 I'm a teapot {\"code\":-1003,\"msg\":\"IP banned until 1\"}"),
                   retry_after="77")
    assert type(rl) is errors.IpBanned and rl.retry_after_s == 77


def test_only_the_gateway_imports_ccxt():
    pattern = re.compile(r"^\s*(import ccxt|from ccxt)", re.MULTILINE)
    offenders = []
    for package in ("core", "protocol", "actors", "chain", "exchange", "world", "store"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            if path != REPO_ROOT / "exchange" / "gateway.py" and pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


async def test_create_order_sends_exact_positional_decimals_and_refuses_incomplete_orders(sim, gw):
    """The order goes out through ccxt's raw endpoint call: the request is built here, so what the unified call did
    (GTC by default for a LIMIT, no exponent in numbers, an unknown symbol refused before sending) is checked."""
    await gw.load_markets()
    _, bids, _ = sim.engine.depth("BTCUSDC", 5)
    price = bids[-1][0] - D("1000")  # rests: nobody sells that low
    resting = await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", D("1E-3"), D(f"{price:E}"), client_order_id="p-1")
    assert (resting.status, resting.time_in_force, resting.orig_qty, resting.price) == ("NEW", "GTC", D("0.001"), price)
    for kwargs, text in [({"order_type": "LIMIT", "quantity": D("0.001")}, "needs a quantity and a price"),
                         ({"order_type": "MARKET"}, "exactly one of quantity and quote_order_qty"),
                         ({"order_type": "STOP_LOSS", "quantity": D("0.001")}, "unsupported order type")]:
        with pytest.raises(errors.BadRequest, match=text):
            await gw.create_order("BTCUSDC", Side.BUY, client_order_id="p-2", **kwargs)
    with pytest.raises(errors.BadSymbol):
        await gw.create_order("NOPEUSDC", Side.BUY, "LIMIT", D("1"), D("1"), client_order_id="p-3")
    assert [o.client_order_id for o in await gw.fetch_open_orders("BTCUSDC")] == ["p-1"]  # nothing else reached it

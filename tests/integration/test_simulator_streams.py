"""Market streams and the user data stream of the running simulator, through the real ccxt.pro client and raw
websockets: books built by ccxt equal the simulator's own, update ids chain, events have Binance's keys."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest

import core  # noqa: F401
from core.clock import SystemClock
from core.side import Side
from exchange.gateway import BinanceGateway
from exchange.simulator import auth
from exchange.simulator.config import DATA_DIR, TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator

D = Decimal
BINANCE = DATA_DIR / "binance"
REAL_USER_EVENTS = [json.loads(line) for line in (BINANCE / "user_data_events_BNBUSDT_2025-10-20.jsonl").open()]
REAL_DEPTH_UPDATE = json.loads((BINANCE / "depth_update_BTCUSDT_2025-02-10_partial.json").read_text())
SYMBOLS = ("BTCUSDC", "ETHUSDC", "SOLUSDC", "PENGUUSDC")
TIMEOUT = 10


@pytest.fixture
async def sim():
    cfg = SimulatorConfig(host=LOOPBACK, symbols=SYMBOLS, process=PriceProcessConfig(update_ms=0, trade_percent=0))
    async with Simulator(cfg) as s:
        yield s


def client(sim) -> BinanceGateway:
    gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET, enable_rate_limit=False)
    gw.ccxt.timeout_on_exit = 0
    return gw


@pytest.fixture
async def ex(sim):
    gw = client(sim)
    await gw.ccxt.load_markets()
    yield gw.ccxt
    await gw.close()


async def book_at(ex, symbol: str, update_id: int):
    """ccxt's book of `symbol` once it has applied update `update_id` (waits on ccxt's own updates)."""
    async def until():
        while True:
            cached = ex.orderbooks.get(symbol)
            if cached is not None and cached["nonce"] is not None and cached["nonce"] >= update_id:
                return cached
            await ex.watch_order_book(symbol)
    return await asyncio.wait_for(until(), TIMEOUT)


def same_book(ccxt_book, sim, exchange_symbol):
    last, bids, asks = sim.engine.depth(exchange_symbol, 5000)
    assert ccxt_book["nonce"] == last
    assert [(D(repr(p)), D(repr(q))) for p, q in ccxt_book["bids"]] == bids
    assert [(D(repr(p)), D(repr(q))) for p, q in ccxt_book["asks"]] == asks


async def test_ccxt_book_after_1000_updates_equals_the_simulators_own(sim, ex):
    await ex.watch_order_book("BTC/USDC")  # subscribe + REST snapshot
    published = 0
    while published < 1000:
        sim.step(1, ["BTCUSDC"])
        if published % 3 == 0:
            sim.engine.mm_take("BTCUSDC", Side.BUY, D("0.001"))  # trades too, not only quote changes
        published += sim.publish_depth()
        if published % 100 == 0:
            await book_at(ex, "BTC/USDC", sim.engine.books["BTCUSDC"].update_id)
    book = await book_at(ex, "BTC/USDC", sim.engine.books["BTCUSDC"].update_id)
    same_book(book, sim, "BTCUSDC")
    assert sim.depth_events_published >= 1000


async def test_watch_order_book_for_symbols_builds_every_book(sim, ex):
    symbols = ["BTC/USDC", "ETH/USDC", "SOL/USDC", "PENGU/USDC"]
    await ex.watch_order_book_for_symbols(symbols)
    for _ in range(30):
        sim.step(1)
        sim.publish_depth()
    for s in symbols:
        exchange_symbol = s.replace("/", "")
        same_book(await book_at(ex, s, sim.engine.books[exchange_symbol].update_id), sim, exchange_symbol)


async def test_raw_stream_ack_precedes_events_and_update_ids_chain(sim):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url + "/ws/0") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdc@depth@100ms", "btcusdc@trade"], "id": 1})
            # wait until the server registered it, then produce events before reading anything
            ack = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert ack == {"result": None, "id": 1}
            for _ in range(5):
                sim.step(1, ["BTCUSDC"])
                sim.engine.mm_take("BTCUSDC", Side.SELL, D("0.001"))
                sim.dispatch()
                sim.publish_depth()
            depth, trades = [], []
            while len(depth) < 5:
                msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                (depth if msg["e"] == "depthUpdate" else trades).append(msg)
            assert [list(m) for m in depth] == [list(REAL_DEPTH_UPDATE["data"])] * 5
            for prev, nxt in zip(depth, depth[1:]):
                assert nxt["U"] == prev["u"] + 1
            assert depth[-1]["u"] == sim.engine.books["BTCUSDC"].update_id
            assert trades and all(list(t) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"] for t in trades)
            assert all(t["m"] is True for t in trades)  # a seller took: the buyer was the maker
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "x"})
            while True:
                msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                if msg.get("id") == "x":
                    assert msg["result"] == ["btcusdc@depth@100ms", "btcusdc@trade"]
                    break
        # the combined endpoint wraps every event, like the real capture
        async with session.ws_connect(sim.ws_url + "/stream?streams=ethusdc@depth@100ms") as ws:
            before = sim.engine.books["ETHUSDC"].update_id
            sim.step(1, ["ETHUSDC"])
            sim.publish_depth()
            msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert list(msg) == list(REAL_DEPTH_UPDATE) and msg["stream"] == "ethusdc@depth@100ms"
            assert msg["data"]["U"] == before + 1 and msg["data"]["s"] == "ETHUSDC"


async def test_watch_trades_sees_the_fills_of_an_order(sim, ex):
    first = asyncio.ensure_future(ex.watch_trades("BTC/USDC"))
    await asyncio.wait_for(until_subscribed(sim, "btcusdc@trade"), TIMEOUT)
    order = await ex.create_order("BTC/USDC", "market", "buy", 0.002)
    seen = list(await asyncio.wait_for(first, TIMEOUT))
    while len(seen) < len(order["info"]["fills"]):
        seen += await asyncio.wait_for(ex.watch_trades("BTC/USDC"), TIMEOUT)
    fills = order["info"]["fills"]
    assert [t["id"] for t in seen] == [str(f["tradeId"]) for f in fills]
    assert [D(t["info"]["p"]) for t in seen] == [D(f["price"]) for f in fills]
    assert sum(D(t["info"]["q"]) for t in seen) == D("0.002")


async def until_subscribed(sim, stream):
    while not sim.streams.has(stream):
        await sim.wait_depth_ticks(1)


async def ws_api_subscribe(session, sim):
    ws = await session.ws_connect(sim.ws_url + "/ws-api/v3")
    params = {"apiKey": TEST_API_KEY, "timestamp": SystemClock().now_ms(), "recvWindow": 10000}
    params["signature"] = auth.sign(TEST_SECRET, auth.ws_payload(params))
    await ws.send_json({"id": "1", "method": "userDataStream.subscribe.signature", "params": params})
    reply = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
    assert reply["id"] == "1" and reply["status"] == 200 and reply["result"] == {"subscriptionId": 0}
    return ws


async def test_user_data_events_have_the_real_keys(sim):
    """The real BNBUSDT sequence: a LIMIT BUY rests (NEW, position), then fills as maker (TRADE, FILLED)."""
    sim.add_account("otherAccount1", "otherSecret", {"ETH": D("1")})
    gw = client(sim)
    try:
        async with aiohttp.ClientSession() as session:
            ws = await ws_api_subscribe(session, sim)
            bid = sim.engine.books["ETHUSDC"].best_price(Side.BUY)
            placed = await gw.create_order("ETHUSDC", Side.BUY, "LIMIT", D("0.01"), bid + D("0.01"),
                                           client_order_id="x-rest-1", time_in_force="GTC")
            assert placed.status == "NEW"  # inside the spread: it rests, and is first in line
            sim.engine.place("otherAccount1", "ETHUSDC", Side.SELL, "MARKET", quantity=D("0.01"),
                             client_order_id="taker")
            sim.dispatch()
            events = []
            while len(events) < 4:
                msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                assert list(msg) == ["subscriptionId", "event"] and msg["subscriptionId"] == 0
                events.append(msg["event"])
            await ws.close()
    finally:
        await gw.close()
    new, position, trade, position2 = events
    real_new, real_position, real_trade = REAL_USER_EVENTS
    assert list(new) == list(real_new) and (new["x"], new["X"], new["w"]) == ("NEW", "NEW", True)
    assert list(position) == list(real_position)
    assert [list(b) for b in position["B"]] == [list(real_position["B"][0])] * len(position["B"])
    assert list(trade) == list(real_trade)
    assert (trade["x"], trade["X"], trade["m"], trade["w"]) == ("TRADE", "FILLED", True, False)
    assert trade["c"] == "x-rest-1" and trade["i"] == placed.order_id
    assert D(trade["l"]) == D(trade["z"]) == D("0.01") and D(trade["Y"]) == D(trade["L"]) * D("0.01")
    for key, value in real_trade.items():
        assert type(trade[key]) is type(value), key  # same JSON types (strings for amounts, ints for ids)
    assert position2["e"] == "outboundAccountPosition"
    balances = {b["a"]: b for b in position2["B"]}
    free, locked = sim.engine.accounts[TEST_API_KEY].balance("ETH")
    assert D(balances["ETH"]["f"]) == free and D(balances["ETH"]["l"]) == locked


async def test_ccxt_watch_orders_my_trades_and_balance(sim, ex):
    orders_task = asyncio.ensure_future(ex.watch_orders())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    trades_task = asyncio.ensure_future(ex.watch_my_trades())
    balance_task = asyncio.ensure_future(ex.watch_balance())
    placed = await ex.create_order("BTC/USDC", "market", "buy", 0.003)
    orders = await asyncio.wait_for(orders_task, TIMEOUT)
    while orders[-1]["status"] != "closed":
        orders = await asyncio.wait_for(ex.watch_orders(), TIMEOUT)
    assert orders[-1]["id"] == placed["id"] and orders[-1]["filled"] == 0.003
    trades = list(await asyncio.wait_for(trades_task, TIMEOUT))
    while sum(D(t["info"]["l"]) for t in trades) < D("0.003"):
        trades += await asyncio.wait_for(ex.watch_my_trades(), TIMEOUT)
    assert sorted(t["id"] for t in trades) == sorted(str(f["tradeId"]) for f in placed["info"]["fills"])
    assert sum(D(t["info"]["l"]) for t in trades) == D("0.003")
    balance = await asyncio.wait_for(balance_task, TIMEOUT)
    free, _ = sim.engine.accounts[TEST_API_KEY].balance("BTC")
    assert D(repr(balance["BTC"]["free"])) == free


async def test_partial_depth_book_ticker_and_one_second_diffs(sim):
    async with aiohttp.ClientSession() as session:
        url = sim.ws_url + "/stream?streams=ethusdc@depth5@100ms/ethusdc@bookTicker/ethusdc@depth"
        async with session.ws_connect(url) as ws:
            start = sim.engine.books["ETHUSDC"].update_id
            sim.step(1, ["ETHUSDC"])
            sim.publish_depth()
            got: dict[str, dict] = {}
            while "ethusdc@bookTicker" not in got or "ethusdc@depth5@100ms" not in got:
                msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                got[msg["stream"]] = msg["data"]
            last, bids, asks = sim.engine.depth("ETHUSDC", 5)
            assert got["ethusdc@depth5@100ms"] == {"lastUpdateId": last,
                                                   "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                                                   "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]}
            assert list(got["ethusdc@bookTicker"]) == ["u", "s", "b", "B", "a", "A"]
            assert D(got["ethusdc@bookTicker"]["b"]) == bids[0][0]
            # the 1000 ms stream merges one second of changes into one event; consecutive events chain
            slow: list[dict] = []

            async def keep_changing() -> None:
                while True:
                    await sim.wait_depth_ticks(1)
                    sim.step(1, ["ETHUSDC"])

            mover = asyncio.ensure_future(keep_changing())
            try:
                while len(slow) < 2:
                    msg = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                    if msg["stream"] == "ethusdc@depth":
                        slow.append(msg["data"])
            finally:
                mover.cancel()
            assert all(e["e"] == "depthUpdate" and e["U"] <= e["u"] for e in slow)
            assert slow[1]["U"] == slow[0]["u"] + 1
            assert slow[0]["U"] > start and slow[1]["u"] <= sim.engine.books["ETHUSDC"].update_id


async def test_ws_api_rejects_bad_signatures_and_market_streams_limit_incoming_messages(sim):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url + "/ws-api/v3") as ws:
            params = {"apiKey": TEST_API_KEY, "timestamp": SystemClock().now_ms(), "recvWindow": 10000}
            params["signature"] = auth.sign("not-the-secret", auth.ws_payload(params))
            await ws.send_json({"id": 7, "method": "userDataStream.subscribe.signature", "params": params})
            reply = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert reply == {"id": 7, "status": 400,
                             "error": {"code": -1022, "msg": "Signature for this request is not valid."}}
            await ws.send_json({"id": 8, "method": "ping"})
            pong = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert pong["status"] == 200 and pong["result"] == {}
        async with session.ws_connect(sim.ws_url + "/ws") as ws:
            for i in range(6):  # Binance allows 5 incoming messages per second on a market-stream connection
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
            kinds = []
            while True:
                msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
                kinds.append(json.loads(msg.data)["id"])
            assert kinds == [0, 1, 2, 3, 4] and ws.close_code == 1008

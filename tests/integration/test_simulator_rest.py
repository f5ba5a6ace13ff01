"""The real ccxt client against the running simulator's REST API: every endpoint ccxt uses, payloads compared key
by key with the real Binance captures in data/binance/, errors and rate limits mapped to ccxt's exception classes."""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import ccxt
import pytest

import core  # noqa: F401
from core.clock import ManualClock, SystemClock
from exchange.gateway import BinanceGateway
from exchange.simulator import auth
from exchange.simulator.config import DATA_DIR, TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator

D = Decimal
BINANCE = DATA_DIR / "binance"
REAL_INFO = json.loads((BINANCE / "exchangeInfo_spot_2024-09-08_usdt_usdc.json").read_text())
REAL_ENTRIES = {e["symbol"]: e for e in REAL_INFO["symbols"]}
HEADER_2025 = json.loads((BINANCE / "exchangeInfo_header_2025-06-21.json").read_text())
ORDER_RESPONSES = json.loads((BINANCE / "order_responses.json").read_text())
EIGHT_DP = re.compile(r"^\d+\.\d{8}$")


def quiet_config(**kw) -> SimulatorConfig:
    """No background price moves: tests step the market by hand."""
    return SimulatorConfig(host=LOOPBACK, process=PriceProcessConfig(update_ms=0, trade_percent=0), **kw)


@pytest.fixture
async def sim():
    async with Simulator(quiet_config()) as s:
        yield s


def client(sim, key=TEST_API_KEY, secret=TEST_SECRET, **kw):
    # ccxt's own throttle only slows the tests down (the limits are tested against the server explicitly), and its
    # 250 ms exit grace period is for TLS shutdowns: nothing to wait for on local HTTP.
    kw.setdefault("enable_rate_limit", False)
    gw = BinanceGateway(sim.url, sim.ws_url, key, secret, **kw)
    gw.ccxt.timeout_on_exit = 0
    return gw


@pytest.fixture
async def ex(sim):
    gw = client(sim)
    await gw.ccxt.load_markets()
    yield gw.ccxt
    await gw.close()


async def raw_get(sim, path, params=None):
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.url + path, params=params) as r:
            return r.status, dict(r.headers), await r.json()


# ============================================================================ markets
async def test_load_markets_serves_the_real_entries_and_marks_twins_and_synthetics(sim, ex):
    info = {m["id"]: m["info"] for m in ex.markets.values()}
    origins = sim.inspect()["markets"]
    assert {o["origin"] for o in origins.values()} == {"real", "usdt_twin", "synthetic"}
    assert len(info) == len(origins) == 155
    for symbol, meta in origins.items():
        entry = info[symbol]
        if meta["origin"] == "real":
            assert entry == REAL_ENTRIES[symbol]  # unmodified, key by key, value by value
        elif meta["origin"] == "usdt_twin":
            twin = dict(REAL_ENTRIES[symbol[:-4] + "USDT"])
            twin.update(symbol=symbol, quoteAsset="USDC")
            assert entry == twin
        else:
            # a synthetic entry has exactly the shape of a real one (same keys, same filter types and keys)
            real = REAL_ENTRIES["BTCUSDC"]
            assert list(entry) == list(real)
            assert [sorted(f) for f in entry["filters"]] == [sorted(f) for f in real["filters"]]
            price = D(meta["implied_price"])
            tick = D(entry["filters"][0]["tickSize"])
            step = D(entry["filters"][1]["stepSize"])
            # a usable grid: the price spans >= 100 ticks (or the tick is Binance's finest, 8 decimals), and one
            # step is worth well under the 5 USDC minimum notional
            assert tick > 0 and (price / tick >= 100 or tick == D("0.00000001"))
            assert step > 0 and step * price < 1
    assert ex.markets["PENGU/USDC"]["active"] and ex.markets["XLM/USDC"]["active"]
    # the basket-implied seed price of SY100's BTC (data/README.md: ~72,328)
    assert abs(D(origins["ETHUSDC"]["implied_price"]) - D("2857")) < 1


async def test_exchange_info_header_is_the_2025_capture(sim):
    status, headers, body = await raw_get(sim, "/api/v3/exchangeInfo")
    assert status == 200
    assert list(body) == ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"]
    assert body["rateLimits"] == HEADER_2025["rateLimits"]
    assert headers["X-MBX-USED-WEIGHT-1M"] == "20"
    status, _, one = await raw_get(sim, "/api/v3/exchangeInfo", {"symbol": "BTCUSDC"})
    assert [s["symbol"] for s in one["symbols"]] == ["BTCUSDC"]


async def test_depth_is_seeded_from_the_real_snapshot(sim, ex, depth_snapshot):
    status, headers, body = await raw_get(sim, "/api/v3/depth", {"symbol": "BTCUSDC", "limit": "10"})
    assert list(body) == list(depth_snapshot)
    assert body["bids"] == depth_snapshot["bids"] and body["asks"] == depth_snapshot["asks"]
    assert headers["X-MBX-USED-WEIGHT-1M"] == "25"  # exchangeInfo (20, the ccxt fixture) + depth limit 10 (5)
    ob = await ex.fetch_order_book("BTC/USDC", 100)
    last, bids, asks = sim.engine.depth("BTCUSDC", 100)
    assert ob["nonce"] == last
    assert [[D(repr(p)), D(repr(q))] for p, q in ob["bids"]] == [[p, q] for p, q in bids]
    assert [[D(repr(p)), D(repr(q))] for p, q in ob["asks"]] == [[p, q] for p, q in asks]


# ============================================================================ orders
async def test_order_responses_have_binance_keys_and_fills_add_up(sim, ex):
    sim.step(3)
    asks = sim.engine.depth("BTCUSDC", 3)[2]
    amount = asks[0][1] + asks[1][1] + D("0.00001")  # two levels and a bit of the third
    o = await ex.create_order("BTC/USDC", "market", "buy", float(amount))
    info = o["info"]
    real_market = ORDER_RESPONSES["BTCUSDT_market_FULL_2019-12-07"]
    real_2025 = ORDER_RESPONSES["SOLUSDT_limit_iceberg_resting_2025-01-23_ccxt_capture"]
    # every key of the real answers (the 2025 one minus its iceberg field), nothing else
    assert set(real_market) <= set(info)
    assert set(info) == set(real_2025) - {"icebergQty"}
    assert [list(f) for f in info["fills"]] == [list(real_market["fills"][0])] * len(info["fills"])
    for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "origQuoteOrderQty"):
        assert EIGHT_DP.match(info[k]), k
    assert isinstance(info["orderId"], int) and isinstance(info["transactTime"], int)
    assert info["status"] == "FILLED" and len(info["fills"]) > 1  # crossed several levels
    assert sum(D(f["qty"]) for f in info["fills"]) == D(info["executedQty"]) == amount
    assert sum(D(f["qty"]) * D(f["price"]) for f in info["fills"]) == D(info["cummulativeQuoteQty"])
    ids = [f["tradeId"] for f in info["fills"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert o["status"] == "closed" and D(repr(o["filled"])) == amount and len(o["trades"]) == len(ids)
    assert info["clientOrderId"].startswith("x-")  # ccxt's own broker prefix went through
    trades = await ex.fetch_my_trades("BTC/USDC")
    assert sorted(t["id"] for t in trades) == sorted(str(i) for i in ids)
    for row in (t["info"] for t in trades):
        assert list(row) == ["symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty", "commission",
                             "commissionAsset", "time", "isBuyer", "isMaker", "isBestMatch"]
    bal = await ex.fetch_balance()
    free, locked = sim.engine.accounts[TEST_API_KEY].balance("BTC")
    assert {b["asset"]: (b["free"], b["locked"]) for b in bal["info"]["balances"]}["BTC"] == (
        f"{free:.8f}", f"{locked:.8f}")
    assert free == amount - sum(D(f["commission"]) for f in info["fills"])


async def test_limit_ioc_fok_quote_and_resting_lifecycle(sim, ex):
    book = sim.engine.books["BTCUSDC"]
    best_ask = book.best_price(core.side.Side.SELL)
    # IOC below the book: expires untouched
    o = await ex.create_order("BTC/USDC", "limit", "buy", 0.001, float(best_ask - 100), {"timeInForce": "IOC"})
    assert o["info"]["status"] == "EXPIRED" and o["status"] == "expired" and o["filled"] == 0
    # FOK for more than the whole book: expires without a fill; a small FOK at the best ask fills completely
    o = await ex.create_order("BTC/USDC", "limit", "buy", 10, float(best_ask + 1000), {"timeInForce": "FOK"})
    assert o["info"]["status"] == "EXPIRED" and o["info"]["fills"] == []
    o = await ex.create_order("BTC/USDC", "limit", "buy", 0.001, float(best_ask), {"timeInForce": "FOK"})
    assert o["info"]["status"] == "FILLED" and o["info"]["fills"][0]["price"] == f"{best_ask:.8f}"
    o = await ex.create_market_buy_order_with_cost("BTC/USDC", 25)
    assert o["info"]["type"] == "MARKET" and D(o["info"]["origQuoteOrderQty"]) == D("25")
    assert D(o["info"]["cummulativeQuoteQty"]) <= D("25") and o["status"] == "closed"
    rest = await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55000, {"timeInForce": "GTC"})
    assert rest["status"] == "open"
    fetched = await ex.fetch_order(rest["id"], "BTC/USDC")
    real_query_keys = ["symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty",
                       "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "stopPrice", "icebergQty",
                       "time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty",
                       "selfTradePreventionMode"]
    assert list(fetched["info"]) == real_query_keys and fetched["status"] == "open"
    assert [o["id"] for o in await ex.fetch_open_orders("BTC/USDC")] == [rest["id"]]
    assert sim.engine.accounts[TEST_API_KEY].locked["USDC"] == D("55")
    canceled = await ex.cancel_order(rest["id"], "BTC/USDC")
    assert canceled["status"] == "canceled" and canceled["info"]["origClientOrderId"] == rest["clientOrderId"]
    assert sim.engine.accounts[TEST_API_KEY].locked["USDC"] == 0
    assert await ex.fetch_open_orders("BTC/USDC") == []
    maker = await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55000, {"postOnly": True})
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"


async def test_ticker_avg_price_and_deposit_address(sim, ex):
    sim.step(5)
    t = await ex.fetch_ticker("BTC/USDC")
    assert t["bid"] < t["ask"]
    tickers = await ex.fetch_tickers(["BTC/USDC", "ETH/USDC"])
    assert set(tickers) == {"BTC/USDC", "ETH/USDC"}
    status, _, avg = await raw_get(sim, "/api/v3/avgPrice", {"symbol": "BTCUSDC"})
    assert list(avg) == ["mins", "price", "closeTime"] and avg["mins"] == 5
    addr = await ex.fetch_deposit_address("USDC", {"network": "BASE"})
    real = json.loads((BINANCE / "deposit_address_examples.json").read_text())["USDT_default_network_ccxt_capture"]
    assert list(addr["info"]) == list(real)
    assert re.fullmatch(r"0x[0-9a-f]{40}", addr["address"]) and addr["tag"] is None
    again = await ex.fetch_deposit_address("USDC", {"network": "BASE"})
    assert again["address"] == addr["address"]  # one address per network, stable


# ============================================================================ errors
async def test_filter_and_matching_errors_map_to_ccxt_classes(sim, ex):
    cases = [
        (dict(amount=9001, price=60000), ccxt.InvalidOrder, "Filter failure: LOT_SIZE"),
        (dict(amount=0.001, price=2_000_000), ccxt.InvalidOrder, "Filter failure: PRICE_FILTER"),
        (dict(amount=0.001, price=5000), ccxt.InvalidOrder, "Filter failure: PERCENT_PRICE_BY_SIDE"),
        (dict(amount=0.00001, price=60000), ccxt.BadRequest, "Filter failure: NOTIONAL"),
        (dict(amount=100, price=60000), ccxt.InsufficientFunds, "insufficient balance"),
    ]
    for kw, cls, text in cases:
        with pytest.raises(cls) as e:
            await ex.create_order("BTC/USDC", "limit", "buy", kw["amount"], kw["price"], {"timeInForce": "GTC"})
        assert text in str(e.value)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 70000, {"postOnly": True})
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order("999999", "BTC/USDC")
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("999999", "BTC/USDC")
    with pytest.raises(ccxt.BadSymbol):
        await ex.public_get_depth({"symbol": "NOPEUSDC"})
    o = await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55000, {"newClientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55000, {"newClientOrderId": "dup-1"})
    await ex.cancel_order(o["id"], "BTC/USDC")


async def test_authentication_errors(sim):
    bad_secret = client(sim, secret="wrong")
    unknown = client(sim, key="unknownKey123")
    try:
        await bad_secret.ccxt.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad_secret.ccxt.fetch_balance()
        await unknown.ccxt.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await unknown.ccxt.fetch_balance()
    finally:
        await bad_secret.close()
        await unknown.close()
    # a malformed key (raw request; ccxt would send it as is) gets -2014 with HTTP 401
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.url + "/api/v3/account", params={"timestamp": "1", "signature": "00"},
                         headers={"X-MBX-APIKEY": "not a key!"}) as r:
            assert r.status == 401 and (await r.json())["code"] == -2014


class SkewedClock:
    def __init__(self, offset_ms: int) -> None:
        self.offset = offset_ms

    def now_ms(self) -> int:
        return SystemClock().now_ms() + self.offset


async def test_timestamp_outside_recv_window_is_invalid_nonce():
    async with Simulator(quiet_config(symbols=("BTCUSDC",)), clock=SkewedClock(60_000)) as sim:
        gw = client(sim)
        try:
            await gw.ccxt.load_markets()
            with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
                await gw.ccxt.fetch_balance()
        finally:
            await gw.close()
    async with Simulator(quiet_config(symbols=("BTCUSDC",)), clock=SkewedClock(-5_000)) as sim:
        gw = client(sim)
        try:
            await gw.ccxt.load_markets()
            with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
                await gw.ccxt.fetch_balance()
        finally:
            await gw.close()


async def test_signature_is_checked_on_the_raw_bytes(sim):
    ts = SystemClock().now_ms()
    query = f"symbol=BTCUSDC&timestamp={ts}&recvWindow=5000"
    sig = auth.sign(TEST_SECRET, query)
    async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": TEST_API_KEY}) as s:
        async with s.get(f"{sim.url}/api/v3/openOrders?{query}&signature={sig.upper()}") as r:
            assert r.status == 200 and await r.json() == []  # hex is case-insensitive
        # the same parameters in another order are another payload: the old signature no longer fits
        other = f"timestamp={ts}&symbol=BTCUSDC&recvWindow=5000"
        async with s.get(f"{sim.url}/api/v3/openOrders?{other}&signature={sig}") as r:
            assert r.status == 400 and (await r.json())["code"] == -1022
        big = f"symbol=BTCUSDC&timestamp={ts}&recvWindow=70000"
        async with s.get(f"{sim.url}/api/v3/openOrders?{big}&signature={auth.sign(TEST_SECRET, big)}") as r:
            assert r.status == 400 and (await r.json())["code"] == -1131


# ============================================================================ rate limits
def day_limits(weight: int, orders: int) -> list[dict]:
    """Per-DAY windows: a test never straddles a window boundary (minute windows could roll over mid-test)."""
    return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "DAY", "intervalNum": 1, "limit": weight},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": orders}]


async def test_request_weight_429_then_418_ban():
    cfg = quiet_config(symbols=("BTCUSDC",), rate_limits=day_limits(weight=60, orders=1000))
    cfg.ban_after_429s = 1
    async with Simulator(cfg) as sim:
        gw = client(sim)
        try:
            await gw.ccxt.load_markets()  # weight 20
            for _ in range(8):  # 8 x 5 = 40 -> 60 used
                await gw.ccxt.fetch_order_book("BTC/USDC", 100)
            assert sim.limiter.used_weight("127.0.0.1") == 60
            with pytest.raises(ccxt.DDoSProtection, match="429"):
                await gw.ccxt.fetch_order_book("BTC/USDC", 100)
            assert int(gw.ccxt.last_response_headers["Retry-After"]) > 0
            assert gw.ccxt.last_response_headers["X-MBX-USED-WEIGHT-1D"] == "65"
            with pytest.raises(ccxt.DDoSProtection, match="418"):
                await gw.ccxt.fetch_order_book("BTC/USDC", 100)
            with pytest.raises(ccxt.DDoSProtection, match="IP banned until"):
                await gw.ccxt.fetch_time()
        finally:
            await gw.close()


async def test_orders_limit_counts_unfilled_orders_only():
    async with Simulator(quiet_config(symbols=("BTCUSDC",), rate_limits=day_limits(100_000, 2))) as sim:
        gw = client(sim)
        ex = gw.ccxt
        try:
            await ex.load_markets()
            await ex.create_order("BTC/USDC", "market", "buy", 0.001)  # filled at once: gives its slot back
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-1D"] == "0"
            await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55000)
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-1D"] == "1"
            await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55001)
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-1D"] == "2"
            with pytest.raises(ccxt.DDoSProtection, match="Too many new orders; current limit is 2 orders per 1 DAY"):
                await ex.create_order("BTC/USDC", "limit", "buy", 0.001, 55002)
        finally:
            await gw.close()


async def test_every_answer_carries_the_used_weight(sim):
    async with aiohttp.ClientSession() as s:
        for path, params in (("/api/v3/ping", {}), ("/api/v3/time", {}), ("/api/v3/depth", {"symbol": "NOPE"}),
                             ("/api/v3/account", {})):
            async with s.get(sim.url + path, params=params) as r:
                assert "X-MBX-USED-WEIGHT-1M" in r.headers, path
    # ping 1 + time 1 + depth 5 + account 20
    assert sim.limiter.used_weight("127.0.0.1") == 27

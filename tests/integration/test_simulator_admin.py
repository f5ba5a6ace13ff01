"""Fault injection and deposits through /_admin (ccxt never calls it), the running feed, and the standalone
`python -m exchange.simulator`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal

import aiohttp
import ccxt
import pytest

import core  # noqa: F401
from core.config import REPO_ROOT
from core.side import Side
from exchange import errors
from exchange.gateway import BinanceGateway
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, AccountSpec, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator

D = Decimal
TIMEOUT = 10
SYMBOLS = ("BTCUSDC", "ETHUSDC")


def config(update_ms: int = 0, **kw) -> SimulatorConfig:
    return SimulatorConfig(host=LOOPBACK, symbols=SYMBOLS,
                           process=PriceProcessConfig(update_ms=update_ms, trade_percent=0), **kw)


@pytest.fixture
async def sim():
    async with Simulator(config()) as s:
        yield s


def client(sim, **kw) -> BinanceGateway:
    kw.setdefault("enable_rate_limit", False)
    gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET, **kw)
    gw.ccxt.timeout_on_exit = 0
    return gw


@pytest.fixture
async def gw(sim):
    g = client(sim)
    await g.load_markets()
    yield g
    await g.close()


async def admin(sim, path, body=None):
    async with aiohttp.ClientSession() as s:
        if body is None:
            async with s.get(sim.url + "/_admin/" + path) as r:
                return r.status, await r.json()
        async with s.post(sim.url + "/_admin/" + path, json=body) as r:
            return r.status, await r.json()


async def test_config_marks_each_markets_origin(sim):
    status, cfg = await admin(sim, "config")
    assert status == 200
    assert cfg["markets"]["BTCUSDC"]["origin"] == "real" and cfg["markets"]["BTCUSDC"]["seed"] == "depth_snapshot"
    assert cfg["markets"]["ETHUSDC"]["seed"] == "basket_implied_price"
    assert [r["limit"] for r in cfg["rate_limits"]] == [6000, 100, 200000, 61000]
    assert cfg["accounts"] == [TEST_API_KEY]
    async with Simulator(SimulatorConfig(host=LOOPBACK, symbols=("XLMUSDC", "PENGUUSDC"),
                                         process=PriceProcessConfig(update_ms=0))) as other:
        status, cfg = await admin(other, "config")
        assert {s: m["origin"] for s, m in cfg["markets"].items()} == {"XLMUSDC": "usdt_twin",
                                                                      "PENGUUSDC": "synthetic"}


async def test_reject_next_orders_then_accept(sim, gw):
    await admin(sim, "faults", {"reject_orders": {"count": 2, "status": 503, "code": -1008,
                                                  "msg": "Server is currently overloaded with other requests. "
                                                         "Please try again in a few minutes."}})
    for i in range(2):
        with pytest.raises(errors.StatusUnknown) as e:  # a 5xx: the sender must reconcile, not assume
            await gw.create_order("BTCUSDC", Side.BUY, "MARKET", D("0.001"), client_order_id=f"r{i}")
        assert e.value.code == -1008
    order = await gw.create_order("BTCUSDC", Side.BUY, "MARKET", D("0.001"), client_order_id="r2")
    assert order.status == "FILLED"
    assert [o.client_order_id for o in (await gw.fetch_open_orders())] == []
    with pytest.raises(errors.OrderNotFound):
        await gw.fetch_order("BTCUSDC", client_order_id="r0")  # the rejected ones never existed


async def test_a_reject_for_one_symbol_leaves_the_others_alone(sim, gw):
    msg = "Account has insufficient balance for requested action."
    await admin(sim, "faults", {"reject_orders": {"count": 1, "code": -2010, "msg": msg, "symbol": "ETHUSDC"}})
    other = await gw.create_order("BTCUSDC", Side.BUY, "MARKET", D("0.001"), client_order_id="s0")
    assert other.status == "FILLED"  # another symbol's order passes and does not use up the count
    with pytest.raises(errors.InsufficientBalance) as e:
        await gw.create_order("ETHUSDC", Side.BUY, "MARKET", D("0.01"), client_order_id="s1")
    assert (e.value.code, e.value.msg) == (-2010, msg)
    again = await gw.create_order("ETHUSDC", Side.BUY, "MARKET", D("0.01"), client_order_id="s2")
    assert again.status == "FILLED"


async def test_forced_429_and_delayed_answers(sim, gw):
    await admin(sim, "faults", {"force_429": 1})
    with pytest.raises(errors.RateLimited) as e:
        await gw.fetch_order_book("BTCUSDC", 5)
    assert e.value.http_status == 429 and e.value.retry_after_s is not None and e.value.retry_after_s > 0
    assert (await gw.fetch_order_book("BTCUSDC", 5)).bids  # the next one goes through
    await admin(sim, "faults", {"delay_ms": 400, "delay_count": 1})
    gw.ccxt.timeout = 150  # ms
    with pytest.raises(errors.StatusUnknown):
        await gw.fetch_balance()
    gw.ccxt.timeout = 10_000
    assert "USDC" in await gw.fetch_balance()


async def test_paused_feed_sends_nothing_and_resumes_without_a_gap():
    async with Simulator(config(update_ms=20, depth_interval_ms=20)) as sim:
        async with aiohttp.ClientSession() as s, s.ws_connect(sim.ws_url + "/ws/btcusdc@depth@100ms") as ws:
            msgs = [await asyncio.wait_for(ws.receive_json(), TIMEOUT)]  # the feed is running
            await admin(sim, "faults", {"pause_feed": True})
            await sim.wait_depth_ticks(1)
            published = sim.depth_events_published  # this socket is the only subscriber
            while len(msgs) < published:
                msgs.append(await asyncio.wait_for(ws.receive_json(), TIMEOUT))
            frozen = sim.engine.books["BTCUSDC"].update_id
            await sim.wait_depth_ticks(5)
            assert sim.engine.books["BTCUSDC"].update_id == frozen  # the price process stands still
            assert sim.depth_events_published == published  # and nothing is sent
            # a user order still changes the book; its diff is held back while paused
            gw = client(sim)
            try:
                await gw.create_order("BTCUSDC", Side.BUY, "MARKET", D("0.001"), client_order_id="p1")
            finally:
                await gw.close()
            changed = sim.engine.books["BTCUSDC"].update_id
            assert changed > frozen
            await sim.wait_depth_ticks(3)
            assert sim.depth_events_published == published
            await admin(sim, "faults", {"pause_feed": False})
            resumed = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
            assert resumed["U"] == msgs[-1]["u"] + 1  # no gap across the pause (changes before it come now)
            assert resumed["u"] >= changed


async def test_a_silenced_symbol_gets_no_depth_while_the_others_flow_and_resumes_without_a_gap():
    async with Simulator(config(update_ms=20, depth_interval_ms=20)) as sim:
        async with aiohttp.ClientSession() as s, \
                s.ws_connect(sim.ws_url + "/stream?streams=btcusdc@depth@100ms/ethusdc@depth@100ms") as ws:
            eth = sim.engine.books["ETHUSDC"]
            seen: list[dict] = []  # ETHUSDC's diffs, in the order received
            while not seen:
                data = (await asyncio.wait_for(ws.receive_json(), TIMEOUT))["data"]
                if data["s"] == "ETHUSDC":
                    seen.append(data)
            status, _ = await admin(sim, "faults", {"silence_depth": ["ETHUSDC", "NOPEUSDC"]})
            assert status == 400 and not sim.faults.silenced  # an unknown symbol: nothing applied
            await admin(sim, "faults", {"silence_depth": ["ETHUSDC"]})
            at_silence = eth.update_id
            published = sim.depth_events_published  # this socket is the only subscriber
            await sim.wait_depth_ticks(5)
            held = eth.update_id
            assert held > at_silence  # its book moves on, unheard
            assert sim.depth_events_published > published  # BTCUSDC's diffs still go out (when its book moved)
            await admin(sim, "faults", {"silence_depth": []})
            while seen[-1]["u"] < held:
                data = (await asyncio.wait_for(ws.receive_json(), TIMEOUT))["data"]
                if data["s"] == "ETHUSDC":
                    seen.append(data)
            # Nothing of ETHUSDC went out while silenced: one diff after it carries every change, with no gap.
            assert [d for d in seen if d["u"] > at_silence] == seen[-1:]
            assert all(b["U"] == a["u"] + 1 for a, b in zip(seen, seen[1:]))


async def test_dropped_websocket_ccxt_resubscribes_and_rebuilds(sim, gw):
    book = await gw.watch_order_book("BTCUSDC")
    assert book.nonce == sim.engine.books["BTCUSDC"].update_id
    pending = asyncio.ensure_future(gw.watch_order_book("BTCUSDC"))
    status, body = await admin(sim, "drop_ws", {"which": "market"})
    assert body["dropped"] == 1
    with pytest.raises(errors.StatusUnknown):  # ccxt's NetworkError on the lost connection
        await asyncio.wait_for(pending, TIMEOUT)
    sim.step(3)
    sim.publish_depth()

    async def rebuilt():
        while True:
            snap = await gw.watch_order_book("BTCUSDC")
            if snap.nonce == sim.engine.books["BTCUSDC"].update_id:
                return snap

    snap = await asyncio.wait_for(rebuilt(), TIMEOUT)
    last, bids, asks = sim.engine.depth("BTCUSDC", 1000)
    assert snap.bids == bids and snap.asks == asks


async def test_deposit_credited_through_the_admin_endpoint(sim, gw):
    address = await gw.fetch_deposit_address("USDC", "BASE")
    balance_before = (await gw.fetch_balance())["USDC"]
    watch = asyncio.ensure_future(gw.watch_balance())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    status, row = await admin(sim, "deposit", {"api_key": TEST_API_KEY, "coin": "USDC", "amount": "1234.567891",
                                               "network": "BASE", "tx_id": "0xfeed", "address": address.address})
    assert status == 200 and row["status"] == 1 and row["address"] == address.address
    streamed = await asyncio.wait_for(watch, TIMEOUT)
    assert streamed["USDC"].free == balance_before.free + D("1234.567891")
    assert (await gw.fetch_balance())["USDC"].free == balance_before.free + D("1234.567891")
    deposits = await gw.fetch_deposits("USDC")
    assert [(d.tx_id, d.amount, d.network, d.status) for d in deposits] == [("0xfeed", D("1234.567891"), "BASE", 1)]
    # the same transaction again is not credited twice (the chain watcher may see a log more than once)
    await admin(sim, "deposit", {"api_key": TEST_API_KEY, "coin": "USDC", "amount": "1234.567891",
                                 "network": "BASE", "tx_id": "0xfeed"})
    assert (await gw.fetch_balance())["USDC"].free == balance_before.free + D("1234.567891")


async def test_withdraw_through_the_admin_endpoint_moves_balance_out(sim, gw):
    before = (await gw.fetch_balance())["USDC"]
    watch = asyncio.ensure_future(gw.watch_balance())
    await asyncio.wait_for(sim.user_streams.subscribed.wait(), TIMEOUT)
    status, row = await admin(sim, "withdraw", {"api_key": TEST_API_KEY, "asset": "USDC", "amount": "12.000001"})
    assert (status, D(row["free"])) == (200, before.free - D("12.000001"))
    streamed = await asyncio.wait_for(watch, TIMEOUT)
    assert streamed["USDC"].free == before.free - D("12.000001")
    assert (await gw.fetch_balance())["USDC"].total == before.total - D("12.000001")
    # more than is free: refused with the exchange's code, nothing moved
    status, row = await admin(sim, "withdraw", {"asset": "USDC", "amount": str(before.free)})
    assert (status, row["code"]) == (400, -4026)
    status, row = await admin(sim, "withdraw", {"asset": "USDC", "amount": "-1"})
    assert (status, row["code"]) == (400, -1102)
    status, row = await admin(sim, "withdraw", {"asset": "USDC"})
    assert status == 400 and "bad withdraw request" in row["error"]
    assert (await gw.fetch_balance())["USDC"].total == before.total - D("12.000001")


async def test_configured_deposit_address_is_served():
    spec = AccountSpec("acctKey2", "acctSecret2", {"USDC": D("1")},
                       deposit_addresses={"BASE": "0x00000000000000000000000000000000000000b5"})
    async with Simulator(config(accounts=[spec])) as sim:
        gw = BinanceGateway(sim.url, sim.ws_url, "acctKey2", "acctSecret2", enable_rate_limit=False)
        gw.ccxt.timeout_on_exit = 0
        try:
            addr = await gw.fetch_deposit_address("USDC", "BASE")
            assert addr.address == "0x00000000000000000000000000000000000000b5"
            with pytest.raises(errors.ExchangeError) as e:
                await gw.fetch_deposit_address("USDC", "NOPE")
            assert e.value.code == -4018
        finally:
            await gw.close()


async def test_standalone_module_prints_url_and_test_account():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exchange.simulator", "--host", LOOPBACK, "--symbols", "BTCUSDC,ETHUSDC",
        "--update-ms", "50",
        cwd=str(REPO_ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert info["api_key"] == TEST_API_KEY and info["secret"] == TEST_SECRET and info["markets"] == 2
        gw = BinanceGateway(info["url"], info["ws_url"], info["api_key"], info["secret"], enable_rate_limit=False)
        gw.ccxt.timeout_on_exit = 0
        try:
            assert set(await gw.load_markets()) == {"BTCUSDC", "ETHUSDC"}
            first = await gw.watch_order_book("ETHUSDC")
            later = await gw.watch_order_book("ETHUSDC")  # the feed runs on its own
            assert later.nonce > first.nonce
            assert (await gw.fetch_balance())["USDC"].free == D("1000000")
        finally:
            await gw.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0

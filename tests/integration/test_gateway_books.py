"""exchange/gateway.py's live books (what the market-data shards build on), against the simulator in this event
loop: levels read on demand equal the exchange's, a per-diff listener sees every applied diff with its event time,
a gap rebuilds that book alone, a dropped connection surfaces as an error and the next call rebuilds everything."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

import core  # noqa: F401
from core.side import Side
from exchange import errors
from exchange.gateway import BinanceGateway
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator

SYMBOLS = ["BTCUSDC", "ETHUSDC", "DOGEUSDC"]
TIMEOUT = 10


@pytest.fixture
async def sim():
    cfg = SimulatorConfig(host=LOOPBACK, symbols=tuple(SYMBOLS),
                          process=PriceProcessConfig(update_ms=0, trade_percent=0),
                          depth_interval_ms=10_000)  # diffs only when the test publishes them
    async with Simulator(cfg) as s:
        yield s


@pytest.fixture
async def gw(sim):
    g = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET, throttle_burst=10)
    g.ccxt.timeout_on_exit = 0
    yield g
    await g.close()


async def watch_until(gw: BinanceGateway, condition, symbols=SYMBOLS) -> None:
    async def loop() -> None:
        while not condition():
            await gw.watch_books(symbols)

    await asyncio.wait_for(loop(), TIMEOUT)


def same_as_exchange(sim: Simulator, gw: BinanceGateway, symbol: str) -> bool:
    last, bids, asks = sim.engine.depth(symbol, 100)
    state = gw.book_state(symbol)
    return (state is not None and state[0] == last and gw.book_levels(symbol, Side.BUY) == bids
            and gw.book_levels(symbol, Side.SELL) == asks)


async def test_books_follow_the_diffs_and_every_diff_is_heard(sim, gw):
    heard: list[tuple[str, int, int | None]] = []
    gaps: list[str] = []
    gw.set_book_listeners(lambda s, u, e: heard.append((s, u, e)), gaps.append)
    assert gw.book_levels("BTCUSDC", Side.BUY) == [] and gw.book_state("BTCUSDC") is None  # nothing yet
    await watch_until(gw, lambda: all(gw.book_state(s) is not None for s in SYMBOLS))
    assert {s for s, _, e in heard if e is None} == set(SYMBOLS)  # one snapshot each, heard with E = None
    for _ in range(5):
        sim.step(1)
        sim.publish_depth()
    await watch_until(gw, lambda: all(same_as_exchange(sim, gw, s) for s in SYMBOLS))
    diffs = [(s, u, e) for s, u, e in heard if e is not None]
    assert diffs and all(isinstance(e, int) for _, _, e in diffs)
    assert gaps == []
    levels = gw.book_levels("ETHUSDC", Side.SELL, 3)
    assert len(levels) == 3 and all(isinstance(p, Decimal) and isinstance(q, Decimal) for p, q in levels)
    assert levels == sorted(levels)  # asks best (lowest) first


async def test_a_gap_rebuilds_that_book_alone(sim, gw):
    gaps: list[str] = []
    gw.set_book_listeners(None, gaps.append)
    await watch_until(gw, lambda: all(gw.book_state(s) is not None for s in SYMBOLS))
    snapshots_before = sim.limiter.used_weight("127.0.0.1")
    sim.step(1, ["ETHUSDC"])
    sim.engine.books["ETHUSDC"].take_diff()  # lost: the next diff cannot chain
    sim.step(1)
    sim.publish_depth()
    await watch_until(gw, lambda: gaps == ["ETHUSDC"] and all(same_as_exchange(sim, gw, s) for s in SYMBOLS))
    assert sim.limiter.used_weight("127.0.0.1") - snapshots_before == 5  # one depth snapshot (limit 100): ETH's


async def test_a_dropped_connection_raises_and_the_next_call_rebuilds(sim, gw):
    await watch_until(gw, lambda: all(gw.book_state(s) is not None for s in SYMBOLS))
    await sim.streams.drop_all(abrupt=True)
    with pytest.raises(errors.ExchangeError):
        await asyncio.wait_for(gw.watch_books(SYMBOLS), TIMEOUT)
    assert all(gw.book_state(s) is None and gw.book_levels(s, Side.BUY) == [] for s in SYMBOLS)  # nothing stale
    sim.step(2)
    sim.publish_depth()
    await watch_until(gw, lambda: all(same_as_exchange(sim, gw, s) for s in SYMBOLS))

"""The simulator's REST API, market streams and WebSocket API on three addresses, as Binance's three hosts: each
address answers its own part and refuses the others (404), so a client that reaches a part at the wrong address
fails instead of working by accident; one address alone serves all three, as before."""
from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import pytest

import core  # noqa: F401
from exchange.simulator.config import PriceProcessConfig, SimulatorConfig
from exchange.simulator.server import Simulator
from world.ports import LOOPBACK

REST, STREAMS, WS_API = "127.0.0.3", "127.0.0.4", "127.0.0.5"
QUIET = PriceProcessConfig(update_ms=0, trade_percent=0)


async def status_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        return resp.status


async def ws_status(session: aiohttp.ClientSession, url: str) -> int:
    """101 when the WebSocket handshake succeeds, else the HTTP status it was refused with."""
    try:
        async with session.ws_connect(url) as ws:
            await ws.close()
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def test_three_addresses_each_serve_their_part() -> None:
    cfg = SimulatorConfig(host=REST, stream_host=STREAMS, ws_api_host=WS_API, symbols=("BTCUSDC",), process=QUIET)
    async with Simulator(cfg) as sim, aiohttp.ClientSession() as session:
        rest, streams, ws_api = urlsplit(sim.url), urlsplit(sim.ws_url), urlsplit(sim.ws_api_url)
        assert (rest.hostname, streams.hostname, ws_api.hostname) == (REST, STREAMS, WS_API)
        assert ws_api.path == "/ws-api/v3"
        at = {part: f"{u.hostname}:{u.port}" for part, u in (("rest", rest), ("streams", streams),
                                                              ("ws_api", ws_api))}
        assert await status_of(session, f"http://{at['rest']}/api/v3/ping") == 200
        assert await ws_status(session, f"ws://{at['streams']}/ws/btcusdc@depth") == 101
        assert await ws_status(session, f"ws://{at['ws_api']}/ws-api/v3") == 101
        for wrong in ("streams", "ws_api"):
            assert await status_of(session, f"http://{at[wrong]}/api/v3/ping") == 404
        for wrong in ("rest", "ws_api"):
            assert await ws_status(session, f"ws://{at[wrong]}/ws/btcusdc@depth") == 404
        for wrong in ("rest", "streams"):
            assert await ws_status(session, f"ws://{at[wrong]}/ws-api/v3") == 404


@pytest.mark.parametrize("path", ["/api/v3/ping", "/ws/btcusdc@depth", "/ws-api/v3"])
async def test_one_address_serves_all_three(path: str) -> None:
    async with Simulator(SimulatorConfig(host=LOOPBACK, symbols=("BTCUSDC",), process=QUIET)) as sim, \
            aiohttp.ClientSession() as session:
        assert sim.sites == {} and sim.ws_api_url == sim.ws_url + "/ws-api/v3"
        if path.startswith("/api"):
            assert await status_of(session, sim.url + path) == 200
        else:
            assert await ws_status(session, sim.ws_url + path) == 101

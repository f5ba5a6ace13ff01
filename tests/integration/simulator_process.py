"""The exchange simulator in a process of its own, for tests and benches that talk to it from Ray actors.

Why a process: Ray actors reach the simulator over HTTP/WS, and a simulator inside the test's event loop stops
serving as soon as the test blocks in `ray.get`. A child process also keeps its CPU off the test's core.

Run as `python -m tests.integration.simulator_process '<json options>'`; it prints one JSON line (URLs and the test
account's keys) once it listens, which is the readiness signal the parent waits for. Options on top of the
simulator's: `n_symbols` (the first N symbols that have a
seed price and can be traded), `rate_limits`, `depth_interval_ms`,
`update_ms`, `trade_percent`, `jitter_levels`, `ban_after_429s`.

Test-only endpoints added here (the simulator's own /_admin ones stay available):
* POST /_admin/test/gap {"symbol"}: step that book and throw its diff away: the next diff's U skips ids, which is
  what a lost message looks like to a client.
* POST /_admin/test/quiesce: pause the feed, publish what is pending, answer {symbol: lastUpdateId}.
* POST /_admin/test/resume: unpause.
* GET /_admin/test/books?limit=N: every book, {symbol: {lastUpdateId, bids, asks}} (strings).
* POST /_admin/test/lose_answers {"count"}: the next `count` orders execute, but their answers are replaced by
  a 503 with Binance's -1007 "execution status unknown" (a lost answer).
* GET /_admin/test/stats: HTTP 429/418 answers, order requests, answers lost, depth events published.
* GET /_admin/test/orders: every order of the test account, {clientOrderId: {status, executedQty, fills}}.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from typing import Any

from world.child_process import ReadyLineProcess, announce_and_wait


# ============================================================================================== child side
def _build(options: dict[str, Any]):  # noqa: ANN202
    import core  # noqa: F401
    from exchange.simulator.config import PriceProcessConfig, SimulatorConfig
    from world.ports import LOOPBACK
    from exchange.simulator.markets import load_markets
    from exchange.simulator.server import Simulator

    base = SimulatorConfig(host=LOOPBACK)
    symbols = options.get("symbols")
    if symbols is None and options.get("n_symbols"):
        every = load_markets(base.exchange_info_path, base.indexes_dir, base.deployment_path, None, ())
        probe = Simulator(SimulatorConfig(host=LOOPBACK, symbols=tuple(sorted(every)),
                                          process=PriceProcessConfig(update_ms=0)))
        seeded = [s for s in sorted(probe.markets) if s in probe.processes and _tradeable(probe, s)]
        symbols = seeded[: int(options["n_symbols"])]
    process = PriceProcessConfig(
        seed=int(options.get("seed", 7)),
        update_ms=int(options.get("update_ms", 100)),
        trade_percent=int(options.get("trade_percent", 0)),
        jitter_levels=int(options.get("jitter_levels", 1)),
    )
    cfg = SimulatorConfig(host=LOOPBACK, port=int(options.get("port", 0)), symbols=tuple(symbols) if symbols else None,
                          depth_interval_ms=int(options.get("depth_interval_ms", 100)), process=process,
                          rate_limits=options.get("rate_limits"),
                          ban_after_429s=int(options.get("ban_after_429s", 3)))
    return Simulator(cfg)


def _tradeable(sim: Any, symbol: str) -> bool:
    """A few synthesised markets get seed prices whose minimum notional needs more than maxQty: no order of
    ours could ever trade there, so tests and benches leave them out."""
    from decimal import Decimal

    from core.symbol_filters import FilterError, min_quantity_for

    f = sim.markets[symbol].filters
    try:
        return min_quantity_for(f, sim.processes[symbol].seed_price * Decimal("1.05")) * 3 <= f.max_qty
    except (FilterError, ValueError):
        return False


def _add_test_routes(sim: Any) -> dict[str, int]:
    from aiohttp import web

    from core.side import Side
    from exchange.simulator import payloads

    stats = {"http_429": 0, "http_418": 0, "order_requests": 0, "answers_lost": 0, "avg_price_requests": 0}
    faults = {"lose_answers": 0}

    @web.middleware
    async def count(request: web.Request, handler):  # noqa: ANN001, ANN202
        response = await handler(request)
        if request.path == "/api/v3/avgPrice":
            stats["avg_price_requests"] += 1
        if request.path == "/api/v3/order" and request.method == "POST":
            stats["order_requests"] += 1
            if faults["lose_answers"] > 0 and response.status == 200:
                # The order executed; its answer is replaced by Binance's "status unknown" (-1007).
                faults["lose_answers"] -= 1
                stats["answers_lost"] += 1
                return web.Response(status=503, content_type="application/json", text=json.dumps({
                    "code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                                          "execution status unknown."}))
        if response.status in (429, 418):
            stats[f"http_{response.status}"] += 1
        return response

    sim.app.middlewares.append(count)

    def ok(data: Any) -> web.Response:
        return web.Response(text=json.dumps(data), content_type="application/json")

    async def gap(request: web.Request) -> web.Response:
        symbol = (await request.json())["symbol"]
        book = sim.engine.books[symbol]
        sim.publish_depth()  # what is pending now still reaches the clients: only the change below is lost
        levels = sim.engine.mm_levels(symbol, Side.BUY)
        price = min(levels)  # the market maker's deepest bid: doubling it moves no price
        sim.engine.mm_set_level(symbol, Side.BUY, price, levels[price] * 2)
        lost = book.take_diff()
        return ok({"symbol": symbol, "lost_from": lost.first_id if lost else None,
                   "lost_to": lost.last_id if lost else None})

    async def lose_answers(request: web.Request) -> web.Response:
        faults["lose_answers"] = int((await request.json())["count"])
        return ok(faults)

    async def quiesce(request: web.Request) -> web.Response:
        sim.faults.feed_paused = True
        sim.publish_depth()
        return ok({s: b.update_id for s, b in sim.engine.books.items()})

    async def resume(request: web.Request) -> web.Response:
        sim.faults.feed_paused = False
        return ok({})

    async def books(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        out = {}
        for symbol in sim.engine.books:
            last, bids, asks = sim.engine.depth(symbol, limit)
            out[symbol] = {"lastUpdateId": last, "bids": payloads.levels(bids), "asks": payloads.levels(asks)}
        return ok(out)

    async def get_stats(request: web.Request) -> web.Response:
        return ok({**stats, "depth_events_published": sim.depth_events_published,
                   "mm_levels": {s: len(sim.engine.mm_levels(s, Side.BUY)) for s in list(sim.engine.books)[:1]}})

    async def orders(request: web.Request) -> web.Response:
        """Every order of the test account ever placed (a client id may appear more than once)."""
        from exchange.simulator.config import TEST_API_KEY

        acct = sim.engine.accounts[TEST_API_KEY]
        fills: dict[tuple[str, int], list[list[Any]]] = {}
        for symbol, rows in acct.fills.items():
            for f in rows:
                fills.setdefault((symbol, f.order_id), []).append([f.trade_id, str(f.qty)])
        out = [{"clientOrderId": o.client_order_id, "symbol": o.symbol, "orderId": o.order_id, "status": o.status,
                "executedQty": str(o.executed_qty), "time": o.time,
                "fills": fills.get((o.symbol, o.order_id), [])}
               for o in acct.orders.values()]
        return ok(out)

    sim.app.add_routes([
        web.post("/_admin/test/gap", gap),
        web.post("/_admin/test/lose_answers", lose_answers),
        web.post("/_admin/test/quiesce", quiesce),
        web.post("/_admin/test/resume", resume),
        web.get("/_admin/test/books", books),
        web.get("/_admin/test/stats", get_stats),
        web.get("/_admin/test/orders", orders),
    ])
    return stats


async def _serve(options: dict[str, Any]) -> None:
    from exchange.simulator.config import TEST_API_KEY, TEST_SECRET

    sim = _build(options)
    _add_test_routes(sim)
    await sim.start()
    await announce_and_wait({"url": sim.url, "ws_url": sim.ws_url, "api_key": TEST_API_KEY, "secret": TEST_SECRET,
                             "symbols": sorted(sim.markets), "pid": os.getpid()})
    await sim.stop()


# ============================================================================================== parent side
class SimulatorProcess:
    """Start the simulator as a child process, wait for its ready line, talk to its admin endpoints, stop it by
    pid."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._child = ReadyLineProcess([sys.executable, "-m", "tests.integration.simulator_process",
                                        json.dumps(options)], "the simulator")
        self.info: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def ws_url(self) -> str:
        return self.info["ws_url"]

    @property
    def api_key(self) -> str:
        return self.info["api_key"]

    @property
    def secret(self) -> str:
        return self.info["secret"]

    @property
    def symbols(self) -> list[str]:
        return self.info["symbols"]

    def start(self) -> "SimulatorProcess":
        self.info = self._child.start()
        return self

    def stop(self) -> None:
        self._child.stop()

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin
    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})

    def get(self, path: str) -> Any:
        return self.request("GET", path)


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))

"""Benchmark of market data and order sending on Ray, each figure against a baseline in the same run.

(a) One MarketDataShard owning 100 symbols: book lag, and the highest update rate it keeps up with.
(b) The OrderSender against a small ORDERS limit versus one naive REST call per order: the share of the
    exchange's limit each uses (the sender's ceiling is its safety fraction, 95 %).

    .venv/bin/python bench/execution.py [--seconds 5] [--orders 500]"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401
from world.child_process import ReadyLineProcess, announce_and_wait  # noqa: E402
from world.ports import LOOPBACK  # noqa: E402  (the bench's own servers, on this machine)

N_SYMBOLS = 100
CADENCE_STEPS_MS = (100, 50, 20, 10, 5, 2)  # one diff per symbol per step: 1k, 2k, 5k, 10k, 20k, 50k diffs/s


# ============================================================================================== the lean depth feed
def serve_feed(options: dict[str, Any]) -> None:
    """A depth server just faithful enough for ccxt: exchangeInfo (real entries), /api/v3/depth snapshots and
    /ws/<n> SUBSCRIBE + depthUpdate diffs that chain (U = previous u + 1). Runs until SIGTERM."""
    from aiohttp import WSMsgType, web

    info = json.loads((ROOT / "data" / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json").read_text())
    entries = sorted((e for e in info["symbols"] if e["status"] == "TRADING"), key=lambda e: e["symbol"])
    entries = entries[: int(options.get("n_symbols", N_SYMBOLS))]
    levels = 20
    books: dict[str, dict[str, Any]] = {}
    for k, e in enumerate(entries):
        base = 100 + k
        books[e["symbol"]] = {
            "id": 1_000,
            "bids": {f"{base - 0.01 * (i + 1):.2f}": f"{1 + i % 5}.000" for i in range(levels)},
            "asks": {f"{base + 0.01 * (i + 1):.2f}": f"{1 + i % 5}.000" for i in range(levels)},
        }
    state = {"interval_ms": int(options.get("interval_ms", 100)), "sent": 0}
    conns: list[tuple[web.WebSocketResponse, list[str]]] = []

    async def exchange_info(request: web.Request) -> web.Response:
        return web.json_response({"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [],
                                  "exchangeFilters": [], "symbols": entries})

    async def depth(request: web.Request) -> web.Response:
        b = books[request.query["symbol"]]
        bids = sorted(b["bids"].items(), key=lambda x: -float(x[0]))
        asks = sorted(b["asks"].items(), key=lambda x: float(x[0]))
        return web.json_response({"lastUpdateId": b["id"], "bids": bids, "asks": asks})

    async def set_rate(request: web.Request) -> web.Response:
        state["interval_ms"] = int((await request.json())["interval_ms"])
        return web.json_response({"interval_ms": state["interval_ms"], "sent": state["sent"]})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"sent": state["sent"], "at_ms": time.time() * 1000})

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        entry: tuple[web.WebSocketResponse, list[str]] = (ws, [])
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            if req.get("method") == "SUBSCRIBE":
                await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))  # ack before any diff
                entry[1].extend(p.split("@", 1)[0].upper() for p in req["params"])
                if entry not in conns:
                    conns.append(entry)
        if entry in conns:
            conns.remove(entry)
        return ws

    async def emit() -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            next_at += state["interval_ms"] / 1000
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the feed's cadence
            if time.monotonic() - next_at > 0.5:
                next_at = time.monotonic()  # fell far behind: do not burst to catch up
            for ws, symbols in list(conns):
                for s in symbols:
                    b = books[s]
                    n += 1
                    i = n % levels
                    bp = list(b["bids"])[i]
                    ap = list(b["asks"])[i]
                    q = f"{1 + n % 7}.{n % 1000:03d}"
                    b["bids"][bp] = q
                    b["asks"][ap] = q
                    b["id"] += 1
                    u = b["id"]
                    msg = ('{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":[["%s","%s"]],"a":[["%s","%s"]]}'
                           % (time.time_ns() // 1_000_000, s, u, u, bp, q, ap, q))
                    try:
                        await ws.send_str(msg)
                    except (ConnectionError, RuntimeError):
                        break
                    state["sent"] += 1

    async def main() -> None:
        app = web.Application()
        app.add_routes([web.get("/api/v3/exchangeInfo", exchange_info), web.get("/api/v3/depth", depth),
                        web.post("/_feed/rate", set_rate), web.get("/_feed/stats", stats),
                        web.get("/ws/{tail:.*}", ws_handler), web.get("/ws", ws_handler)])
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        task = asyncio.ensure_future(emit())
        await announce_and_wait({"url": f"http://{LOOPBACK}:{port}", "ws_url": f"ws://{LOOPBACK}:{port}",
                                 "symbols": [e["symbol"] for e in entries]})
        task.cancel()
        await runner.cleanup()

    asyncio.run(main())


class FeedProcess:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self._child = ReadyLineProcess([sys.executable, str(Path(__file__).resolve()), "--serve-feed",
                                        json.dumps(options)], "the depth feed")
        self.info: dict[str, Any] = {}

    def __enter__(self) -> "FeedProcess":
        self.info = self._child.start()
        return self

    def set_interval(self, interval_ms: int) -> None:
        import urllib.request

        req = urllib.request.Request(self.info["url"] + "/_feed/rate", json.dumps({"interval_ms": interval_ms})
                                     .encode(), method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def sent(self) -> dict[str, float]:
        import urllib.request

        return json.loads(urllib.request.urlopen(self.info["url"] + "/_feed/stats", timeout=10).read())

    def __exit__(self, *exc: object) -> None:
        self._child.stop()


# ============================================================================================== (a) market data
def measure_shard(ray: Any, shard: Any, seconds: float, feed: "FeedProcess | None" = None) -> dict[str, Any]:
    """Counters over a window of `seconds`: diffs applied per second, lag percentiles, CPU per diff (and what the
    feed actually sent meanwhile, when it is ours)."""
    sent0 = feed.sent() if feed is not None else None
    before = ray.get(shard.stats.remote(reset=True))
    time.sleep(seconds)  # the measurement window itself
    after = ray.get(shard.stats.remote())
    sent1 = feed.sent() if feed is not None else None
    elapsed_s = (after["at_ms"] - before["at_ms"]) / 1000
    cpu = after["cpu_s"] - before["cpu_s"]
    out = {} if sent0 is None or sent1 is None else {
        "sent_per_s": 1000 * (sent1["sent"] - sent0["sent"]) / (sent1["at_ms"] - sent0["at_ms"])}
    return out | {"diffs_per_s": after["diffs"] / elapsed_s, "lag_p50_ms": after["lag_p50_ms"],
            "lag_p99_ms": after["lag_p99_ms"], "lag_max_ms": after["lag_max_ms"],
            "cpu_us_per_diff": 1e6 * cpu / after["diffs"] if after["diffs"] else None,
            "cpu_share": cpu / elapsed_s, "gaps": after["gaps"] - before["gaps"]}


def bench_market_data(ray: Any, namespace: str, seconds: float) -> dict[str, Any]:
    from actors.market_data import MarketDataOptions, MarketDataShard
    from tests.integration.simulator_process import SimulatorProcess

    out: dict[str, Any] = {"steps": []}
    with FeedProcess(n_symbols=N_SYMBOLS, interval_ms=CADENCE_STEPS_MS[0]) as feed:
        shard = MarketDataShard.options(name=f"bench-market-{uuid.uuid4().hex[:6]}").remote(
            0, feed.info["symbols"], MarketDataOptions(feed.info["url"], feed.info["ws_url"]))
        assert ray.get(shard.wait_ready.remote(60))
        for interval in CADENCE_STEPS_MS:
            feed.set_interval(interval)
            offered = N_SYMBOLS * 1000 / interval
            ray.get(shard.wait_diffs.remote(int(offered), 30))  # one second of the new rate before measuring
            m = measure_shard(ray, shard, seconds, feed)
            m["offered_per_s"] = offered
            m["kept_up"] = m["diffs_per_s"] >= 0.97 * m["sent_per_s"] and (m["lag_p99_ms"] or 0) < 100
            out["steps"].append(m)
        ray.get(shard.stop.remote())
        ray.kill(shard, no_restart=True)
    with SimulatorProcess(n_symbols=N_SYMBOLS, update_ms=100, depth_interval_ms=100) as sim:
        out["simulator_bare"] = asyncio.run(bare_client_lag(sim, max(seconds, 5)))
        shard = MarketDataShard.options(name=f"bench-market-{uuid.uuid4().hex[:6]}").remote(
            0, sim.symbols, MarketDataOptions(sim.url, sim.ws_url))
        assert ray.get(shard.wait_ready.remote(60))
        ray.get(shard.wait_diffs.remote(500, 30))
        out["simulator"] = measure_shard(ray, shard, max(seconds, 5))
        ray.get(shard.stop.remote())
        ray.kill(shard, no_restart=True)
    return out


async def bare_client_lag(sim: Any, seconds: float) -> dict[str, Any]:
    """Baseline for a3: a bare websocket reader of the same 100 depth streams (json.loads, nothing else), so the
    simulator's own publishing delay can be told apart from the shard's."""
    import aiohttp

    lags: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.ws_url + "/ws/bare") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "id": 1,
                                          "params": [s.lower() + "@depth@100ms" for s in sim.symbols]}))
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                msg = await ws.receive(timeout=seconds)
                data = json.loads(msg.data)
                if "E" in data:
                    lags.append(time.time_ns() / 1e6 - data["E"])
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else None  # noqa: E731
    return {"diffs_per_s": len(lags) / seconds, "lag_p50_ms": pick(0.5), "lag_p99_ms": pick(0.99)}


# ============================================================================================== (b) orders
ORDERS_LIMIT = 100
ORDERS_INTERVAL_S = 5


def window_use(times_ms: list[int], limit: int, interval_ms: int) -> tuple[float, list[int]]:
    """Orders per calendar window (the exchange's own counting: aligned to the epoch) / limit, over the windows
    that lie wholly inside the run (the first and the last are partial and left out)."""
    first, last = min(times_ms) // interval_ms, max(times_ms) // interval_ms
    counts = [0] * (last - first + 1)
    for t in times_ms:
        counts[t // interval_ms - first] += 1
    inner = counts[1:-1]
    if not inner:  # the run was shorter than three windows: fall back to the span
        return len(times_ms) / (limit * max(1, len(counts))), counts
    return sum(inner) / (len(inner) * limit), counts


def unfilled_orders(sim: Any, filters: dict, n: int) -> list[list[Any]]:
    """Batches of IOC BUYs 5 % under the best bid: accepted, never filled (EXPIRED), so each one counts."""
    from core.batch_planner import BasketLeg
    from core.side import Side
    from core.symbol_filters import min_quantity_for

    from core.symbol_filters import FilterError, round_order

    tops = sim.get("/_admin/test/books?limit=1")
    per_symbol = []
    for s in sim.symbols:
        price = Decimal(tops[s]["bids"][0][0]) * Decimal("0.95")
        try:
            qty = min_quantity_for(filters[s], price) * 2
            round_order(filters[s], Side.BUY, qty, price)
        except FilterError:
            continue  # a market whose tick is too coarse for 5 % under the bid
        per_symbol.append(BasketLeg(s, Side.BUY, price, qty, Decimal(0)))
    batches = []
    while sum(len(b) for b in batches) < n:
        batches.append(per_symbol[: n - sum(len(b) for b in batches)])
    return batches


async def naive_run(sim: Any, filters: dict, orders: list[Any]) -> dict[str, Any]:
    from core.symbol_filters import round_order
    from exchange import errors
    from exchange.gateway import BinanceGateway

    gw = BinanceGateway(sim.url, sim.ws_url, sim.api_key, sim.secret, enable_rate_limit=True)
    n429 = n418 = 0
    started = time.monotonic()
    try:
        await gw.load_markets()
        for i, o in enumerate(orders):
            qty, price = round_order(filters[o.symbol], o.side, o.quantity, o.price)
            while True:
                try:
                    await gw.create_order(o.symbol, o.side, "LIMIT", qty, price, client_order_id=f"naive.{i}",
                                          time_in_force="IOC")
                    break
                except errors.IpBanned as e:
                    n418 += 1
                    await asyncio.sleep(e.retry_after_s or 1)  # what the exchange told it
                except errors.RateLimited as e:
                    n429 += 1
                    await asyncio.sleep(e.retry_after_s or 1)
    finally:
        await gw.close()
    return {"http_429": n429, "http_418": n418, "seconds": time.monotonic() - started}


def bench_orders(ray: Any, namespace: str, n_orders: int, safety: Decimal) -> dict[str, Any]:
    from actors.order_sender import OrderSender, SenderOptions
    from core.symbol_filters import parse_exchange_info
    from tests.integration.simulator_process import SimulatorProcess
    from world.redis_server import RedisServer

    rate_limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": ORDERS_INTERVAL_S, "limit": ORDERS_LIMIT},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]
    interval_ms = ORDERS_INTERVAL_S * 1000
    out: dict[str, Any] = {"limit": f"{ORDERS_LIMIT} orders / {ORDERS_INTERVAL_S} s", "orders": n_orders,
                           "safety": str(safety)}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as redis_server, \
            SimulatorProcess(n_symbols=20, update_ms=100, rate_limits=rate_limits) as sim:
        filters = parse_exchange_info(sim.get("/api/v3/exchangeInfo"))
        batches = unfilled_orders(sim, filters, n_orders)
        options = SenderOptions(sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_server.url,
                                account="bench", rate_limit_safety=safety)
        sender = OrderSender.options(name=f"bench-sender-{uuid.uuid4().hex[:6]}").remote(options)
        ray.get(sender.start.remote())
        started = time.monotonic()
        results = ray.get([sender.submit.remote(f"bo{i}", b) for i, b in enumerate(batches)])
        assert all(r.accepted for rs in results for r in rs), [r for rs in results for r in rs if not r.accepted]
        assert ray.get(sender.wait_idle.remote(600))
        elapsed = time.monotonic() - started
        info = ray.get(sender.inspect.remote())
        stats = sim.get("/_admin/test/stats")
        placed = [o for o in sim.get("/_admin/test/orders") if o["clientOrderId"].startswith("bo")]
        use, counts = window_use([o["time"] for o in placed], ORDERS_LIMIT, interval_ms)
        out["sender"] = {"use": use, "window_counts": counts, "seconds": elapsed, "placed": len(placed),
                         "statuses": sorted({o["status"] for o in placed}),
                         "http_429": stats["http_429"] + stats["http_418"],
                         "sender_rate_limited": info["counts"]["rate_limited"]}
        ray.get(sender.stop.remote())
        ray.kill(sender, no_restart=True)
        # wait out the sender's last window on the exchange so the baseline starts from an empty count
        time.sleep(ORDERS_INTERVAL_S)  # not synchronisation: the exchange's window has to pass
        flat = [o for b in batches for o in b]
        before = sim.get("/_admin/test/stats")
        naive = asyncio.run(naive_run(sim, filters, flat))
        after = sim.get("/_admin/test/stats")
        placed = [o for o in sim.get("/_admin/test/orders") if o["clientOrderId"].startswith("naive")]
        use, counts = window_use([o["time"] for o in placed], ORDERS_LIMIT, interval_ms)
        out["naive"] = {"use": use, "window_counts": counts, "seconds": naive["seconds"], "placed": len(placed),
                        "http_429": after["http_429"] - before["http_429"],
                        "http_418": after["http_418"] - before["http_418"]}
    return out


# ============================================================================================== main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per market-data step")
    ap.add_argument("--orders", type=int, default=500, help="orders in the sustained backlog (b)")
    ap.add_argument("--safety", default="0.95", help="the sender's rate_limit_safety (config default 0.95)")
    ap.add_argument("--serve-feed", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_feed is not None:
        serve_feed(json.loads(args.serve_feed))
        return

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="ERROR",
             log_to_driver=False, namespace=namespace, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        md = bench_market_data(ray, namespace, args.seconds)
        orders = bench_orders(ray, namespace, args.orders, Decimal(args.safety))
    finally:
        ray.shutdown()

    print("\n(a) one MarketDataShard, 100 symbols, websocket -> ccxt.pro -> book (lean depth feed)")
    print(f"{'offered/s':>10} {'sent/s':>10} {'applied/s':>10} {'lag p50 ms':>11} {'lag p99 ms':>11} "
          f"{'lag max ms':>11} {'cpu us/diff':>12} {'cpu share':>10} {'kept up':>8}")
    for m in md["steps"]:
        print(f"{m['offered_per_s']:>10.0f} {m['sent_per_s']:>10.0f} {m['diffs_per_s']:>10.0f} "
              f"{m['lag_p50_ms']:>11.1f} {m['lag_p99_ms']:>11.1f} {m['lag_max_ms']:>11.1f} {m['cpu_us_per_diff'] or 0:>12.1f} "
              f"{m['cpu_share']:>10.2f} {str(m['kept_up']):>8}")
    s, bare = md["simulator"], md["simulator_bare"]
    print(f"simulator feed (its own 100 ms cadence): shard {s['diffs_per_s']:.0f} diffs/s, lag p50 "
          f"{s['lag_p50_ms']:.1f} ms, p99 {s['lag_p99_ms']:.1f} ms, cpu {s['cpu_us_per_diff'] or 0:.1f} us/diff; "
          f"bare websocket reader: lag p50 {bare['lag_p50_ms']:.1f} ms, p99 {bare['lag_p99_ms']:.1f} ms")
    b = orders
    print(f"\n(b) orders under {b['limit']}, backlog of {b['orders']} unfilled IOC orders, safety {b['safety']}")
    print(f"{'sender':>8} {'use':>6} {'429+418':>8} {'seconds':>8}  per-window counts")
    for name in ("sender", "naive"):
        r = b[name]
        errs = r["http_429"] + r.get("http_418", 0)
        print(f"{name:>8} {r['use']:>6.3f} {errs:>8} {r['seconds']:>8.1f}  {r['window_counts']}")

    kept = [m for m in md["steps"] if m["kept_up"]]
    lag_step = md["steps"][0]  # 100 symbols x 10 updates/s
    result = {
        "shard_updates_per_s": round(max(m["diffs_per_s"] for m in kept)) if kept else 0,
        "shard_max_applied_per_s": round(max(m["diffs_per_s"] for m in md["steps"])),
        "book_lag_p50_ms": round(lag_step["lag_p50_ms"], 2),
        "book_lag_p99_ms": round(lag_step["lag_p99_ms"], 2),
        "simulator_book_lag_p50_ms": round(s["lag_p50_ms"], 2),
        "simulator_book_lag_p99_ms": round(s["lag_p99_ms"], 2),
        "simulator_bare_reader_lag_p50_ms": round(bare["lag_p50_ms"], 2),
        "simulator_bare_reader_lag_p99_ms": round(bare["lag_p99_ms"], 2),
        "cpu_us_per_diff": round(lag_step["cpu_us_per_diff"] or 0, 1),
        "rate_limit_use": round(b["sender"]["use"], 4),
        "rate_limit_use_of_budget": round(b["sender"]["use"] / float(b["safety"]), 4),
        "rate_limit_429s": b["sender"]["http_429"],
        "naive_rate_limit_use": round(b["naive"]["use"], 4),
        "naive_429s": b["naive"]["http_429"] + b["naive"]["http_418"],
        "steps": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in m.items()} for m in md["steps"]],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark of the exchange simulator against bare aiohttp loops, each server in its own process (one core).

1. Market data: depth messages per second received for 100 symbols, against a bare server pushing pre-serialised
   depthUpdates.
2. Orders: signed MARKET orders answered per second (HMAC, rate limits, filters, matching, FULL response),
   against a bare server returning a canned answer.

The last line is one JSON object.

    .venv/bin/python bench/simulator.py [--seconds 5]"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

import core  # noqa: E402,F401
from exchange.simulator import auth  # noqa: E402
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, AccountSpec, PriceProcessConfig, SimulatorConfig  # noqa: E402
from world.ports import LOOPBACK
from exchange.simulator.markets import basket_symbols  # noqa: E402

N_SYMBOLS = 100
_UNLIMITED = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10**12},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 10**12},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 10**12},
]


def bench_symbols() -> list[str]:
    from core.basket import load_indexes

    return basket_symbols(load_indexes(REPO / "data" / "indexes"))[:N_SYMBOLS]


# ======================================================================================= servers (child processes)
async def serve_simulator(port: int, interval_ms: int) -> None:
    from exchange.simulator.server import Simulator

    cfg = SimulatorConfig(
        host=LOOPBACK, port=port, symbols=tuple(bench_symbols()), rate_limits=_UNLIMITED,
        depth_interval_ms=interval_ms,
        max_ws_queue=1_000_000,
        process=PriceProcessConfig(update_ms=interval_ms, trade_percent=0),
        accounts=[AccountSpec(TEST_API_KEY, TEST_SECRET, {"USDC": Decimal("10000000000"), "BTC": Decimal("100000")})],
    )
    sim = Simulator(cfg)
    await sim.start()
    print(json.dumps({"port": sim.port}), flush=True)
    await asyncio.Event().wait()


def _sample_depth(symbol: str, i: int) -> str:
    return json.dumps({"e": "depthUpdate", "E": 1_700_000_000_000 + i, "s": symbol, "U": i, "u": i + 2,
                       "b": [["60650.00000000", "0.00213000"], ["60648.08000000", "0.06346000"]],
                       "a": [["60650.01000000", "0.61982000"]]}, separators=(",", ":"))


async def serve_bare_ws(port: int) -> None:
    payloads = [_sample_depth(s, i) for i, s in enumerate(bench_symbols())]

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the SUBSCRIBE frame
        await ws.send_str(json.dumps({"result": None, "id": 1}))

        async def read() -> None:
            async for _ in ws:  # answers the client's close frame
                pass

        reader = asyncio.ensure_future(read())
        try:
            while not ws.closed:
                for p in payloads:
                    await ws.send_str(p)
                await asyncio.sleep(0)  # let the reader see a close frame (send_str rarely suspends)
        except (ConnectionError, RuntimeError):
            pass
        reader.cancel()
        return ws

    await _run_app([web.get("/ws/0", handler)], port)


_CANNED_ORDER = json.dumps({
    "symbol": "BTCUSDC", "orderId": 1, "orderListId": -1, "clientOrderId": "x", "transactTime": 1,
    "price": "0.00000000", "origQty": "0.00010000", "executedQty": "0.00010000", "origQuoteOrderQty": "0.00000000",
    "cummulativeQuoteQty": "6.06500000", "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "BUY",
    "workingTime": 1, "fills": [{"price": "60650.00000000", "qty": "0.00010000", "commission": "0.00000010",
                                 "commissionAsset": "BTC", "tradeId": 1}], "selfTradePreventionMode": "EXPIRE_MAKER"})


async def serve_bare_http(port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=_CANNED_ORDER, content_type="application/json")

    await _run_app([web.post("/api/v3/order", handler)], port)


async def _run_app(routes, port: int) -> None:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)  # noqa: SLF001
    await asyncio.Event().wait()


# ======================================================================================= clients (this process)
class Child:
    """A server in a child process; reports the CPU time it used (from /proc) between two marks."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> "Child":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, *self.args, stdout=asyncio.subprocess.PIPE, cwd=str(REPO))
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)  # type: ignore[union-attr]
        self.port = json.loads(line)["port"]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.proc is not None
        self.proc.terminate()
        await self.proc.wait()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count_ws_messages(port: int, streams: list[str], seconds: float, child: Child) -> tuple[float, float]:
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"ws://{LOOPBACK}:{port}/ws/0", max_msg_size=0) as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": streams, "id": 1})
            ack = await ws.receive()
            assert json.loads(ack.data) == {"result": None, "id": 1}
            # warm up one second, then count
            end_warm = time.monotonic() + 1
            while time.monotonic() < end_warm:
                await ws.receive()
            n = 0
            cpu0, t0 = child.cpu_seconds(), time.monotonic()
            end = t0 + seconds
            while time.monotonic() < end:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"stream ended: {msg}")
                if '"depthUpdate"' in msg.data:
                    n += 1
            elapsed = time.monotonic() - t0
            return n / elapsed, (child.cpu_seconds() - cpu0) / elapsed


async def post_orders(port: int, seconds: float, concurrency: int, child: Child) -> tuple[float, float]:
    url = f"http://{LOOPBACK}:{port}/api/v3/order"
    counter = {"ok": 0, "bad": 0, "i": 0}
    stop_at = [0.0]

    async def worker(s: aiohttp.ClientSession, counting: bool) -> None:
        while time.monotonic() < stop_at[0]:
            counter["i"] += 1
            side = "BUY" if counter["i"] % 2 else "SELL"
            body = (f"symbol=BTCUSDC&side={side}&type=MARKET&quantity=0.00010000&newOrderRespType=FULL"
                    f"&timestamp={int(time.time() * 1000)}&recvWindow=10000")
            body += "&signature=" + auth.sign(TEST_SECRET, body)
            async with s.post(url, data=body, headers={"X-MBX-APIKEY": TEST_API_KEY,
                                                       "Content-Type": "application/x-www-form-urlencoded"}) as r:
                await r.read()
                if counting:
                    counter["ok" if r.status == 200 else "bad"] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        stop_at[0] = time.monotonic() + 1  # warm-up
        await asyncio.gather(*(worker(s, False) for _ in range(concurrency)))
        cpu0, t0 = child.cpu_seconds(), time.monotonic()
        stop_at[0] = t0 + seconds
        await asyncio.gather(*(worker(s, True) for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    if counter["bad"]:
        raise RuntimeError(f"{counter['bad']} orders were refused")
    return counter["ok"] / elapsed, (child.cpu_seconds() - cpu0) / elapsed


async def run(args: argparse.Namespace) -> dict:
    streams = [s.lower() + "@depth@100ms" for s in bench_symbols()]
    async with Child("--serve", "sim", "--md-interval-ms", str(args.md_interval_ms)) as sim:
        md_rate, md_cpu = await count_ws_messages(sim.port, streams, args.seconds, sim)
    print(f"simulator market data: {md_rate:,.0f} depth msgs/s for {len(streams)} symbols "
          f"(cadence {args.md_interval_ms} ms, simulator cpu {md_cpu:.2f} cores)", flush=True)
    async with Child("--serve", "bare-ws") as bare:
        bare_ws, bare_ws_cpu = await count_ws_messages(bare.port, streams, args.seconds, bare)
    print(f"bare aiohttp ws loop:  {bare_ws:,.0f} msgs/s (cpu {bare_ws_cpu:.2f} cores)", flush=True)
    async with Child("--serve", "sim", "--md-interval-ms", "100") as sim:
        orders_rate, orders_cpu = await post_orders(sim.port, args.seconds, args.concurrency, sim)
    print(f"simulator orders:      {orders_rate:,.0f} orders/s matched (simulator cpu {orders_cpu:.2f} cores)",
          flush=True)
    async with Child("--serve", "bare-http") as bare:
        bare_http, bare_http_cpu = await post_orders(bare.port, args.seconds, args.concurrency, bare)
    print(f"bare aiohttp http loop: {bare_http:,.0f} answers/s (cpu {bare_http_cpu:.2f} cores)", flush=True)
    return {
        "md_msgs_per_s": round(md_rate, 1),
        "md_vs_bare_ws": round(md_rate / bare_ws, 3),
        "orders_per_s": round(orders_rate, 1),
        "orders_vs_bare_http": round(orders_rate / bare_http, 3),
        "bare_ws_msgs_per_s": round(bare_ws, 1),
        "bare_http_per_s": round(bare_http, 1),
        "md_symbols": len(streams),
        "md_interval_ms": args.md_interval_ms,
        "sim_cpu_cores_md": round(md_cpu, 2),
        "sim_cpu_cores_orders": round(orders_cpu, 2),
        "seconds": args.seconds,
        "concurrency": args.concurrency,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--md-interval-ms", type=int, default=10, help="simulator depth cadence for the md run")
    ap.add_argument("--serve", choices=["sim", "bare-ws", "bare-http"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve == "sim":
        asyncio.run(serve_simulator(args.port, args.md_interval_ms))
    elif args.serve == "bare-ws":
        asyncio.run(serve_bare_ws(args.port))
    elif args.serve == "bare-http":
        asyncio.run(serve_bare_http(args.port))
    else:
        result = asyncio.run(run(args))
        print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark of one order's client-side CPU: exchange/gateway.py create_order (ccxt's raw POST, the answer read once)
against ccxt's unified create_order, on the same ccxt client.

The network is taken out (canned answers), so the figure is what the sender spends per order besides its HTTP
client: on a 2-core machine every such microsecond is taken from the rest of the flow.

Run: .venv/bin/python bench/order_call.py [--orders N]; the last line is JSON."""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401
from core.side import Side  # noqa: E402
from exchange.gateway import BinanceGateway  # noqa: E402
from world.ports import LOOPBACK  # noqa: E402  (the bench's own servers, on this machine)

INFO = ROOT.parent / "shared" / "data" / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json"
ANSWER = {"symbol": "BTCUSDC", "orderId": 28, "orderListId": -1, "clientOrderId": "b2.BTCUSDC.0",
          "transactTime": 1507725176595, "price": "60010.00", "origQty": "0.00100", "executedQty": "0.00100",
          "cummulativeQuoteQty": "60.00500", "status": "FILLED", "timeInForce": "IOC", "type": "LIMIT", "side": "BUY",
          "workingTime": 1507725176595, "selfTradePreventionMode": "NONE",
          "fills": [{"price": "60000.00", "qty": "0.00050", "commission": "0.00000050", "commissionAsset": "BTC",
                     "tradeId": 56},
                    {"price": "60010.00", "qty": "0.00050", "commission": "0.00000050", "commissionAsset": "BTC",
                     "tradeId": 57}]}


async def main(orders: int, rounds: int) -> dict[str, float]:
    info = json.loads(INFO.read_text())
    gw = BinanceGateway(f"http://{LOOPBACK}:9", f"ws://{LOOPBACK}:9", "k" * 64, "s" * 64, enable_rate_limit=False)
    ex = gw.ccxt

    async def fetch(url: str, method: str = "GET", headers: object = None, body: object = None) -> dict:
        return info if "exchangeInfo" in url else dict(ANSWER)

    ex.fetch = fetch
    await gw.load_markets()
    qty, price = Decimal("0.00100"), Decimal("60010.00")

    async def gateway(i: int) -> str:
        return (await gw.create_order("BTCUSDC", Side.BUY, "LIMIT", qty, price, client_order_id=f"g.{i}",
                                      time_in_force="IOC")).status

    async def unified(i: int) -> str:
        order = await ex.create_order("BTC/USDC", "limit", "buy", str(qty), str(price),
                                      {"newClientOrderId": f"u.{i}", "timeInForce": "IOC"})
        return order["info"]["status"]

    results: dict[str, list[float]] = {"unified": [], "gateway": []}
    for _ in range(rounds):  # interleaved rounds: a noisy neighbour hits both alike
        for name, call in (("unified", unified), ("gateway", gateway)):
            started = time.process_time()
            for i in range(orders):
                assert await call(i) == "FILLED"
            results[name].append(1e6 * (time.process_time() - started) / orders)
    await gw.close()
    unified_us, gateway_us = statistics.median(results["unified"]), statistics.median(results["gateway"])
    return {"unified_create_order_us": round(unified_us, 1), "gateway_create_order_us": round(gateway_us, 1),
            "unified_vs_gateway": round(unified_us / gateway_us, 2),
            "cpu_saved_per_81_order_batch_ms": round(81 * (unified_us - gateway_us) / 1000, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    figures = asyncio.run(main(args.orders, args.rounds))
    print(f"one LIMIT IOC order, client-side CPU (network stubbed out), median of {args.rounds} rounds of "
          f"{args.orders}:")
    print(f"  {'call':<58} {'us/order':>9}")
    print(f"  {'ccxt unified create_order (a bare script; the floor)':<58} {figures['unified_create_order_us']:>9}")
    print(f"  {'exchange/gateway.py create_order (raw endpoint; the sender)':<58} "
          f"{figures['gateway_create_order_us']:>9}")
    print(f"  unified / gateway: {figures['unified_vs_gateway']}x; CPU saved per 81-order batch: "
          f"{figures['cpu_saved_per_81_order_batch_ms']} ms")
    print(json.dumps(figures))

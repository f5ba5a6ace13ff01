"""Test-only control endpoints under /_admin (ccxt never calls them): inspect the configuration, inject faults,
drop websockets, credit deposits, withdraw balance, step the price process, read the simulator's own book, halt a
pair, take a key's trading permission away."""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.side import Side
from exchange.simulator import payloads
from exchange.simulator.engine import EngineError
from exchange.simulator.faults import OrderReject
from exchange.simulator.replay import depth_events
from exchange.simulator.withdrawals import history_row

if TYPE_CHECKING:
    from exchange.simulator.server import Simulator


def _ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def admin_routes(sim: "Simulator") -> list[web.RouteDef]:
    async def body(request: web.Request) -> dict[str, Any]:
        text = await request.text()
        return json.loads(text) if text else {}

    async def config(request: web.Request) -> web.Response:
        return _ok(sim.inspect())

    async def faults(request: web.Request) -> web.Response:
        """{"delay_ms", "delay_count", "order_delay_ms", "order_delay_count", "order_delay_after",
        "reject_orders": {"count", "status", "code", "msg", "symbol"}, "force_429", "pause_feed", "silence_depth":
        [symbols] (replaces the silenced set; [] publishes every symbol again), "clear"}: counts are numbers of
        upcoming requests (-1 = until cleared); a reject with a "symbol" hits only that symbol's orders."""
        b = await body(request)
        f = sim.faults
        silenced = {str(x) for x in b.get("silence_depth") or ()}
        unknown = sorted(silenced - set(sim.engine.books))
        if unknown:  # checked before anything is applied: a bad request changes nothing
            return _ok({"error": f"silence_depth: unknown symbols {unknown}"}, 400)
        if b.get("clear"):
            f.clear()
        if "delay_ms" in b:
            f.delay_ms = int(b["delay_ms"])
            f.delay_count = int(b.get("delay_count", -1))
        if "reject_orders" in b:
            r = b["reject_orders"]
            f.reject = OrderReject(int(r.get("status", 400)), int(r.get("code", -2010)),
                                   str(r.get("msg", OrderReject.msg)), r.get("symbol"))
            f.reject_count = int(r.get("count", 1))
        if "force_429" in b:
            f.force_429_count = int(b["force_429"])
        if "pause_feed" in b:
            f.feed_paused = bool(b["pause_feed"])
        if "silence_depth" in b:
            f.silenced = silenced
        if "order_delay_ms" in b:
            f.order_delay_ms = int(b["order_delay_ms"])
            f.order_delay_count = int(b.get("order_delay_count", -1))
            f.order_delay_after = bool(b.get("order_delay_after", False))
        return _ok({k: str(getattr(f, k)) for k in f.__slots__})

    async def drop_ws(request: web.Request) -> web.Response:
        b = await body(request)
        which, abrupt = b.get("which", "all"), bool(b.get("abrupt", False))
        dropped = 0
        if which in ("market", "all"):
            dropped += await sim.streams.drop_all(abrupt)
        if which in ("user", "all"):
            dropped += await sim.user_streams.drop_all(abrupt)
        return _ok({"dropped": dropped})

    async def deposit(request: web.Request) -> web.Response:
        b = await body(request)
        try:
            dep = sim.credit_deposit(str(b["api_key"]), str(b["coin"]), Decimal(str(b["amount"])),
                                     str(b.get("network", "BASE")), str(b["tx_id"]), b.get("address"))
        except (KeyError, InvalidOperation) as e:
            return _ok({"error": f"bad deposit request: {e}"}, 400)
        except EngineError as e:
            return _ok({"code": e.code, "msg": e.msg}, e.http_status)
        return _ok(payloads.deposit_row(dep))

    async def withdraw(request: web.Request) -> web.Response:
        """{"api_key" (default: the first account), "asset", "amount"}: free balance out of the exchange behind
        the client's back (what the reserves check must catch)."""
        b = await body(request)
        key = str(b.get("api_key") or next(iter(sim.engine.accounts)))
        if key not in sim.engine.accounts:
            return _ok({"error": "unknown api key"}, 400)
        try:
            left = sim.withdraw(key, str(b["asset"]), Decimal(str(b["amount"])))
        except (KeyError, InvalidOperation) as e:
            return _ok({"error": f"bad withdraw request: {e}"}, 400)
        except EngineError as e:
            return _ok({"code": e.code, "msg": e.msg}, e.http_status)
        return _ok({"asset": b["asset"], "free": payloads.fmt(left)})

    async def reject_withdrawal(request: web.Request) -> web.Response:
        """{"api_key" (default: the first account), "id", "info"}: the exchange refuses a withdrawal not yet sent
        (status 3, amount + fee back to the account)."""
        b = await body(request)
        acct = sim.engine.accounts.get(str(b.get("api_key") or next(iter(sim.engine.accounts))))
        if acct is None:
            return _ok({"error": "unknown api key"}, 400)
        try:
            w = sim.withdrawals.reject(acct, str(b["id"]), str(b.get("info", "Rejected by risk control.")))
        except KeyError as e:
            return _ok({"error": f"bad reject request: {e}"}, 400)
        except EngineError as e:
            return _ok({"code": e.code, "msg": e.msg}, e.http_status)
        sim.dispatch()
        return _ok(history_row(w))

    async def step(request: web.Request) -> web.Response:
        b = await body(request)
        sim.step(int(b.get("n", 1)), b.get("symbols"))
        published = sim.publish_depth() if b.get("publish", True) else 0
        return _ok({"published": published})

    async def book(request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        limit = int(request.query.get("limit", "1000"))
        try:
            last, bids, asks = sim.engine.depth(symbol, limit)
        except EngineError as e:
            return _ok({"code": e.code, "msg": e.msg}, 400)
        return _ok({"lastUpdateId": last, "bids": payloads.levels(bids), "asks": payloads.levels(asks),
                    "mm_bids": len(sim.engine.mm_levels(symbol, Side.BUY))})

    async def liquidity(request: web.Request) -> web.Response:
        """{"action": "withdraw" | "restore", "symbols": [...] (default all)}: the market maker's ladder off the
        book, or back to exactly what was seeded (Simulator.set_liquidity)."""
        b = await body(request)
        try:
            changed = sim.set_liquidity(str(b.get("action")), b.get("symbols"))
        except (ValueError, KeyError) as e:
            return _ok({"error": str(e)}, 400)
        return _ok({"changed": changed})

    async def orders(request: web.Request) -> web.Response:
        """Every order an account ever placed (?api_key=..., default: the first account), oldest first:
        what a test compares with the client's records (duplicates, attempts)."""
        key = request.query.get("api_key") or next(iter(sim.engine.accounts))
        acct = sim.engine.accounts.get(key)
        if acct is None:
            return _ok({"error": "unknown api key"}, 400)
        rows = sorted(acct.orders.values(), key=lambda o: (o.time, o.symbol, o.order_id))
        return _ok([{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id,
                     "status": o.status, "price": payloads.fmt(o.price), "origQty": payloads.fmt(o.orig_qty),
                     "executedQty": payloads.fmt(o.executed_qty), "time": o.time} for o in rows])

    async def account(request: web.Request) -> web.Response:
        b = await body(request)
        balances = {a: Decimal(str(v)) for a, v in (b.get("balances") or {}).items()}
        sim.add_account(str(b["api_key"]), str(b["secret"]), balances)
        return _ok({"api_key": b["api_key"]})

    async def market_status(request: web.Request) -> web.Response:
        """{"symbol", "status"}: the pair's exchangeInfo status ("TRADING", "BREAK", "HALT", ...); an order on a
        pair not TRADING is refused (-1013 "Market is closed.")."""
        b = await body(request)
        symbol, status = str(b.get("symbol")), str(b.get("status", "TRADING"))
        if symbol not in sim.engine.markets:
            return _ok({"error": f"unknown symbol {symbol!r}"}, 400)
        if status == "TRADING":
            sim.market_status.pop(symbol, None)
        else:
            sim.market_status[symbol] = status
        return _ok({"symbol": symbol, "status": status})

    async def permissions(request: web.Request) -> web.Response:
        """{"api_key" (default: the first account), "can_trade"}: the key's trading permission."""
        b = await body(request)
        acct = sim.engine.accounts.get(str(b.get("api_key") or next(iter(sim.engine.accounts))))
        if acct is None:
            return _ok({"error": "unknown api key"}, 400)
        acct.can_trade = bool(b.get("can_trade", True))
        return _ok({"api_key": acct.api_key, "can_trade": acct.can_trade})

    async def regime(request: web.Request) -> web.Response:
        """GET: the regimes in force. POST {"name": calm | volatile | thin | wide | trending | gap | halted,
        "symbols": [...] (default every priced pair; halted needs them), "percent" (gap), "drift_bps_per_min"
        (trending)}: the market switches at once (Simulator.set_regime)."""
        if request.method == "GET":
            return _ok(sim.regimes())
        b = await body(request)
        try:
            symbols = b.get("symbols")
            if symbols is not None and not isinstance(symbols, list):
                raise ValueError("symbols must be a list")
            percent = None if b.get("percent") is None else Decimal(str(b["percent"]))
            drift = None if b.get("drift_bps_per_min") is None else Decimal(str(b["drift_bps_per_min"]))
            return _ok(sim.set_regime(str(b.get("name")), symbols, percent, drift))
        except (ValueError, InvalidOperation) as e:
            return _ok({"error": str(e)}, 400)

    async def replay(request: web.Request) -> web.Response:
        """{"symbol", "events": [depthUpdate, ...] (bare or {"stream", "data"}), "rebase": bool}: the recording
        drives the symbol's book, one event per price step (Simulator.replay)."""
        b = await body(request)
        try:
            return _ok(sim.replay(str(b.get("symbol")), depth_events(b.get("events")), bool(b.get("rebase"))))
        except (ValueError, InvalidOperation, TypeError) as e:
            return _ok({"error": str(e)}, 400)

    return [
        web.get("/_admin/regime", regime),
        web.post("/_admin/regime", regime),
        web.post("/_admin/replay", replay),
        web.post("/_admin/market_status", market_status),
        web.post("/_admin/permissions", permissions),
        web.get("/_admin/config", config),
        web.post("/_admin/faults", faults),
        web.post("/_admin/drop_ws", drop_ws),
        web.post("/_admin/deposit", deposit),
        web.post("/_admin/withdraw", withdraw),
        web.post("/_admin/withdraw/reject", reject_withdrawal),
        web.post("/_admin/step", step),
        web.get("/_admin/book", book),
        web.post("/_admin/account", account),
        web.post("/_admin/liquidity", liquidity),
        web.get("/_admin/orders", orders),
    ]

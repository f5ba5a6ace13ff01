"""The REST endpoints of spec §(h): Binance's paths, parameters, weights, errors and response shapes.

Every request goes through `_serve`: injected faults first (delay, forced 429), then the parameters, the request
weight (429/418 like Binance), the API key / HMAC / recvWindow checks for signed endpoints, the handler, and the
X-MBX-USED-WEIGHT-1M header on every answer (order counts too on a successful order).
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from core.side import Side
from exchange.simulator import auth, payloads
from exchange.simulator.engine import EngineError
from exchange.simulator.orders import FOK, GTC, IOC, LIMIT, LIMIT_MAKER, MARKET
from exchange.simulator.rate_limiter import RateLimitExceeded
from exchange.simulator.withdrawals import history_row

if TYPE_CHECKING:
    from exchange.simulator.server import Simulator

Params = dict[str, str]
Handler = Callable[[web.Request, Params, Any, dict[str, str]], Awaitable[Any]]

_API_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_NUMBER_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_MAX_RECV_WINDOW = 60_000


def _mandatory(name: str) -> EngineError:
    return EngineError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> EngineError:
    return EngineError(-1106, f"Parameter '{name}' sent when not required.")


def _decimal(params: Params, name: str, max_decimals: int | None = None) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _NUMBER_RE.match(raw):
        raise EngineError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                 f"'^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _mandatory(name) from None
    if max_decimals is not None and -value.normalize().as_tuple().exponent > max_decimals:  # type: ignore[operator]
        raise EngineError(-1111, f"Parameter '{name}' has too much precision.")
    return value


def _int(params: Params, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise EngineError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                 "'^[0-9]{1,20}$'.") from None


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class RestApi:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        s = self._serve
        return [
            web.get("/api/v3/ping", s(self.ping, 1)),
            web.get("/api/v3/time", s(self.time, 1)),
            web.get("/api/v3/exchangeInfo", s(self.exchange_info, 20)),
            web.get("/api/v3/depth", s(self.depth, lambda p: depth_weight(int(p.get("limit") or 100)))),
            web.get("/api/v3/avgPrice", s(self.avg_price, 2)),
            web.get("/api/v3/ticker/bookTicker", s(self.book_ticker, lambda p: 2 if "symbol" in p else 4)),
            web.get("/api/v3/ticker/price", s(self.ticker_price, lambda p: 2 if "symbol" in p else 4)),
            web.get("/api/v3/ticker/24hr", s(self.ticker_24hr, self._ticker_weight)),
            web.get("/api/v3/account", s(self.account, 20, signed=True)),
            web.post("/api/v3/order", s(self.new_order, 1, signed=True, order=True)),
            web.delete("/api/v3/order", s(self.cancel_order, 1, signed=True)),
            web.get("/api/v3/order", s(self.query_order, 4, signed=True)),
            web.get("/api/v3/openOrders", s(self.open_orders, lambda p: 6 if "symbol" in p else 80, signed=True)),
            web.delete("/api/v3/openOrders", s(self.cancel_open_orders, 1, signed=True)),
            web.get("/api/v3/myTrades", s(self.my_trades, lambda p: 5 if "orderId" in p else 20, signed=True)),
            web.get("/sapi/v1/capital/deposit/address", s(self.deposit_address, 10, signed=True, sapi=True)),
            web.get("/sapi/v1/capital/deposit/hisrec", s(self.deposit_history, 1, signed=True, sapi=True)),
            # Binance counts these against the UID's SAPI budget (900 per apply), which the limiter does not model:
            # they cost the IP's SAPI budget 1, as the history does.
            web.post("/sapi/v1/capital/withdraw/apply", s(self.withdraw_apply, 1, signed=True, sapi=True)),
            web.get("/sapi/v1/capital/withdraw/history", s(self.withdraw_history, 1, signed=True, sapi=True)),
            web.get("/sapi/v1/capital/config/getall", s(self.capital_config, 10, signed=True, sapi=True)),
        ]

    @staticmethod
    def _ticker_weight(p: Params) -> int:
        if "symbol" in p:
            return 2
        if "symbols" in p:
            try:
                n = len(json.loads(p["symbols"]))
            except ValueError:
                n = 1
            return 2 if n <= 20 else (40 if n <= 100 else 80)
        return 80

    # ================================================================ plumbing
    def _serve(self, handler: Handler, weight: int | Callable[[Params], int], *, signed: bool = False,
               order: bool = False, sapi: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
        sim = self.sim

        async def serve(request: web.Request) -> web.Response:
            ip = request.remote or "?"
            key = f"sapi:{ip}" if sapi else ip
            headers: dict[str, str] = {}
            try:
                delay = sim.faults.take_delay()
                if delay:
                    await asyncio.sleep(delay / 1000)  # injected latency (fault), not synchronisation
                if sim.faults.take_429():
                    raise sim.limiter.refuse_forced(key)
                body = await request.text() if request.method in ("POST", "PUT") else ""
                params = dict(parse_qsl(body, keep_blank_values=True))
                params.update(parse_qsl(request.query_string, keep_blank_values=True))  # the query string wins
                try:
                    w = weight(params) if callable(weight) else weight
                except ValueError:
                    raise EngineError(-1100, "Illegal characters found in parameter 'limit'; legal range is "
                                             "'^[0-9]{1,20}$'.") from None
                sim.limiter.charge(key, w)
                account = self._authenticate(request, params, body) if signed else None
                order_delay, after = sim.faults.take_order_delay() if order else (0, False)
                if order_delay and not after:
                    await asyncio.sleep(order_delay / 1000)  # injected: the order is in flight (fault)
                if order:
                    sim.limiter.check_order(account.id)
                    reject = sim.faults.take_reject(params.get("symbol"))
                    if reject is not None:
                        raise EngineError(reject.code, reject.msg, reject.http_status)
                result = await handler(request, params, account, headers)
                if order_delay and after:
                    sim.dispatch()  # the exchange has it: its stream events go out, the answer waits (fault)
                    await asyncio.sleep(order_delay / 1000)
                status = 200
            except RateLimitExceeded as e:
                status, result = e.http_status, {"code": e.code, "msg": e.msg}
                headers["Retry-After"] = str(e.retry_after_s)
            except EngineError as e:
                status, result = e.http_status, {"code": e.code, "msg": e.msg}
            finally:
                sim.dispatch()
            headers.update(sim.limiter.weight_headers(key))
            return web.Response(text=json.dumps(result, separators=(",", ":")), status=status,
                                content_type="application/json", headers=headers)

        return serve

    def _authenticate(self, request: web.Request, params: Params, body: str) -> Any:
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not _API_KEY_RE.match(api_key):
            raise EngineError(-2014, "API-key format invalid.", 401)
        account = self.sim.engine.accounts.get(api_key)
        if account is None:
            raise EngineError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload, signature = auth.split_signed(request.query_string, body)
        if not signature:
            raise _mandatory("signature")
        ts = _int(params, "timestamp")
        if ts is None:
            raise _mandatory("timestamp")
        window = _int(params, "recvWindow")
        window = 5000 if window is None else window
        if window > _MAX_RECV_WINDOW:
            raise EngineError(-1131, "recvWindow must be less than 60000")
        if not auth.valid(account.secret, payload, signature):
            raise EngineError(-1022, "Signature for this request is not valid.")
        now = self.sim.clock.now_ms()
        if ts >= now + 1000:
            raise EngineError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            raise EngineError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return account

    def _symbol(self, params: Params) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        self.sim.engine.market(symbol)
        return symbol

    # ================================================================ public
    async def ping(self, request, params, account, headers) -> Any:
        return {}

    async def time(self, request, params, account, headers) -> Any:
        return {"serverTime": self.sim.clock.now_ms()}

    async def exchange_info(self, request, params, account, headers) -> Any:
        wanted: list[str] | None = None
        if params.get("symbol"):
            wanted = [params["symbol"]]
        elif params.get("symbols"):
            try:
                wanted = list(json.loads(params["symbols"]))
            except ValueError:
                raise EngineError(-1100, "Illegal characters found in parameter 'symbols'.") from None
        if wanted is not None:
            for s in wanted:
                self.sim.engine.market(s)
        return self.sim.exchange_info(wanted)

    async def depth(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        limit = _int(params, "limit") or 100
        if limit < 1 or limit > 5000:
            raise EngineError(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
        last_id, bids, asks = self.sim.engine.depth(symbol, limit)
        return {"lastUpdateId": last_id, "bids": payloads.levels(bids), "asks": payloads.levels(asks)}

    async def avg_price(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        engine = self.sim.engine
        price = engine.avg_price(symbol)
        return {"mins": engine.markets[symbol].filters.avg_price_mins,
                "price": payloads.fmt(price) if price is not None else "0.00000000",
                "closeTime": self.sim.clock.now_ms()}

    def _symbols_param(self, params: Params) -> list[str]:
        if params.get("symbol"):
            return [self._symbol(params)]
        if params.get("symbols"):
            try:
                syms = list(json.loads(params["symbols"]))
            except ValueError:
                raise EngineError(-1100, "Illegal characters found in parameter 'symbols'.") from None
            for s in syms:
                self.sim.engine.market(s)
            return syms
        return list(self.sim.engine.markets)

    def _book_ticker(self, symbol: str) -> dict[str, Any]:
        book = self.sim.engine.books[symbol]
        (bp, bq), = book.depth(Side.BUY, 1) or [(Decimal(0), Decimal(0))]
        (ap, aq), = book.depth(Side.SELL, 1) or [(Decimal(0), Decimal(0))]
        return {"symbol": symbol, "bidPrice": f"{bp:.8f}", "bidQty": f"{bq:.8f}", "askPrice": f"{ap:.8f}",
                "askQty": f"{aq:.8f}"}

    async def book_ticker(self, request, params, account, headers) -> Any:
        rows = [self._book_ticker(s) for s in self._symbols_param(params)]
        return rows[0] if params.get("symbol") else rows

    async def ticker_price(self, request, params, account, headers) -> Any:
        rows = []
        for s in self._symbols_param(params):
            last = self.sim.engine.stats[s].last_price or self.sim.engine.mid_price(s) or Decimal(0)
            rows.append({"symbol": s, "price": payloads.fmt(last)})
        return rows[0] if params.get("symbol") else rows

    def _ticker(self, symbol: str) -> dict[str, Any]:
        engine = self.sim.engine
        st = engine.stats[symbol]
        now = self.sim.clock.now_ms()
        last = st.last_price if st.last_price is not None else (engine.mid_price(symbol) or Decimal(0))
        open_ = st.open_price if st.open_price is not None else last
        change = last - open_
        pct = (change / open_ * 100).quantize(Decimal("0.001")) if open_ else Decimal(0)
        wavg = (st.quote_volume / st.volume) if st.volume else last
        bt = self._book_ticker(symbol)
        return {
            "symbol": symbol, "priceChange": payloads.fmt(change), "priceChangePercent": str(pct),
            "weightedAvgPrice": payloads.fmt(wavg.quantize(Decimal("0.00000001"))),
            "prevClosePrice": payloads.fmt(open_), "lastPrice": payloads.fmt(last),
            "lastQty": payloads.fmt(st.last_qty), "bidPrice": bt["bidPrice"], "bidQty": bt["bidQty"],
            "askPrice": bt["askPrice"], "askQty": bt["askQty"], "openPrice": payloads.fmt(open_),
            "highPrice": payloads.fmt(st.high if st.high is not None else last),
            "lowPrice": payloads.fmt(st.low if st.low is not None else last),
            "volume": payloads.fmt(st.volume), "quoteVolume": payloads.fmt(st.quote_volume),
            "openTime": st.open_time or now, "closeTime": now, "firstId": st.first_id, "lastId": st.last_id,
            "count": st.count,
        }

    async def ticker_24hr(self, request, params, account, headers) -> Any:
        rows = [self._ticker(s) for s in self._symbols_param(params)]
        return rows[0] if params.get("symbol") else rows

    # ================================================================ account
    async def account(self, request, params, account, headers) -> Any:
        sim = self.sim
        omit_zero = params.get("omitZeroBalances") == "true"
        assets = sorted(set(account.free) | set(account.locked))
        balances = []
        for a in assets:
            free, locked = account.balance(a)
            if omit_zero and free == 0 and locked == 0:
                continue
            balances.append({"asset": a, "free": payloads.fmt(free), "locked": payloads.fmt(locked)})
        bps = lambda r: int(r * 10_000)  # noqa: E731  (Binance's legacy integer commissions are in bps)
        return {
            "makerCommission": bps(sim.config.maker_commission),
            "takerCommission": bps(sim.config.taker_commission),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": payloads.fmt(sim.config.maker_commission),
                                "taker": payloads.fmt(sim.config.taker_commission),
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": account.can_trade,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": account.update_time,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354_000_000 + int(account.id.rsplit("-", 1)[-1]),
        }

    async def new_order(self, request, params, account, headers) -> Any:
        sim = self.sim
        symbol = self._symbol(params)
        if not account.can_trade:
            raise EngineError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if not sim.trading(symbol):
            raise EngineError(-1013, "Market is closed.")
        f = sim.engine.markets[symbol].filters
        side_raw = params.get("side")
        if not side_raw:
            raise _mandatory("side")
        if side_raw not in ("BUY", "SELL"):
            raise EngineError(-1117, "Invalid side.")
        side = Side(side_raw)
        order_type = params.get("type")
        if not order_type:
            raise _mandatory("type")
        if order_type not in (LIMIT, MARKET, LIMIT_MAKER):
            if order_type in f.order_types or order_type in ("STOP_LOSS", "TAKE_PROFIT"):
                raise EngineError(-2010, "Unsupported order combination")  # stop orders are not simulated
            raise EngineError(-1116, "Invalid orderType.")
        qty = _decimal(params, "quantity", f.base_precision)
        price = _decimal(params, "price", f.quote_precision)
        quote_qty = _decimal(params, "quoteOrderQty", f.quote_precision)
        tif = params.get("timeInForce") or None
        if order_type == LIMIT:
            if tif is None:
                raise _mandatory("timeInForce")
            if tif not in (GTC, IOC, FOK):
                raise EngineError(-1115, "Invalid timeInForce.")
            if qty is None:
                raise _mandatory("quantity")
            if price is None:
                raise _mandatory("price")
            if quote_qty is not None:
                raise _not_required("quoteOrderQty")
        elif order_type == LIMIT_MAKER:
            if qty is None:
                raise _mandatory("quantity")
            if price is None:
                raise _mandatory("price")
            if tif is not None:
                raise _not_required("timeInForce")
        else:
            if price is not None:
                raise _not_required("price")
            if tif is not None:
                raise _not_required("timeInForce")
            if qty is None and quote_qty is None:
                raise EngineError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if qty is not None and quote_qty is not None:
                raise EngineError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        cid = params.get("newClientOrderId") or ("sim" + secrets.token_hex(11))[:22]
        if not _CLIENT_ID_RE.match(cid):
            raise EngineError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                     "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        resp_type = params.get("newOrderRespType") or "FULL"
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise EngineError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
        order, fills = sim.engine.place(account.api_key, symbol, side, order_type, quantity=qty, price=price,
                                        quote_order_qty=quote_qty, time_in_force=tif, client_order_id=cid)
        # Count the placement first, then dispatch: an order that filled on entry gives its slot back at once
        # (ORDERS counts unfilled orders), so the headers below already show that.
        sim.limiter.order_placed(account.id)
        sim.dispatch()
        headers.update(sim.limiter.order_headers(account.id))
        return payloads.order_response(order, resp_type, fills, order.time)

    def _order_ref(self, params: Params) -> tuple[int | None, str | None]:
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise EngineError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return order_id, client_id

    async def cancel_order(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        order_id, client_id = self._order_ref(params)
        cancel_id = params.get("newClientOrderId") or ("sim" + secrets.token_hex(11))[:22]
        order = self.sim.engine.cancel(account.api_key, symbol, order_id, client_id, cancel_id)
        return payloads.cancel_response(order, cancel_id, self.sim.clock.now_ms())

    async def cancel_open_orders(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        out = []
        for order in self.sim.engine.open_orders(account.api_key, symbol):
            cancel_id = ("sim" + secrets.token_hex(11))[:22]
            self.sim.engine.cancel(account.api_key, symbol, order.order_id, None, cancel_id)
            out.append(payloads.cancel_response(order, cancel_id, self.sim.clock.now_ms()))
        if not out:
            raise EngineError(-2011, "Unknown order sent.")
        return out

    async def query_order(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        order_id, client_id = self._order_ref(params)
        return payloads.order_query(self.sim.engine.query(account.api_key, symbol, order_id, client_id))

    async def open_orders(self, request, params, account, headers) -> Any:
        symbol = params.get("symbol") or None
        orders = self.sim.engine.open_orders(account.api_key, symbol)
        return [payloads.order_query(o) for o in orders]

    async def my_trades(self, request, params, account, headers) -> Any:
        symbol = self._symbol(params)
        limit = _int(params, "limit") or 500
        if limit > 1000:
            raise EngineError(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
        fills = self.sim.engine.my_trades(account.api_key, symbol, _int(params, "orderId"), _int(params, "fromId"),
                                          _int(params, "startTime"), _int(params, "endTime"), limit)
        return [payloads.my_trade(f) for f in fills]

    async def deposit_address(self, request, params, account, headers) -> Any:
        coin = params.get("coin")
        if not coin:
            raise _mandatory("coin")
        network = params.get("network") or self.sim.default_network(coin)
        if network not in self.sim.networks(coin):
            raise EngineError(-4018, "The network does not exist or has been closed.")
        address = account.deposit_address(coin, network)
        return {"coin": coin, "address": address, "tag": "", "url": self.sim.explorer_url(network, address),
                "isDefault": network == self.sim.default_network(coin)}

    async def deposit_history(self, request, params, account, headers) -> Any:
        coin = params.get("coin") or None
        start, end = _int(params, "startTime"), _int(params, "endTime")
        rows = [payloads.deposit_row(d) for d in reversed(account.deposits)
                if (coin is None or d.coin == coin)
                and (start is None or d.insert_time >= start) and (end is None or d.insert_time <= end)]
        limit = _int(params, "limit") or 1000
        return rows[:limit]

    # ================================================================ withdrawals (Binance wallet API)
    async def withdraw_apply(self, request, params, account, headers) -> Any:
        for name in ("coin", "address"):
            if not params.get(name):
                raise _mandatory(name)
        amount = _decimal(params, "amount")
        if amount is None or amount <= 0:
            raise _mandatory("amount")
        wallet_type = _int(params, "walletType") or 0
        if wallet_type not in (0, 1):
            raise EngineError(-1100, "Illegal characters found in parameter 'walletType'; legal range is '0, 1'.")
        order_id = params.get("withdrawOrderId") or ""
        if order_id and not _CLIENT_ID_RE.match(order_id):
            raise EngineError(-1100, "Illegal characters found in parameter 'withdrawOrderId'.")
        w = self.sim.withdrawals.apply(account, params["coin"], params.get("network") or None, params["address"],
                                       amount, order_id, wallet_type)
        self.sim.advance_withdrawals()
        return {"id": w.id}

    async def withdraw_history(self, request, params, account, headers) -> Any:
        self.sim.advance_withdrawals()
        limit = _int(params, "limit") or 1000
        if limit > 1000:
            raise EngineError(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
        ids = params.get("idList")
        rows = self.sim.withdrawals.history(
            account, coin=params.get("coin") or None, withdraw_order_id=params.get("withdrawOrderId") or None,
            status=_int(params, "status"), start=_int(params, "startTime"), end=_int(params, "endTime"),
            offset=_int(params, "offset") or 0, limit=limit, id_list=ids.split(",") if ids else None)
        return [history_row(w) for w in rows]

    async def capital_config(self, request, params, account, headers) -> Any:
        return self.sim.withdrawals.config_rows(account)

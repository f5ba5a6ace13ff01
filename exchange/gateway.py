"""The one module that knows ccxt: a Binance spot client pointed at any base URL (simulator, testnet or live),
exposing the few calls the actors need.

ccxt turns numbers into floats, and money must not pass through float arithmetic: orders, trades, balances and
deposits are read from `info` (the raw strings) into Decimal; book levels (floats from <= 15-digit strings, never
summed) via `Decimal(repr(x))`, exact for them. Errors are `exchange.errors` types. Symbols are exchange ids
(`BTCUSDC`)."""
from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import aiohttp
import ccxt.pro as ccxtpro
from ccxt.base import errors as cx

import core  # noqa: F401  (installs the project's decimal context)
from core.money import ZERO, D, from_float_text
from core.side import Side
from exchange import errors

T = TypeVar("T")


# ============================================================================================== value types
@dataclass(frozen=True, slots=True)
class ExchangeTrade:
    """One trade of one of our orders as the exchange reports it (executionReport or myTrades), amounts exact."""

    symbol: str
    trade_id: int
    order_id: int
    client_order_id: str
    side: Side | None
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str | None
    time: int
    is_maker: bool | None


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the exchange reports it (REST answer or executionReport), amounts exact."""

    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    type: str
    status: str  # Binance's: NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH, REJECTED
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cum_quote: Decimal
    update_time: int | None
    fills: tuple[ExchangeTrade, ...] = ()
    #: executionReport only: the execution type (NEW, TRADE, CANCELED, EXPIRED, ...) of the latest event.
    exec_type: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def average_price(self) -> Decimal | None:
        return self.cum_quote / self.executed_qty if self.executed_qty > 0 else None


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    symbol: str
    nonce: int | None
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class DepositAddress:
    coin: str
    network: str
    address: str
    tag: str | None


@dataclass(frozen=True, slots=True)
class DepositRecord:
    id: str
    coin: str
    network: str | None
    amount: Decimal
    status: int | None  # Binance: 0 pending, 6 credited but cannot withdraw, 1 success
    tx_id: str | None
    address: str | None
    insert_time: int | None
    info: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class WithdrawalRecord:
    """A withdrawal as the exchange reports it (GET /sapi/v1/capital/withdraw/history), amounts exact. Binance's
    status: 0 email sent, 1 cancelled, 2 awaiting approval, 3 rejected, 4 processing, 5 failure, 6 completed."""

    id: str
    coin: str
    network: str | None
    address: str | None
    amount: Decimal
    fee: Decimal | None
    status: int | None
    tx_id: str | None
    withdraw_order_id: str | None
    apply_time: str | None
    complete_time: str | None
    info: dict = field(default_factory=dict, compare=False)

    @property
    def completed(self) -> bool:
        return self.status == 6

    @property
    def failed(self) -> bool:
        """Cancelled, rejected or failed: the exchange gave amount + fee back."""
        return self.status in (1, 3, 5)


def parse_withdrawal_info(r: dict[str, Any]) -> WithdrawalRecord:
    fee = r.get("transactionFee")
    return WithdrawalRecord(str(r["id"]), r.get("coin", ""), r.get("network"), r.get("address"),
                            D(str(r.get("amount", "0"))), D(str(fee)) if fee not in (None, "") else None,
                            _int(r.get("status")), r.get("txId") or None, r.get("withdrawOrderId") or None,
                            r.get("applyTime"), r.get("completeTime"), r)


# ============================================================================================== error mapping
#: Binance messages ccxt sometimes raises without the body (it matches the message text first).
_MESSAGE_CODES = {
    "Market is closed.": -1013,
    "Account has insufficient balance for requested action.": -2010,
    "Order would immediately match and take.": -2010,
    "Duplicate order sent.": -2010,
    "Unknown order sent.": -2011,
    "Order does not exist.": -2013,
    "Timestamp for this request is outside of the recvWindow.": -1021,
    "Timestamp for this request was 1000ms ahead of the server's time.": -1021,
    "Signature for this request is not valid.": -1022,
    "API-key format invalid.": -2014,
    "Invalid API-key, IP, or permissions for action.": -2015,
    "Invalid symbol.": -1121,
}
#: Binance's wallet codes a withdrawal apply answers (its error-code list; -1002: a key without withdrawals).
_WITHDRAW_CODES: dict[int, type[errors.WithdrawRefused]] = {
    -1002: errors.WithdrawNotPermitted, -4019: errors.WithdrawNotPermitted,
    -4018: errors.WithdrawNetworkUnknown, -4022: errors.WithdrawBelowMinimum,
    -4026: errors.WithdrawInsufficientBalance, -4021: errors.WithdrawRefused, -4023: errors.WithdrawRefused,
    -4033: errors.WithdrawRefused,
}
_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')
_MSG_RE = re.compile(r'"msg"\s*:\s*"((?:[^"\\]|\\.)*)"')
_STATUS_RE = re.compile(r"^\S+ (\d{3}) ")


def map_error(exc: Exception, retry_after: str | None = None) -> errors.ExchangeError:
    """A ccxt exception as the project's error, with Binance's code and message when the exchange sent them."""
    text = str(exc)
    code: int | None = None
    msg = text
    m = _CODE_RE.search(text)
    if m:
        code = int(m.group(1))
        mm = _MSG_RE.search(text)
        if mm:
            msg = json.loads(f'"{mm.group(1)}"')
    else:
        bare = text.split(" ", 1)[1] if " " in text else text
        if bare.startswith("Filter failure: "):
            code, msg = -1013, bare
        elif bare in _MESSAGE_CODES:
            code, msg = _MESSAGE_CODES[bare], bare
    st = _STATUS_RE.match(text)
    http_status = int(st.group(1)) if st else None
    retry = int(retry_after) if retry_after and str(retry_after).isdigit() else None

    if isinstance(exc, cx.DDoSProtection) or code in (-1003, -1015):
        if http_status == 418 or "banned" in msg:
            return errors.IpBanned(msg, code, http_status=http_status or 418, retry_after_s=retry)
        if isinstance(exc, cx.DDoSProtection) or isinstance(exc, cx.RateLimitExceeded):
            return errors.RateLimited(msg, code, http_status=http_status or 429, retry_after_s=retry)
    if code == -1013:
        cls = errors.MarketClosed if msg == "Market is closed." else errors.FilterRejected
        return cls(msg, code)
    if code == -2010:
        if "insufficient balance" in msg:
            return errors.InsufficientBalance(msg, code)
        if "immediately match" in msg:
            return errors.WouldTakeLiquidity(msg, code)
        if msg.startswith("Duplicate order"):
            return errors.DuplicateOrder(msg, code)
        return errors.OrderRejected(msg, code)
    if code in (-2011, -2013):
        return errors.OrderNotFound(msg, code)
    if code == -1121:
        return errors.BadSymbol(msg, code)
    if code == -1021:
        return errors.InvalidTimestamp(msg, code)
    if code in (-1022, -2014, -2015):
        return errors.AuthenticationFailed(msg, code)
    if code in _WITHDRAW_CODES:
        return _WITHDRAW_CODES[code](msg, code, http_status=http_status)
    if code in (-1007, -1008) or (http_status is not None and http_status >= 500):
        return errors.StatusUnknown(msg, code, http_status=http_status)
    if code is not None and -1199 <= code <= -1100:
        return errors.BadRequest(msg, code)
    # No exchange code: classify by ccxt's class.
    if isinstance(exc, cx.OrderNotFound):
        return errors.OrderNotFound(msg, code)
    if isinstance(exc, cx.InsufficientFunds):
        return errors.InsufficientBalance(msg, code)
    if isinstance(exc, cx.BadSymbol):
        return errors.BadSymbol(msg, code)
    if isinstance(exc, cx.InvalidNonce):
        return errors.InvalidTimestamp(msg, code)
    if isinstance(exc, cx.AuthenticationError):
        return errors.AuthenticationFailed(msg, code)
    if isinstance(exc, cx.InvalidOrder):
        return errors.OrderRejected(msg, code)  # includes ccxt's own pre-checks (precision, limits)
    if isinstance(exc, cx.BadRequest):
        return errors.BadRequest(msg, code)
    if isinstance(exc, (cx.ExchangeNotAvailable, cx.OnMaintenance)) and not isinstance(exc, cx.RequestTimeout):
        return errors.ExchangeUnavailable(msg, code, http_status=http_status)
    if isinstance(exc, cx.NetworkError):
        return errors.StatusUnknown(msg, code, http_status=http_status)
    return errors.ExchangeError(msg, code, http_status=http_status)


# ============================================================================================== parsing
def _dec(v: Any) -> Decimal:
    if v is None or v == "":
        return ZERO
    return D(str(v)) if not isinstance(v, float) else from_float_text(v)


def _plain(v: Decimal) -> str:
    """A decimal as Binance wants it in a request: positional notation, never an exponent ("1E-7" is refused)."""
    return format(v, "f")


def _int(v: Any) -> int | None:
    return None if v is None or v == "" else int(v)


def parse_order_info(info: dict[str, Any]) -> ExchangeOrder:
    """From a REST order payload (POST/GET/DELETE /api/v3/order, openOrders) or an executionReport."""
    if info.get("e") == "executionReport":
        cid = info.get("C") or info.get("c")  # on a cancel, C carries the order's own id
        fill = None
        if info.get("x") == "TRADE":
            fill = ExchangeTrade(info["s"], int(info["t"]), int(info["i"]), cid, Side(info["S"]), _dec(info["L"]),
                                 _dec(info["l"]), _dec(info.get("n")), info.get("N"), int(info["T"]),
                                 bool(info.get("m")))
        return ExchangeOrder(
            symbol=info["s"], order_id=int(info["i"]), client_order_id=cid, side=Side(info["S"]), type=info["o"],
            status=info["X"], time_in_force=info.get("f"), price=_dec(info.get("p")), orig_qty=_dec(info.get("q")),
            executed_qty=_dec(info.get("z")), cum_quote=_dec(info.get("Z")), update_time=_int(info.get("T")),
            fills=(fill,) if fill else (), exec_type=info.get("x"),
        )
    cid = info.get("clientOrderId", "")
    if "origClientOrderId" in info:  # a cancel answer: clientOrderId is the cancel request's own id
        cid = info["origClientOrderId"]
    side = Side(info["side"]) if info.get("side") else Side.BUY
    fills = tuple(
        ExchangeTrade(info["symbol"], int(f["tradeId"]), int(info["orderId"]), cid, side, _dec(f["price"]),
                      _dec(f["qty"]), _dec(f.get("commission")), f.get("commissionAsset"),
                      _int(info.get("transactTime")) or 0, False)
        for f in info.get("fills") or ()
    )
    return ExchangeOrder(
        symbol=info["symbol"], order_id=int(info["orderId"]), client_order_id=cid, side=side,
        type=info.get("type", ""), status=info.get("status", ""), time_in_force=info.get("timeInForce"),
        price=_dec(info.get("price")), orig_qty=_dec(info.get("origQty")), executed_qty=_dec(info.get("executedQty")),
        cum_quote=_dec(info.get("cummulativeQuoteQty")),
        update_time=_int(info.get("updateTime") or info.get("transactTime") or info.get("time")), fills=fills,
    )


def parse_trade_info(info: dict[str, Any]) -> ExchangeTrade:
    """From a myTrades row or an executionReport with x=TRADE."""
    if info.get("e") == "executionReport":
        return ExchangeTrade(info["s"], int(info["t"]), int(info["i"]), info.get("c", ""), Side(info["S"]),
                             _dec(info["L"]), _dec(info["l"]), _dec(info.get("n")), info.get("N"), int(info["T"]),
                             bool(info.get("m")))
    side = Side.BUY if info.get("isBuyer") else Side.SELL
    return ExchangeTrade(info["symbol"], int(info["id"]), int(info["orderId"]), "", side, _dec(info["price"]),
                         _dec(info["qty"]), _dec(info.get("commission")), info.get("commissionAsset"),
                         int(info["time"]), bool(info.get("isMaker")))


def _levels(rows: Iterable[Any], depth: int | None) -> list[tuple[Decimal, Decimal]]:
    out = []
    for i, row in enumerate(rows):
        if depth is not None and i >= depth:
            break
        out.append((from_float_text(row[0]) if isinstance(row[0], float) else D(str(row[0])),
                    from_float_text(row[1]) if isinstance(row[1], float) else D(str(row[1]))))
    return out


# ============================================================================================== live books
#: Called by ccxt's message handler for every depth diff it applies: (exchange symbol, last update id u, event
#: time E in ms), and once per applied REST snapshot with E = None. It runs inside ccxt's receive loop, once per
#: message: keep it to a few attribute writes.
BookListener = Callable[[str, int, "int | None"], None]
#: Called when ccxt found a sequence gap in a symbol's diffs (that book is being rebuilt from a new snapshot).
GapListener = Callable[[str], None]


class _BinancePro(ccxtpro.binance):
    """ccxt.pro's binance with two hooks for the market-data shards, and one repair.

    * `book_listener` sees every applied diff without awaiting: per-message work stays a function call.
    * On a gap, ccxt drops the book AND its subscription, so the next watch would resubscribe every symbol and refetch
      every snapshot (weight 5 each). Instead the gapped book alone is rebuilt: buffering diffs, subscription restored,
      one snapshot fetched."""

    book_listener: BookListener | None = None
    gap_listener: GapListener | None = None
    #: Resolved (and dropped) at the next applied diff or gap: what BinanceGateway.watch_books waits on.
    book_waiter: asyncio.Future | None = None

    #: Lean user stream (BinanceGateway.watch_executions): executionReports are kept raw here instead of being
    #: parsed by ccxt into order and trade structures (the gateway reads only their raw strings anyway), and
    #: account/balance events are skipped unless somebody watches balances.
    raw_executions: bool = False
    balance_watched: bool = False

    def _init_raw(self) -> None:
        self.execution_reports: list[dict[str, Any]] = []
        self.execution_waiter: asyncio.Future | None = None

    def handle_order_update(self, client: Any, message: dict) -> None:
        if not self.raw_executions or message.get("e") != "executionReport":
            return super().handle_order_update(client, message)
        self.execution_reports.append(message)
        waiter = self.execution_waiter
        if waiter is not None:
            self.execution_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def handle_balance(self, client: Any, message: dict) -> None:
        if self.raw_executions and not self.balance_watched:
            return  # nobody reads balances from this connection: ccxt's float parsing of every position is waste
        return super().handle_balance(client, message)

    def _wake(self) -> None:
        waiter = self.book_waiter
        if waiter is not None:
            self.book_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def handle_order_book_message(self, client: Any, message: dict, orderbook: Any) -> Any:
        result = super().handle_order_book_message(client, message, orderbook)
        listener = self.book_listener
        if listener is not None:
            listener(message.get("s"), message.get("u"), message.get("E"))
        if self.book_waiter is not None:
            self._wake()
        return result

    async def fetch_order_book_snapshot(self, client: Any, message: Any, subscription: Any) -> None:
        await super().fetch_order_book_snapshot(client, message, subscription)
        symbol = self.safe_string(subscription, "symbol")
        book = self.orderbooks.get(symbol) if symbol is not None else None
        if book is not None and book["nonce"] is not None:
            listener = self.book_listener
            if listener is not None:  # E = None: a snapshot, fresh but not a diff
                listener(self.market(symbol)["id"], book["nonce"], None)
            self._wake()

    def handle_order_book(self, client: Any, message: dict) -> None:
        market = self.safe_market(message.get("s"), None, None, "spot" if self.is_spot_url(client) else "swap")
        symbol = market["symbol"]
        message_hash = "orderbook::" + symbol
        had_book = symbol in self.orderbooks
        subscription = client.subscriptions.get(message_hash)
        super().handle_order_book(client, message)
        if not had_book or symbol in self.orderbooks or not isinstance(subscription, dict):
            return
        # ccxt raised ChecksumError for this symbol (a gap): resync it alone.
        client.rejections.pop(message_hash, None)  # nobody waits for it; a later watch must not raise it
        client.subscriptions[message_hash] = subscription
        limit = self.safe_integer(subscription, "limit", self.safe_integer(self.options, "watchOrderBookLimit", 1000))
        book = self.order_book({}, limit)
        book["nonce"] = None
        book.cache = []
        self.orderbooks[symbol] = book
        self.spawn(self.fetch_order_book_snapshot, client, message, self.extend(subscription, {"symbol": symbol}))
        if self.gap_listener is not None:
            self.gap_listener(message.get("s"))
        self._wake()


# ============================================================================================== the gateway
class BinanceGateway:
    def __init__(
        self,
        rest_url: str | None,
        ws_url: str | None,
        api_key: str,
        secret: str,
        *,
        recv_window_ms: int = 10_000,
        watch_book_limit: int = 100,
        enable_rate_limit: bool = True,
        sandbox: bool = False,
        options: dict[str, Any] | None = None,
        timeout_ms: int | None = None,
        throttle_burst: int | None = None,
        http_keepalive_s: float | None = None,
        ws_api_url: str | None = None,
    ) -> None:
        """`rest_url`/`ws_url` (market streams)/`ws_api_url` (the WebSocket API, whole URL): None keeps ccxt's URLs
        (Binance, or the testnet with `sandbox=True`); `ws_api_url` None with a `ws_url` is `ws_url`/ws-api/v3 (the
        simulator serves both on one address; Binance on two hosts).

        `enable_rate_limit` is ccxt's leaky bucket; the order sender turns it off and paces itself (core.rate_limits).
        `throttle_burst` lets the bucket start full (a shard fetches one snapshot per symbol at start). `timeout_ms`
        bounds each REST request: a timed-out order is a StatusUnknown. `http_keepalive_s` keeps idle connections for
        the next batch. Construct it inside the event loop that will use it."""
        opts: dict[str, Any] = {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},  # default also loads fapi + dapi exchangeInfo
            "fetchCurrencies": False,  # else GET /sapi/v1/capital/config/getall at load_markets
            "fetchMargins": False,  # else GET /sapi/v1/margin/allPairs + isolated/allPairs
            "adjustForTimeDifference": False,
            "watchOrderBookLimit": watch_book_limit,  # REST snapshot size used by watch_order_book
            "recvWindow": recv_window_ms,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        }
        opts.update(options or {})
        config: dict[str, Any] = {"apiKey": api_key, "secret": secret, "enableRateLimit": enable_rate_limit,
                                  "options": opts}
        if timeout_ms is not None:
            config["timeout"] = timeout_ms
        self._session: aiohttp.ClientSession | None = None
        if http_keepalive_s is not None:
            # ccxt's own session, but for the idle time (ccxt closes only sessions it made: close() closes this one)
            self._session = config["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                keepalive_timeout=http_keepalive_s, enable_cleanup_closed=True))
        self._ex = _BinancePro(config)
        if throttle_burst is not None and throttle_burst > 1:
            # ccxt copies tokenBucket into every websocket client's throttler, and uses self.throttler for REST.
            self._ex.tokenBucket.update(capacity=float(throttle_burst), tokens=float(throttle_burst))
            self._ex.throttler.config.update(capacity=float(throttle_burst), tokens=float(throttle_burst))
        self._book_feeds: dict[str, tuple[list[str], Any]] = {}  # symbols key -> (ccxt symbols, ws client)
        if sandbox:
            self._ex.set_sandbox_mode(True)
        if rest_url is not None:
            api = self._ex.urls["api"]
            base = rest_url.rstrip("/")
            api["public"] = api["private"] = base + "/api/v3"
            api["v1"] = base + "/api/v1"
            api["sapi"] = base + "/sapi/v1"
            for n in (2, 3, 4):
                api[f"sapiV{n}"] = base + f"/sapi/v{n}"
        if ws_url is not None:
            ws = ws_url.rstrip("/")
            api = self._ex.urls["api"]
            api["ws"]["spot"] = ws + "/ws"  # market streams: ccxt appends "/<n>"
            api["ws"]["ws-api"]["spot"] = ws + "/ws-api/v3"  # user data (orders, fills, balances)
        if ws_api_url is not None:
            self._ex.urls["api"]["ws"]["ws-api"]["spot"] = ws_api_url.rstrip("/")
        self._markets_loaded = False
        self._executions_sub: asyncio.Future | None = None

    @classmethod
    def from_config(cls, cfg: Any, api_key: str, secret: str) -> "BinanceGateway":
        """From core.config.ExchangeConfig (its three URLs, sandbox, recv_window_ms, order_book_depth)."""
        return cls(cfg.rest_url, cfg.ws_url, api_key, secret, recv_window_ms=cfg.recv_window_ms,
                   watch_book_limit=cfg.order_book_depth, sandbox=cfg.sandbox, ws_api_url=cfg.ws_api_url)

    @property
    def ccxt(self) -> Any:
        """The underlying client (tests and diagnostics only; actors use the methods below)."""
        return self._ex

    def last_response_headers(self) -> dict[str, str]:
        """Headers of the latest REST answer (X-MBX-USED-WEIGHT-*, X-MBX-ORDER-COUNT-*), for the rate limiter's
        corrections. With concurrent requests it is the latest to complete; the limiter only ever raises its count
        from them, so an older answer's lower figure is harmless."""
        return dict(getattr(self._ex, "last_response_headers", None) or {})

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except cx.BaseError as e:
            headers = getattr(self._ex, "last_response_headers", None) or {}
            retry = headers.get("Retry-After") or headers.get("retry-after")
            raise map_error(e, retry) from e

    async def _ensure_markets(self) -> None:
        if not self._markets_loaded:
            await self.load_markets()

    def _sym(self, exchange_symbol: str) -> str:
        try:
            return self._ex.markets_by_id[exchange_symbol][0]["symbol"]
        except (KeyError, IndexError, TypeError):
            raise errors.BadSymbol(f"unknown symbol {exchange_symbol}", -1121) from None

    def _id(self, ccxt_symbol: str) -> str:
        return self._ex.markets[ccxt_symbol]["id"]

    # ------------------------------------------------------------------ public
    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """exchangeInfo `symbols[]` entries (raw: filters as strings) by exchange symbol."""
        markets = await self._call(self._ex.load_markets, reload)
        self._markets_loaded = True
        return {m["id"]: m["info"] for m in markets.values() if m.get("spot")}

    async def fetch_exchange_info(self, symbols: Sequence[str] | None = None) -> dict[str, Any]:
        """The raw GET /api/v3/exchangeInfo payload (weight 20): `rateLimits` and `symbols[].filters` as the
        exchange wrote them, for core.rate_limits and core.symbol_filters (ccxt keeps neither in full); only
        `symbols`' entries when given."""
        if symbols:
            return await self._call(self._ex.public_get_exchangeinfo,
                                    {"symbols": json.dumps(list(symbols), separators=(",", ":"))})
        return await self._call(self._ex.public_get_exchangeinfo)

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> BookSnapshot:
        await self._ensure_markets()
        ob = await self._call(self._ex.fetch_order_book, self._sym(symbol), limit)
        return BookSnapshot(symbol, ob.get("nonce"), _levels(ob["bids"], None), _levels(ob["asks"], None),
                            ob.get("timestamp"))

    async def fetch_avg_price(self, symbol: str) -> Decimal:
        info = await self._call(self._ex.public_get_avgprice, {"symbol": symbol})
        return D(info["price"])

    async def fetch_tickers(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        """Raw 24 h tickers (`info`, strings) by exchange symbol."""
        await self._ensure_markets()
        tickers = await self._call(self._ex.fetch_tickers, [self._sym(s) for s in symbols])
        return {self._id(k): v["info"] for k, v in tickers.items()}

    # ------------------------------------------------------------------ private
    async def create_order(
        self,
        symbol: str,
        side: Side,
        order_type: str,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        *,
        client_order_id: str,
        time_in_force: str | None = None,
        quote_order_qty: Decimal | None = None,
    ) -> ExchangeOrder:
        """LIMIT (GTC/IOC/FOK), LIMIT_MAKER or MARKET (by quantity, or by `quote_order_qty`). The FULL answer, so
        immediate fills are known at once. `client_order_id` is the idempotency key (newClientOrderId).

        Through ccxt's raw endpoint, not its unified create_order: quantity and price are already exact strings on the
        symbol's filters, and the unified call would format them again and build structures nobody reads (~150 us of CPU
        per order)."""
        await self._ensure_markets()
        kind = order_type.upper()
        if kind not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
            raise errors.BadRequest(f"unsupported order type {order_type!r}", -1116)
        if kind != "MARKET" and (price is None or quantity is None):
            raise errors.BadRequest(f"a {kind} order needs a quantity and a price", -1102)
        if kind == "MARKET" and (quantity is None) == (quote_order_qty is None):
            raise errors.BadRequest("a MARKET order needs exactly one of quantity and quote_order_qty", -1102)
        symbol_id = self._id(self._sym(symbol))  # an unknown symbol is refused here, as the unified call did
        request: dict[str, Any] = {"symbol": symbol_id, "side": side.value, "type": kind,
                                   "newClientOrderId": client_order_id, "newOrderRespType": "FULL"}
        if kind == "LIMIT":
            request["timeInForce"] = time_in_force or "GTC"
        if quantity is not None:
            request["quantity"] = _plain(quantity)
        if quote_order_qty is not None:
            request["quoteOrderQty"] = _plain(quote_order_qty)
        if price is not None and kind != "MARKET":
            request["price"] = _plain(price)
        return parse_order_info(await self._call(self._ex.private_post_order, request))

    async def cancel_order(self, symbol: str, order_id: int | None = None,
                           client_order_id: str | None = None) -> ExchangeOrder:
        await self._ensure_markets()
        params = {"origClientOrderId": client_order_id} if client_order_id is not None else {}
        order = await self._call(self._ex.cancel_order, str(order_id) if order_id is not None else None,
                                 self._sym(symbol), params)
        return parse_order_info(order["info"])

    async def fetch_order(self, symbol: str, order_id: int | None = None,
                          client_order_id: str | None = None) -> ExchangeOrder:
        await self._ensure_markets()
        params = {"origClientOrderId": client_order_id} if client_order_id is not None else {}
        order = await self._call(self._ex.fetch_order, str(order_id) if order_id is not None else None,
                                 self._sym(symbol), params)
        return parse_order_info(order["info"])

    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        await self._ensure_markets()
        orders = await self._call(self._ex.fetch_open_orders, self._sym(symbol) if symbol else None)
        return [parse_order_info(o["info"]) for o in orders]

    async def fetch_my_trades(self, symbol: str, since: int | None = None, limit: int | None = None,
                              order_id: int | None = None) -> list[ExchangeTrade]:
        await self._ensure_markets()
        params = {"orderId": order_id} if order_id is not None else {}
        trades = await self._call(self._ex.fetch_my_trades, self._sym(symbol), since, limit, params)
        return [parse_trade_info(t["info"]) for t in trades]

    async def fetch_balance(self) -> dict[str, Balance]:
        bal = await self._call(self._ex.fetch_balance)
        return {b["asset"]: Balance(b["asset"], D(b["free"]), D(b["locked"])) for b in bal["info"]["balances"]}

    async def fetch_can_trade(self) -> bool:
        """GET /api/v3/account's canTrade: whether this key may place spot orders (a signed request, so it also
        proves the key and secret)."""
        info = await self._call(self._ex.private_get_account)
        return bool(info.get("canTrade"))

    async def fetch_deposit_address(self, coin: str, network: str) -> DepositAddress:
        await self._ensure_markets()
        res = await self._call(self._ex.fetch_deposit_address, coin, {"network": network})
        info = res["info"]
        # ccxt derives `network` only with currency data loaded; keep the one we asked for.
        return DepositAddress(info.get("coin", coin), network, info["address"], info.get("tag") or None)

    async def fetch_deposits(self, coin: str | None = None, since: int | None = None) -> list[DepositRecord]:
        """Deposit history (GET /sapi/v1/capital/deposit/hisrec) in ccxt's order (oldest first), amounts exact."""
        await self._ensure_markets()
        rows = [t["info"] for t in await self._call(self._ex.fetch_deposits, coin, since)]
        return [DepositRecord(str(r.get("id")), r["coin"], r.get("network"), D(str(r["amount"])),
                              _int(r.get("status")), r.get("txId"), r.get("address"), _int(r.get("insertTime")), r)
                for r in rows]

    async def withdraw(self, coin: str, amount: Decimal, address: str, network: str,
                       withdraw_order_id: str) -> str:
        """POST /sapi/v1/capital/withdraw/apply through ccxt; returns the exchange's withdrawal id. Binance does not
        deduplicate `withdraw_order_id`: after a lost answer, look it up (fetch_withdrawals) before applying again.
        `amount` reaches the address; the account pays amount + the network's fee."""
        await self._ensure_markets()
        res = await self._call(self._ex.withdraw, coin, _plain(amount), address,
                               {"network": network, "withdrawOrderId": withdraw_order_id})
        return str(res["info"]["id"])

    async def ensure_withdrawal(self, coin: str, amount: Decimal, address: str, network: str,
                                withdraw_order_id: str) -> str:
        """The exchange's id of the withdrawal under `withdraw_order_id`, applying it only when the history has none:
        safe to call again after a lost answer (StatusUnknown) or a restart, it never withdraws twice."""
        known = await self.fetch_withdrawals(coin, withdraw_order_id)
        if known:
            return known[-1].id  # ccxt sorts oldest first: a second one can only come from another client's apply
        return await self.withdraw(coin, amount, address, network, withdraw_order_id)

    async def fetch_withdraw_fee(self, coin: str, network: str) -> Decimal:
        """The network's withdrawFee for `coin` (GET /sapi/v1/capital/config/getall), exact. KeyError when the
        exchange does not list the coin on that network."""
        rows = await self._call(self._ex.sapi_get_capital_config_getall)
        for row in rows:
            if row.get("coin") == coin:
                for net in row.get("networkList", ()):
                    if net.get("network") == network:
                        return D(str(net["withdrawFee"]))
        raise KeyError(f"the exchange lists no {coin} withdrawals on {network}")

    async def fetch_withdrawals(self, coin: str | None = None, withdraw_order_id: str | None = None,
                                since: int | None = None) -> list[WithdrawalRecord]:
        """Withdrawal history (GET /sapi/v1/capital/withdraw/history), optionally one withdrawOrderId's."""
        await self._ensure_markets()
        params = {"withdrawOrderId": withdraw_order_id} if withdraw_order_id else {}
        rows = await self._call(self._ex.fetch_withdrawals, coin, since, None, params)
        return [parse_withdrawal_info(t["info"]) for t in rows]

    # ------------------------------------------------------------------ live books (market-data shards)
    def set_book_listeners(self, on_update: BookListener | None, on_gap: GapListener | None = None) -> None:
        """Hooks called from ccxt's receive loop: `on_update(symbol, u, E)` per applied diff, `on_gap(symbol)`
        when a gap made ccxt drop a book (it is then rebuilt from a new snapshot on its own)."""
        self._ex.book_listener = on_update
        self._ex.gap_listener = on_gap

    async def watch_books(self, symbols: list[str], limit: int | None = None) -> None:
        """Keep `symbols`' books subscribed and return when one of them changed (or gapped: it then resyncs on its own).
        No level is converted: read them with `book_levels` / `book_state`.

        The first call subscribes; later calls only wait, since re-entering ccxt's watch costs O(symbols) per wake-up
        (~30 % of a shard's CPU). When the connection fails, every book of `symbols` is forgotten (no stale level
        served) and the error raised: call again to rebuild."""
        await self._ensure_markets()
        key = ",".join(symbols)
        feed = self._book_feeds.get(key)
        if feed is None or feed[1] is None or feed[1] not in self._ex.clients.values() or feed[1].closed():
            ccxt_symbols = feed[0] if feed is not None else [self._sym(s) for s in symbols]
            self._book_feeds[key] = (ccxt_symbols, None)
            try:
                await self._ex.watch_order_book_for_symbols(ccxt_symbols, limit)
            except cx.ChecksumError:
                return  # the gapped book is already being rebuilt (see _BinancePro.handle_order_book)
            except cx.BaseError as e:
                self._forget_books(ccxt_symbols)
                raise map_error(e) from e
            hash0 = "orderbook::" + ccxt_symbols[0]
            client = next((c for c in self._ex.clients.values() if hash0 in c.subscriptions), None)
            self._book_feeds[key] = (ccxt_symbols, client)
            return
        ccxt_symbols, client = feed
        alive = client.future("indexmaker::books-alive")  # never resolved by a message; rejected on failure
        waiter = self._ex.book_waiter
        if waiter is None or waiter.done():
            waiter = self._ex.book_waiter = asyncio.get_running_loop().create_future()
        await asyncio.wait((alive, waiter), return_when=asyncio.FIRST_COMPLETED)
        if alive.done():
            self._book_feeds[key] = (ccxt_symbols, None)
            self._forget_books(ccxt_symbols)
            exc = alive.exception() if not alive.cancelled() else cx.NetworkError("connection closed")
            raise map_error(exc) if isinstance(exc, cx.BaseError) else errors.ExchangeUnavailable(str(exc))

    def _forget_books(self, ccxt_symbols: list[str]) -> None:
        for s in ccxt_symbols:
            self._ex.orderbooks.pop(s, None)

    def book_state(self, symbol: str) -> tuple[int, int | None] | None:
        """(last update id, event time E of the last applied diff) of ccxt's live book, or None while it has no
        snapshot (not subscribed yet, or being rebuilt after a gap or a reconnect)."""
        market = self._ex.markets_by_id.get(symbol) if self._ex.markets_by_id else None
        if not market:
            return None
        ob = self._ex.orderbooks.get(market[0]["symbol"])
        if ob is None or ob["nonce"] is None:
            return None
        return ob["nonce"], ob["timestamp"]

    def book_levels(self, symbol: str, side: Side, depth: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """The best `depth` levels of one side (BUY = bids, SELL = asks) of ccxt's live book, converted to exact
        Decimals only now (the diff hot path never converts); [] while the book has no snapshot."""
        market = self._ex.markets_by_id.get(symbol) if self._ex.markets_by_id else None
        if not market:
            return []
        ob = self._ex.orderbooks.get(market[0]["symbol"])
        if ob is None or ob["nonce"] is None:
            return []
        rows = ob["bids" if side is Side.BUY else "asks"]
        rows = rows[:depth] if depth is not None else rows
        return [(from_float_text(p), from_float_text(q)) for p, q, *_ in rows]

    # ------------------------------------------------------------------ streams
    async def watch_order_book_for_symbols(self, symbols: list[str], limit: int | None = None,
                                           depth: int | None = None) -> BookSnapshot:
        """The next book (of any of `symbols`) that changed, built by ccxt from the REST snapshot + diffs and
        gap-checked by it; `depth` levels per side are converted (None = all)."""
        await self._ensure_markets()
        ob = await self._call(self._ex.watch_order_book_for_symbols, [self._sym(s) for s in symbols], limit)
        return BookSnapshot(self._id(ob["symbol"]), ob.get("nonce"), _levels(ob["bids"], depth),
                            _levels(ob["asks"], depth), ob.get("timestamp"))

    async def watch_order_book(self, symbol: str, limit: int | None = None, depth: int | None = None) -> BookSnapshot:
        return await self.watch_order_book_for_symbols([symbol], limit, depth)

    @staticmethod
    def _take_pending(cache: Any) -> list[Any]:
        """Updates ccxt cached after our last read. ccxt's watch_* only return when a NEW message arrives, so the
        tail of a burst (e.g. the FILLED report right after NEW) would otherwise wait for the next, unrelated
        event. ccxt counts appends since the last getLimit(); its reset flag is applied lazily at the next append,
        so a raised flag means nothing new was appended since the last read."""
        if cache is None or getattr(cache, "_clear_all_updates", True):
            return []
        n = cache.getLimit(None, None) or 0
        return list(cache)[-n:] if n else []

    async def watch_orders(self) -> list[ExchangeOrder]:
        """Order updates from the user data stream since the last call (the latest executionReport of each
        order updated); waits for the next one if there is none."""
        await self._ensure_markets()
        orders = self._take_pending(getattr(self._ex, "orders", None))
        if not orders:
            orders = await self._call(self._ex.watch_orders)
        return [parse_order_info(o["info"]) for o in orders]

    async def watch_my_trades(self) -> list[ExchangeTrade]:
        """Fills (executionReport x=TRADE) since the last call; waits for the next one if there is none."""
        await self._ensure_markets()
        trades = self._take_pending(getattr(self._ex, "myTrades", None))
        if not trades:
            trades = await self._call(self._ex.watch_my_trades)
        return [parse_trade_info(t["info"]) for t in trades]

    async def watch_executions(self) -> list[ExchangeOrder]:
        """Every executionReport since the last call, oldest first, each as the order's state after it (with its fill
        when it is a TRADE); waits if there is none. The lean replacement for watch_orders + watch_my_trades on a hot
        path: reports are read once from their raw strings, not parsed into ccxt's float structures. Once called, this
        gateway's watch_orders/watch_my_trades see no more updates. A dropped stream raises (the caller reconciles)."""
        await self._ensure_markets()
        ex = self._ex
        if not ex.raw_executions:
            ex._init_raw()
            ex.raw_executions = True
        while not ex.execution_reports:
            sub = self._executions_sub
            if sub is None:
                # ccxt's watch_orders subscribes the user data stream, then waits for an 'orders' update that the
                # raw handler never gives: it ends only when the connection fails.
                sub = self._executions_sub = asyncio.ensure_future(self._call(ex.watch_orders))
            waiter = ex.execution_waiter
            if waiter is None or waiter.done():
                waiter = ex.execution_waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait((waiter, sub), return_when=asyncio.FIRST_COMPLETED)
            if sub.done() and not ex.execution_reports:  # reports that came before the failure are given first
                self._executions_sub = None
                error = None if sub.cancelled() else sub.exception()
                raise error if isinstance(error, errors.ExchangeError) else errors.StatusUnknown(
                    f"user data stream ended ({error!r})", None)
        reports, ex.execution_reports = ex.execution_reports, []
        return [parse_order_info(r) for r in reports]

    async def watch_balance(self) -> dict[str, Balance]:
        """Exact balances of the assets in the next outboundAccountPosition (Binance sends one after every balance
        change, deposits included). A balanceUpdate is only a delta, and ccxt keeps its sum as a float, so it is
        not reported on its own: the position event that follows it carries the exact result."""
        await self._ensure_markets()
        self._ex.balance_watched = True
        while True:
            await self._call(self._ex.watch_balance)
            # The latest event ccxt has processed (not necessarily the one that woke us: several frames can be
            # handled before this task resumes, and only the first one resolves the pending watch).
            info = ((self._ex.balance or {}).get("spot") or {}).get("info") or {}
            if info.get("e") == "outboundAccountPosition":
                return {b["a"]: Balance(b["a"], D(b["f"]), D(b["l"])) for b in info.get("B", ())}

    async def close(self) -> None:
        sub, self._executions_sub = self._executions_sub, None
        if sub is not None and not sub.done():
            sub.cancel()
        try:
            await self._ex.close()
        finally:
            if self._session is not None:
                await self._session.close()

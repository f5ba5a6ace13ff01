"""The simulator's matching engine: pure state, no I/O, one thread.

Price-time priority; filters checked with `core.symbol_filters.validate`, the sender's own pre-check, so they
cannot disagree. Commission is taken from the received asset, rounded UP (the exchange keeps the rounding). The
market maker (`mm_*`, driven by price_process.py) rests in the same books without balances. Effects go to
outboxes the server drains after each call: the engine never sends anything."""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable, Mapping

from core.clock import Clock
from core.money import ZERO, quantize_down, quantize_up
from core.side import Side
from core.symbol_filters import FilterError, validate
from exchange.simulator import payloads
from exchange.simulator.accounts import Account, BalanceError
from exchange.simulator.book import Book
from exchange.simulator.markets import SimMarket
from exchange.simulator.orders import (
    CANCELED, EXPIRED, EXPIRED_IN_MATCH, FILLED, FOK, GTC, IOC, LIMIT, LIMIT_MAKER, MARKET, NEW,
    PARTIALLY_FILLED, Deposit, Fill, Order,
)

SYSTEM = "__system__"
_PRICE_QUANTUM = Decimal("0.00000001")


class EngineError(Exception):
    """A reject with Binance's code and message (HTTP status as Binance answers it)."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."


@dataclass(slots=True)
class MarketStats:
    """Trade statistics: the avgPrice window (VWAP of the last `avg_mins` minutes) and 24 h ticker numbers
    (counted since the simulator started: it never runs for a day)."""

    avg_mins: int
    last_price: Decimal | None = None
    last_qty: Decimal = ZERO
    open_price: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    count: int = 0
    first_id: int = -1
    last_id: int = -1
    open_time: int = 0
    window: deque | None = None
    window_pq: Decimal = ZERO
    window_q: Decimal = ZERO

    def record(self, trade_id: int, price: Decimal, qty: Decimal, now: int) -> None:
        if self.window is None:
            self.window = deque()
        if self.open_price is None:
            self.open_price, self.high, self.low, self.first_id, self.open_time = price, price, price, trade_id, now
        self.high = max(self.high, price)  # type: ignore[type-var]
        self.low = min(self.low, price)  # type: ignore[type-var]
        self.last_price, self.last_qty, self.last_id = price, qty, trade_id
        self.volume += qty
        self.quote_volume += price * qty
        self.count += 1
        self.window.append((now, price * qty, qty))
        self.window_pq += price * qty
        self.window_q += qty

    def vwap(self, now: int) -> Decimal | None:
        w = self.window
        if w is None:
            return None
        horizon = now - self.avg_mins * 60_000
        while w and w[0][0] < horizon:
            _, pq, q = w.popleft()
            self.window_pq -= pq
            self.window_q -= q
        if self.window_q <= 0:
            return None
        # A reference price, not an amount: nearest 8-dp value (Binance prints avgPrice with 8 decimals).
        return (self.window_pq / self.window_q).quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


class MatchingEngine:
    def __init__(
        self,
        markets: Mapping[str, SimMarket],
        clock: Clock,
        *,
        maker_commission: Decimal = Decimal("0.001"),
        taker_commission: Decimal = Decimal("0.001"),
    ) -> None:
        self.markets = dict(markets)
        self.clock = clock
        self.maker_commission = maker_commission
        self.taker_commission = taker_commission
        self.books = {s: Book(s) for s in self.markets}
        self.stats = {s: MarketStats(m.filters.avg_price_mins) for s, m in self.markets.items()}
        self.accounts: dict[str, Account] = {}  # by API key
        self._by_id: dict[str, Account] = {}
        self.system = Account(SYSTEM, "", "")
        self._order_ids = {s: itertools.count(1) for s in self.markets}
        self._trade_ids = {s: itertools.count(1) for s in self.markets}
        self._exec_ids = itertools.count(1)
        self._deposit_ids = itertools.count(1)
        self._mm: dict[str, dict[tuple[Side, Decimal], Order]] = {s: {} for s in self.markets}
        # Outboxes, drained by the server after each call.
        self._taker_reports: list[dict] = []  # the current taker's TRADE reports, held until its final status
        self.user_events: list[tuple[Account, dict]] = []
        self.trade_events: list[tuple[str, dict]] = []
        self.first_fills: list[str] = []  # account ids whose order had its first fill (ORDERS counters)
        self.reference_prices: dict[str, Decimal] = {}  # fallback reference before any trade (seed prices)
        #: The upstream exchange's avgPrice per symbol (paper mode): the reference of the filters there, since the
        #: few paper trades here are not the market.
        self.upstream_avg_prices: dict[str, Decimal] = {}

    # ================================================================ accounts
    def add_account(self, api_key: str, secret: str, balances: Mapping[str, Decimal] | None = None,
                    deposit_addresses: Mapping[str, str] | None = None) -> Account:
        acct = Account(f"acct-{len(self.accounts) + 1}", api_key, secret)
        now = self.clock.now_ms()
        for asset, amount in (balances or {}).items():
            acct.credit(asset, Decimal(amount), now)
        acct.network_addresses.update(deposit_addresses or {})
        acct.take_dirty()
        self.accounts[api_key] = acct
        self._by_id[acct.id] = acct
        return acct

    # ================================================================ reading
    def market(self, symbol: str) -> SimMarket:
        m = self.markets.get(symbol)
        if m is None:
            raise EngineError(-1121, "Invalid symbol.")
        return m

    def depth(self, symbol: str, limit: int) -> tuple[int, list, list]:
        book = self.books[self.market(symbol).symbol]
        return book.update_id, book.depth(Side.BUY, limit), book.depth(Side.SELL, limit)

    def mid_price(self, symbol: str) -> Decimal | None:
        book = self.books[symbol]
        bid, ask = book.best_price(Side.BUY), book.best_price(Side.SELL)
        if bid is not None and ask is not None:
            return ((bid + ask) / 2).quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
        return bid if bid is not None else ask

    def avg_price(self, symbol: str) -> Decimal | None:
        """Reference price of the NOTIONAL / PERCENT_PRICE_BY_SIDE filters: the upstream's avgPrice in paper mode,
        else the VWAP of the last avgPriceMins minutes, else the last trade, else the book's mid (a fresh simulator
        has no trades yet), else the seed price."""
        upstream = self.upstream_avg_prices.get(symbol)
        if upstream is not None:
            return upstream
        st = self.stats[symbol]
        v = st.vwap(self.clock.now_ms())
        if v is not None:
            return v
        if st.last_price is not None:
            return st.last_price
        mid = self.mid_price(symbol)
        return mid if mid is not None else self.reference_prices.get(symbol)

    # ================================================================ orders
    def _next_exec(self) -> int:
        return next(self._exec_ids)

    def _report(self, acct: Account, order: Order, exec_type: str, now: int, fill: Fill | None = None, **kw) -> None:
        if order.system:
            return
        self.user_events.append(
            (acct, payloads.execution_report(order, exec_type, now, self._next_exec(), fill, **kw))
        )

    def _positions(self, accounts: Iterable[Account], now: int) -> None:
        for acct in accounts:
            if acct.dirty and acct is not self.system:
                assets = acct.take_dirty()
                rows = [(a, *acct.balance(a)) for a in assets]
                self.user_events.append((acct, payloads.account_position(rows, now, acct.update_time)))

    def _walk(self, book: Book, taker_side: Side, account: str, limit: Decimal | None,
              qty: Decimal | None, quote: Decimal | None, step: Decimal) -> tuple[Decimal, Decimal]:
        """What a taker would get now (base, quote), skipping its own resting orders (they would expire, not
        trade). Used for the balance check of MARKET orders and for FOK."""
        got_base = got_quote = ZERO
        for level in book.levels(taker_side.opposite):
            p = level.price
            if limit is not None and ((p > limit) if taker_side is Side.BUY else (p < limit)):
                break
            for o in level.orders.values():
                if o.account == account and account != SYSTEM:
                    continue
                if qty is not None:
                    q = min(qty - got_base, o.remaining)
                else:
                    q = min(quantize_down((quote - got_quote) / p, step), o.remaining)  # type: ignore[operator]
                if q <= 0:
                    return got_base, got_quote
                got_base += q
                got_quote += p * q
        return got_base, got_quote

    def place(
        self,
        api_key: str,
        symbol: str,
        side: Side,
        order_type: str,
        *,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        quote_order_qty: Decimal | None = None,
        time_in_force: str | None = None,
        client_order_id: str,
    ) -> tuple[Order, list[Fill]]:
        acct = self.accounts[api_key]
        market = self.market(symbol)
        f = market.filters
        if (symbol, client_order_id) in acct.open_by_client_id:
            raise EngineError(-2010, "Duplicate order sent.")
        try:
            validate(f, side, order_type, quantity, price, avg_price=self.avg_price(symbol),
                     open_orders=acct.open_count[symbol], quote_order_qty=quote_order_qty)
        except FilterError as e:
            raise EngineError(e.code, e.binance_msg) from None
        book = self.books[symbol]
        step = f.step_size if f.step_size > 0 else f.base_unit
        opposite_best = book.best_price(side.opposite)
        if order_type == LIMIT_MAKER and opposite_best is not None and (
            (side is Side.BUY and opposite_best <= price) or (side is Side.SELL and opposite_best >= price)  # type: ignore[operator]
        ):
            raise EngineError(-2010, "Order would immediately match and take.")

        # What to lock: the most this order can spend of the asset it gives.
        if side is Side.BUY:
            asset = f.quote_asset
            if order_type in (LIMIT, LIMIT_MAKER):
                need = price * quantity  # type: ignore[operator]
            elif quote_order_qty is not None:
                need = quote_order_qty
            else:
                need = self._walk(book, side, acct.id, None, quantity, None, step)[1]
        else:
            asset = f.base_asset
            if quote_order_qty is not None:
                need = self._walk(book, side, acct.id, None, None, quote_order_qty, step)[0]
            else:
                need = quantity  # type: ignore[assignment]
        if acct.free.get(asset, ZERO) < need:
            raise EngineError(-2010, INSUFFICIENT_BALANCE)

        now = self.clock.now_ms()
        tif = time_in_force if order_type == LIMIT else GTC
        order = Order(
            symbol=symbol, order_id=next(self._order_ids[symbol]), client_order_id=client_order_id,
            account=acct.id, side=side, type=order_type, time_in_force=tif,
            price=price if price is not None else ZERO,
            orig_qty=quantity if quantity is not None else ZERO,
            orig_quote_qty=quote_order_qty if quote_order_qty is not None else ZERO,
            time=now, update_time=now, working_time=now, locked_asset=asset,
        )
        acct.lock(asset, need, now)
        order.locked = need
        acct.add_open(order)
        self._report(acct, order, "NEW", now, on_book=True)

        fills: list[Fill] = []
        if tif == FOK and self._walk(book, side, acct.id, price, quantity, None, step)[0] < quantity:  # type: ignore[operator]
            pass  # FOK that cannot fill completely: expires untouched
        else:
            fills = self._match(order, acct, book, market, price if order_type != MARKET else None,
                                quote_order_qty, step, now)
        self._finish_taker(order, acct, book, now, quote_based=quote_order_qty is not None)
        self._flush_taker_reports(acct, order)
        self._positions(self._touched_accounts(acct), now)
        return order, fills

    def _flush_taker_reports(self, acct: Account, order: Order) -> None:
        """The taker's TRADE reports go out after its final status is known, so that the last one says FILLED
        when the order ended filled (a quoteOrderQty order only knows that once the quote is used up)."""
        reports, self._taker_reports = self._taker_reports, []
        if reports and order.status == FILLED:
            reports[-1]["X"] = FILLED
        insert_at = len(self.user_events)
        if order.status == EXPIRED and self.user_events and self.user_events[-1][0] is acct \
                and self.user_events[-1][1].get("x") == "EXPIRED":
            insert_at -= 1  # fills come before the expiry of the rest
        self.user_events[insert_at:insert_at] = [(acct, r) for r in reports]

    def _touched_accounts(self, acct: Account) -> list[Account]:
        out = [acct]
        out.extend(a for a in self.accounts.values() if a is not acct and a.dirty)
        return out

    def _match(self, taker: Order, acct: Account, book: Book, market: SimMarket, limit: Decimal | None,
               quote_target: Decimal | None, step: Decimal, now: int) -> list[Fill]:
        levels = book.side(taker.side.opposite)
        fills: list[Fill] = []
        buying = taker.side is Side.BUY
        while levels:
            level = levels.peekitem(0)[1]
            p = level.price
            if limit is not None and ((p > limit) if buying else (p < limit)):
                break
            maker = next(iter(level.orders.values()))
            if quote_target is not None:
                q = min(quantize_down((quote_target - taker.cum_quote) / p, step), maker.remaining)
            else:
                q = min(taker.orig_qty - taker.executed_qty, maker.remaining)
            if q <= 0:
                break
            if maker.account == taker.account and not taker.system:
                self._expire_in_match(maker, book, now)  # self-trade prevention, EXPIRE_MAKER
                continue
            fills.append(self._trade(taker, acct, maker, market, book, p, q, now))
        return fills

    def _expire_in_match(self, maker: Order, book: Book, now: int) -> None:
        acct = self._owner(maker)
        book.remove(maker)
        maker.status = EXPIRED_IN_MATCH
        maker.update_time = now
        if maker.locked > 0:
            acct.unlock(maker.locked_asset, maker.locked, now)
            maker.locked = ZERO
        acct.close(maker)
        self._report(acct, maker, "TRADE_PREVENTION", now)

    def _owner(self, order: Order) -> Account:
        return self.system if order.system else self._by_id[order.account]

    def _trade(self, taker: Order, taker_acct: Account, maker: Order, market: SimMarket, book: Book,
               price: Decimal, qty: Decimal, now: int) -> Fill:
        symbol = market.symbol
        trade_id = next(self._trade_ids[symbol])
        quote = price * qty
        maker_acct = self._owner(maker)
        book.reduce(maker, qty)
        taker_fill = self._execute(taker, taker_acct, market, price, qty, quote, trade_id, False, now)
        self._execute(maker, maker_acct, market, price, qty, quote, trade_id, True, now)
        if maker.remaining <= 0:
            maker_acct.close(maker)
        self.stats[symbol].record(trade_id, price, qty, now)
        self.trade_events.append((symbol, payloads.trade_event(symbol, trade_id, price, qty, now,
                                                               maker.side is Side.BUY)))
        return taker_fill

    def _execute(self, order: Order, acct: Account, market: SimMarket, price: Decimal, qty: Decimal,
                 quote: Decimal, trade_id: int, is_maker: bool, now: int) -> Fill:
        """One side of one trade: the order's totals, the owner's balances, its fill record and its report."""
        rate = self.maker_commission if is_maker else self.taker_commission
        buying = order.side is Side.BUY
        received_asset = market.base_asset if buying else market.quote_asset
        received = qty if buying else quote
        commission = quantize_up(received * rate, market.commission_unit(received_asset))
        order.executed_qty += qty
        order.cum_quote += quote
        order.update_time = now
        if not order.filled_once:
            order.filled_once = True
            if not order.system:
                self.first_fills.append(acct.id)
        fill = Fill(market.symbol, trade_id, order.order_id, price, qty, quote, commission, received_asset, now,
                    buying, is_maker)
        if order.system:
            if order.type != MARKET:
                order.status = FILLED if order.remaining <= 0 else PARTIALLY_FILLED
            return fill
        spent = quote if buying else qty
        acct.spend_locked(order.locked_asset, spent, now)
        order.locked -= spent
        acct.credit(received_asset, received - commission, now)
        acct.fills[market.symbol].append(fill)
        if is_maker:
            order.status = FILLED if order.remaining <= 0 else PARTIALLY_FILLED
            if order.status == FILLED and order.locked > 0:
                acct.unlock(order.locked_asset, order.locked, now)  # price improvement left nothing to pay
                order.locked = ZERO
        else:
            done = order.orig_qty > 0 and order.executed_qty >= order.orig_qty
            order.status = FILLED if done else PARTIALLY_FILLED
        if is_maker:
            self._report(acct, order, "TRADE", now, fill, on_book=order.remaining > 0)
        else:
            self._taker_reports.append(payloads.execution_report(order, "TRADE", now, self._next_exec(), fill))
        return fill

    def _finish_taker(self, order: Order, acct: Account, book: Book, now: int, quote_based: bool) -> None:
        """After crossing: rest a GTC remainder, or expire what is left; give back what no longer needs locking."""
        left = order.orig_qty - order.executed_qty
        rests = order.type in (LIMIT, LIMIT_MAKER) and order.time_in_force == GTC and left > 0
        if rests:
            order.remaining = left
            book.add(order)
            order.status = PARTIALLY_FILLED if order.executed_qty > 0 else NEW
            if order.side is Side.BUY:
                excess = order.locked - order.price * left  # filled below the limit: unlock the difference
                if excess > 0:
                    acct.unlock(order.locked_asset, excess, now)
                    order.locked -= excess
            return
        if quote_based:
            order.orig_qty = order.executed_qty  # Binance reports the quantity a quote order turned into
            book_left = book.best(order.side.opposite) is not None
            order.status = FILLED if (order.executed_qty > 0 and book_left) else EXPIRED
            if order.status == EXPIRED:
                order.expiry_reason = "INSUFFICIENT_LIQUIDITY"
        elif left <= 0:
            order.status = FILLED
        else:
            order.status = EXPIRED
            if order.type == MARKET:
                order.expiry_reason = "INSUFFICIENT_LIQUIDITY"
            elif order.time_in_force == IOC:
                order.expiry_reason = "UNFILLED_IOC_QUANTITY_EXPIRED"
        order.update_time = now
        if order.locked > 0:
            acct.unlock(order.locked_asset, order.locked, now)
            order.locked = ZERO
        acct.close(order)
        if order.status == EXPIRED:
            self._report(acct, order, "EXPIRED", now)

    def _find(self, acct: Account, symbol: str, order_id: int | None, client_id: str | None,
              open_only: bool) -> Order | None:
        if order_id is not None:
            table = acct.open_orders if open_only else acct.orders
            order = table.get((symbol, order_id))
            if order is not None and client_id is not None and order.client_order_id != client_id:
                return None
            return order
        if client_id is not None:
            table2 = acct.open_by_client_id if open_only else acct.last_by_client_id
            return table2.get((symbol, client_id))
        return None

    def cancel(self, api_key: str, symbol: str, order_id: int | None = None, orig_client_id: str | None = None,
               cancel_client_id: str = "") -> Order:
        acct = self.accounts[api_key]
        self.market(symbol)
        order = self._find(acct, symbol, order_id, orig_client_id, open_only=True)
        if order is None:
            raise EngineError(-2011, "Unknown order sent.")
        now = self.clock.now_ms()
        self.books[symbol].remove(order)
        order.status = CANCELED
        order.update_time = now
        if order.locked > 0:
            acct.unlock(order.locked_asset, order.locked, now)
            order.locked = ZERO
        acct.close(order)
        self._report(acct, order, "CANCELED", now, cancel_client_id=cancel_client_id)
        self._positions([acct], now)
        return order

    def query(self, api_key: str, symbol: str, order_id: int | None = None,
              orig_client_id: str | None = None) -> Order:
        acct = self.accounts[api_key]
        self.market(symbol)
        order = self._find(acct, symbol, order_id, orig_client_id, open_only=False)
        if order is None:
            raise EngineError(-2013, "Order does not exist.")
        return order

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        acct = self.accounts[api_key]
        if symbol is not None:
            self.market(symbol)
        return [o for (s, _), o in acct.open_orders.items() if symbol is None or s == symbol]

    def my_trades(self, api_key: str, symbol: str, order_id: int | None = None, from_id: int | None = None,
                  start_time: int | None = None, end_time: int | None = None, limit: int = 500) -> list[Fill]:
        acct = self.accounts[api_key]
        self.market(symbol)
        out = []
        for fill in acct.fills.get(symbol, ()):
            if order_id is not None and fill.order_id != order_id:
                continue
            if from_id is not None and fill.trade_id < from_id:
                continue
            if start_time is not None and fill.time < start_time:
                continue
            if end_time is not None and fill.time > end_time:
                continue
            out.append(fill)
        # Binance returns the oldest `limit` trades from fromId, else the most recent `limit` ones.
        return out[:limit] if from_id is not None else out[-limit:]

    # ================================================================ deposits
    def credit_deposit(self, api_key: str, coin: str, amount: Decimal, network: str, tx_id: str,
                       address: str | None = None) -> Deposit:
        """Credit a deposit that arrived on chain (idempotent per tx id): balance, history row, balanceUpdate and
        outboundAccountPosition events. The chain watcher calls this; so does the admin endpoint."""
        acct = self.accounts[api_key]
        for d in acct.deposits:
            if d.tx_id == tx_id and d.coin == coin:
                return d
        if amount <= 0:
            raise EngineError(-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
        now = self.clock.now_ms()
        addr = address or acct.deposit_address(coin, network)
        dep = Deposit(f"sim-dep-{next(self._deposit_ids)}", coin, network, amount, addr, tx_id, now)
        acct.deposits.append(dep)
        acct.credit(coin, amount, now)
        self.user_events.append((acct, payloads.balance_update(coin, amount, now)))
        self._positions([acct], now)
        return dep

    def withdraw(self, api_key: str, asset: str, amount: Decimal) -> Decimal:
        """Move `amount` of the account's free `asset` out of the exchange (an operator's transfer, as the
        reserves check must catch it): balanceUpdate and outboundAccountPosition events, as Binance sends for a
        withdrawal. Returns the free balance left."""
        acct = self.accounts[api_key]
        if amount <= 0:
            raise EngineError(-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
        now = self.clock.now_ms()
        try:
            acct.debit_free(asset, amount, now)
        except BalanceError:
            raise EngineError(-4026, "User has insufficient balance") from None
        self.user_events.append((acct, payloads.balance_update(asset, -amount, now)))
        self._positions([acct], now)
        return acct.balance(asset)[0]

    # ================================================================ market maker
    def mm_levels(self, symbol: str, side: Side) -> dict[Decimal, Decimal]:
        """The market maker's resting quantity per price on one side (what the price process steers)."""
        out = {}
        stale = []
        for (s, price), o in self._mm[symbol].items():
            if s is not side:
                continue
            if o.remaining > 0 and o.status in (NEW, PARTIALLY_FILLED):
                out[price] = o.remaining
            else:
                stale.append((s, price))
        for key in stale:
            del self._mm[symbol][key]
        return out

    def mm_set_level(self, symbol: str, side: Side, price: Decimal, qty: Decimal) -> None:
        """Make the market maker's resting quantity at `price` equal `qty` (0 = withdraw). A new level that
        crosses resting user orders trades with them first (the price moved through them)."""
        book = self.books[symbol]
        key = (side, price)
        mm = self._mm[symbol]
        o = mm.get(key)
        if o is not None and (o.remaining <= 0 or o.status not in (NEW, PARTIALLY_FILLED)):
            del mm[key]
            o = None
        if qty <= 0:
            if o is not None:
                book.remove(o)
                o.status = CANCELED
                del mm[key]
            return
        if o is not None:
            diff = qty - o.remaining
            if diff > 0:
                book.grow(o, diff)
            elif diff < 0:
                book.reduce(o, -diff)
            return
        now = self.clock.now_ms()
        order = self._system_order(symbol, side, LIMIT, price, qty, now)
        market = self.markets[symbol]
        self._match(order, self.system, book, market, price, None, market.step, now)
        left = qty - order.executed_qty
        if left > 0:
            order.remaining = left
            book.add(order)
            mm[key] = order
        self._positions(self._touched_accounts(self.system), now)

    def mm_take(self, symbol: str, taker_side: Side, qty: Decimal) -> None:
        """A synthetic taker: trades `qty` against the best levels (public trades; fills resting user orders)."""
        now = self.clock.now_ms()
        order = self._system_order(symbol, taker_side, MARKET, ZERO, qty, now)
        market = self.markets[symbol]
        self._match(order, self.system, self.books[symbol], market, None, None, market.step, now)
        self._positions(self._touched_accounts(self.system), now)

    def _system_order(self, symbol: str, side: Side, order_type: str, price: Decimal, qty: Decimal,
                      now: int) -> Order:
        return Order(symbol=symbol, order_id=next(self._order_ids[symbol]), client_order_id="", account=SYSTEM,
                     side=side, type=order_type, time_in_force=GTC, price=price, orig_qty=qty, orig_quote_qty=ZERO,
                     time=now, update_time=now, working_time=now, system=True)

    def drain(self) -> tuple[list[tuple[Account, dict]], list[tuple[str, dict]], list[str]]:
        """Take the outboxes (user events, public trades, first fills) accumulated since the last drain."""
        out = (self.user_events, self.trade_events, self.first_fills)
        self.user_events, self.trade_events, self.first_fills = [], [], []
        return out

"""`sender`: the OrderSender, one per exchange account, thin around core; safe to kill.

Every order is stored before it leaves: INTENDED at intake (filters and guards checked), SENT before its request,
so a restart knows what to query and what to send. Sending stays under the rate limits; an unknown outcome is
resolved by a query before any resend (core.send_resolution). Each fill and completion is appended to the
executions hand-off in the same group commit as the order's state.
"""
from __future__ import annotations

import asyncio
import time
import logging
from typing import Any, Iterable

import ray
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.ray_context import restarted_by_ray
from actors.sender_options import SenderOptions
from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, status_from_exchange
from core.avg_prices import AvgPrices
from core.batch_intake import PlannedOrder, intake_batch
from core.circuit_breaker import CircuitBreaker, stopped
from core.clock import SystemClock
from core.market_status import ClosedPairs
from core.money import ZERO
from core.rate_limits import RateLimiter, rate_limits_from_exchange_info
from core.send_queue import SendQueue
from core.send_resolution import NotFoundVerdict, on_not_found
from core.sender_book import SenderBook
from core.sender_messages import SubmitResult
from core.symbol_filters import MARKET_CLOSED, parse_exchange_info
from exchange import errors
from exchange.gateway import BinanceGateway, ExchangeOrder, ExchangeTrade
from protocol.gc_tuning import tune_gc_once
from store.retry import STORE_AWAY
from store.handoff import execute
from store.sender_store import SenderStore

log = logging.getLogger(__name__)

SENDER_NAME = "sender"


def update_from(eo: ExchangeOrder) -> OrderUpdate:
    """The gateway's view of an order (exact Decimals from the exchange's strings) as core's update."""
    return OrderUpdate(eo.client_order_id, status_from_exchange(eo.status), eo.executed_qty, eo.order_id,
                       tuple(exchange_fill(f) for f in eo.fills))


def exchange_fill(f: ExchangeTrade) -> ExchangeFill:
    return ExchangeFill(f.trade_id, f.price, f.qty, f.commission, f.commission_asset, f.time, bool(f.is_maker))


def _commit_failed(e: BaseException) -> None:
    """The store away is a warning (it comes back); any other failure of a commit is a defect: its trace."""
    if isinstance(e, STORE_AWAY):
        log.warning("sender: commit failed (%s); retrying", e)
    else:
        log.error("sender: commit failed, retrying", exc_info=e)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class OrderSender:
    def __init__(self, options: SenderOptions) -> None:
        setup_logging("sender")
        self.o = options
        self._clock = SystemClock()
        self._store = SenderStore(options.account)
        self._loaded_at = self._clock.now_ms()
        self._restarted = restarted_by_ray()
        # ---- state, reloaded from Redis (a restart re-runs __init__)
        self._breaker = CircuitBreaker(options.breaker_threshold, options.breaker_cool_off_ms, self._clock)
        self._book = SenderBook(self._breaker, on_change=self._wake_commit, on_queued=self._wake_send)
        self._counts = self._book.counts
        self._load()
        self._avg = AvgPrices(options.avg_price_max_age_ms, self._clock, keep_ms=options.avg_price_keep_ms)
        self._avg_fetching: dict[str, asyncio.Future] = {}
        # ---- runtime
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._gw: BinanceGateway | None = None
        self._limiter: RateLimiter | None = None
        self._filters: dict[str, Any] = {}
        self._closed = ClosedPairs()  # pairs the exchange halted (not stored: exchangeInfo says it again at start)
        self._status_wake = asyncio.Event()
        self._balances: dict[str, str] = {}
        self._last_submit: dict[str, Any] | None = None
        self._tasks: list[asyncio.Task] = []
        self._start_task: asyncio.Future | None = None
        # ---- group commit
        self._commit_lock = asyncio.Lock()
        self._commit_wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._changed = asyncio.Event()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first call
        self._start_task = asyncio.ensure_future(self._start())

    # ================================================================================ persistence
    def _load(self) -> None:
        # A store that is down (restarting) is waited for, not crashed on: __init__ has nothing to serve before.
        raw = self.o.retry.call_sync(lambda: self._store.read(self.o.redis_url),
                                     lambda e: log.warning("sender: cannot read the state (%s); retrying", e))
        self._store.restore(raw, self._book)

    def _wake_commit(self) -> None:
        self._commit_wake.set()
        self._changed.set()

    def _wake_send(self) -> None:
        self._send_wake.set()

    async def _commit(self) -> None:
        """Durably write every change made so far (one MULTI/EXEC); returns once it is on disk. Concurrent callers
        share one transaction: whoever comes second finds its change already committed."""
        book = self._book
        target = book.version
        async with self._commit_lock:
            if book.committed >= target:
                return
            changes = book.take_changes()
            try:
                p = self._redis.pipeline(transaction=True)
                self._store.write(p, book, changes)
                await execute(p)  # an append an earlier, lost-answer attempt made is not an error
            except BaseException:
                book.put_back(changes)
                self._counts["commit_failures"] += 1
                raise
            self._counts["commits"] += 1
            book.stored(changes)
            last = self._last_submit
            if last is not None and last.get("answers_committed_ms", -1.0) < last.get("last_answer_ms", -1.0):
                self._mark("answers_committed_ms")  # (inspect) the last answer so far is on disk
        self._changed.set()

    async def _commit_until_done(self) -> None:
        """Commit, retrying through Redis hiccups: for steps that must not go ahead undurably (sending)."""
        await self.o.retry.call(self._commit, _commit_failed, away=(Exception,))

    async def _flusher(self) -> None:
        pacer = self.o.retry.pacer()
        while True:
            await self._commit_wake.wait()
            self._commit_wake.clear()
            try:
                await self._commit()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (Redis hiccup: keep the changes, try again)
                _commit_failed(e)
                await pacer.pause()
                self._commit_wake.set()
                continue
            pacer.reset()

    # ================================================================================ start and reconcile
    async def start(self) -> dict[str, Any]:
        """Idempotent: load markets, filters and limits, start the streams and the send loop, reconcile what was
        in flight before a restart. Every public method calls it."""
        task = self._start_task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            self._start_task = task = asyncio.ensure_future(self._start())  # first call, or the last one failed
        await asyncio.shield(task)
        return {"restarted": self._restarted, "orders": len(self._book.orders), "log": self._book.log.last_seq}

    async def _start(self) -> None:
        o = self.o
        gw = BinanceGateway(o.rest_url, o.ws_url, o.api_key, o.secret, recv_window_ms=o.recv_window_ms,
                            enable_rate_limit=False, timeout_ms=o.request_timeout_ms,
                            http_keepalive_s=o.http_keepalive_s, ws_api_url=o.ws_api_url, sandbox=o.sandbox)
        try:
            await self._load_exchange(gw)
        except BaseException:
            await gw.close()  # the next call to start() tries again with a fresh client
            raise
        self._book.queue = SendQueue(self._limiter, o.order_weight)
        self._gw = gw
        loops = [self._flusher(), self._send_loop(), self._watch_executions(), self._watch_status()]
        if o.avg_price_refresh_ms > 0:
            loops.append(self._keep_avg_prices())
        for coro in loops:
            self._tasks.append(asyncio.ensure_future(coro))
        self._reconcile(initial=True)
        if self._book.legacy:
            self._book.touch()  # the old log moves into the hand-off now
        tune_gc_once()  # after ccxt's markets are loaded: they leave the collector's sight

    async def _load_exchange(self, gw: BinanceGateway) -> None:
        """Filters and limits from exchangeInfo, ccxt's markets, and a signed request to prove the keys."""
        o = self.o
        info = await gw.fetch_exchange_info()
        await gw.load_markets()
        self._filters = parse_exchange_info(info)
        self._limiter = RateLimiter(rate_limits_from_exchange_info(info), self._clock, o.rate_limit_safety)
        for _ in range(2):  # the two exchangeInfo requests just made count against the weight budget
            self._limiter.try_acquire(o.info_weight)
        # Log in: a signed request proves the keys before any order depends on them (and shows the balances).
        await self._acquire(o.account_weight)
        self._balances = {a: str(b.total) for a, b in (await gw.fetch_balance()).items() if b.total}
        self._limiter.correct_from_headers(gw.last_response_headers())

    def _reconcile(self, initial: bool = False) -> None:
        """Every order whose outcome we may not know is asked for by client order id, then for its trades if fills
        are missing (SenderBook.reconcile)."""
        for order in self._book.reconcile(initial):
            self._spawn(self._resolve(order))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    # ================================================================================ intake
    async def submit(self, batch_id: str, orders: list[PlannedOrder]) -> list[SubmitResult]:
        """Take a whole batch: one result per order, in order. Accepted orders are durably recorded (intent)
        before this returns and go out under the rate limits; filter violations are rejected here, never sent.
        Submitting the same batch id again returns the first answer (a caller that lost the reply may retry)."""
        entered = time.time()
        await self.start()
        book = self._book
        known = book.batches.get(batch_id)
        if known is not None:
            return known
        symbols = {p.symbol for p in orders}
        await self._refresh_avg_prices(symbols)
        known = book.batches.get(batch_id)  # the same batch submitted again while the prices were fetched
        if known is not None:
            return known
        accepted, results = intake_batch(
            batch_id, orders, self._filters, self.o.time_in_force, avg_prices=self._avg.fresh(symbols, self._filters),
            open_orders=book.open_counts(symbols))
        for r in results:  # refused here for the status exchangeInfo gave: the solver is told, as after a -1013
            if r.filter == MARKET_CLOSED and self._closed.close(r.symbol, self._filters[r.symbol].status):
                self._status_wake.set()
        book.record_batch(batch_id, accepted, results)
        # What the rate limits admit now is marked sent in the SAME write as the intents: one durable write
        # before the requests leave instead of two (a restart asks the exchange about SENT orders either way).
        group = book.take_group(self.o.max_in_flight)
        taken = time.time()
        try:
            # The intents are on disk before anything can be sent. The store down (an outage, a restart) is waited
            # for, as the caller's call waits: refusing would count as a failed call, and a caller drops a step
            # after a few of those.
            await self.o.retry.call(self._commit, lambda e: log.warning(
                "sender: cannot record batch %s yet (%s); retrying", batch_id, e))
        except BaseException:
            # Not durable: forget the batch, so that nothing unrecorded can go out; the caller may submit again.
            book.forget_batch(batch_id, accepted, group)
            raise
        if group:
            self._spawn(self._launch(group))
        self._send_wake.set()
        # Diagnostics (inspect): where the last submit spent its time, in ms; _send and delivery add when the
        # first request left, the last answer came and the last push to the subscriber ended (ms after entry).
        self._last_submit = {"batch_id": batch_id, "at": round(entered * 1000, 1),
                             "intake_ms": round(1000 * (taken - entered), 2),
                             "commit_ms": round(1000 * (time.time() - taken), 2), "sent_now": len(group)}
        return results

    # ================================================================================ guards
    async def _keep_avg_prices(self) -> None:
        """Refresh, ahead of their age limit, the average prices of the symbols recent batches used: a basket
        then goes out without waiting for them (one round trip per symbol, ~20 ms for 81, once a minute)."""
        every_ms = self.o.avg_price_refresh_ms
        while True:
            await asyncio.sleep(every_ms / 1000)  # the refresh period: a pace, not a wait for an event
            due = self._avg.due(self._filters, lead_ms=every_ms * 5 // 4)  # a quarter more: the loop's own drift
            self._counts["avg_price_refreshes"] += len(due)
            try:
                await self._fetch_avg_prices(due)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (each fetch handles its own failure; this is a defect: logged)
                log.exception("sender: average-price refresh failed: %s", e)

    async def _refresh_avg_prices(self, symbols: Iterable[str]) -> None:
        """A batch's symbols: their values are kept fresh from now on; those aged out are fetched now."""
        symbols = list(symbols)
        self._avg.used(symbols)
        await self._fetch_avg_prices(self._avg.to_refresh(symbols, self._filters))

    async def _fetch_avg_prices(self, stale: list[str]) -> None:
        """Fetch the exchange's average price of these symbols: one request per symbol, all at once, each admitted
        by the weight budget. A failed fetch leaves the symbol without a reference (its band is then left to the
        exchange, as before) and is counted."""
        if not stale:
            return
        gw = self._gw
        assert gw is not None and self._limiter is not None

        async def one(symbol: str) -> None:
            self._counts["avg_price_fetches"] += 1
            await self._acquire(self.o.avg_price_weight)
            asked_at = self._clock.now_ms()  # the value's age counts from the request: never younger than it is
            try:
                price = await gw.fetch_avg_price(symbol)
            except asyncio.CancelledError:
                raise
            except errors.RateLimited as e:
                self._counts["avg_price_failures"] += 1
                self._back_off(e)
                return
            except Exception as e:  # noqa: BLE001  (network trouble: this batch goes without the band check)
                self._counts["avg_price_failures"] += 1
                log.warning("sender: average price of %s not fetched (%s); its band is left to the exchange",
                            symbol, e)
                return
            self._avg.put(symbol, price, asked_at)

        waits = []
        for symbol in stale:  # a symbol another batch is already asking for is not asked for twice
            task = self._avg_fetching.get(symbol)
            if task is None:
                task = self._avg_fetching[symbol] = asyncio.ensure_future(one(symbol))
                task.add_done_callback(lambda _, s=symbol: self._avg_fetching.pop(s, None))
            waits.append(asyncio.shield(task))
        await asyncio.gather(*waits)

    async def _watch_status(self) -> None:
        """The pairs' status from exchangeInfo (one request for all): those traded lately every status_poll_ms,
        so a halt is known before a batch meets it; while one is closed, every closed_poll_ms (and at once after a
        -1013), so it reopens soon after the exchange lists it TRADING. Their filters are taken anew with it."""
        gw = self._gw
        assert gw is not None
        while True:
            every = self.o.closed_poll_ms if self._closed else self.o.status_poll_ms
            try:
                await asyncio.wait_for(self._status_wake.wait(), every / 1000)
            except asyncio.TimeoutError:
                pass  # the polling period: a pace, no event to wait for
            self._status_wake.clear()
            symbols = sorted(set(self._avg.recent()) | set(self._closed.closed))
            if not symbols:
                continue
            try:
                await self._acquire(self.o.info_weight)
                info = await gw.fetch_exchange_info(symbols)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (network trouble: the next period asks again)
                log.warning("sender: pairs' status not read (%s); asking again in %d ms", e, every)
                continue
            self._filters.update(parse_exchange_info(info))
            reopened, closed = self._closed.update({e["symbol"]: e["status"] for e in info.get("symbols", ())})
            if closed:
                log.warning("sender: %s not TRADING on the exchange; the indexes holding them wait",
                            ", ".join(closed))
            if reopened:
                log.info("sender: %s TRADING again", ", ".join(reopened))
            self._changed.set()

    async def resume(self, symbol: str | None = None, account: bool = False) -> dict[str, Any]:
        """The operator clears the breaker of `symbol` (or, with `account`, the account's): its held orders go out
        (unless another breaker still stops them). Returns what was cleared, how many orders were released and
        the breakers still open."""
        await self.start()
        trip, released = self._book.resume(symbol, account, traded=self._filters)
        await self._commit_until_done()
        if trip is not None:
            log.info("sender: circuit breaker for %s cleared by the operator; %d held orders released",
                     trip.key, released)
        return {"cleared": None if trip is None else trip.to_dict(), "released": released,
                "open": [t.to_dict() for t in self._breaker.open]}

    # ================================================================================ sending
    async def _send_loop(self) -> None:
        book = self._book
        while True:
            self._send_wake.clear()
            expired, released = book.expire_breakers()
            if expired:
                log.info("sender: circuit breaker cooled off for %s; %d held orders released",
                         ", ".join(t.key for t in expired), released)
            group = book.take_group(self.o.max_in_flight)
            if group:
                await self._commit_until_done()  # SENT is on disk before the requests leave: a restart will ask
                await self._launch(group)
                continue
            wait = book.wait_ms(self.o.max_in_flight, self._clock.now_ms())
            try:
                await asyncio.wait_for(self._send_wake.wait(), None if wait is None else max(wait, 1) / 1000)
            except asyncio.TimeoutError:
                pass  # the head of the queue fits the budget now

    async def _launch(self, group: list[AssetOrder]) -> None:
        """Start the requests one by one, each reaching its socket before the next is built. aiohttp (on Python
        3.11) writes a request's body from a task of its own, which runs only once every request already started
        has been built: 81 orders started at once leave ~25 ms after the first was ready. One yield per request
        lets the exchange execute the first orders while the later ones are built."""
        every = self.o.launch_yield_every
        for i, order in enumerate(group):
            self._spawn(self._send(order))
            if every and i % every == 0:
                await asyncio.sleep(0)  # the request just started reaches its socket now, not after all the others

    async def _send(self, order: AssetOrder) -> None:
        gw = self._gw
        book = self._book
        assert gw is not None and self._limiter is not None
        cid = order.client_order_id
        try:
            if book.hold_back(order):  # a breaker tripped since it was taken (a restart meanwhile asks first)
                return
            book.sent_at[cid] = self._clock.now_ms()
            self._counts["sent"] += 1
            self._mark("first_request_ms", once=True)
            try:
                answer = await gw.create_order(order.symbol, order.side, order.order_type, order.quantity,
                                               order.price, client_order_id=cid, time_in_force=order.time_in_force)
            except errors.RateLimited as e:
                self._back_off(e)  # refused before execution: the SAME order goes first when allowed
                book.requeue(order, front=True)
                return
            except errors.DuplicateOrder:
                await self._resolve(order)  # an open order already has this id: it is this one
                return
            except errors.MarketClosed as e:  # the exchange halted the pair: not a fault to count for a breaker
                self._apply(order, OrderUpdate(cid, AssetOrderStatus.REJECTED, ZERO, reason=f"{e.code}: {e.msg}"))
                if self._closed.close(order.symbol):
                    log.warning("sender: %s is closed on the exchange; the indexes holding it wait until it "
                                "reopens", order.symbol)
                    self._status_wake.set()
                return
            except (errors.OrderRejected, errors.BadRequest, errors.BadSymbol, errors.AuthenticationFailed) as e:
                self._apply(order, OrderUpdate(cid, AssetOrderStatus.REJECTED, ZERO, reason=f"{e.code}: {e.msg}"))
                trip = book.on_reject(order, f"{getattr(e, 'code', None)}: {getattr(e, 'msg', e)}",
                                      insufficient_balance=isinstance(e, errors.InsufficientBalance))
                if trip is not None:  # an operator condition, not a fault of this code: a warning
                    log.warning("sender: circuit breaker open for %s (%s: %s); nothing is sent for it until "
                                "`indexmaker resume` or the cool-off", stopped(trip.key), trip.reason, trip.detail)
                return
            except Exception as e:  # noqa: BLE001  (StatusUnknown, a timeout, a bug: the order may exist)
                self._counts["unknown"] += 1
                log.warning("sender: %s outcome unknown (%s: %s); asking the exchange", cid, type(e).__name__, e,
                            extra={"client_order_id": cid, "batch_id": order.batch_id})
                await self._resolve(order)
                return
            self._counts["answered"] += 1
            self._mark("last_answer_ms")
            self._limiter.correct_from_headers(gw.last_response_headers())
            self._apply(order, update_from(answer))
            book.on_accepted(order)
        finally:
            book.in_flight.discard(cid)
            self._send_wake.set()
            self._changed.set()

    def _mark(self, key: str, once: bool = False) -> None:
        last = self._last_submit
        if last is not None and not (once and key in last):
            last[key] = round(time.time() * 1000 - last["at"], 2)

    def _back_off(self, e: errors.RateLimited) -> None:
        """A 429: no request of any kind until the exchange's Retry-After (or the default) has passed."""
        assert self._limiter is not None
        self._counts["rate_limited"] += 1
        self._limiter.back_off(1000 * (e.retry_after_s or self.o.default_retry_after_s))

    async def _acquire(self, weight: int) -> None:
        """Wait for room for a non-order request of `weight` (queries), then record it."""
        limiter = self._limiter
        assert limiter is not None
        while not limiter.try_acquire(weight):
            await asyncio.sleep(max(1, limiter.wait_ms(weight)) / 1000)  # pacing to the budget

    async def _resolve(self, order: AssetOrder) -> None:
        """Find out what became of an order whose outcome we do not know, before anything is resent."""
        cid = order.client_order_id
        if cid in self._book.resolving:
            return
        self._book.resolving.add(cid)
        gw = self._gw
        assert gw is not None and self._limiter is not None
        pacer = self.o.retry.pacer()
        try:
            while True:
                asked_at = self._clock.now_ms()
                await self._acquire(self.o.query_weight)
                self._counts["queries"] += 1
                try:
                    answer = await gw.fetch_order(order.symbol, client_order_id=cid)
                except errors.OrderNotFound:
                    # A restarted sender does not know when the request left: at most when it restarted.
                    sent_at = self._book.sent_at.get(cid, self._loaded_at)
                    decision = on_not_found(sent_at, asked_at, self.o.recv_window_ms, self.o.resolve_margin_ms)
                    if decision.verdict is NotFoundVerdict.RESEND:
                        await self._resend(order)
                        return
                    await asyncio.sleep(max(0, decision.at_ms - self._clock.now_ms()) / 1000)  # until conclusive
                    continue
                except errors.RateLimited as e:
                    self._back_off(e)
                    continue
                except Exception as e:  # noqa: BLE001  (network trouble: ask again)
                    log.warning("sender: query of %s failed (%s); retrying", cid, e,
                                extra={"client_order_id": cid, "batch_id": order.batch_id})
                    await pacer.pause()
                    continue
                self._apply(order, update_from(answer))
                if order.status.is_final and order.missing_fills:
                    await self._fetch_trades(order)
                return
        finally:
            self._book.resolving.discard(cid)
            self._changed.set()

    async def _resend(self, order: AssetOrder) -> None:
        """The exchange never got `order` and never will: send it again under the next attempt's id."""
        again = self._book.resend(order)
        await self._commit_until_done()
        self._book.enqueue([again], front=True)

    async def _fetch_trades(self, order: AssetOrder) -> None:
        gw = self._gw
        assert gw is not None
        pacer = self.o.retry.pacer()
        while order.missing_fills:
            await self._acquire(self.o.trades_weight)
            self._counts["trade_queries"] += 1
            try:
                trades = await gw.fetch_my_trades(order.symbol, order_id=order.exchange_order_id)
            except Exception as e:  # noqa: BLE001
                log.warning("sender: trades of %s failed (%s); retrying", order.client_order_id, e,
                            extra={"client_order_id": order.client_order_id, "batch_id": order.batch_id})
                await pacer.pause()
                continue
            self._apply(order, self._book.trades_update(order, (exchange_fill(t) for t in trades
                                                                 if t.order_id == order.exchange_order_id)))
            if order.missing_fills:  # the exchange's trade list lags its order status: ask again shortly
                await pacer.pause()

    async def _check_fills_later(self, order: AssetOrder) -> None:
        await asyncio.sleep(self.o.missing_fills_grace_ms / 1000)  # give the trade stream its chance first
        if order.missing_fills:
            await self._fetch_trades(order)

    # ================================================================================ merging outcomes
    def _apply(self, order: AssetOrder, update: OrderUpdate) -> None:
        """Merge one update (SenderBook.apply); a final order whose fills lag gets its trades checked later."""
        if self._book.apply(order, update):
            self._spawn(self._check_fills_later(order))

    async def _watch_executions(self) -> None:
        """The user data stream, read raw (exchange/gateway.watch_executions): each executionReport carries the
        order's status and, for a trade, its fill, merged in one step. A dropped stream may have lost events: every
        unsettled order is asked for once it is back."""
        gw = self._gw
        assert gw is not None
        pacer = self.o.retry.pacer()  # starts over once the stream has held a while
        while True:
            try:
                updates = await gw.watch_executions()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (stream dropped: events may be lost, ask for what is open)
                self._counts["stream_errors"] += 1
                log.warning("sender: user data stream failed (%s); reconnecting", e)
                await pacer.pause()
                self._reconcile()
                continue
            for order in self._book.merge_reports(update_from(eo) for eo in updates):
                self._spawn(self._check_fills_later(order))

    async def order_budget(self) -> tuple[int, int, list[str]]:
        """(orders the rate limits admit now less those already queued, what they admit in empty windows, the pairs
        the exchange has closed: core.market_status): the
        solver plans a batch only when its orders can go out at once, so orders that arrive meanwhile are netted
        into it instead of forming a second batch that waits behind the first."""
        await self.start()
        limiter = self._limiter
        queue = self._book.queue
        assert limiter is not None and queue is not None
        weight = self.o.order_weight
        return (max(0, limiter.orders_available(weight) - len(queue)), limiter.orders_capacity(weight),
                self._closed.symbols())

    async def balances(self) -> dict[str, str]:
        """The account's balances (free + locked) per asset, exact from the exchange's strings: what the reserves
        check compares the books with. One account request, paced like the sender's queries."""
        await self.start()
        gw = self._gw
        assert gw is not None
        await self._acquire(self.o.account_weight)
        return {a: str(b.total) for a, b in (await gw.fetch_balance()).items()}

    # ================================================================================ views
    async def orders(self, batch_id: str) -> list[dict[str, Any]]:
        """Every order of a batch (all attempts), as plain data."""
        await self.start()
        return self._book.batch_orders(batch_id)

    async def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """True once nothing is queued, in flight or unresolved, every order is settled, everything is committed
        and delivered. Waits on state changes, not on a timer."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._book.idle():
            self._changed.clear()
            if self._book.idle():
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return self._book.idle()
        return True

    async def inspect(self) -> dict[str, Any]:
        """Plain data for notebooks (no credentials)."""
        started = self._start_task is not None and self._start_task.done() and self._start_task.exception() is None
        return {"account": self.o.account, "restarted": self._restarted, "started": started, **self._book.view(),
                "last_submit": self._last_submit, "balances_at_start": self._balances,
                "closed_pairs": dict(self._closed.closed),
                "rate_limits": self._limiter.snapshot() if self._limiter is not None else None}

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        try:
            await self._commit()
        finally:
            if self._gw is not None:
                await self._gw.close()
            await self._redis.aclose()


def start_sender(options: SenderOptions, *, name: str = SENDER_NAME, namespace: str | None = None,
                 detached: bool = False) -> Any:
    """Create (or get) the named sender and start it."""
    opts: dict[str, Any] = {"name": name, "get_if_exists": True}
    if namespace is not None:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    handle = OrderSender.options(**opts).remote(options)
    handle.start.remote()
    return handle

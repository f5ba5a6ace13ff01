"""`solver`: the batch cycle, a thin owner of core's SolverCycle (its decisions) around one SolverEngine.

Each tick reads demand, asks and budget (one call each), plans a batch and commits it with the idempotent calls
it implies before driving them: a restart re-drives what was not confirmed. The sender's executions are read
from its hand-off after the stored cursor, which moves (and trims it) in the commit that stores them.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

import ray
import redis
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.ray_context import restarted_by_ray
from actors.order_shards import orders_shard_name, shard_of_order
from actors.packed import packed
from core.basket import Basket
from core.batch_planner import PendingOrder, PlannerLimits
from core.sell_plan import PendingSell
from core.sender_messages import Execution
from core.shard_assignment import shard_name
from core.side import Side
from core.solver_cycle import OutboxCall, SolverCycle, call_of
from core.solver_engine import SolverEngine
from core.solver_reads import (Books, answer_quote, by_market_shard, every_symbol, interleave, merge_liquidity,
                                order_budget, symbols_for)
from core.symbol_filters import SymbolFilters
from protocol.gc_tuning import tune_gc_once
from protocol.indexmaker_app import NewQuote, QuoteAccepted, QuoteRefused, QuoteResult
from protocol.reason_codes import ReasonCode
from store.handoff import execute, read as read_handoff
from store.retry import RetryPolicy, peer_away
from store.sender_records import SenderExecutionRecord
from store.solver_records import SolverHistoryEntry, SolverState, step_data, step_record
from store.streams import sender_executions, solver_steps

log = logging.getLogger(__name__)

SOLVER_NAME = "solver"
HISTORY_KEPT = 200  # batches kept in the diagnostic history (inspect())
#: Up to this many assets in all indexes, a wake reads every book while the collect window runs (the demand is
#: read once the window closes); with more, only the books of the indexes that have pending orders, after it.
EAGER_BOOK_SYMBOLS = 300


@dataclass(frozen=True)
class SolverOptions:
    redis_url: str
    order_shards: int
    market_shards: int
    namespace: str | None = None
    #: This actor's own name: the sender pushes executions to it, and it keys the Redis state.
    name: str = SOLVER_NAME
    sender_name: str = "sender"
    #: The account of that sender: its executions hand-off (store/streams.py) is read by this solver.
    sender_account: str = "main"
    #: The index-order shards' key prefix (OrderBooksOptions.key_prefix): it names their steps hand-offs.
    shard_prefix: str = "orders"
    #: Most executions read at once, and how long those of a batch still open wait for the rest (config.py).
    executions_batch: int = 5_000
    executions_linger_ms: int = 250
    tick_interval_ms: int = 100
    collect_quiet_ms: int = 5
    collect_max_ms: int = 250
    idle_poll_ms: int = 1000
    #: An order deferred this long for no liquidity (or too small to buy anything) is rejected with the reason.
    reject_after_ms: int = 60_000
    #: An order waiting this long on a stale book is rejected naming it (0: it waits as long as the book is stale).
    stale_reject_after_ms: int = 900_000
    quote_asset: str = "USDC"
    #: Most pending orders asked of one shard per tick.
    pending_limit: int = 10_000
    #: Asset orders one batch may carry (the sender paces them under the exchange's limits).
    order_budget: int = 10_000
    #: Notional of all batches in flight together (the planner gets what is left of it).
    max_in_flight_notional: Decimal = Decimal("500000")
    #: A quote past this spread of its basket (bps of the mid) says the market is wide.
    wide_spread_bps: Decimal = Decimal("10")
    #: The store and the peers are waited out with this; a call that fails with something other than an
    #: unavailable actor is retried `max_failures` times, then dropped (and recorded in inspect()["errors"]).
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy.default)

    @classmethod
    def from_settings(cls, settings: Any, order_shards: int, **overrides: Any) -> "SolverOptions":
        values: dict[str, Any] = {
            "redis_url": settings.redis_url, "order_shards": order_shards,
            "market_shards": settings.exchange.market_shards, "tick_interval_ms": settings.solver.tick_interval_ms,
            "collect_quiet_ms": settings.solver.collect_quiet_ms, "collect_max_ms": settings.solver.collect_max_ms,
            "idle_poll_ms": settings.solver.idle_poll_ms, "reject_after_ms": settings.solver.reject_after_ms,
            "quote_asset": settings.exchange.quote_asset, "order_budget": settings.solver.max_orders_per_batch,
            "max_in_flight_notional": settings.solver.max_in_flight_notional,
            "stale_reject_after_ms": settings.solver.stale_reject_after_ms,
            "executions_batch": settings.solver.executions_batch,
            "executions_linger_ms": settings.solver.executions_linger_ms,
            "wide_spread_bps": settings.solver.wide_spread_bps,
            "retry": RetryPolicy.from_settings(settings)}
        values.update(overrides)
        return cls(**values)


@dataclass
class _EarlyReads:
    """What a wake by new orders starts reading while the window collects: the rate budget and the books (used
    as they are), and the demand (used only if `version` is still the solver's demand version)."""

    version: int
    budget_and_books: asyncio.Future
    pending: asyncio.Future

    def discard(self) -> None:
        _discard(self.budget_and_books)
        _discard(self.pending)


def _discard(future: asyncio.Future | None) -> None:
    """An early read the tick will not use: cancelled if still out, its failure (if any) taken, not left to be
    reported as never retrieved."""
    if future is None:
        return
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Solver:
    def __init__(self, options: SolverOptions, baskets: Mapping[str, Basket], filters: Mapping[str, SymbolFilters],
                 limits: PlannerLimits) -> None:
        setup_logging(options.name)
        self.o = options
        self.limits = limits
        self._key = f"solver:{options.name}:state"
        self._history_key = f"solver:{options.name}:history"
        self.cycle = SolverCycle(SolverEngine(baskets, filters, limits, quote_asset=options.quote_asset),
                                 shard_of_order=lambda oid: shard_of_order(oid, options.order_shards),
                                 name=options.name, reject_after_ms=options.reject_after_ms,
                                 stale_reject_after_ms=options.stale_reject_after_ms,
                                 max_in_flight_notional=options.max_in_flight_notional, history_kept=HISTORY_KEPT)
        self._acked = 0  # the cursor as the last commit stored it (and trimmed the hand-off to)
        self._executions = sender_executions(options.sender_account)
        self._last_fills: dict[str, Any] | None = None
        self._restarted = restarted_by_ray()
        self._load()
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._reader_redis = aioredis.Redis.from_url(options.redis_url)  # its blocking reads hold a connection
        self._reader_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._tick_task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._woke_at: float | None = None  # first wake since the last tick (diagnostics)
        #: Started at a wake by new orders, awaited by the next tick (see _collect).
        self._prefetch: _EarlyReads | None = None
        #: Bumped by every change of what the shards hold as pending (a wake: new orders; a step of ours that
        #: engages, settles or rejects). A pending read started during the collect window is used by the tick only
        #: if nothing changed since it was started; else the tick reads again.
        self._demand_version = 0
        self._prefetch_ms: dict[str, float] = {}  # diagnostics: when each early read returned, ms after the wake
        self._start_task: asyncio.Task | None = None
        self._handles: dict[str, Any] = {}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by start() (the launcher) or by the sender's first push
        if self._restarted:  # Ray re-ran __init__ after a crash: resume at once, nobody will call start()
            self._start_task = asyncio.ensure_future(self._start())

    @property
    def engine(self) -> SolverEngine:
        return self.cycle.engine

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        def read() -> tuple[Any, list[bytes], dict[bytes, bytes]]:
            r = redis.Redis.from_url(self.o.redis_url)
            try:
                return r.get(self._key), r.lrange(self._history_key, 0, -1)
            finally:
                r.close()

        # A store that is down (restarting) is waited for, not crashed on: __init__ has nothing to serve before.
        raw, history = self.o.retry.call_sync(
            read, lambda e: log.warning("solver: cannot read the state (%s); retrying", e))
        self.cycle.history = [SolverHistoryEntry.load(h).model_dump(mode="json") for h in history]
        if not raw:
            return
        state = SolverState.load(raw)
        self.cycle.restore(state.engine.model_dump(mode="json"), state.cursor, [call_of(s) for s in state.outbox],
                           state.step_seqs, state.counts, state.errors)
        self._acked = state.cursor
        # A state written when the solver relayed mints also holds "mint_seq"/"mints" (and a mints hash): ignored,
        # the shards still hold those orders mint-pending and the minter asks them when it starts.

    async def _commit(self, history: dict[str, Any] | None = None) -> None:
        """The state blob (without the batch history, which only grows: that is a capped list of its own, appended
        in the same transaction when a batch is planned)."""
        state = self.cycle.state()
        blob = SolverState.model_validate(state | {"outbox": [step_data(a) for a in state["outbox"]]}).dump()
        cursor = self.cycle.cursor
        steps = self.cycle.steps_to_commit()
        raw_steps = {k: [(step.seq, step_record(step)) for step in rows] for k, rows in steps.items()}

        async def write() -> None:
            if history is None and cursor == self._acked and not steps:
                await self._redis.set(self._key, blob)
            else:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(self._key, blob)
                    for k, rows in raw_steps.items():  # the steps this state implies, in the same transaction
                        handoff = solver_steps(self.o.shard_prefix, k)
                        for seq, raw in rows:
                            handoff.append(pipe, seq, raw)
                    if cursor != self._acked:
                        self._executions.ack(pipe, cursor)  # consumed and stored: the sender's log lets go
                    if history is not None:
                        pipe.rpush(self._history_key, SolverHistoryEntry.model_validate(history).dump())
                        pipe.ltrim(self._history_key, -HISTORY_KEPT, -1)
                    await execute(pipe)

        try:
            # Redis down or restarting: the same write again (it is absolute; the history entry is pushed in a
            # transaction, so at most once). Everything else waits behind the lock meanwhile.
            await self.o.retry.call(write, lambda e: log.warning("solver: cannot write the state (%s); retrying", e))
        except BaseException:
            self._reload()
            raise
        self._acked = cursor
        self.cycle.committed(steps)

    def _reload(self) -> None:
        self.cycle.rollback()
        self._acked = 0
        self._load()

    def _error(self, text: str) -> None:
        log.error("solver: %s", text)
        self.cycle.errors.append(text)

    def _note(self, text: str | None) -> None:
        """A handled race worth seeing (orders cancelled before their batch engaged them): not an error."""
        if text is not None:
            log.info("solver: %s", text)
            self.cycle.notes.append(text)

    # ------------------------------------------------------------------ peers
    def _actor(self, name: str) -> Any:
        h = self._handles.get(name)
        if h is None:
            h = ray.get_actor(name, namespace=self.o.namespace)
            self._handles[name] = h
        return h

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        """One call, retried while the peer restarts or is not registered yet (every call the solver makes is
        idempotent on the peer); any other failure is retried a few times, then raised."""
        found = False

        async def call() -> Any:
            nonlocal found
            found = False
            handle = self._actor(name)  # ValueError: not registered (yet), or being replaced
            found = True
            self.cycle.counts["calls"] += 1
            return await getattr(handle, method).remote(*args)

        def failed(e: Exception) -> None:
            if not found:
                log.warning("solver: %s not found (%s); retrying", name, e)
                return
            self.cycle.counts["call_failures"] += 1
            if isinstance(e, ray.exceptions.RayActorError):  # restarting: the same call again is safe
                self._handles.pop(name, None)
                log.warning("solver: %s.%s unavailable (%s); retrying", name, method, e)
            else:
                log.warning("solver: %s.%s failed (%s); retrying", name, method, e)

        try:
            return await self.o.retry.call(call, failed, away=peer_away, bounded=(Exception,))
        except Exception:
            self.cycle.counts["call_failures"] += 1  # the last failure: raised, not retried
            raise

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> dict[str, Any]:
        """Idempotent: register with the sender, catch up on executions, re-drive the outbox, start ticking."""
        if self._start_task is None or (self._start_task.done() and self._start_task.exception() is not None):
            self._start_task = asyncio.ensure_future(self._start())
        await asyncio.shield(self._start_task)
        return {"cursor": self.cycle.cursor, "outbox": len(self.cycle.outbox)}

    async def _start(self) -> None:
        async with self._lock:
            await self._drain()
        if self._tick_task is None or self._tick_task.done():
            self._tick_task = asyncio.ensure_future(self._tick_loop())
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = asyncio.ensure_future(self._read_executions())
        tune_gc_once()

    async def stop(self) -> None:
        for t in (self._tick_task, self._start_task, self._reader_task):
            if t is not None:
                t.cancel()
        async with self._lock:
            await self._redis.aclose()
            await self._reader_redis.aclose()

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def wake(self) -> None:
        """New demand (the order books call this once per batch of new orders): plan soon."""
        if self._woke_at is None:
            self._woke_at = time.time()
        self._demand_version += 1
        self._wake_event().set()

    async def rest_pending(self) -> None:
        """A shard applied a batch's completion: orders with a rest can be planned again (fire and forget)."""
        self._demand_version += 1
        self._wake_event().set()

    async def _wait_for_wake(self, timeout_s: float) -> bool:
        event = self._wake_event()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def _collect(self) -> None:
        """Orders sent together are netted together: after a wake, wait until no new one came for
        collect_quiet_ms (at most collect_max_ms in all) before planning."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.o.collect_max_ms / 1000
        if self._prefetch is not None:  # left over by a tick that failed before reading it: stale
            self._prefetch.discard()
            self._prefetch = None
        every = every_symbol(self.engine.baskets) if self._woke_at is not None else []
        if every and len(every) <= EAGER_BOOK_SYMBOLS:
            # Woken by new orders (the tick then takes every book; an internal wake after a settle does not): the
            # budget and the books do not depend on which orders the window collects, so they are read meanwhile
            # (the books are then a few ms older at planning, well inside the slippage cap; the budget only grows
            # while nothing is sent). The demand is read too: the tick uses it if no wake came after it was asked
            # (the usual lone order), else it reads again.
            began, took = time.time(), {}
            self._prefetch_ms = took
            self._prefetch = _EarlyReads(
                self._demand_version, asyncio.ensure_future(asyncio.gather(
                    _timed(took, began, "budget", self._order_budget()),
                    _timed(took, began, "books", self._asks_for(every)))),
                asyncio.ensure_future(_timed(took, began, "pending", self._pending())))
        while True:
            self._wake_event().clear()
            left = deadline - loop.time()
            if left <= 0 or not await self._wait_for_wake(min(left, self.o.collect_quiet_ms / 1000)):
                return

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (a failed tick is retried on the next one)
                self._error(f"tick failed: {e!r}")
            # Something deferred (rate limits, liquidity) or a step to retry: look again soon. Otherwise wait for a
            # wake (new orders, or a settle that put a rest back), even with batches in flight: a tick then would
            # only re-read the books and the demand while the exchange orders go out, competing with them for the
            # CPU, and hold the lock their fills need.
            busy = self.cycle.deferred or self.cycle.outbox
            if await self._wait_for_wake((self.o.tick_interval_ms if busy else self.o.idle_poll_ms) / 1000):
                await self._collect()

    # ------------------------------------------------------------------ the batch cycle
    async def tick(self) -> str | None:
        """One planning cycle; returns the new batch id, or None if nothing was planned."""
        async with self._lock:
            self.cycle.counts["ticks"] += 1
            await self._drain()  # anything a failure left behind goes first
            started = time.time()
            woke_at, self._woke_at = self._woke_at, None
            # Woken by new orders, the books of every index's assets are asked at once with the demand when there
            # are few of them (one round trip less); else only those of the indexes with pending orders, after it.
            every = every_symbol(self.engine.baskets)
            early = woke_at is not None and len(every) <= EAGER_BOOK_SYMBOLS  # woken: new orders are there
            prefetch, self._prefetch = self._prefetch, None
            took: dict[str, float] = {}

            def timed(name: str, aw: Any) -> Any:
                return _timed(took, started, name, aw)

            if prefetch is not None and early:
                fresh = prefetch.version == self._demand_version  # else the demand changed after it was read
                if not fresh:
                    _discard(prefetch.pending)
                pending, (budget, books) = await asyncio.gather(
                    timed("pending_early", prefetch.pending) if fresh else timed("pending", self._pending()),
                    timed("prefetched", prefetch.budget_and_books))
            else:
                if prefetch is not None:
                    prefetch.discard()
                budget, pending, books = await asyncio.gather(timed("budget", self._order_budget()),
                                                              timed("pending", self._pending()),
                                                              timed("asks", self._asks_for(every if early else [])))
            pending, sells = pending
            if self.cycle.nothing_to_plan(budget, pending, sells):
                return None
            if not early:
                books = await self._asks_for(symbols_for([*pending, *sells], self.engine.baskets))
            bids = None
            if sells:  # what sells sell into (one liquidity call per market shard, only when there are sells)
                bids = await self._bids_for(symbols_for(sells, self.engine.baskets))
                books = Books(books.asks, books.stale | bids.stale)
            fetched = time.time()
            batch_id, plan = self.cycle.plan(pending, books, budget, _now_ms(), sells,
                                             None if bids is None else bids.asks)
            if batch_id is None:
                if self.cycle.has_steps():
                    await self._commit()  # the give-ups go to their shards now
                return None
            entry = self.cycle.remember(batch_id, plan, _now_ms(), {
                "woken": round(1000 * (woke_at - started), 1) if woke_at else None,
                "fetched": round(1000 * (fetched - started), 1), "fetch": took,
                "early_reads": dict(self._prefetch_ms), "planned": round(1000 * (time.time() - started), 1)})
            await self._commit(entry)  # the decision is on disk before any of it is acted on
            entry["tick_ms"]["committed"] = round(1000 * (time.time() - started), 1)
            await self._drain()
            entry["tick_ms"]["submitted"] = round(1000 * (time.time() - started), 1)
            return batch_id

    async def _order_budget(self) -> int:
        available, capacity, closed = await self._call(self.o.sender_name, "order_budget")
        self.cycle.closed_pairs = frozenset(closed)  # the indexes holding one wait (core.market_status)
        return order_budget(available, capacity, self.o.order_budget)

    async def _pending(self) -> tuple[list[PendingOrder], list[PendingSell]]:
        """The shards' buys and sells that can be planned now, one call per shard."""
        got = await asyncio.gather(*(self._call(orders_shard_name(k), "demand", self.o.pending_limit)
                                     for k in range(self.o.order_shards)))
        return interleave([buys for buys, _ in got]), interleave([sells for _, sells in got])

    async def _bids_for(self, symbols: Sequence[str]) -> Books:
        """The bid levels of `symbols` (in the read's `asks` field: the SELL side's levels) and the stale ones."""
        groups = by_market_shard(symbols, self.o.market_shards)
        return merge_liquidity(await asyncio.gather(*(self._call(shard_name(k), "liquidity", wanted, Side.SELL,
                                                                 self.limits.max_levels, True)
                                                      for k, wanted in groups.items())))

    async def _asks_for(self, symbols: Sequence[str]) -> Books:
        groups = by_market_shard(symbols, self.o.market_shards)
        books = merge_liquidity(await asyncio.gather(*(self._call(shard_name(k), "liquidity", wanted, Side.BUY,
                                                                  self.limits.max_levels, True)
                                                       for k, wanted in groups.items())))
        if symbols:
            self.cycle.stale_books = books.stale
        return books

    # ------------------------------------------------------------------ the outbox
    async def _drain(self) -> None:
        """Drive the outbox in order; a step is popped only after it succeeded, and the progress is committed once
        the outbox is empty (one write for a whole chain of steps: fills, then completion). A crash in between
        re-drives the steps not yet committed, which is safe because every step is idempotent on its receiver."""
        if not self.cycle.outbox:
            if self.cycle.has_steps():
                await self._commit()
            return
        while self.cycle.outbox:
            calls = self.cycle.next_calls()
            action, began = calls[0], time.time()
            if len(calls) == 2:
                await self._engage_and_submit(*calls)
                action = dataclasses.replace(action, kind="engage+submit")  # (its label in step_ms)
            else:
                try:
                    await self._run(action)
                except Exception as e:  # noqa: BLE001  (not a restart: a refusal that retrying will not change)
                    self._error(f"{action.kind} {action.key} dropped: {e!r}")
            self.cycle.step_took(action.key, action.kind, round(1000 * (time.time() - began), 1))
            del self.cycle.outbox[:len(calls)]
        await self._commit()

    async def _engage_and_submit(self, engage: OutboxCall, submit: OutboxCall) -> None:
        """A new batch's engage and its exchange orders, at once. The shards' answer is applied first (it sizes the
        batch's orders; no fill can be assigned before it, since fills wait for the lock this runs under), then the
        sender's (rejected orders settle). An engage refused outright counts as nothing engaged: the exchange
        orders may be out, so what they buy becomes inventory rather than a batch nobody completes."""
        engaged, submitted = await asyncio.gather(self._shard_calls(engage), self._submit_call(submit),
                                                  return_exceptions=True)
        for outcome in (engaged, submitted):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancelled: the pair stays in the outbox and runs again
        if isinstance(engaged, Exception):
            self._error(f"engage {engage.key} dropped: {engaged!r}")
            engaged = [[]]
        self._note(self.cycle.engaged(engage.key, engaged, _now_ms(), with_submit=True))
        if isinstance(submitted, Exception):
            self._error(f"submit {submit.key} dropped: {submitted!r}")
        else:
            self._note(self.cycle.submitted(submit.key, submitted, _now_ms()))

    async def _submit_call(self, a: OutboxCall) -> list[Any]:
        return await self._call(self.o.sender_name, "submit", a.key, packed(list(a.orders)))

    async def _run(self, a: OutboxCall) -> None:
        if a.kind == "submit":
            self._note(self.cycle.submitted(a.key, await self._submit_call(a), _now_ms()))
            return
        answers = await self._shard_calls(a)
        self._note(self.cycle.engaged(a.key, answers, _now_ms()))

    async def _shard_calls(self, a: OutboxCall) -> list[Any]:
        """An engage: one call per shard (its answer sizes the batch)."""
        keys = sorted(a.by_shard)
        try:
            return await asyncio.gather(*(self._call(orders_shard_name(k), "engage", a.key,
                                                     packed(list(a.by_shard[k]))) for k in keys))
        finally:
            self._demand_version += 1  # engaged (or maybe, if it failed): pending may differ

    # ------------------------------------------------------------------ executions from the sender
    async def _read_executions(self) -> None:
        """Read the sender's executions after the cursor, batch by batch, for as long as the solver runs. Each
        wait is bounded (idle_poll_ms) so that a cursor moved back by a reload is read from again soon."""
        loop = asyncio.get_running_loop()
        pacer = self.o.retry.pacer()
        while True:
            try:
                entries = await self._read_after(self.cycle.cursor, self.o.idle_poll_ms)
                deadline = loop.time() + self.o.executions_linger_ms / 1000
                while entries and len(entries) < self.o.executions_batch and self.cycle.batch_still_open(entries):
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    entries += await self._read_after(entries[-1].seq, max(1, round(1000 * left)))
                if entries:
                    await self._on_executions(entries)
                pacer.reset()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (the store or a shard away: the same entries are read again)
                log.warning("solver: reading the sender's executions failed (%s); retrying", e)
                await pacer.pause()

    async def _read_after(self, seq: int, block_ms: int) -> list[Execution]:
        got = await read_handoff(self._reader_redis, {self._executions: seq}, count=self.o.executions_batch,
                                 block_ms=block_ms)
        return [SenderExecutionRecord.load(payload).entry for _, payload in got.get(self._executions, ())]

    async def _on_executions(self, executions: Sequence[Execution]) -> None:
        """Turn executions into deltas and completions, store them with the new cursor, then act on them."""
        called = time.time()
        async with self._lock:
            locked = time.time()
            # Steps a restart left in the outbox (an engage whose answer sizes the batch) go before any fill of
            # that batch is assigned: fills of a submitted batch can reach a solver that restarted in between.
            await self._drain()
            fresh = self.cycle.consume(executions, _now_ms())
            if not fresh:
                return
            consumed = time.time()
            await self._commit()
            committed = time.time()
            await self._drain()
            # Diagnostics (inspect): where the latest read of executions spent its time, in ms.
            self._last_fills = {"executions": fresh, "at": round(1000 * called, 1),
                                "lock_wait_ms": round(1000 * (locked - called), 1),
                                "consume_ms": round(1000 * (consumed - locked), 1),
                                "commit_ms": round(1000 * (committed - consumed), 1),
                                "drain_ms": round(1000 * (time.time() - committed), 1)}

    # ------------------------------------------------------------------ quotes
    async def quote(self, requests: Sequence[NewQuote]) -> list[list[Any]]:
        """Quote requests (the gateway's, batched): index units each amount buys now, sized like a batch of that
        order alone on the live books (core/index_quote.py). One liquidity call per market shard for all of them."""
        e = self.engine
        wanted = [PendingOrder("quote", r.symbol, r.amount) for r in requests
                  if r.side is Side.BUY and r.symbol in e.baskets]
        symbols = symbols_for(wanted, e.baskets)
        books, bids = await asyncio.gather(self._asks_for(symbols), self._best_bids(symbols)) if wanted else (
            Books({}, frozenset()), {})
        out: list[list[Any]] = []
        for r in requests:
            q, refusal = answer_quote(r.side, r.symbol, r.amount, e.baskets, books, e.filters, self.limits,
                                      closed=self.cycle.closed_pairs, best_bids=bids,
                                      wide_spread_bps=self.o.wide_spread_bps)
            out.append([QuoteRefused(r.user, r.client_quote_id, ReasonCode[refusal[0]], refusal[1])] if refusal else
                       [QuoteAccepted(r.user, r.client_quote_id),
                        QuoteResult(r.user, r.client_quote_id, q.units, r.symbol, q.spread_bps, q.wide)])
        return out

    async def _best_bids(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The best bid of each symbol (none for an empty or stale book): the quote's spread."""
        groups = by_market_shard(symbols, self.o.market_shards)
        books = merge_liquidity(await asyncio.gather(*(self._call(shard_name(k), "liquidity", wanted, Side.SELL, 1,
                                                                  True) for k, wanted in groups.items())))
        return {s: levels[0][0] for s, levels in books.asks.items() if levels}  # (the SELL side's levels: bids)

    async def holdings(self) -> dict[str, Any]:
        """The engine's holdings for the reserves check (core/solver_engine.py), with the executions not consumed
        yet. Taken between two steps, never halfway through one."""
        async with self._lock:
            unconsumed = [SenderExecutionRecord.load(p).entry
                          for _, p in await self._executions.since(self._redis, self.cycle.cursor)]
            return {"cursor": self.cycle.cursor, "unconsumed": unconsumed, **self.engine.holdings()}

    # ------------------------------------------------------------------ views
    async def wait_quiet(self, timeout_s: float = 60.0) -> bool:
        """True once no batch is in flight, the outbox is empty and every shard applied every step (polled on the
        tick, for tests and the demo)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.cycle.busy() or await self._steps_backlog():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.o.tick_interval_ms / 1000)
        return True

    async def _steps_backlog(self) -> int:
        return sum([await solver_steps(self.o.shard_prefix, k).backlog(self._redis)
                    for k in range(self.o.order_shards)])

    async def inspect(self) -> dict[str, Any]:
        return {"restarted": self._restarted, **self.cycle.view(), "last_fills": self._last_fills}


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _timed(took: dict[str, float], began: float, name: str, aw: Any) -> Any:
    """Diagnostics: when `aw` returned, in ms after `began`, kept under `name`."""
    result = await aw
    took[name] = round(1000 * (time.time() - began), 1)
    return result


def start_solver(options: SolverOptions, baskets: Mapping[str, Basket], filters: Mapping[str, SymbolFilters],
                 limits: PlannerLimits, *, detached: bool = False) -> Any:
    """Create (or get) the named solver and start it (after the sender and the shards exist)."""
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    handle = Solver.options(**opts).remote(options, dict(baskets), dict(filters), limits)
    handle.start.remote()
    return handle

"""`solver`: the batch cycle, a thin owner of one core SolverEngine.

Each tick it reads the shards' demand, the markets' asks and the sender's budget (one call each), plans
one batch and commits it with an outbox of the idempotent calls it implies before driving them: a restart
re-drives what was not confirmed. The sender's executions are read from its hand-off after the stored
cursor; the cursor moves, and the hand-off is trimmed, in the commit that stores them.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, NamedTuple, Sequence

import ray
import redis
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.ray_context import restarted_by_ray
from actors.order_shards import orders_shard_name, shard_of_order
from actors.packed import packed
from core.asset_order import ExchangeFill
from core.basket import Basket
from core.batch_planner import PendingOrder, PlannerLimits
from core.batch_result import BatchOrderResult
from core.index_quote import quote_index
from core.late_reject import StuckOrders
from core.reserves import assigned_in, lots_cost, lots_held
from core.money import ZERO
from core.sender_messages import Execution, OrderDone, SenderFill
from core.shard_assignment import shard_name, shard_of
from core.side import Side
from core.stale_books import is_stale_reason, symbols_of
from core.solver_engine import CompletedBatch, SolverEngine
from core.symbol_filters import SymbolFilters
from protocol.gc_tuning import tune_gc_once
from protocol.indexmaker_app import NewQuote, QuoteAccepted, QuoteRefused, QuoteResult
from protocol.reason_codes import ReasonCode
from store.handoff import execute, read as read_handoff
from store.retry import RetryPolicy, peer_away
from store.sender_records import SenderExecutionRecord
from store.solver_records import ShardStepRecord, SolverHistoryEntry, SolverState, StepPart, step_data
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
            "retry": RetryPolicy.from_settings(settings)}
        values.update(overrides)
        return cls(**values)


class _Books(NamedTuple):
    """One read of the market shards: the asks of the symbols asked (stale ones left out) and which are stale."""

    asks: dict[str, list[tuple[Decimal, Decimal]]]
    stale: frozenset[str]


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


@dataclass(frozen=True, slots=True)
class _Action:
    """One durable step of the outbox. kind: engage | fills | submit | complete."""

    kind: str
    key: str  # batch id, or batch_id:round for fills
    by_shard: Mapping[int, Sequence[Any]]  # engage / fills / complete: the payload per order shard
    orders: tuple[Any, ...] = ()  # submit: the batch's asset orders
    #: engage: the batch's submit is queued right after it and runs at the same time (else its submit is queued
    #: once the shards answer).
    with_submit: bool = False


def _action_of(step: StepPart) -> _Action:
    """A stored outbox step as the action it was (a submit has no shard payload, only an engage has with_submit)."""
    return _Action(step.kind, step.key, getattr(step, "by_shard", {}), tuple(getattr(step, "orders", ())),
                   getattr(step, "with_submit", False))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Solver:
    def __init__(self, options: SolverOptions, baskets: Mapping[str, Basket], filters: Mapping[str, SymbolFilters],
                 limits: PlannerLimits) -> None:
        setup_logging(options.name)
        self.o = options
        self.limits = limits
        self._key = f"solver:{options.name}:state"
        self._history_key = f"solver:{options.name}:history"
        self.engine = SolverEngine(baskets, filters, limits, quote_asset=options.quote_asset)
        self._cursor = 0  # last sender seq consumed
        self._step_seqs: dict[int, int] = {}  # shard -> the last step appended to its hand-off
        self._steps_out: dict[int, list[tuple[int, str]]] = {}  # steps queued for the next commit, per shard
        self._acked = 0  # the cursor as the last commit stored it (and trimmed the hand-off to)
        self._executions = sender_executions(options.sender_account)
        self._outbox: list[_Action] = []
        self._errors: list[str] = []
        self._notes: collections.deque[str] = collections.deque(maxlen=50)  # in memory only, like the shards'
        self._counts = {"ticks": 0, "batches": 0, "asset_orders": 0, "rejected_orders": 0, "fill_calls": 0,
                        "fills": 0, "dones": 0, "duplicates": 0, "foreign": 0, "completed": 0, "commits": 0, "calls": 0, "call_failures": 0,
                        "late_rejects": 0}
        self._history: list[dict[str, Any]] = []  # per batch: id, orders engaged, asset orders (bounded)
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
        self._deferred = 0
        self._stuck = StuckOrders(options.reject_after_ms, options.stale_reject_after_ms)
        self._stale_books: frozenset[str] = frozenset()  # at the last read of the books
        self._waiting_on_stale: dict[str, int] = {}  # stale symbol -> orders the last plan deferred for it
        self._reject_seq = 0
        self._start_task: asyncio.Task | None = None
        self._handles: dict[str, Any] = {}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by start() (the launcher) or by the sender's first push
        if self._restarted:  # Ray re-ran __init__ after a crash: resume at once, nobody will call start()
            self._start_task = asyncio.ensure_future(self._start())

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
        self._history = [SolverHistoryEntry.load(h).model_dump(mode="json") for h in history]
        if not raw:
            return
        state = SolverState.load(raw)
        self.engine.restore(state.engine.model_dump(mode="json"))
        self._cursor = self._acked = state.cursor
        self._step_seqs = dict(state.step_seqs)
        self._outbox = []
        for step in state.outbox:  # older code drove fills, completions and give-ups as calls: they go as steps
            action = _action_of(step)
            if action.kind in ("engage", "submit"):
                self._outbox.append(action)
            else:
                for k, payload in action.by_shard.items():
                    self._send_step(k, action.kind, action.key, payload)
        # A state written when the solver relayed mints also holds "mint_seq"/"mints" (and a mints hash): ignored,
        # the shards still hold those orders mint-pending and the minter asks them when it starts.
        self._counts.update(state.counts)
        self._errors = list(state.errors)

    async def _commit(self, history: dict[str, Any] | None = None) -> None:
        """The state blob (without the batch history, which only grows: that is a capped list of its own, appended
        in the same transaction when a batch is planned)."""
        blob = SolverState.model_validate({
            "engine": self.engine.snapshot(), "cursor": self._cursor,
            "outbox": [step_data(a) for a in self._outbox], "step_seqs": self._step_seqs,
            "counts": self._counts, "errors": self._errors[-50:]}).dump()
        cursor = self._cursor
        steps = {k: list(rows) for k, rows in self._steps_out.items() if rows}

        async def write() -> None:
            if history is None and cursor == self._acked and not steps:
                await self._redis.set(self._key, blob)
            else:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(self._key, blob)
                    for k, rows in steps.items():  # the steps this state implies, in the same transaction
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
        for k, rows in steps.items():
            del self._steps_out[k][:len(rows)]
        self._counts["commits"] += 1

    def _reload(self) -> None:
        self.engine = SolverEngine(self.engine.baskets, self.engine.filters, self.limits,
                                   quote_asset=self.o.quote_asset)
        self._cursor, self._acked, self._outbox, self._step_seqs, self._steps_out = 0, 0, [], {}, {}
        self._load()

    def _error(self, text: str) -> None:
        log.error("solver: %s", text)
        self._errors.append(text)

    def _note(self, text: str) -> None:
        """A handled race worth seeing (orders cancelled before their batch engaged them): not an error."""
        log.info("solver: %s", text)
        self._notes.append(text)

    # ------------------------------------------------------------------ peers
    def _actor(self, name: str) -> Any:
        h = self._handles.get(name)
        if h is None:
            h = ray.get_actor(name, namespace=self.o.namespace)
            self._handles[name] = h
        return h

    def _shard(self, k: int) -> Any:
        return self._actor(orders_shard_name(k))

    def _sender(self) -> Any:
        return self._actor(self.o.sender_name)

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        """One call, retried while the peer restarts or is not registered yet (every call the solver makes is
        idempotent on the peer); any other failure is retried a few times, then raised."""
        found = False

        async def call() -> Any:
            nonlocal found
            found = False
            handle = self._actor(name)  # ValueError: not registered (yet), or being replaced
            found = True
            self._counts["calls"] += 1
            return await getattr(handle, method).remote(*args)

        def failed(e: Exception) -> None:
            if not found:
                log.warning("solver: %s not found (%s); retrying", name, e)
                return
            self._counts["call_failures"] += 1
            if isinstance(e, ray.exceptions.RayActorError):  # restarting: the same call again is safe
                self._handles.pop(name, None)
                log.warning("solver: %s.%s unavailable (%s); retrying", name, method, e)
            else:
                log.warning("solver: %s.%s failed (%s); retrying", name, method, e)

        try:
            return await self.o.retry.call(call, failed, away=peer_away, bounded=(Exception,))
        except Exception:
            self._counts["call_failures"] += 1  # the last failure: raised, not retried
            raise

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> dict[str, Any]:
        """Idempotent: register with the sender, catch up on executions, re-drive the outbox, start ticking."""
        if self._start_task is None or (self._start_task.done() and self._start_task.exception() is not None):
            self._start_task = asyncio.ensure_future(self._start())
        await asyncio.shield(self._start_task)
        return {"cursor": self._cursor, "outbox": len(self._outbox)}

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
        every = self._every_symbol() if self._woke_at is not None else []
        if every and len(every) <= EAGER_BOOK_SYMBOLS:
            # Woken by new orders (the tick then takes every book; an internal wake after a settle does not): the
            # budget and the books do not depend on which orders the window collects, so they are read meanwhile
            # (the books are then a few ms older at planning, well inside the slippage cap; the budget only grows
            # while nothing is sent). The demand is read too: the tick uses it if no wake came after it was asked
            # (the usual lone order), else it reads again.
            began = time.time()
            self._prefetch_ms = {}

            async def timed(name: str, aw: Any) -> Any:
                result = await aw
                self._prefetch_ms[name] = round(1000 * (time.time() - began), 1)
                return result

            self._prefetch = _EarlyReads(self._demand_version,
                                         asyncio.ensure_future(asyncio.gather(timed("budget", self._order_budget()),
                                                                              timed("books", self._asks_for(every)))),
                                         asyncio.ensure_future(timed("pending", self._pending())))
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
            busy = self._deferred or self._outbox
            if await self._wait_for_wake((self.o.tick_interval_ms if busy else self.o.idle_poll_ms) / 1000):
                await self._collect()

    # ------------------------------------------------------------------ the batch cycle
    async def tick(self) -> str | None:
        """One planning cycle; returns the new batch id, or None if nothing was planned."""
        async with self._lock:
            self._counts["ticks"] += 1
            await self._drain()  # anything a failure left behind goes first
            started = time.time()
            woke_at, self._woke_at = self._woke_at, None
            # Woken by new orders, the books of every index's assets are asked at once with the demand when there
            # are few of them (one round trip less); else only those of the indexes with pending orders, after it.
            every = self._every_symbol()
            early = woke_at is not None and len(every) <= EAGER_BOOK_SYMBOLS  # woken: new orders are there
            prefetch, self._prefetch = self._prefetch, None
            took: dict[str, float] = {}

            async def timed(name: str, aw: Any) -> Any:
                result = await aw
                took[name] = round(1000 * (time.time() - started), 1)
                return result

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
            if budget == 0:  # nothing could go out now: keep collecting (the next tick looks again)
                self._deferred = 1
                return None
            if not pending:
                self._deferred = 0
                self._waiting_on_stale = {}
                return None
            if not early:
                books = await self._asks(pending)
            fetched = time.time()
            room = max(ZERO, self.o.max_in_flight_notional - self.engine.in_flight_notional())
            limits = dataclasses.replace(self.limits, in_flight_room=room)
            batch_id, plan = self.engine.plan(pending, books.asks, budget, limits, stale=books.stale)
            self._deferred = len(plan.deferred)
            self._note_stale(plan.deferred)
            self._give_up_on(plan.deferred)
            if batch_id is None:
                if any(self._steps_out.values()):
                    await self._commit()  # the give-ups go to their shards now
                return None
            by_shard: dict[int, list[Any]] = {}
            for e in plan.engagements:
                by_shard.setdefault(shard_of_order(e.order_id, self.o.order_shards), []).append(e)
            # The engage and the exchange orders go out together (_drain runs the pair at once): the asset orders
            # do not depend on the shards' answer (what a cancel in between leaves unneeded becomes inventory),
            # so the batch reaches the exchange one shard round trip sooner. The answer is applied before any fill.
            sent = self.engine.sent_orders(batch_id)
            self._outbox.append(_Action("engage", batch_id, by_shard, with_submit=bool(sent)))
            if sent:
                self._outbox.append(_Action("submit", batch_id, {}, tuple(s.order for s in sent)))
                self._counts["asset_orders"] += len(sent)
            self._counts["batches"] += 1
            entry = {"batch_id": batch_id, "planned_ms": int(time.time() * 1000), "orders": len(plan.engagements),
                     "asset_orders": [[s.client_order_id, str(s.order.price), str(s.order.quantity)]
                                      for s in self.engine.sent_orders(batch_id)],
                     "inventory_used": dict(plan.inventory_used), "scale": str(plan.scale),
                     "deferred": [[d.order_id, d.reason] for d in plan.deferred][:20],
                     # Where a tick's time goes (ms from its start): read by bench/flow.py.
                     "tick_ms": {"woken": round(1000 * (woke_at - started), 1) if woke_at else None,
                                 "fetched": round(1000 * (fetched - started), 1), "fetch": took,
                                 "early_reads": dict(self._prefetch_ms),
                                 "planned": round(1000 * (time.time() - started), 1)}}
            self._history.append(entry)
            del self._history[:-HISTORY_KEPT]
            await self._commit(entry)  # the decision is on disk before any of it is acted on
            entry["tick_ms"]["committed"] = round(1000 * (time.time() - started), 1)
            await self._drain()
            entry["tick_ms"]["submitted"] = round(1000 * (time.time() - started), 1)
            return batch_id

    def _note_stale(self, deferred: Sequence[Any]) -> None:
        """What inspect() (and so /health and status) shows: the orders this plan left waiting, per stale book."""
        waiting: dict[str, int] = {}
        for d in deferred:
            if is_stale_reason(d.reason):
                for symbol in symbols_of(d.reason):
                    waiting[symbol] = waiting.get(symbol, 0) + 1
        self._waiting_on_stale = waiting

    def _give_up_on(self, deferred: Sequence[Any]) -> None:
        """Orders deferred too long for a lasting reason are rejected with it (core/late_reject.py)."""
        now = int(time.time() * 1000)
        give_up: dict[int, list[tuple[str, str]]] = {}
        for oid, reason in self._stuck.update(deferred, now):
            give_up.setdefault(shard_of_order(oid, self.o.order_shards), []).append((oid, reason))
        if give_up:
            self._reject_seq += 1
            key = f"reject:{self.o.name}:{now}:{self._reject_seq}"
            for k, rows in give_up.items():
                self._send_step(k, "reject", key, rows)
            self._counts["late_rejects"] += sum(len(rows) for rows in give_up.values())

    def _engaged(self, batch_id: str, answers: Sequence[Sequence[tuple[str, Decimal]] | None],
                 with_submit: bool = False) -> None:
        """The shards' answer to an engage: size the batch to it, then queue the batch's next steps (with_submit:
        its exchange orders are already on their way). Runs again identically if a restart re-drives the engage
        (the shards answer the same)."""
        if batch_id not in self.engine.batches:
            return  # a replay after the batch was already sized and closed
        if any(a is None for a in answers):
            return  # a shard says the batch completed: nothing left to queue
        engaged = {oid: amount for rows in answers for oid, amount in rows}  # type: ignore[union-attr]
        if not self.engine.adjust_engagements(batch_id, engaged, orders_out=with_submit):
            self._note(f"{batch_id}: no order could be engaged (cancelled meanwhile); "
                        + ("what its exchange orders buy goes to inventory" if with_submit else "batch dropped"))
            return
        if with_submit:
            return
        sent = self.engine.sent_orders(batch_id)
        if sent:
            # Carried inventory is assigned with the batch's first exchange fills (one round, one settle call per
            # shard at the end) rather than in a round of its own while the exchange orders go out.
            self._outbox.append(_Action("submit", batch_id, {}, tuple(s.order for s in sent)))
            self._counts["asset_orders"] += len(sent)
        else:
            done = self.engine.complete_if_no_orders(batch_id)  # served wholly from inventory
            if done is not None:
                self._queue_complete(done)

    def _every_symbol(self) -> list[str]:
        return sorted({a.symbol for b in self.engine.baskets.values() for a in b.assets})

    async def _order_budget(self) -> int:
        """Exchange orders the next batch may carry: what the sender can send now. An index too big for even an
        empty window is not held back: with the window empty it may take everything (the sender paces it)."""
        available, capacity = await self._call(self.o.sender_name, "order_budget")
        if available >= capacity:
            return self.o.order_budget
        return min(self.o.order_budget, available)

    async def _pending(self) -> list[PendingOrder]:
        lists = await asyncio.gather(*(self._call(orders_shard_name(k), "pending", self.o.pending_limit)
                                       for k in range(self.o.order_shards)))
        # Shards are FIFO each; interleaving them keeps every shard's oldest orders at the front.
        out: list[PendingOrder] = []
        for i in range(max((len(x) for x in lists), default=0)):
            out.extend(x[i] for x in lists if i < len(x))
        return out

    async def _asks(self, pending: Sequence[PendingOrder]) -> _Books:
        return await self._asks_for(sorted({a.symbol for o in pending if o.index in self.engine.baskets
                                            for a in self.engine.baskets[o.index].assets}))

    async def _asks_for(self, symbols: Sequence[str]) -> _Books:
        groups: dict[int, list[str]] = {}
        for s in symbols:
            groups.setdefault(shard_of(s, self.o.market_shards), []).append(s)
        keys = list(groups)
        answers = await asyncio.gather(*(self._call(shard_name(k), "liquidity", groups[k], Side.BUY,
                                                    self.limits.max_levels, True) for k in keys))
        asks: dict[str, list[tuple[Decimal, Decimal]]] = {}
        stale: set[str] = set()
        for levels, stale_here in answers:
            asks.update(levels)
            stale.update(stale_here)
        for s in stale:
            asks.pop(s, None)
        books = _Books(asks, frozenset(stale))
        if symbols:
            self._stale_books = books.stale
        return books

    def _queue_fills(self, batch_id: str, deltas: Sequence[Any], rounds: int | None = None) -> None:
        by_shard: dict[int, list[Any]] = {}
        for d in deltas:
            by_shard.setdefault(shard_of_order(d.order_id, self.o.order_shards), []).append(d)
        key = f"{batch_id}:{len(self.engine.batches[batch_id].rounds) if rounds is None else rounds}"
        for k, rows in by_shard.items():
            self._send_step(k, "fills", key, rows)

    def _queue_complete(self, done: CompletedBatch) -> None:
        if done.last_fills:
            self._queue_fills(done.batch_id, done.last_fills, done.rounds)  # the shard applies both in one write
        by_shard: dict[int, list[Any]] = {}
        for e in done.engagements:
            r = BatchOrderResult(e.order_id, done.filled_units[e.order_id], tuple(done.lines[e.order_id]))
            by_shard.setdefault(shard_of_order(e.order_id, self.o.order_shards), []).append(r)
        for k, rows in by_shard.items():
            self._send_step(k, "complete", done.batch_id, rows)
        self._counts["completed"] += 1
        for entry in reversed(self._history):  # the batch time, for the monitor (diagnostic: memory only)
            if entry["batch_id"] == done.batch_id:
                entry["completed_ms"] = int(time.time() * 1000)
                break

    def _send_step(self, shard: int, kind: str, key: str, payload: Sequence[Any]) -> None:
        """Queue a step for a shard's hand-off: the next commit appends it, with the state that implies it."""
        field = {"fills": "fills", "complete": "results", "reject": "rejections"}[kind]
        seq = self._step_seqs[shard] = self._step_seqs.get(shard, 0) + 1
        raw = ShardStepRecord.model_validate({"step": {"kind": kind, "key": key, field: list(payload)}}).dump()
        self._steps_out.setdefault(shard, []).append((seq, raw))

    # ------------------------------------------------------------------ the outbox
    async def _drain(self) -> None:
        """Drive the outbox in order; a step is popped only after it succeeded, and the progress is committed once
        the outbox is empty (one write for a whole chain of steps: fills, then completion). A crash in between
        re-drives the steps not yet committed, which is safe because every step is idempotent on its receiver."""
        if not self._outbox:
            if any(self._steps_out.values()):
                await self._commit()
            return
        while self._outbox:
            action = self._outbox[0]
            steps = 1
            began = time.time()
            if (action.kind == "engage" and getattr(action, "with_submit", False) and len(self._outbox) > 1
                    and self._outbox[1].kind == "submit" and self._outbox[1].key == action.key):
                await self._engage_and_submit(action, self._outbox[1])
                action, steps = dataclasses.replace(action, kind="engage+submit"), 2  # (its label in step_ms)
            else:
                try:
                    await self._run(action)
                except Exception as e:  # noqa: BLE001  (not a restart: a refusal that retrying will not change)
                    self._error(f"{action.kind} {action.key} dropped: {e!r}")
            if self._history and self._history[-1]["batch_id"] == action.key.split(":")[0]:  # diagnostics
                self._history[-1].setdefault("step_ms", {})[action.kind] = round(1000 * (time.time() - began), 1)
            del self._outbox[:steps]
        await self._commit()

    async def _engage_and_submit(self, engage: _Action, submit: _Action) -> None:
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
        self._engaged(engage.key, engaged, with_submit=True)
        if isinstance(submitted, Exception):
            self._error(f"submit {submit.key} dropped: {submitted!r}")
        else:
            self._submitted(submit.key, submitted)

    async def _submit_call(self, a: _Action) -> list[Any]:
        return await self._call(self.o.sender_name, "submit", a.key, packed(list(a.orders)))

    def _submitted(self, batch_id: str, results: Sequence[Any]) -> None:
        rejected = [f"{batch_id}.{r.symbol}.0" for r in results if not r.accepted]
        if rejected:
            self._counts["rejected_orders"] += len(rejected)
            refused = [(r.symbol, r.filter, r.reason) for r in results if not r.accepted]
            self._note(f"{batch_id}: sender refused before sending {refused}")  # handled: the orders go on
            for done in self.engine.on_settled(rejected):  # nothing will ever fill them: they are settled
                self._queue_complete(done)

    async def _run(self, a: _Action) -> None:
        if a.kind == "submit":
            self._submitted(a.key, await self._submit_call(a))
            return
        answers = await self._shard_calls(a)
        self._after_shard_calls(a, answers)

    async def _shard_calls(self, a: _Action) -> list[Any]:
        """An engage: one call per shard (its answer sizes the batch)."""
        keys = sorted(a.by_shard)
        try:
            return await asyncio.gather(*(self._call(orders_shard_name(k), "engage", a.key,
                                                     packed(list(a.by_shard[k]))) for k in keys))
        finally:
            self._demand_version += 1  # engaged (or maybe, if it failed): pending may differ

    def _after_shard_calls(self, a: _Action, answers: Sequence[Any]) -> None:
        self._engaged(a.key, answers)

    # ------------------------------------------------------------------ executions from the sender
    async def _read_executions(self) -> None:
        """Read the sender's executions after the cursor, batch by batch, for as long as the solver runs. Each
        wait is bounded (idle_poll_ms) so that a cursor moved back by a reload is read from again soon."""
        loop = asyncio.get_running_loop()
        pacer = self.o.retry.pacer()
        while True:
            try:
                entries = await self._read_after(self._cursor, self.o.idle_poll_ms)
                deadline = loop.time() + self.o.executions_linger_ms / 1000
                while entries and len(entries) < self.o.executions_batch and self._batch_still_open(entries):
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

    def _batch_still_open(self, entries: Sequence[Execution]) -> bool:
        """True if a batch these executions belong to still has exchange orders without their completion here
        (its answers come within tens of ms: waiting for them settles the batch in one round)."""
        done: dict[str, set[str]] = {}  # batch id -> symbols whose completion is among the entries
        for e in entries:
            batch_id = self._known(e.client_order_id)
            if batch_id is not None:
                symbols = done.setdefault(batch_id, set())
                if isinstance(e, OrderDone):
                    symbols.add(e.symbol)
        return any(self.engine.batches[b].open - symbols for b, symbols in done.items())

    async def _on_executions(self, executions: Sequence[Execution]) -> None:
        """Turn executions into deltas and completions, store them with the new cursor, then act on them."""
        called = time.time()
        async with self._lock:
            locked = time.time()
            # Steps a restart left in the outbox (an engage whose answer sizes the batch) go before any fill of
            # that batch is assigned: fills of a submitted batch can reach a solver that restarted in between.
            await self._drain()
            fresh = [e for e in executions if e.seq > self._cursor]
            self._counts["duplicates"] += len(executions) - len(fresh)
            if not fresh:
                return
            self._consume(fresh)
            consumed = time.time()
            await self._commit()
            committed = time.time()
            await self._drain()
            # Diagnostics (inspect): where the latest read of executions spent its time, in ms.
            self._last_fills = {"executions": len(fresh), "lock_wait_ms": round(1000 * (locked - called), 1),
                                "consume_ms": round(1000 * (consumed - locked), 1),
                                "commit_ms": round(1000 * (committed - consumed), 1),
                                "drain_ms": round(1000 * (time.time() - committed), 1)}

    def _known(self, cid: str) -> str | None:
        try:
            batch_id, symbol = self.engine.parse_client_order_id(cid)
        except KeyError:
            return None
        batch = self.engine.batches.get(batch_id)
        return batch_id if batch is not None and symbol in batch.sent else None

    def _consume(self, entries: Sequence[Execution]) -> None:
        by_batch: dict[str, list[tuple[str, ExchangeFill]]] = {}
        dones: list[str] = []
        for e in entries:
            if e.seq <= self._cursor:
                continue
            self._cursor = e.seq
            batch_id = self._known(e.client_order_id)
            if batch_id is None:
                self._counts["foreign"] += 1  # not ours, or a batch completed before a restart replayed it
                continue
            if isinstance(e, SenderFill):
                self._counts["fills"] += 1
                by_batch.setdefault(batch_id, []).append((e.client_order_id, e.fill))
            elif isinstance(e, OrderDone):
                self._counts["dones"] += 1
                dones.append(e.client_order_id)
        for batch_id, fills in by_batch.items():  # one round per batch: one call per shard per round
            self._counts["fill_calls"] += 1
            deltas = self.engine.on_fills(fills)
            if deltas:
                self._queue_fills(batch_id, deltas)
        for done in self.engine.on_settled(dones):
            self._queue_complete(done)

    # ------------------------------------------------------------------ quotes
    async def quote(self, requests: Sequence[NewQuote]) -> list[list[Any]]:
        """Quote requests (the gateway's, batched): index units each amount buys now, sized like a batch of that
        order alone on the live books (core/index_quote.py). One liquidity call per market shard for all of them."""
        wanted = [r for r in requests if r.side is Side.BUY and r.symbol in self.engine.baskets]
        books = await self._asks([PendingOrder("quote", r.symbol, r.amount) for r in wanted]) if wanted else None
        asks, stale = (books.asks, books.stale) if books is not None else ({}, frozenset())
        out: list[list[Any]] = []
        for r in requests:
            if r.side is not Side.BUY:
                out.append([QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNSUPPORTED_SIDE, "only buy quotes")])
                continue
            q = quote_index(r.symbol, r.amount, self.engine.baskets, asks, self.engine.filters, self.limits,
                            stale=stale)
            if q.problem == "UNKNOWN_INDEX":
                out.append([QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNKNOWN_INDEX,
                                         f"unknown index {r.symbol!r}")])
            elif q.problem is not None and is_stale_reason(q.problem):
                out.append([QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE,
                                         f"stale book: {', '.join(symbols_of(q.problem))} (no quote until it is "
                                         f"fresh again)")])
            elif q.problem is not None:
                out.append([QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE,
                                         f"no price to quote from ({q.problem})")])
            else:
                out.append([QuoteAccepted(r.user, r.client_quote_id),
                            QuoteResult(r.user, r.client_quote_id, q.units)])
        return out

    async def holdings(self) -> dict[str, Any]:
        """For the reserves check, per base asset: inventory, in flight and assigned lots (what completed batches
        delivered the shards count), the cost of the first two, the executions not consumed yet, and the baskets.
        Taken between two steps, never halfway through one."""
        async with self._lock:
            e = self.engine
            base = {s: f.base_asset for s, f in e.filters.items()}
            stock = [lot for lots in e.inventory.values() for lot in lots]
            moving = [lot for b in e.batches.values() for lot in (*b.pending_lots, *b.allocation.leftovers())]
            unconsumed = [SenderExecutionRecord.load(p).entry
                          for _, p in await self._executions.since(self._redis, self._cursor)]
            return {"cursor": self._cursor, "unconsumed": unconsumed, "base_assets": base,
                    "quote_asset": e.quote_asset,
                    "inventory": {a: str(q) for a, q in lots_held(stock, base).items()},
                    "in_flight": {a: str(q) for a, q in lots_held(moving, base).items()},
                    "inventory_cost": str(lots_cost(stock)), "in_flight_cost": str(lots_cost(moving)),
                    "assigned": {a: str(q) for a, q in assigned_in(e.batches.values(), e.filters).items()},
                    "baskets": {i: {base[s]: str(q) for s, q in bk.quantities().items()}
                                for i, bk in e.baskets.items()}}

    # ------------------------------------------------------------------ views
    async def wait_quiet(self, timeout_s: float = 60.0) -> bool:
        """True once no batch is in flight, the outbox is empty and every shard applied every step (polled on the
        tick, for tests and the demo)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.engine.batches or self._outbox or any(self._steps_out.values()) or await self._steps_backlog():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.o.tick_interval_ms / 1000)
        return True

    async def _steps_backlog(self) -> int:
        return sum([await solver_steps(self.o.shard_prefix, k).backlog(self._redis)
                    for k in range(self.o.order_shards)])

    async def inspect(self) -> dict[str, Any]:
        e = self.engine
        return {
            "restarted": self._restarted, "cursor": self._cursor, "batch_seq": e.batch_seq,
            "batches_in_flight": {b.batch_id: {"orders": [x.order_id for x in b.plan.engagements],
                                               "open": sorted(b.open)} for b in e.batches.values()},
            "in_flight_notional": str(e.in_flight_notional()), "inventory_units": e.inventory_units(),
            "outbox": [[a.kind, a.key] for a in self._outbox],
            "history": list(self._history), "counts": dict(self._counts), "errors": list(self._errors),
            "notes": list(self._notes),
            "last_fills": self._last_fills,
            # Books stale at the last read, and per stale book the orders the last plan left waiting for it.
            "stale_books": sorted(self._stale_books), "waiting_on_stale_books": dict(self._waiting_on_stale),
        }


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

"""`orders-{k}`: the index-order shard, owner of its users' index order books and collateral ledgers.

Thin around core's ShardBooks (the rules) and protocol's BooksApp (requests to reports). Every call that changes
state writes, in ONE MULTI, the users it touched, its bookkeeping and its reports (appended to its reports
hand-off) BEFORE it answers; a failed write reloads the last commit. Engine calls are idempotent by batch id or
the caller's key.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import ray
import redis
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from core.batch_planner import Engagement, PendingOrder
from core.batch_result import BatchOrderResult
from core.chain_events import CollateralDeposit, DepositReversal, TokenDeposit
from core.arrival import ArrivalBoard
from core.clock import SystemClock
from core.collateral_ledger import USDC_UNIT
from core.collateral_route import FeeCharge
from core.index_order import user_key
from core.invoice import MintInvoice
from core.lot_assignment import AssignedFill
from core.mint_request import MintRequest
from core.sell_plan import PendingSell
from core.shard_assignment import shard_name, shard_of
from core.shard_books import ShardBooks, Step, TokenStep
from core.withdrawal import Withdrawal, WithdrawalReport, WithdrawalRequest
from protocol.books_app import BooksApp
from protocol.gc_tuning import tune_gc_once
from protocol.indexmaker_app import AppRequest, AppResponse, InvoiceIssued, NewOrder
from actors.logs import setup_logging
from actors.order_shards import orders_shard_name
from actors.packed import packed
from actors.ray_context import restarted_by_ray
from store.handoff import Entry, Handoff, execute, follow
from store.retry import RetryPolicy
from store.shard_records import ShardCompleted, ShardInvoice, ShardMeta, ShardReportRecord, ShardUser
from store.solver_records import ShardStepRecord
from store.streams import shard_reports, solver_steps
from store.withdrawal_records import ShardWithdrawal

log = logging.getLogger(__name__)

#: Invoices' shortfalls kept for the monitor between its polls (it reads every few seconds).
SHORTFALLS_KEPT = 1000
S = TypeVar("S", Step, TokenStep)


# ============================================================================================== messages
@dataclass(frozen=True, slots=True)
class ShardReport:
    """A report for a user (an application response pushed after the fact), numbered by the shard's report log."""

    seq: int
    shard: int
    response: AppResponse


def report_of(raw: bytes) -> ShardReport:
    """An entry of a shard's reports hand-off, as the gateway takes it."""
    record = ShardReportRecord.load(raw)
    return ShardReport(record.seq, record.shard, record.app_response())


@dataclass(frozen=True)
class OrderBooksOptions:
    redis_url: str
    shards: int
    known_indexes: tuple[str, ...]
    unit: Decimal = USDC_UNIT
    #: An order whose unengaged rest is below this when a batch completes is finished; the rest goes back.
    order_dust: Decimal = Decimal("0.05")
    #: ... and so is an order whose rest is below this fraction of what it did not cancel: sized at the expected
    #: cost, a batch spends all but the price buffer and fee headroom (~0.15 %), and buying the rest would take a
    #: second batch of orders padded to the exchange's minimum notional, for almost nothing.
    rest_return_ratio: Decimal = Decimal("0.005")
    #: The solver to wake when new orders arrive (it also ticks on its own; None: never wake it).
    solver_name: str | None = "solver"
    #: The minter to hand mintable orders to, after the commit that made them so (None: no minter).
    minter_name: str | None = None
    #: The Ray namespace the minter is found in (None: this job's; start_order_books sets the shards' own).
    namespace: str | None = None
    max_open_orders: int = 100
    token_decimals: int = 18
    #: The chain id of a user known only from a deposit (the gateway's sessions bring their own).
    default_chain_id: int = 42161
    key_prefix: str = "orders"
    #: The withdrawal actor accepted withdrawals are handed to (None: none runs; the requests wait for its start).
    withdrawals_name: str | None = None
    #: `[withdrawal] minimum` (None: withdrawals are refused) and the chains they pay on.
    withdrawal_minimum: Decimal | None = None
    withdrawal_chains: frozenset[int] = frozenset()
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy.default)
    #: index -> symbol -> quantity per index unit: what an arrival value is computed from (empty: orders carry none).
    baskets: Mapping[str, Mapping[str, Decimal]] = dataclasses.field(default_factory=dict)
    #: The market-data shards the tops are read from (`[exchange] market_shards`; 0: none, no arrival values).
    market_shards: int = 0
    arrival_refresh_ms: int = 200
    arrival_max_age_ms: int = 2_000
    #: Sells taken on the wire (protocol/books_app.py); off until the burn and the Redeem Invoice are wired: only
    #: tests of the path that sells set it.
    accept_sells: bool = False

    @classmethod
    def from_settings(cls, settings: Any, known_indexes: Iterable[str], shards: int, **overrides: Any
                      ) -> "OrderBooksOptions":
        values: dict[str, Any] = {
            "redis_url": settings.redis_url, "shards": shards,
            "known_indexes": tuple(sorted(known_indexes)), "unit": settings.collateral.unit,
            "order_dust": settings.collateral.order_dust,
            "rest_return_ratio": settings.collateral.rest_return_ratio,
            "max_open_orders": settings.collateral.max_open_orders_per_user,
            "token_decimals": settings.chain.index_token_decimals,
            "default_chain_id": settings.chain.arbitrum_chain_id, "retry": RetryPolicy.from_settings(settings),
            "market_shards": settings.exchange.market_shards, "arrival_refresh_ms": settings.arrival.refresh_ms,
            "arrival_max_age_ms": settings.arrival.max_age_ms}
        values.update(overrides)
        return cls(**values)


# ============================================================================================== the actor
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class IndexOrderBooks:
    def __init__(self, shard: int, options: OrderBooksOptions) -> None:
        setup_logging(f"orders-{shard}")
        self.k = shard
        self.o = options
        self._clock = SystemClock()
        p = f"{options.key_prefix}:{shard}"
        # The idempotency records (answers of completed batches, keys of applied steps) only grow: each is written
        # once, in the commit that adds it, to a hash / set of its own, instead of inside the meta blob that every
        # commit rewrites whole (a day of batches would make each commit write megabytes).
        # Invoices likewise (one field per order, written once): a user's snapshot, rewritten whenever the user
        # is touched, would otherwise carry every invoice the user ever had.
        self._keys = {"users": f"{p}:users", "meta": f"{p}:meta", "outbox": f"{p}:outbox",
                      "completed": f"{p}:completed", "fill_keys": f"{p}:fill_keys", "invoices": f"{p}:invoices",
                      "withdrawals": f"{p}:withdrawals"}
        self._reports = shard_reports(options.key_prefix, shard)
        self._steps = solver_steps(options.key_prefix, shard)
        self._steps_task: asyncio.Task | None = None
        self._arrival_task: asyncio.Task | None = None
        self._arrival_reads = {"refreshes": 0, "failures": 0}
        #: The shortfall of each invoice issued, numbered, for the monitor's histogram (memory only, bounded).
        self._shortfalls: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=SHORTFALLS_KEPT)
        self._shortfall_seq = 0
        self._epoch = uuid.uuid4().hex[:12]  # this instance: the monitor tells a restart's numbering apart by it
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._lock = asyncio.Lock()
        self._started = False
        self._solver: Any = None
        self._solver_retry_at = 0.0  # monotonic time before which a failed solver lookup is not repeated
        self._peers: dict[str, Any] = {}  # actors pushed to (the minter, the withdrawal actor), by name
        self._peer_retry_at: dict[str, float] = {}  # monotonic time before which a failed lookup is not repeated
        self._last_handle: dict[str, Any] | None = None
        self._restarted = restarted_by_ray()
        self._load()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # outside Ray (a test drives the class): nothing to push to, nothing to read
        self._ensure_started()  # the solver's steps are read from now on, after a restart too
        self._push_mints(self.shard.mint_pending())  # a push lost in a crash after its commit goes out again
        self._push_withdrawals(self.shard.open_withdrawal_requests())  # and so is a withdrawal's

    # ------------------------------------------------------------------ state
    def _fresh(self) -> None:
        o = self.o
        self.shard = ShardBooks(o.known_indexes, clock=self._clock, unit=o.unit, max_open_orders=o.max_open_orders,
                                token_decimals=o.token_decimals, order_dust=o.order_dust,
                                rest_return_ratio=o.rest_return_ratio,
                                arrivals=ArrivalBoard(o.baskets, o.arrival_max_age_ms))
        self.app = BooksApp(self.shard, default_chain_id=o.default_chain_id, withdrawal_minimum=o.withdrawal_minimum,
                            withdrawal_chains=o.withdrawal_chains, accept_sells=o.accept_sells)
        self._report_seq = 0
        self._step_cursor = self._steps_acked = 0  # the last solver step applied; as stored (and trimmed to)
        self._backlog = 0  # the reports hand-off's length at the last view
        self._legacy_reports: list[bytes] = []  # kept in a sorted set by older code: into the hand-off, once
        self._errors: list[str] = []
        #: Handled races worth seeing (a cancel that beat an engage): not errors, so kept apart and in memory only.
        self._notes: collections.deque[str] = collections.deque(maxlen=50)
        self._counts = {"handled": 0, "commits": 0, "reports": 0, "replays": 0}

    def _load(self) -> None:
        """Replace memory with what Redis holds. Everything is read first and memory is replaced only then, so a
        read that fails leaves the shard as it was (never half empty). While Redis is unreachable (an outage, a
        restart) the read is retried: a shard restarted meanwhile waits for it instead of crash-looping."""
        def read() -> tuple[Any, ...]:
            r = redis.Redis.from_url(self.o.redis_url)
            try:
                users = r.hgetall(self._keys["users"])
                meta_raw = r.get(self._keys["meta"])
                meta = ShardMeta.load(meta_raw) if meta_raw else None
                outbox = r.zrange(self._keys["outbox"], 0, -1)
                completed = r.hgetall(self._keys["completed"])
                fill_keys = r.smembers(self._keys["fill_keys"])
                invoices = r.hgetall(self._keys["invoices"])
                withdrawals = r.hgetall(self._keys["withdrawals"])
                return users, meta, outbox, completed, fill_keys, invoices, withdrawals
            finally:
                r.close()

        users, meta, outbox, completed, fill_keys, invoices, withdrawals = self.o.retry.call_sync(
            read, lambda exc: log.warning("orders-%d: cannot read the store (%s); retrying", self.k, exc))
        self._fresh()
        st = self.shard
        for raw_key, raw in users.items():
            key, user = raw_key.decode(), ShardUser.load(raw)
            self.app.refs[key] = user.user_ref()
            st.books[key] = user.user_book(max_open_orders=self.o.max_open_orders, known_indexes=self.o.known_indexes)
            tokens = user.token_ledger()
            if tokens is not None:
                st.load_tokens(key, tokens)
            for oid, acc in user.lines.items():
                st.lines[oid] = {s: [u, q, v, f, list(ids)] for s, (u, q, v, f, ids) in acc.items()}
            for cl, inv in user.invoices.items():  # moved to the invoices hash by the next commit
                st.add_invoice(key, cl, inv)
        if meta:
            st.fifo = dict.fromkeys(meta.fifo)
            st.engaged = {b: list(rows) for b, rows in meta.engaged.items()}
            # Records still inside the meta (an older layout) move out to their own keys at the next commit.
            st.fill_keys = set(meta.fill_keys)
            st.completed = {b: [m.mint() for m in ms] for b, ms in meta.completed.items()}
            st.new_fill_keys, st.new_completed = set(st.fill_keys), set(st.completed)
            st.routes = {r: {k: str(v) for k, v in net.items()} for r, net in meta.routes.items()}
            self._report_seq = meta.report_seq
            self._step_cursor = self._steps_acked = meta.step_cursor
            self._errors = list(meta.errors)
            st.reversals = [r.model_dump(mode="json") for r in meta.reversals]
        for field, raw in invoices.items():
            key, cl = field.decode().split("\n", 1)
            st.add_invoice(key, cl, ShardInvoice.load(raw).invoice)
            st.new_invoices.discard((key, cl))  # stored already
        st.fill_keys.update(k.decode() for k in fill_keys)
        for wid, raw in withdrawals.items():
            st.withdrawals[wid.decode()] = ShardWithdrawal.load(raw).request
        for b, ms in completed.items():
            st.completed[b.decode()] = ShardCompleted.load(ms).requests()
        # Reports older code kept in a sorted set (those its subscriber had not taken, maybe a few it had: the
        # gateway's cursor drops those) go to the hand-off at the next commit.
        self._legacy_reports = sorted(outbox, key=lambda e: ShardReportRecord.load(e).seq)
        st.touched.clear()

    def _user_snapshot(self, key: str) -> str:
        book = self.shard.books[key]
        ref = self.app.ref(key)
        lines = self.shard.lines
        return ShardUser.of(ref, book, {o.order_id: lines[o.order_id] for o in book if o.order_id in lines},
                            self.shard.tokens.get(key)).dump()

    def _meta(self) -> str:
        st = self.shard
        return ShardMeta.model_validate({
            "fifo": list(st.fifo), "engaged": st.engaged,
            "routes": st.routes, "report_seq": self._report_seq, "step_cursor": self._step_cursor,
            "errors": self._errors[-50:],
            "reversals": st.reversals,
        }).dump()

    async def _commit(self, reports: Sequence[AppResponse] = ()) -> None:
        """One MULTI: touched users, the shard's bookkeeping, new reports; nothing is answered that is not stored.
        While Redis is away the SAME transaction is sent again (the lock holds the shard's other writes behind it):
        safe, as every command writes absolute values or appends under a fixed seq (store/handoff.py `execute`).
        Any other failure reloads the last commit and raises."""
        entries = []
        for resp in reports:
            self._report_seq += 1
            entries.append(ShardReport(self._report_seq, self.k, resp))
        st = self.shard
        touched, st.touched = set(st.touched), set()
        try:
            users = {k: self._user_snapshot(k) for k in touched}
            meta = self._meta()
            appended = [(e.seq, ShardReportRecord.of(e.seq, e.shard, e.response).dump()) for e in entries]
            legacy, self._legacy_reports = self._legacy_reports, []
            new_keys, new_completed = sorted(st.new_fill_keys), sorted(st.new_completed)
            answers = {b: ShardCompleted.of(st.completed[b]).dump() for b in new_completed}
            new_invoices = sorted(st.new_invoices)
            invoices = {f"{k}\n{cl}": ShardInvoice(invoice=st.invoices[(k, cl)]).dump() for k, cl in new_invoices}
            new_withdrawals = sorted(st.new_withdrawals)
            withdrawals = {w: ShardWithdrawal(request=st.withdrawals[w]).dump() for w in new_withdrawals}
            step_cursor = self._step_cursor

            async def write() -> None:
                p = self._redis.pipeline(transaction=True)
                if users:
                    p.hset(self._keys["users"], mapping=users)
                p.set(self._keys["meta"], meta)
                for raw in legacy:
                    self._reports.append(p, ShardReportRecord.load(raw).seq, raw)
                if legacy:
                    p.delete(self._keys["outbox"])
                for seq, raw in appended:
                    self._reports.append(p, seq, raw)
                if new_keys:
                    p.sadd(self._keys["fill_keys"], *new_keys)
                if answers:
                    p.hset(self._keys["completed"], mapping=answers)
                if invoices:
                    p.hset(self._keys["invoices"], mapping=invoices)
                if withdrawals:
                    p.hset(self._keys["withdrawals"], mapping=withdrawals)
                if step_cursor != self._steps_acked:
                    self._steps.ack(p, step_cursor)  # applied and stored: the solver's hand-off lets go
                await execute(p)

            def failed(exc: Exception) -> None:
                self._counts["commit_retries"] = self._counts.get("commit_retries", 0) + 1
                log.warning("orders-%d: commit failed (%s); sending it again", self.k, exc)

            await self.o.retry.call(write, failed)
        except BaseException:
            self._load()
            raise
        self._ensure_started()
        self._steps_acked = step_cursor
        st.new_fill_keys.difference_update(new_keys)
        st.new_completed.difference_update(new_completed)
        st.new_invoices.difference_update(new_invoices)
        st.new_withdrawals.difference_update(new_withdrawals)
        self._push_withdrawals([st.withdrawals[w] for w in new_withdrawals])  # stored: the actor may drive them
        self._counts["commits"] += 1
        self._counts["reports"] += len(entries)

    def _error(self, text: str) -> None:
        log.error("orders-%d: %s", self.k, text)
        self._errors.append(text)

    def _note(self, text: str) -> None:
        log.info("orders-%d: %s", self.k, text)
        self._notes.append(text)

    def _log_step(self, step: S) -> S:
        """Log and keep what a core step says the operator should see; count its replays."""
        for text in step.errors:
            self._error(text)
        for text in step.warnings:
            log.warning("orders-%d: %s", self.k, text)
        for text in step.notes:
            self._note(text)
        self._counts["replays"] += step.replays
        return step

    # ------------------------------------------------------------------ lifecycle
    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            tune_gc_once()  # the first call after the state is loaded
        if self._steps_task is None or self._steps_task.done():
            self._steps_task = asyncio.ensure_future(self._read_steps())
        if self.o.market_shards and self.o.baskets and (self._arrival_task is None or self._arrival_task.done()):
            self._arrival_task = asyncio.ensure_future(self._refresh_arrivals())

    async def _refresh_arrivals(self) -> None:
        """Every arrival_refresh_ms, one `top()` per market shard that owns a basket symbol, and the indexes'
        values recomputed from them (core.arrival.ArrivalBoard): an accepted order is stamped with the latest
        without a call of its own. A market shard not reachable leaves the values to age out (then orders carry
        none); it is looked up again at most once a second (ray.get_actor blocks this loop)."""
        board = self.shard.arrivals
        wanted = sorted({shard_of(s, self.o.market_shards) for s in board.symbols()})
        handles: dict[int, Any] = {}
        retry_at = 0.0
        while True:
            try:
                missing = [k for k in wanted if k not in handles]
                if missing and time.monotonic() >= retry_at:
                    ns = self.o.namespace or ray.get_runtime_context().namespace
                    for k in missing:
                        handles[k] = ray.get_actor(shard_name(k), namespace=ns)
                if len(handles) == len(wanted):
                    tops: dict[str, Any] = {}
                    for answer in await asyncio.gather(*(handles[k].top.remote() for k in wanted)):
                        tops.update(answer)
                    board = self.shard.arrivals  # a reload (_load) makes a new board: refresh the current one
                    board.refresh(tops, self._clock.now_ms())
                    self._arrival_reads["refreshes"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (a market shard not up yet, or restarting: values age out)
                self._arrival_reads["failures"] += 1
                log.info("orders-%d: market tops not read (%s); arrival values age out meanwhile", self.k, exc)
                handles.clear()
                retry_at = time.monotonic() + 1.0
            await asyncio.sleep(self.o.arrival_refresh_ms / 1000)  # the refresh period, not a wait for an event

    async def _read_steps(self) -> None:
        """The solver's steps for this shard (fill deltas, completions, give-ups), read after the stored cursor and
        applied in order; the cursor is stored, and the hand-off trimmed, with what they changed."""
        pacer = self.o.retry.pacer()
        reader = aioredis.Redis.from_url(self.o.redis_url)  # its blocking reads hold a connection

        async def apply(_: Handoff, entries: list[Entry]) -> None:
            mints: list[MintRequest] = []
            rest = False
            async with self._lock:
                reports: list[AppResponse] = []
                for seq, raw in entries:
                    if seq <= self._step_cursor:
                        continue  # applied already (read again after a failure between the commit and the trim)
                    step = ShardStepRecord.load(raw).step
                    if step.kind == "fills":
                        done = self.shard.apply_fills(step.key, step.fills)
                    elif step.kind == "complete":
                        done, rest = self.shard.complete_batch(step.key, step.results, step.sales), True
                    else:
                        done = self.shard.reject_orders(step.key, step.rejections)
                    self._log_step(done)
                    reports += self.app.step_reports(done)
                    mints += done.mints
                    self._step_cursor = seq
                await self._commit(reports)
            self._push_mints(mints)
            if rest:
                self._tell_solver("rest_pending")  # orders with a rest can be planned again

        async def pause(e: Exception) -> None:
            log.warning("orders-%d: reading the solver's steps failed (%s); retrying", self.k, e)
            await pacer.pause()

        try:
            await follow(reader, lambda: {self._steps: self._step_cursor}, apply, count=1_000, block_ms=1_000,
                         pause=pause, healthy=pacer.reset)
        finally:
            await reader.aclose()

    async def start(self) -> int:
        """Idempotent. Reports an older layout kept apart go into the hand-off now, not at the next change."""
        self._ensure_started()
        if self._legacy_reports:
            async with self._lock:
                await self._commit()
        return self.k

    # ------------------------------------------------------------------ the application (gateway side)
    async def handle(self, requests: Sequence[AppRequest]) -> list[AppResponse]:
        """The application interface for this shard's users: immediate responses, in order, stored first."""
        return [resp for group in await self.handle_each(requests) for resp in group]

    async def handle_each(self, requests: Sequence[AppRequest]) -> list[list[AppResponse]]:
        """Like `handle`, with the responses of each request apart (a cancel may answer twice), so that a caller
        that split a batch over shards can put every answer back in request order. One commit for the batch."""
        self._ensure_started()
        entered = time.time()
        async with self._lock:
            locked = time.time()
            out = self.app.handle_each(requests)
            self._counts["handled"] += len(requests)
            handled = time.time()
            if any(isinstance(r, NewOrder) for r in requests):
                # Woken before the write, so the solver reads the rate budget and the books meanwhile; its read of
                # the demand (`pending`) takes this lock, so it sees the new orders only once they are stored.
                self._wake_solver()
            await self._commit()
            # Diagnostics (inspect): where the last batch of requests spent its time, in ms.
            self._last_handle = {"at": round(entered * 1000), "lock_ms": round(1000 * (locked - entered), 2),
                                 "app_ms": round(1000 * (handled - locked), 2),
                                 "commit_ms": round(1000 * (time.time() - handled), 2), "requests": len(requests)}
            return out

    def _wake_solver(self) -> None:
        """Tell the solver there is new demand (fire and forget; one call per handled batch, never per order)."""
        self._tell_solver("wake")

    def _tell_solver(self, method: str) -> None:
        if self.o.solver_name is None:
            return
        now = time.monotonic()
        if self._solver is None and now < self._solver_retry_at:
            return  # looked it up and failed just now: ray.get_actor blocks this loop, so not on every batch
        try:
            if self._solver is None:
                self._solver = ray.get_actor(self.o.solver_name, namespace=self.o.namespace
                                             or ray.get_runtime_context().namespace)
            getattr(self._solver, method).remote()
        except Exception:  # noqa: BLE001  (no solver yet, or restarting: its own tick finds the orders)
            self._solver = None
            self._solver_retry_at = now + 1.0

    # ------------------------------------------------------------------ collateral (chain listener and router)
    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal] | None = None
                     ) -> None:
        """Book deposits, each holding `holds[key]` of itself for its route's cost (orders cannot engage it)."""
        self._ensure_started()
        async with self._lock:
            self._log_step(self.app.book_deposits(deposits, holds or {}))
            await self._commit()

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        """Routing-fee shares, each from its deposit's hold first (core.shard_books.ShardBooks.charge)."""
        self._ensure_started()
        async with self._lock:
            self._log_step(self.shard.charge(charges))
            await self._commit()

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal],
                     users: Mapping[str, str] | None = None) -> None:
        """A route is credited at the exchange: its real cost is charged, so the rest of each hold is released."""
        self._ensure_started()
        async with self._lock:
            self.shard.routed(route_id, net_by_deposit, users or {})
            await self._commit()

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        """Deposits dropped by a reorg after their credit (core.deposit_reversal): the user gets a cancel report
        per order cut and a DepositReversed. Idempotent per deposit key (the ledger remembers what it reversed)."""
        self._ensure_started()
        async with self._lock:
            done = self.shard.reverse(reversals)
            for key, r in done:
                log.warning("orders-%d: deposit %s of %s reversed by a reorg: %s taken back, %d orders cut, %s owed",
                            self.k, r.deposit_key, key, r.amount, len(r.cancelled), self.shard.books[key].ledger.debt)
            await self._commit(self.app.reversal_reports(done))

    # ------------------------------------------------------------------ index tokens (the chain listener)
    async def credit_tokens(self, deposits: Sequence[TokenDeposit]) -> int:
        """Confirmed index-token deposits to custody, credited for redemption to their senders (one call per batch
        of this shard's users); each user gets a TokenDeposit report "credited". Idempotent per deposit key.
        Returns how many were new."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.credit_tokens(deposits))
            if step.credited or step.errors:
                await self._commit(self.app.token_reports(step))
            else:
                self.shard.touched.clear()  # replays only: nothing changed, nothing to write
            return len(step.credited)

    async def reverse_tokens(self, deposit_keys: Sequence[str]) -> int:
        """Token deposits a reorg dropped after their credit (every shard is asked: a key names no user); those
        credited here are taken back once and reported "reversed". Returns how many were reversed here."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.reverse_tokens(deposit_keys))
            if step.reversed:
                await self._commit(self.app.token_reports(step))
            return len(step.reversed)

    # ------------------------------------------------------------------ the solver's side
    async def pending(self, limit: int = 10_000) -> list[PendingOrder]:
        """Orders that can be engaged now, oldest first: open, collateral remaining, nothing engaged. Only what is
        stored: a write in progress (new orders, which wake the solver before they are written) is waited for."""
        async with self._lock:
            return packed(self.shard.pending(limit))  # the solver's hot read: arrives as the list

    async def demand(self, limit: int = 10_000) -> tuple[list[PendingOrder], list[PendingSell]]:
        """The buys and sells that can be engaged now, one walk of the FIFO (core.shard_books `demand`): the
        solver's hot read; like `pending`, only what is stored."""
        async with self._lock:
            return packed(self.shard.demand(limit))

    async def engage(self, batch_id: str, engagements: Sequence[Engagement]) -> list[tuple[str, Decimal]] | None:
        """A batch takes the engaged collateral of its orders. Idempotent by batch id. Returns what was actually
        engaged per order (less than asked if a cancel came in since `pending`; the solver sizes the batch's
        orders to that), or None for a batch already completed."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.engage(batch_id, engagements))
            if not step.replays:
                await self._commit()
            return step.engaged

    async def apply_fills(self, key: str, fills: Sequence[AssignedFill]) -> int:
        """One solver round's fill deltas for this shard's orders; one progress report per order touched.
        Idempotent by `key` (batch_id:round). Returns the number of reports."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.apply_fills(key, fills))
            if step.replays:
                return 0
            reports = self.app.step_reports(step)
            await self._commit(reports)
            return len(reports)

    async def complete_batch(self, batch_id: str, results: Sequence[BatchOrderResult]) -> list[MintRequest]:
        """Close this shard's side of a batch: release unspent engagement, finish orders whose rest is dust, and
        return the mints owed for orders that finished with something filled. Idempotent by batch id."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.complete_batch(batch_id, results))
            if not step.replays:
                await self._commit(self.app.step_reports(step))
                self._push_mints(step.mints)
            return step.mints

    async def settle(self, key: str, fills: Sequence[AssignedFill], batch_id: str,
                     results: Sequence[BatchOrderResult]) -> list[MintRequest]:
        """A batch's last fill deltas and its completion in one call and one write (the usual end of a batch: the
        last exchange answers bring both). Each part stays idempotent by its own key."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.settle(key, fills, batch_id, results))
            await self._commit(self.app.step_reports(step))
            self._push_mints(step.mints)  # a replayed completion's too: the minter drops what it already holds
            return step.mints

    async def reject_orders(self, key: str, rejections: Sequence[tuple[str, str]]) -> list[MintRequest]:
        """The solver gives up on orders it could not plan for too long ((order id, reason) pairs): each open order
        with nothing engaged is closed with the reason, its collateral freed, and the user told. An order that had
        bought something ends filled and its mint is owed (returned). Idempotent by `key`."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.reject_orders(key, rejections))
            if step.replays:
                return []  # the first call pushed its mints to the minter
            await self._commit(self.app.step_reports(step))
            self._push_mints(step.mints)
            return step.mints

    async def minted(self, order_id: str, tx: str) -> MintInvoice:
        """The mint of `order_id` landed in `tx`: build the Mint Invoice from the order's lines, then mark the order
        minted, store both and report the invoice. Idempotent by (order, tx): the same tx again returns the stored
        invoice (core.shard_books.ShardBooks.minted)."""
        self._ensure_started()
        async with self._lock:
            invoice, new = self.shard.minted(order_id, tx)
            if new:
                await self._commit([InvoiceIssued(self.app.ref(invoice.user), invoice, invoice.minted_ms)])
                self._note_shortfalls([invoice])
            return invoice

    async def minted_batch(self, landed: Sequence[tuple[str, str]]) -> list[MintInvoice | str]:
        """The minter's report of a batch: `minted` for each (order id, tx), in one write. Answers per item the
        invoice, or why it was refused (the order stays mint-pending and the minter tries again)."""
        self._ensure_started()
        async with self._lock:
            out: list[MintInvoice | str] = []
            reports: list[AppResponse] = []
            for order_id, tx in landed:
                before = set(self.shard.touched)  # a stored invoice's answer clears the set: the others stay
                try:
                    invoice, new = self.shard.minted(order_id, tx)
                except Exception as exc:  # noqa: BLE001  (built before marked: the order is left as it was)
                    self._note(f"mint of {order_id} in {tx} not taken: {exc!r}")
                    out.append(f"{type(exc).__name__}: {exc}")
                    continue
                finally:
                    self.shard.touched |= before
                out.append(invoice)
                if new:
                    reports.append(InvoiceIssued(self.app.ref(invoice.user), invoice, invoice.minted_ms))
            if reports:
                await self._commit(reports)
                self._note_shortfalls([r.invoice for r in reports if isinstance(r, InvoiceIssued)])
            else:
                self.shard.touched.clear()  # nothing new: nothing to write
            return out

    def _note_shortfalls(self, invoices: Iterable[MintInvoice]) -> None:
        """Stored invoices' shortfalls, for the monitor (inspect "shortfalls"); an invoice without one is left out."""
        for inv in invoices:
            if inv.shortfall_bps is not None:
                self._shortfall_seq += 1
                self._shortfalls.append((self._shortfall_seq, inv.index, str(inv.shortfall_bps)))

    async def mint_pending(self) -> list[MintRequest]:
        """Orders finished with something filled and not minted yet (the minter's catch-up after its restart)."""
        return self.shard.mint_pending()

    def _push_mints(self, mints: Sequence[MintRequest]) -> None:
        """Hand committed mintable orders to the minter: fire and forget, one call per commit. A push lost while
        the minter is down is found by its own catch-up (it asks every shard on its start)."""
        if mints:
            self._push(self.o.minter_name, "mint", self.k, list(mints))

    def _push_withdrawals(self, requests: Sequence[WithdrawalRequest]) -> None:
        """Hand committed withdrawal requests to the withdrawal actor, like mints to the minter (its start asks
        every shard for the open ones)."""
        if requests:
            self._push(self.o.withdrawals_name, "submit", self.k, list(requests))

    def _push(self, name: str | None, method: str, *args: Any) -> None:
        """Fire and forget `name.method(*args)`; a peer not reached is looked up again after a second (lookups
        block this loop) and finds what it missed by its own catch-up."""
        if name is None:
            return
        now = time.monotonic()
        if self._peers.get(name) is None and now < self._peer_retry_at.get(name, 0.0):
            return
        try:
            if self._peers.get(name) is None:
                self._peers[name] = ray.get_actor(name, namespace=self.o.namespace
                                                  or ray.get_runtime_context().namespace)
            getattr(self._peers[name], method).remote(*args)
        except Exception as exc:  # noqa: BLE001  (not started yet, or restarting: it asks every shard when it starts)
            log.info("orders-%d: %s not reached (%s); it asks for this when it starts", self.k, name, exc)
            self._peers[name] = None
            self._peer_retry_at[name] = now + 1.0

    # ------------------------------------------------------------------ withdrawals
    async def withdrawal_requests(self) -> list[WithdrawalRequest]:
        """The accepted withdrawals whose hold is open (the withdrawal actor's catch-up at its start)."""
        return self.shard.open_withdrawal_requests()

    async def withdrawal_progress(self, reports: Sequence[WithdrawalReport], done: Sequence[Withdrawal]) -> int:
        """Stages withdrawals of this shard's users reached (their users' reports), and the final ones, settled
        from their holds (core.shard_books.ShardBooks.settle_withdrawals); one commit. Idempotent per withdrawal."""
        self._ensure_started()
        async with self._lock:
            self._log_step(self.shard.settle_withdrawals(done))
            await self._commit(self.app.withdrawal_reports(reports))
        return len(reports)

    async def holdings(self) -> dict[str, Any]:
        """What this shard's orders hold, for the reserves check (core.shard_books.ShardBooks.holdings). Reads
        memory only: every order the shard keeps, once per check (reserves.interval_s)."""
        indexes, delivered = self.shard.holdings()
        return {"indexes": {i: {k: str(v) for k, v in acc.items()} for i, acc in sorted(indexes.items())},
                "delivered": {s: str(q) for s, q in sorted(delivered.items())}}

    # ------------------------------------------------------------------ views
    async def user(self, address: str) -> dict[str, Any] | None:
        """One user's book and ledger (plain data), or None."""
        book = self.shard.books.get(user_key(address))
        if book is None:
            return None
        tokens = self.shard.tokens.get(book.user)
        return book.to_dict() | {"invoices": {cl: inv.model_dump(mode="json")
                                              for cl, inv in self.shard.invoices_of.get(book.user, {}).items()},
                                 "tokens": None if tokens is None else tokens.to_dict()}

    async def _undelivered(self) -> int:
        """Reports the gateway has not taken yet (the hand-off's length); while the store is away, the last count
        read: a view must answer when the store does not (the monitor reports the store itself)."""
        try:
            self._backlog = await asyncio.wait_for(self._reports.backlog(self._redis), 1.0)
        except (redis.ConnectionError, redis.TimeoutError, asyncio.TimeoutError) as exc:
            log.info("orders-%d: reports backlog unknown while the store is away (%s)", self.k, exc)
        return self._backlog

    async def inspect(self) -> dict[str, Any]:
        open_orders = [o.to_dict() for b in self.shard.books.values() for o in b.open_orders()]
        open_per_index = collections.Counter(o["index"] for o in open_orders)
        return {
            "shard": self.k, "restarted": self._restarted, "users": len(self.shard.books),
            "ledgers": {k: b.ledger.to_dict() for k, b in self.shard.books.items()},
            "open_orders": open_orders, "fifo": len(self.shard.fifo),
            # Open orders per index (units minted and owed per index: holdings(), the reserves check's read).
            "open_per_index": dict(open_per_index),
            "engaged_batches": {b: [[o, str(a)] for o, a in rows] for b, rows in self.shard.engaged.items()},
            "completed_batches": len(self.shard.completed), "fill_keys": len(self.shard.fill_keys),
            "report_seq": self._report_seq, "undelivered": await self._undelivered(),
            "invoices": len(self.shard.invoices), "errors": list(self._errors),
            "notes": list(self._notes),
            "reversed_deposits": list(self.shard.reversals),
            "debts": {k: str(b.ledger.debt) for k, b in self.shard.books.items() if b.ledger.debt > 0},
            "token_debts": {k: owed for k, owed in ((k, {i: str(t.debt) for i, t in ledger.indexes.items() if t.debt})
                                                    for k, ledger in self.shard.tokens.items()) if owed},
            "counts": dict(self._counts), "last_handle": self._last_handle,
            # The latest arrival value per index (what an order accepted now is stamped with, if fresh enough).
            "arrival": {i: {"mid": str(v.mid), "touch": str(v.touch), "at_ms": v.at_ms}
                        for i, v in sorted(self.shard.arrivals.values.items())},
            "arrival_reads": dict(self._arrival_reads),
            "shortfalls": {"epoch": self._epoch, "recent": [list(x) for x in self._shortfalls]},
        }

    async def stop(self) -> None:
        if self._steps_task is not None:
            self._steps_task.cancel()
        if self._arrival_task is not None:
            self._arrival_task.cancel()
        await self._redis.aclose()


# ============================================================================================== launching
def start_order_books(options: OrderBooksOptions, *, namespace: str | None = None, detached: bool = False
                      ) -> list[Any]:
    """Create (or get) the `orders-{k}` shards; returns the handles in shard order."""
    if namespace is not None and options.namespace is None:
        options = dataclasses.replace(options, namespace=namespace)
    handles = []
    for k in range(options.shards):
        opts: dict[str, Any] = {"name": orders_shard_name(k), "get_if_exists": True}
        if namespace is not None:
            opts["namespace"] = namespace
        if detached:
            opts["lifetime"] = "detached"
        handle = IndexOrderBooks.options(**opts).remote(k, options)
        handle.start.remote()
        handles.append(handle)
    return handles

"""`orders-{k}`: the IndexOrderBooks shard, owner of the index order books and collateral ledgers of its users.

Users are hashed to shards by address (actors/order_shards.py routes to them).

The shard is thin around core: its state and rules are core's ShardBooks (books, FIFO, engagements, fills,
completion, mints, invoices), the application side (validation, reason codes, reports) is protocol's BooksApp over
them. What the actor adds is durability, delivery and batching:

* Every call that changes state writes, in ONE Redis MULTI, the snapshot of each user it touched (one HSET), the
  shard's own bookkeeping (idempotency keys, engagements, completed batches) and the reports it produced (an
  outbox scored by report seq) BEFORE it answers. A failed write reloads the last committed state and raises, so
  memory never runs ahead of Redis. `__init__` reloads everything (a restart re-runs it).
* Engine calls are idempotent: `engage` and `complete_batch` by batch id, `apply_fills` by the caller's key
  (batch_id:round), `minted` by (order, tx), deposits and fees by their own keys (the ledger's).
* Reports (fills, closes, invoices) go to ONE registered subscriber in batches (one call per linger window), each
  with the shard's report seq; the subscriber drops seqs it has seen, and `reports_since(seq)` serves catch-up.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

import ray
import redis
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from core.batch_planner import Engagement, PendingOrder
from core.batch_result import BatchOrderResult
from core.chain_events import CollateralDeposit, DepositReversal
from core.clock import SystemClock
from core.collateral_ledger import USDC_UNIT
from core.collateral_route import FeeCharge
from core.index_order import user_key
from core.invoice import MintInvoice
from core.lot_assignment import OrderFill
from core.mint_request import MintRequest
from core.shard_books import ShardBooks, Step
from protocol.books_app import BooksApp
from protocol.gc_tuning import tune_gc_once
from protocol.indexmaker_app import AppRequest, AppResponse, InvoiceIssued, NewOrder
from actors.logs import setup_logging
from actors.order_shards import orders_shard_name
from actors.packed import packed
from actors.ray_context import restarted_by_ray
from store.retry import RetryPolicy
from store.shard_records import ShardCompleted, ShardInvoice, ShardMeta, ShardReportRecord, ShardUser

log = logging.getLogger(__name__)


# ============================================================================================== messages
@dataclass(frozen=True, slots=True)
class ShardReport:
    """A report for a user (an application response pushed after the fact), numbered by the shard's report log."""

    seq: int
    shard: int
    response: AppResponse


def _report_of(record: ShardReportRecord) -> ShardReport:
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
    max_open_orders: int = 100
    token_decimals: int = 18
    #: The chain id of a user known only from a deposit (the gateway's sessions bring their own).
    default_chain_id: int = 42161
    key_prefix: str = "orders"
    delivery_batch: int = 5_000
    #: Reports may wait this long for company (fewer calls, later reports). 0: a commit's reports go at once; a
    #: commit already carries a whole step's reports (a batch's settle is one), so there is little to gather.
    delivery_linger_ms: int = 0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy.default)

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
            "default_chain_id": settings.chain.arbitrum_chain_id, "retry": RetryPolicy.from_settings(settings)}
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
                      "completed": f"{p}:completed", "fill_keys": f"{p}:fill_keys", "invoices": f"{p}:invoices"}
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._lock = asyncio.Lock()
        self._deliver_task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._subscriber: Any = None
        self._solver: Any = None
        self._solver_retry_at = 0.0  # monotonic time before which a failed solver lookup is not repeated
        self._last_handle: dict[str, Any] | None = None
        self._restarted = restarted_by_ray()
        self._load()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # the first call starts delivery
        if self._outbox:
            self._ensure_started()  # a restart re-drives what was committed and not yet delivered

    # ------------------------------------------------------------------ state
    def _fresh(self) -> None:
        o = self.o
        self.shard = ShardBooks(o.known_indexes, clock=self._clock, unit=o.unit, max_open_orders=o.max_open_orders,
                                token_decimals=o.token_decimals, order_dust=o.order_dust,
                                rest_return_ratio=o.rest_return_ratio)
        self.app = BooksApp(self.shard, default_chain_id=o.default_chain_id)
        self._report_seq = 0
        self._delivered = 0
        self._outbox: list[ShardReport] = []  # committed, not yet delivered
        self._subscriber_spec: dict[str, Any] | None = None
        self._errors: list[str] = []
        #: Handled races worth seeing (a cancel that beat an engage): not errors, so kept apart and in memory only.
        self._notes: collections.deque[str] = collections.deque(maxlen=50)
        self._counts = {"handled": 0, "commits": 0, "reports": 0, "delivery_calls": 0, "delivery_failures": 0,
                        "replays": 0}

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
                delivered = meta.delivered if meta else 0
                outbox = r.zrangebyscore(self._keys["outbox"], delivered + 1, "+inf")
                completed = r.hgetall(self._keys["completed"])
                fill_keys = r.smembers(self._keys["fill_keys"])
                invoices = r.hgetall(self._keys["invoices"])
                return users, meta, delivered, outbox, completed, fill_keys, invoices
            finally:
                r.close()

        users, meta, delivered, outbox, completed, fill_keys, invoices = self.o.retry.call_sync(
            read, lambda exc: log.warning("orders-%d: cannot read the store (%s); retrying", self.k, exc))
        self._fresh()
        st = self.shard
        for raw_key, raw in users.items():
            key, user = raw_key.decode(), ShardUser.load(raw)
            self.app.refs[key] = user.user_ref()
            st.books[key] = user.user_book(max_open_orders=self.o.max_open_orders, known_indexes=self.o.known_indexes)
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
            self._delivered = delivered
            self._subscriber_spec = meta.subscriber.model_dump() if meta.subscriber else None
            self._errors = list(meta.errors)
            st.reversals = [r.model_dump(mode="json") for r in meta.reversals]
        for field, raw in invoices.items():
            key, cl = field.decode().split("\n", 1)
            st.add_invoice(key, cl, ShardInvoice.load(raw).invoice)
            st.new_invoices.discard((key, cl))  # stored already
        st.fill_keys.update(k.decode() for k in fill_keys)
        for b, ms in completed.items():
            st.completed[b.decode()] = ShardCompleted.load(ms).requests()
        self._outbox = sorted((_report_of(ShardReportRecord.load(e)) for e in outbox), key=lambda e: e.seq)
        st.touched.clear()

    def _user_snapshot(self, key: str) -> str:
        book = self.shard.books[key]
        ref = self.app.ref(key)
        lines = self.shard.lines
        return ShardUser.of(ref, book, {o.order_id: lines[o.order_id] for o in book if o.order_id in lines}).dump()

    def _meta(self) -> str:
        st = self.shard
        return ShardMeta.model_validate({
            "fifo": list(st.fifo), "engaged": st.engaged,
            "routes": st.routes, "report_seq": self._report_seq, "delivered": self._delivered,
            "subscriber": self._subscriber_spec, "errors": self._errors[-50:], "reversals": st.reversals,
        }).dump()

    async def _commit(self, reports: Sequence[AppResponse] = ()) -> None:
        """One MULTI: touched users, the shard's bookkeeping, new reports; nothing is answered that is not stored.

        While Redis is unreachable (connection refused or dropped: an outage, a restart) the SAME transaction is
        sent again until it goes through; the caller holds the lock, so the shard's other writes wait behind it
        rather than fail (a failure would make the solver drop the step). Sending it again is safe: every command
        writes absolute values (snapshots, meta, outbox members scored by seq). Any other failure reloads memory
        from what Redis holds (the last commit) and raises."""
        entries = []
        for resp in reports:
            self._report_seq += 1
            entries.append(ShardReport(self._report_seq, self.k, resp))
        st = self.shard
        touched, st.touched = set(st.touched), set()
        try:
            users = {k: self._user_snapshot(k) for k in touched}
            meta = self._meta()
            outbox = {ShardReportRecord.of(e.seq, e.shard, e.response).dump(): e.seq for e in entries}
            delivered = self._delivered
            new_keys, new_completed = sorted(st.new_fill_keys), sorted(st.new_completed)
            answers = {b: ShardCompleted.of(st.completed[b]).dump() for b in new_completed}
            new_invoices = sorted(st.new_invoices)
            invoices = {f"{k}\n{cl}": ShardInvoice(invoice=st.invoices[(k, cl)]).dump() for k, cl in new_invoices}

            async def write() -> None:
                p = self._redis.pipeline(transaction=True)
                if users:
                    p.hset(self._keys["users"], mapping=users)
                p.set(self._keys["meta"], meta)
                if outbox:
                    p.zadd(self._keys["outbox"], outbox)
                if delivered:
                    p.zremrangebyscore(self._keys["outbox"], 0, delivered)
                if new_keys:
                    p.sadd(self._keys["fill_keys"], *new_keys)
                if answers:
                    p.hset(self._keys["completed"], mapping=answers)
                if invoices:
                    p.hset(self._keys["invoices"], mapping=invoices)
                await p.execute()

            def failed(exc: Exception) -> None:
                self._counts["commit_retries"] = self._counts.get("commit_retries", 0) + 1
                log.warning("orders-%d: commit failed (%s); sending it again", self.k, exc)

            await self.o.retry.call(write, failed)
        except BaseException:
            self._load()
            raise
        st.new_fill_keys.difference_update(new_keys)
        st.new_completed.difference_update(new_completed)
        st.new_invoices.difference_update(new_invoices)
        self._counts["commits"] += 1
        if entries:
            self._counts["reports"] += len(entries)
            self._outbox.extend(entries)
            self._ensure_started()
            assert self._wake is not None
            self._wake.set()

    def _error(self, text: str) -> None:
        log.error("orders-%d: %s", self.k, text)
        self._errors.append(text)

    def _note(self, text: str) -> None:
        log.info("orders-%d: %s", self.k, text)
        self._notes.append(text)

    def _log_step(self, step: Step) -> Step:
        """Log and keep what a core step says the operator should see; count its replays."""
        for text in step.errors:
            self._error(text)
        for text in step.warnings:
            log.warning("orders-%d: %s", self.k, text)
        for text in step.notes:
            self._note(text)
        self._counts["replays"] += step.replays
        return step

    # ------------------------------------------------------------------ lifecycle and delivery
    def _ensure_started(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
            tune_gc_once()  # the first call after the state is loaded
        if self._deliver_task is None or self._deliver_task.done():
            self._deliver_task = asyncio.ensure_future(self._deliver_loop())
        if self._outbox:
            self._wake.set()

    async def start(self) -> int:
        self._ensure_started()
        return self.k

    async def register_subscriber(self, name: str, namespace: str | None = None) -> int:
        """Push reports to the named actor's `on_reports(shard, seq_from, reports)` from now on, after the last seq
        delivered (kept across restarts). Returns the latest committed report seq."""
        async with self._lock:
            self._subscriber_spec = {"name": name, "namespace": namespace}
            self._subscriber = None
            await self._commit()
        self._ensure_started()
        return self._report_seq

    async def _deliver_loop(self) -> None:
        assert self._wake is not None
        pacer = self.o.retry.pacer()
        while True:
            await self._wake.wait()
            if self.o.delivery_linger_ms > 0:
                await asyncio.sleep(self.o.delivery_linger_ms / 1000)  # let a batch gather: one call carries it all
            self._wake.clear()
            while self._subscriber_spec is not None and self._outbox:
                entries = self._outbox[: self.o.delivery_batch]
                try:
                    if self._subscriber is None:
                        spec = self._subscriber_spec
                        self._subscriber = ray.get_actor(spec["name"], namespace=spec.get("namespace"))
                    self._counts["delivery_calls"] += 1
                    await self._subscriber.on_reports.remote(self.k, entries[0].seq, packed(entries))
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001  (subscriber restarting or gone: it catches up later)
                    self._counts["delivery_failures"] += 1
                    log.warning("orders-%d: delivery failed (%s); retrying", self.k, e)
                    self._subscriber = None
                    await pacer.pause()
                    continue
                pacer.reset()
                last = entries[-1].seq
                self._delivered = max(self._delivered, last)
                self._outbox = [e for e in self._outbox if e.seq > last]  # the cursor is saved with the next commit

    async def reports_since(self, seq: int, limit: int | None = None) -> list[ShardReport]:
        """Committed reports after `seq`, oldest first, still in the outbox (catch-up for a restarted subscriber)."""
        raw = await self._redis.zrangebyscore(self._keys["outbox"], seq + 1, "+inf",
                                              start=0 if limit else None, num=limit)
        return [_report_of(ShardReportRecord.load(e)) for e in raw]

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
        if self.o.solver_name is None:
            return
        now = time.monotonic()
        if self._solver is None and now < self._solver_retry_at:
            return  # looked it up and failed just now: ray.get_actor blocks this loop, so not on every batch
        try:
            if self._solver is None:
                self._solver = ray.get_actor(self.o.solver_name, namespace=ray.get_runtime_context().namespace)
            self._solver.wake.remote()
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

    # ------------------------------------------------------------------ the solver's side
    async def pending(self, limit: int = 10_000) -> list[PendingOrder]:
        """Orders that can be engaged now, oldest first: open, collateral remaining, nothing engaged. Only what is
        stored: a write in progress (new orders, which wake the solver before they are written) is waited for."""
        async with self._lock:
            return packed(self.shard.pending(limit))  # the solver's hot read: arrives as the list

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

    async def apply_fills(self, key: str, fills: Sequence[OrderFill]) -> int:
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
            return step.mints

    async def settle(self, key: str, fills: Sequence[OrderFill], batch_id: str,
                     results: Sequence[BatchOrderResult]) -> list[MintRequest]:
        """A batch's last fill deltas and its completion in one call and one write (the usual end of a batch: the
        last exchange answers bring both). Each part stays idempotent by its own key."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.settle(key, fills, batch_id, results))
            await self._commit(self.app.step_reports(step))
            return step.mints

    async def reject_orders(self, key: str, rejections: Sequence[tuple[str, str]]) -> list[MintRequest]:
        """The solver gives up on orders it could not plan for too long ((order id, reason) pairs): each open order
        with nothing engaged is closed with the reason, its collateral freed, and the user told. An order that had
        bought something ends filled and its mint is owed (returned). Idempotent by `key`."""
        self._ensure_started()
        async with self._lock:
            step = self._log_step(self.shard.reject_orders(key, rejections))
            if step.replays:
                return []  # the first answer's mints are the solver's already (it commits them before popping)
            await self._commit(self.app.step_reports(step))
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
            return invoice

    async def mint_pending(self) -> list[MintRequest]:
        """Orders finished with something filled and not minted yet (reconciliation after a restart)."""
        return self.shard.mint_pending()

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
        return book.to_dict() | {"invoices": {cl: inv.model_dump(mode="json")
                                              for cl, inv in self.shard.invoices_of.get(book.user, {}).items()}}

    async def inspect(self) -> dict[str, Any]:
        open_orders = [o.to_dict() for b in self.shard.books.values() for o in b.open_orders()]
        return {
            "shard": self.k, "restarted": self._restarted, "users": len(self.shard.books),
            "ledgers": {k: b.ledger.to_dict() for k, b in self.shard.books.items()},
            "open_orders": open_orders, "fifo": len(self.shard.fifo),
            "engaged_batches": {b: [[o, str(a)] for o, a in rows] for b, rows in self.shard.engaged.items()},
            "completed_batches": len(self.shard.completed), "fill_keys": len(self.shard.fill_keys),
            "report_seq": self._report_seq, "delivered_seq": self._delivered, "undelivered": len(self._outbox),
            "subscriber": self._subscriber_spec, "invoices": len(self.shard.invoices), "errors": list(self._errors),
            "notes": list(self._notes),
            "reversed_deposits": list(self.shard.reversals),
            "debts": {k: str(b.ledger.debt) for k, b in self.shard.books.items() if b.ledger.debt > 0},
            "counts": dict(self._counts), "last_handle": self._last_handle,
        }

    async def stop(self) -> None:
        if self._deliver_task is not None:
            self._deliver_task.cancel()
        await self._redis.aclose()


# ============================================================================================== launching
def start_order_books(options: OrderBooksOptions, *, namespace: str | None = None, detached: bool = False
                      ) -> list[Any]:
    """Create (or get) the `orders-{k}` shards; returns the handles in shard order."""
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

"""`orders-{k}`: the IndexOrderBooks shard, owner of the index order books and collateral ledgers of its users.

Users are hashed to shards by address (core.shard_assignment's stable hash of the lower-cased address), so the
gateway, the chain listener, the router and the solver all find a user's shard without asking anyone.

The shard is thin around core: the application side (validation, reason codes, reports) is protocol's in-process
application, composed here with a per-address book key; the engine side (engage, fills, completion, mint) calls
core's UserOrderBook. What it adds is durability and batching:

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
import json
import time
import logging
import pickle
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
from core.collateral_ledger import USDC_UNIT, CollateralError, CollateralLedger
from core.collateral_route import FeeCharge
from core.deposit_reversal import reverse_in_book
from core.index_order import OrderStateError, order_id_of
from core.index_order_book import UserOrderBook
from core.invoice import InvoiceLine, MintInvoice, build_invoice
from core.lot_assignment import AssetLine, OrderFill
from core.mint_request import MintRequest
from core.money import ZERO, D, quantize_up
from core.shard_assignment import shard_of
from protocol.envelope import UserRef
from protocol.gc_tuning import tune_gc_once
from protocol.indexmaker_app import (AppRequest, AppResponse, CancelDone, DepositReversed, GetInvoice, InvoiceIssued,
                                     InvoiceRefused, NewOrder, NewQuote, OrderAccepted, QuoteRefused)
from actors.logs import setup_logging
from actors.packed import packed
from actors.ray_context import restarted_by_ray
from protocol.inprocess_app import InProcessIndexMakerApp
from protocol.reason_codes import ReasonCode

log = logging.getLogger(__name__)


# ============================================================================================== routing
def orders_shard_name(k: int) -> str:
    return f"orders-{k}"


def user_key(address: str) -> str:
    """A user's key in books, order ids and stores: the address, lower-cased (EVM addresses are case-insensitive;
    the checksum casing of a signer and the lower case of a log must meet on one book)."""
    return address.lower()


def shard_of_user(address: str, shards: int) -> int:
    return shard_of(user_key(address), shards)


def user_of_order(order_id: str) -> str:
    """The user key of an index order id (`user:cl_ord_id`; an address holds no colon)."""
    return order_id.split(":", 1)[0]


def shard_of_order(order_id: str, shards: int) -> int:
    return shard_of(user_of_order(order_id), shards)


def split_by_shard(items: Iterable[Any], shards: int, address_of: Any) -> dict[int, list[Any]]:
    """Group items by the shard of `address_of(item)`, keeping their order: one call per shard."""
    out: dict[int, list[Any]] = {}
    for item in items:
        out.setdefault(shard_of_user(address_of(item), shards), []).append(item)
    return out


# ============================================================================================== messages
@dataclass(frozen=True, slots=True)
class ShardReport:
    """A report for a user (an application response pushed after the fact), numbered by the shard's report log."""

    seq: int
    shard: int
    response: AppResponse


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
    delivery_batch: int = 5_000
    #: Reports may wait this long for company (fewer calls, later reports). 0: a commit's reports go at once; a
    #: commit already carries a whole step's reports (a batch's settle is one), so there is little to gather.
    delivery_linger_ms: int = 0
    retry_ms: int = 200

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
            "default_chain_id": settings.chain.arbitrum_chain_id}
        values.update(overrides)
        return cls(**values)


# ============================================================================================== the application
class _ShardApp(InProcessIndexMakerApp):
    """Protocol's in-process application, with books keyed by address (lower case) and the user's latest UserRef
    kept for reports. Everything else (validation, reason codes, cancel, progress reports) is inherited."""

    def __init__(self, *args: Any, default_chain_id: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.default_chain_id = default_chain_id
        self.refs: dict[str, UserRef] = {}
        self.touched: set[str] = set()
        self.pushed: list[AppResponse] = []
        self.set_sink(self.pushed.extend)

    def book(self, user: UserRef) -> UserOrderBook:
        key = user_key(user.address)
        self.touched.add(key)
        self.refs.setdefault(key, user)
        book = self.books.get(key)
        if book is None:
            book = UserOrderBook(key, CollateralLedger(self.unit), unit=self.unit,
                                 max_open_orders=self.max_open_orders, known_indexes=self.known_indexes)
            self.books[key] = book
        return book

    def ref(self, key: str) -> UserRef:
        return self.refs.get(key) or UserRef(self.default_chain_id, key)

    def book_of(self, key: str) -> UserOrderBook:
        return self.book(self.ref(key))

    def _invoice(self, r: GetInvoice) -> AppResponse:
        invoice = self.invoices.get((user_key(r.user.address), r.client_order_id))
        if invoice is not None:
            return InvoiceIssued(r.user, invoice, self.clock.now_ms())
        if self.book(r.user).get(r.client_order_id) is None:
            return InvoiceRefused(r.user, r.client_order_id, ReasonCode.UNKNOWN_ORDER,
                                  f"no order {r.client_order_id!r} for this user")
        return InvoiceRefused(r.user, r.client_order_id, ReasonCode.NOT_MINTED, "the order has not been minted")


def _merge_lines(acc: dict[str, list[Any]], lines: Iterable[AssetLine]) -> None:
    """Accumulate an order's asset lines over its batches: [units, quantity, value, fee, lot_ids] per symbol."""
    for line in lines:
        row = acc.setdefault(line.symbol, [0, ZERO, ZERO, ZERO, []])
        row[0] += line.units
        row[1] += line.quantity
        row[2] += line.value
        row[3] += line.fee
        row[4].extend(line.lot_ids)


def _invoice_lines(acc: Mapping[str, list[Any]]) -> list[InvoiceLine]:
    return [InvoiceLine(symbol=s, quantity=q, average_price=(v / q if q else None), value=v, fee=f,
                        lot_ids=tuple(ids))
            for s, (_, q, v, f, ids) in sorted(acc.items())]


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
        self._minter: Any = None
        self._minter_retry_at = 0.0
        self._last_handle: dict[str, Any] | None = None
        self._restarted = restarted_by_ray()
        self._load()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # the first call starts delivery
        if self._outbox:
            self._ensure_started()  # a restart re-drives what was committed and not yet delivered
        self._push_mints(self._mint_pending())  # a push lost in a crash after its commit goes out again

    # ------------------------------------------------------------------ state
    def _fresh(self) -> None:
        o = self.o
        self.app = _ShardApp(o.known_indexes, clock=self._clock, unit=o.unit, max_open_orders=o.max_open_orders,
                             token_decimals=o.token_decimals, default_chain_id=o.default_chain_id)
        self._fifo: dict[str, None] = {}  # open order ids, in acceptance order (FIFO across the shard's users)
        self._lines: dict[str, dict[str, list[Any]]] = {}  # order id -> symbol -> accumulated line
        self._engaged: dict[str, list[tuple[str, Decimal]]] = {}  # batch id -> what it engaged
        self._fill_keys: set[str] = set()
        self._completed: dict[str, list[MintRequest]] = {}  # batch id -> its answer (kept for replays)
        self._new_fill_keys: set[str] = set()  # added since the last commit: the next one writes them
        self._new_completed: set[str] = set()
        self._new_invoices: set[tuple[str, str]] = set()  # (user key, cl_ord_id)
        self._invoices_of: dict[str, dict[str, MintInvoice]] = {}  # user key -> cl_ord_id -> invoice (views)
        self._routes: dict[str, dict[str, str]] = {}
        self._report_seq = 0
        self._delivered = 0
        self._outbox: list[ShardReport] = []  # committed, not yet delivered
        self._subscriber_spec: dict[str, Any] | None = None
        self._errors: list[str] = []
        self._reversals: list[dict[str, Any]] = []  # deposits taken back after a reorg, for the operator
        #: Handled races worth seeing (a cancel that beat an engage): not errors, so kept apart and in memory only.
        self._notes: collections.deque[str] = collections.deque(maxlen=50)
        self._counts = {"handled": 0, "commits": 0, "reports": 0, "delivery_calls": 0, "delivery_failures": 0,
                        "replays": 0}

    def _load(self) -> None:
        """Replace memory with what Redis holds. Everything is read first and memory is replaced only then, so a
        read that fails leaves the shard as it was (never half empty). While Redis is unreachable (an outage, a
        restart) the read is retried: a shard restarted meanwhile waits for it instead of crash-looping."""
        import time

        backoff = self.o.retry_ms / 1000
        while True:
            r = redis.Redis.from_url(self.o.redis_url)
            try:
                users = r.hgetall(self._keys["users"])
                meta_raw = r.get(self._keys["meta"])
                meta = json.loads(meta_raw) if meta_raw else None
                delivered = int(meta["delivered"]) if meta else 0
                outbox = r.zrangebyscore(self._keys["outbox"], delivered + 1, "+inf")
                completed = r.hgetall(self._keys["completed"])
                fill_keys = r.smembers(self._keys["fill_keys"])
                invoices = r.hgetall(self._keys["invoices"])
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("orders-%d: cannot read the store (%s); retrying", self.k, exc)
                time.sleep(backoff)  # back-off while the store is down (nothing to serve before it answers)
                backoff = min(2 * backoff, 2.0)
            finally:
                r.close()
        self._fresh()
        for raw_key, raw in users.items():
            key, data = raw_key.decode(), json.loads(raw)
            self.app.refs[key] = UserRef(int(data["ref"][0]), data["ref"][1])
            self.app.books[key] = UserOrderBook.from_dict(data["book"], max_open_orders=self.o.max_open_orders,
                                                          known_indexes=self.o.known_indexes)
            for oid, acc in data["lines"].items():
                self._lines[oid] = {s: [int(u), D(q), D(v), D(f), list(ids)] for s, (u, q, v, f, ids) in acc.items()}
            for cl, inv in data.get("invoices", {}).items():  # a snapshot written before invoices had a hash
                self._add_invoice(key, cl, MintInvoice.model_validate(inv))
        if meta:
            self._fifo = dict.fromkeys(meta["fifo"])
            self._engaged = {b: [(oid, D(a)) for oid, a in rows] for b, rows in meta["engaged"].items()}
            # A meta written before the records had keys of their own holds them: they move out at the next commit.
            self._fill_keys = set(meta.get("fill_keys", ()))
            self._completed = {b: [MintRequest.from_dict(m) for m in ms]
                               for b, ms in meta.get("completed", {}).items()}
            self._new_fill_keys, self._new_completed = set(self._fill_keys), set(self._completed)
            self._routes = meta["routes"]
            self._report_seq = int(meta["report_seq"])
            self._delivered = delivered
            self._subscriber_spec = meta["subscriber"]
            self._errors = list(meta["errors"])
            self._reversals = list(meta.get("reversals", ()))  # a meta written before reversals has none
        for field, raw in invoices.items():
            key, cl = field.decode().split("\n", 1)
            self._add_invoice(key, cl, MintInvoice.model_validate_json(raw))
            self._new_invoices.discard((key, cl))  # stored already
        self._fill_keys.update(k.decode() for k in fill_keys)
        for b, ms in completed.items():
            self._completed[b.decode()] = [MintRequest.from_dict(m) for m in json.loads(ms)]
        self._outbox = sorted((pickle.loads(e) for e in outbox), key=lambda e: e.seq)
        self.app.touched.clear()

    def _user_snapshot(self, key: str) -> str:
        book = self.app.books[key]
        ref = self.app.ref(key)
        return json.dumps({
            "ref": [ref.chain_id, ref.address], "book": book.to_dict(),
            "lines": {o.order_id: {s: [u, str(q), str(v), str(f), ids]
                                   for s, (u, q, v, f, ids) in self._lines[o.order_id].items()}
                      for o in book if o.order_id in self._lines},
        })

    def _add_invoice(self, key: str, cl: str, invoice: MintInvoice) -> None:
        """A new invoice: in the app (answers GetMintInvoice), in the per-user view, and written by the next commit."""
        self.app.invoices[(key, cl)] = invoice
        self._invoices_of.setdefault(key, {})[cl] = invoice
        self._new_invoices.add((key, cl))

    def _meta(self) -> str:
        return json.dumps({
            "fifo": list(self._fifo),
            "engaged": {b: [[o, str(a)] for o, a in rows] for b, rows in self._engaged.items()},
            "routes": self._routes, "report_seq": self._report_seq, "delivered": self._delivered,
            "subscriber": self._subscriber_spec, "errors": self._errors[-50:], "reversals": self._reversals,
        })

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
        touched, self.app.touched = set(self.app.touched), set()
        backoff = self.o.retry_ms / 1000
        try:
            users = {k: self._user_snapshot(k) for k in touched}
            meta = self._meta()
            outbox = {pickle.dumps(e): e.seq for e in entries}
            delivered = self._delivered
            new_keys, new_completed = sorted(self._new_fill_keys), sorted(self._new_completed)
            answers = {b: json.dumps([m.to_dict() for m in self._completed[b]]) for b in new_completed}
            new_invoices = sorted(self._new_invoices)
            invoices = {f"{k}\n{cl}": self.app.invoices[(k, cl)].model_dump_json() for k, cl in new_invoices}
            while True:
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
                try:
                    await p.execute()
                    break
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    self._counts["commit_retries"] = self._counts.get("commit_retries", 0) + 1
                    log.warning("orders-%d: commit failed (%s); sending it again", self.k, exc)
                    await asyncio.sleep(backoff)  # back-off while the store is down, not synchronisation
                    backoff = min(2 * backoff, 2.0)
        except BaseException:
            self._load()
            raise
        self._new_fill_keys.difference_update(new_keys)
        self._new_completed.difference_update(new_completed)
        self._new_invoices.difference_update(new_invoices)
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

    def _order(self, order_id: str) -> tuple[UserOrderBook, str]:
        key, cl = order_id.split(":", 1)
        return self.app.book_of(key), cl

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
                    await asyncio.sleep(self.o.retry_ms / 1000)
                    continue
                last = entries[-1].seq
                self._delivered = max(self._delivered, last)
                self._outbox = [e for e in self._outbox if e.seq > last]  # the cursor is saved with the next commit

    async def reports_since(self, seq: int, limit: int | None = None) -> list[ShardReport]:
        """Committed reports after `seq`, oldest first, still in the outbox (catch-up for a restarted subscriber)."""
        raw = await self._redis.zrangebyscore(self._keys["outbox"], seq + 1, "+inf",
                                              start=0 if limit else None, num=limit)
        return [pickle.loads(e) for e in raw]

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
            out: list[list[AppResponse]] = []
            for r in requests:
                key = user_key(r.user.address)
                self.app.refs[key] = r.user  # the session's own UserRef, for later reports
                responses = list(await self.app.handle([r]))
                for resp in responses:
                    if isinstance(resp, OrderAccepted) and isinstance(r, NewOrder):
                        self._fifo[order_id_of(key, resp.client_order_id)] = None
                out.append(responses)
            self._counts["handled"] += len(requests)
            pushed, self.app.pushed[:] = list(self.app.pushed), []
            handled = time.time()
            if any(isinstance(r, NewOrder) for r in requests):
                # Woken before the write, so the solver reads the rate budget and the books meanwhile; its read of
                # the demand (`pending`) takes this lock, so it sees the new orders only once they are stored.
                self._wake_solver()
            await self._commit(pushed)
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
        holds = holds or {}
        async with self._lock:
            for d in deposits:
                try:
                    self.app.book(UserRef(d.chain_id, d.user)).ledger.credit(d.key, d.amount, holds.get(d.key, ZERO))
                except CollateralError as exc:
                    self._error(f"deposit {d.key}: {exc}")
            await self._commit()

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        """Routing-fee shares, each from its deposit's hold first; a share beyond the hold and the user's free
        collateral is the user's debt (it blocks new orders until a deposit pays it)."""
        self._ensure_started()
        async with self._lock:
            for c in charges:
                ledger = self.app.book_of(user_key(c.user)).ledger
                owed = ledger.debt
                try:
                    ledger.charge_fee(c.fee_id, c.amount, hold_id=c.deposit_key)
                except CollateralError as exc:
                    self._error(f"fee {c.fee_id}: {exc}")
                if ledger.debt > owed:
                    log.warning("orders-%d: fee %s exceeds %s's hold and free collateral: %s owed", self.k, c.fee_id,
                                c.user, ledger.debt)
            await self._commit()

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal],
                     users: Mapping[str, str] | None = None) -> None:
        """A route is credited at the exchange: its real cost is charged, so the rest of each hold is released."""
        self._ensure_started()
        async with self._lock:
            for key, user in (users or {}).items():
                if user_key(user) in self.app.books:
                    self.app.book_of(user_key(user)).ledger.release_hold(key)
            self._routes[route_id] = {k: str(v) for k, v in net_by_deposit.items()}
            await self._commit()

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        """Deposits dropped by a reorg after their credit (core.deposit_reversal): unengaged collateral of the
        user's newest orders is cancelled as far as the shortfall needs, the deposit taken back, an engaged
        shortfall left as the user's debt; the user gets a cancel report per order cut and a DepositReversed.
        Idempotent per deposit key (the ledger remembers what it reversed)."""
        self._ensure_started()
        async with self._lock:
            now = self._clock.now_ms()
            reports: list[AppResponse] = []
            for r in reversals:
                key = user_key(r.user)
                book = self.app.books.get(key)
                done = reverse_in_book(book, r.deposit_key, now) if book is not None else None
                if done is None:
                    continue  # reversed before, or never credited here
                self.app.touched.add(key)
                ref = self.app.ref(key)
                for order, freed in done.cancelled:
                    reports.append(CancelDone(ref, order.cl_ord_id, freed, order.remaining, order.engaged))
                    if order.is_terminal:
                        reports.append(self.app._progress(ref, order))
                reports.append(DepositReversed(ref, r.deposit_key, done.amount, book.ledger.debt,
                                               tuple(o.cl_ord_id for o, _ in done.cancelled),
                                               ReasonCode.DEPOSIT_REVERSED, now))
                self._reversals.append({"deposit": r.deposit_key, "user": key, "amount": str(done.amount),
                                        "debt_added": str(done.debt), "routed": r.routed, "at_ms": now})
                del self._reversals[:-1000]  # the operator's recent view; the ledgers keep every reversal
                log.warning("orders-%d: deposit %s of %s reversed by a reorg: %s taken back, %d orders cut, %s owed",
                            self.k, r.deposit_key, key, done.amount, len(done.cancelled), book.ledger.debt)
            await self._commit(reports)

    # ------------------------------------------------------------------ the solver's side
    async def pending(self, limit: int = 10_000) -> list[PendingOrder]:
        """Orders that can be engaged now, oldest first: open, collateral remaining, nothing engaged. Only what is
        stored: a write in progress (new orders, which wake the solver before they are written) is waited for."""
        async with self._lock:
            return packed(self._pending(limit))  # the solver's hot read: arrives as the list

    def _pending(self, limit: int) -> list[PendingOrder]:
        out: list[PendingOrder] = []
        closed = []
        for oid in self._fifo:
            book, cl = self._order(oid)
            order = book.get(cl)
            if order is None or order.is_terminal:
                closed.append(oid)
                continue
            if order.engaged == 0 and order.remaining > 0:
                out.append(PendingOrder(oid, order.index, order.remaining))
                if len(out) >= limit:
                    break
        for oid in closed:  # derived data: the next commit stores the shorter list
            self._fifo.pop(oid, None)
        self.app.touched.clear()
        return out

    async def engage(self, batch_id: str, engagements: Sequence[Engagement]) -> list[tuple[str, Decimal]] | None:
        """A batch takes the engaged collateral of its orders. Idempotent by batch id. Returns what was actually
        engaged per order (less than asked if a cancel came in since `pending`; the solver sizes the batch's
        orders to that), or None for a batch already completed."""
        self._ensure_started()
        async with self._lock:
            if batch_id in self._engaged or batch_id in self._completed:
                self._counts["replays"] += 1
                return self._engaged.get(batch_id)
            now = self._clock.now_ms()
            applied: list[tuple[str, Decimal]] = []
            for e in engagements:
                book, cl = self._order(e.order_id)
                order = book.get(cl)
                if order is None or order.is_terminal:
                    self._error(f"{batch_id}: cannot engage {e.order_id} (closed or unknown)")
                    continue
                amount = min(e.collateral, order.remaining)  # a cancel may have come in since `pending`
                if amount < e.collateral:
                    self._note(f"{batch_id}: {e.order_id} engaged {amount} of {e.collateral} (cancelled meanwhile)")
                if amount > 0:
                    book.engage(cl, amount, now)
                    applied.append((e.order_id, amount))
            self._engaged[batch_id] = applied
            await self._commit()
            return applied

    async def apply_fills(self, key: str, fills: Sequence[OrderFill]) -> int:
        """One solver round's fill deltas for this shard's orders; one progress report per order touched.
        Idempotent by `key` (batch_id:round). Returns the number of reports."""
        self._ensure_started()
        async with self._lock:
            reports = self._apply_fills(key, fills)
            if reports is None:
                return 0
            await self._commit(reports)
            return len(reports)

    async def complete_batch(self, batch_id: str, results: Sequence[BatchOrderResult]) -> list[MintRequest]:
        """Close this shard's side of a batch: release unspent engagement, finish orders whose rest is dust, and
        return the mints owed for orders that finished with something filled. Idempotent by batch id."""
        self._ensure_started()
        async with self._lock:
            done = self._completed.get(batch_id)
            if done is not None:
                self._counts["replays"] += 1
                return done
            reports, mints = self._complete_batch(batch_id, results)
            await self._commit(reports)
            self._push_mints(mints)
            return mints

    async def settle(self, key: str, fills: Sequence[OrderFill], batch_id: str,
                     results: Sequence[BatchOrderResult]) -> list[MintRequest]:
        """A batch's last fill deltas and its completion in one call and one write (the usual end of a batch: the
        last exchange answers bring both). Each part stays idempotent by its own key."""
        self._ensure_started()
        async with self._lock:
            reports = self._apply_fills(key, fills) or []
            done = self._completed.get(batch_id)
            if done is not None:
                self._counts["replays"] += 1
                mints = done
            else:
                closing, mints = self._complete_batch(batch_id, results)
                reports += closing
            await self._commit(reports)
            if done is None:
                self._push_mints(mints)
            return mints

    def _apply_fills(self, key: str, fills: Sequence[OrderFill]) -> list[AppResponse] | None:
        """apply_fills without the write; None for a replay."""
        if key in self._fill_keys:
            self._counts["replays"] += 1
            return None
        now = self._clock.now_ms()
        touched: dict[str, None] = {}
        for f in fills:
            if f.units_q == 0 and f.value_q == 0 and f.fee_q == 0:
                continue
            book, cl = self._order(f.order_id)
            try:
                book.apply_fill(cl, f.units, f.cost, now)
            except OrderStateError as exc:
                self._error(f"fill {key} on {f.order_id}: {exc}")
                continue
            touched[f.order_id] = None
        reports: list[AppResponse] = []
        for oid in touched:
            book, cl = self._order(oid)
            order = book.get(cl)
            assert order is not None
            reports.append(self.app._progress(self.app.ref(book.user), order, "in progress"))
        self._fill_keys.add(key)
        self._new_fill_keys.add(key)
        return reports

    def _complete_batch(self, batch_id: str, results: Sequence[BatchOrderResult]
                        ) -> tuple[list[AppResponse], list[MintRequest]]:
        """complete_batch without the write (the caller checked it is not a replay)."""
        now = self._clock.now_ms()
        engaged = self._engaged.pop(batch_id, [])
        order_ids = list(dict.fromkeys([oid for oid, _ in engaged] + [r.order_id for r in results]))
        for r in results:
            _merge_lines(self._lines.setdefault(r.order_id, {}), r.lines)
        reports: list[AppResponse] = []
        mints: list[MintRequest] = []
        for oid in order_ids:
            book, cl = self._order(oid)
            order = book.get(cl)
            if order is None:
                self._error(f"{batch_id}: unknown order {oid}")
                continue
            try:
                if not order.is_terminal:
                    book.release(cl, order.engaged, now)  # one batch at a time: all it holds is this batch's
                if not order.is_terminal:
                    # Below the dust, or below rest_return_ratio of what the user did not cancel: returned.
                    dust = max(self.o.order_dust,
                               quantize_up((order.collateral - order.cancelled) * self.o.rest_return_ratio,
                                           self.o.unit))
                    if order.remaining < dust:
                        book.finish(cl, dust, now)
            except OrderStateError as exc:
                self._error(f"{batch_id}: closing {oid}: {exc}")
                continue
            if order.is_terminal:
                reports.append(self.app._progress(self.app.ref(book.user), order))
                if order.mint_pending:
                    mints.append(MintRequest(oid, book.user, order.index, order.filled_units,
                                             self.o.token_decimals))
        self._completed[batch_id] = mints
        self._new_completed.add(batch_id)
        return reports, mints

    async def reject_orders(self, key: str, rejections: Sequence[tuple[str, str]]) -> list[MintRequest]:
        """The solver gives up on orders it could not plan for too long ((order id, reason) pairs): each open order
        with nothing engaged is closed with the reason, its collateral freed, and the user told. An order that had
        bought something ends filled and its mint is owed (returned). Idempotent by `key`."""
        self._ensure_started()
        async with self._lock:
            if key in self._fill_keys:
                self._counts["replays"] += 1
                return []  # the first call pushed its mints to the minter
            now = self._clock.now_ms()
            reports: list[AppResponse] = []
            mints: list[MintRequest] = []
            for oid, reason in rejections:
                book, cl = self._order(oid)
                order = book.get(cl)
                if order is None or order.is_terminal or order.engaged != 0:
                    continue  # closed or planned meanwhile: nothing to give up on
                book.reject(cl, reason, now)
                reports.append(self.app._progress(self.app.ref(book.user), order))
                if order.mint_pending:
                    mints.append(MintRequest(oid, book.user, order.index, order.filled_units, self.o.token_decimals))
            self._fill_keys.add(key)
            self._new_fill_keys.add(key)
            await self._commit(reports)
            self._push_mints(mints)
            return mints

    async def minted(self, order_id: str, tx: str) -> MintInvoice:
        """The mint of `order_id` landed in `tx`: build the Mint Invoice from the order's lines, then mark the order
        minted, store both and report the invoice. Idempotent by (order, tx): the same tx again returns the stored
        invoice. Built BEFORE marking: an invoice that cannot be built (it raises) leaves the order unmarked, so the
        retry fails the same way with the same reason instead of finding a marked order without an invoice."""
        self._ensure_started()
        async with self._lock:
            invoice, report = self._minted(order_id, tx)
            if report is not None:
                await self._commit([report])
            else:
                self.app.touched.clear()
            return invoice

    async def minted_batch(self, landed: Sequence[tuple[str, str]]) -> list[MintInvoice | str]:
        """The minter's report of a batch: `minted` for each (order id, tx), in one write. Answers per item the
        invoice, or why it was refused (the order stays mint-pending and the minter tries again)."""
        self._ensure_started()
        async with self._lock:
            out: list[MintInvoice | str] = []
            reports: list[AppResponse] = []
            for order_id, tx in landed:
                try:
                    invoice, report = self._minted(order_id, tx)
                except Exception as exc:  # noqa: BLE001  (built before marked: the order is left as it was)
                    self._note(f"mint of {order_id} in {tx} not taken: {exc!r}")
                    out.append(f"{type(exc).__name__}: {exc}")
                    continue
                out.append(invoice)
                if report is not None:
                    reports.append(report)
            if reports:
                await self._commit(reports)
            else:
                self.app.touched.clear()
            return out

    def _minted(self, order_id: str, tx: str) -> tuple[MintInvoice, AppResponse | None]:
        """`minted` without the write: the invoice, and the report to commit (None: stored before)."""
        book, cl = self._order(order_id)
        order = book.get(cl)
        if order is None:
            raise KeyError(f"no order {order_id}")
        if order.minted_tx == tx:
            stored = self.app.invoices.get((book.user, cl))
            if stored is not None:
                return stored, None
            # marked without an invoice (a state written before this order of steps): build it now
        elif order.minted_tx is not None or not order.mint_pending:
            book.mark_minted(cl, tx)  # raises with the reason (minted in another tx, or nothing to mint)
        now = self._clock.now_ms()
        invoice = build_invoice(order_id=order.order_id, user=book.user, cl_ord_id=cl, index=order.index,
                                collateral=order.collateral, cancelled=order.cancelled, returned=order.returned,
                                spent=order.spent, filled_units=order.filled_units,
                                lines=_invoice_lines(self._lines.get(order_id, {})),
                                token_decimals=self.o.token_decimals, mint_tx=tx, minted_ms=now)
        book.mark_minted(cl, tx)
        self._add_invoice(book.user, cl, invoice)
        return invoice, InvoiceIssued(self.app.ref(book.user), invoice, now)

    async def mint_pending(self) -> list[MintRequest]:
        """Orders finished with something filled and not minted yet (the minter's catch-up after its restart)."""
        return self._mint_pending()

    def _mint_pending(self) -> list[MintRequest]:
        return [MintRequest(o.order_id, b.user, o.index, o.filled_units, self.o.token_decimals)
                for b in self.app.books.values() for o in b.mint_pending()]

    def _push_mints(self, mints: Sequence[MintRequest]) -> None:
        """Hand committed mintable orders to the minter: fire and forget, one call per commit. A push lost while
        the minter is down is found by its own catch-up (it asks every shard on its start)."""
        if not mints or self.o.minter_name is None:
            return
        now = time.monotonic()
        if self._minter is None and now < self._minter_retry_at:
            return  # looked up and failed just now (ray.get_actor blocks this loop); its catch-up will ask
        try:
            if self._minter is None:
                self._minter = ray.get_actor(self.o.minter_name,
                                             namespace=self.o.namespace or ray.get_runtime_context().namespace)
            self._minter.mint.remote(self.k, list(mints))
        except Exception as exc:  # noqa: BLE001  (no minter yet, or restarting: it asks every shard when it starts)
            log.info("orders-%d: minter not reached (%s); it asks for these when it starts", self.k, exc)
            self._minter = None
            self._minter_retry_at = now + 1.0

    async def holdings(self) -> dict[str, Any]:
        """What this shard's orders hold, for the reserves check: per index the units filled, "minted" (the mint
        landed) and "unminted" (still open, or its mint owed), and their exact "cost" in the quote asset; per
        symbol the quantity the orders' completed batches delivered to them ("delivered": the invoice lines, exact
        base units). Reads memory only: every order the shard keeps, once per check (reserves.interval_s)."""
        indexes: dict[str, dict[str, Decimal]] = {}
        for book in self.app.books.values():
            for order in book:
                if order.filled_units or order.cost_exact:
                    acc = indexes.setdefault(order.index, {"minted": Decimal(0), "unminted": Decimal(0),
                                                           "cost": Decimal(0)})
                    acc["minted" if order.minted_tx is not None else "unminted"] += order.filled_units
                    acc["cost"] += order.cost_exact
        delivered: dict[str, Decimal] = {}
        for lines in self._lines.values():
            for symbol, row in lines.items():
                delivered[symbol] = delivered.get(symbol, Decimal(0)) + row[1]
        return {"indexes": {i: {k: str(v) for k, v in acc.items()} for i, acc in sorted(indexes.items())},
                "delivered": {s: str(q) for s, q in sorted(delivered.items())}}

    # ------------------------------------------------------------------ views
    async def user(self, address: str) -> dict[str, Any] | None:
        """One user's book and ledger (plain data), or None."""
        book = self.app.books.get(user_key(address))
        if book is None:
            return None
        return book.to_dict() | {"invoices": {cl: inv.model_dump(mode="json")
                                              for cl, inv in self._invoices_of.get(book.user, {}).items()}}

    async def inspect(self) -> dict[str, Any]:
        open_orders = [o.to_dict() for b in self.app.books.values() for o in b.open_orders()]
        return {
            "shard": self.k, "restarted": self._restarted, "users": len(self.app.books),
            "ledgers": {k: b.ledger.to_dict() for k, b in self.app.books.items()},
            "open_orders": open_orders, "fifo": len(self._fifo),
            "engaged_batches": {b: [[o, str(a)] for o, a in rows] for b, rows in self._engaged.items()},
            "completed_batches": len(self._completed), "fill_keys": len(self._fill_keys),
            "report_seq": self._report_seq, "delivered_seq": self._delivered, "undelivered": len(self._outbox),
            "subscriber": self._subscriber_spec, "invoices": len(self.app.invoices), "errors": list(self._errors),
            "notes": list(self._notes),
            "reversed_deposits": list(self._reversals),
            "debts": {k: str(b.ledger.debt) for k, b in self.app.books.items() if b.ledger.debt > 0},
            "counts": dict(self._counts), "last_handle": self._last_handle,
        }

    async def stop(self) -> None:
        if self._deliver_task is not None:
            self._deliver_task.cancel()
        await self._redis.aclose()


# ============================================================================================== launching and routing
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


class ShardedCollateralSink:
    """chain's CollateralSink over the order-book shards: one call per shard per step, each item to its user's
    shard (the router's batches hold many users)."""

    def __init__(self, shards: Sequence[Any]) -> None:
        self.shards = list(shards)

    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        groups = split_by_shard(deposits, len(self.shards), lambda d: d.user)
        await asyncio.gather(*(self.shards[k].credit.remote(items, {d.key: holds[d.key] for d in items
                                                                    if d.key in holds})
                               for k, items in groups.items()))

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        groups = split_by_shard(charges, len(self.shards), lambda c: c.user)
        await asyncio.gather(*(self.shards[k].charge.remote(items) for k, items in groups.items()))

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        groups = split_by_shard(users.items(), len(self.shards), lambda item: item[1])
        await asyncio.gather(*(s.routed.remote(route_id, dict(net_by_deposit), dict(groups.get(k, ())))
                               for k, s in enumerate(self.shards)))


    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        groups = split_by_shard(reversals, len(self.shards), lambda r: r.user)
        await asyncio.gather(*(self.shards[k].reverse.remote(items) for k, items in groups.items()))


class ShardedApp:
    """The application interface over every shard: requests split by user, one `handle` call per shard, the
    answers put back in request order (what the gateway actor will host)."""

    def __init__(self, shards: Sequence[Any], quoter: Any = None) -> None:
        """`quoter`: the solver (it has the baskets and the live books), or a function that finds it (it may start
        after the gateway); quote requests go to it in one call per batch."""
        self.shards = list(shards)
        self.quoter = quoter

    async def _quote(self, requests: Sequence[NewQuote]) -> list[list[AppResponse]]:
        try:
            quoter = self.quoter() if callable(self.quoter) else self.quoter
            return await quoter.quote.remote(list(requests))
        except Exception as e:  # noqa: BLE001  (no solver yet, or restarting: the user may ask again)
            log.warning("quotes unavailable: %s", e)
            return [[QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE,
                                  "quotes are unavailable right now; retry")] for r in requests]

    async def handle(self, requests: Sequence[AppRequest]) -> list[AppResponse]:
        n = len(self.shards)
        groups: dict[int, list[int]] = {}
        quotes: list[int] = []
        for i, r in enumerate(requests):
            if self.quoter is not None and isinstance(r, NewQuote):
                quotes.append(i)
                continue
            groups.setdefault(shard_of_user(r.user.address, n), []).append(i)
        keys = list(groups)
        calls = [self.shards[k].handle_each.remote([requests[i] for i in groups[k]]) for k in keys]
        if quotes:
            calls.append(self._quote([requests[i] for i in quotes]))  # type: ignore[misc]
        answers = await asyncio.gather(*calls)
        per_request: list[list[AppResponse]] = [[] for _ in requests]
        for k, answer in zip(keys, answers):
            for i, responses in zip(groups[k], answer):
                per_request[i] = responses
        if quotes:
            for i, responses in zip(quotes, answers[-1]):
                per_request[i] = responses
        return [resp for responses in per_request for resp in responses]

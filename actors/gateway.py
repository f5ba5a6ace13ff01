"""`gateway`: protocol's GatewayServer in a Ray actor, with the IndexMaker plugin over the index-order shards.

Requests go to the shards in one `handle_each` call per shard per batch. Reports: each shard appends them to its
reports hand-off; this actor reads every shard's in one blocking XREAD after its cursors, stores each cursor with
the reports it covers (one group commit), then trims the hand-off: nothing twice, nothing missed.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.order_books import ShardReport, report_of
from actors.order_shards import ShardedApp, orders_shard_name
from protocol.indexmaker_app import AppResponse, InvoiceIssued, OrderAccepted, OrderProgress, OrderRefused
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.report_store import StreamWrite
from store.handoff import Entry, Handoff, follow
from store.retry import RetryPolicy
from store.streams import shard_reports

log = logging.getLogger(__name__)

GATEWAY_NAME = "gateway"

#: inspect()["counts"] keys the monitor reads (actors/system_view.py INDEX_ORDER_OUTCOMES).
_ANSWER_COUNTS = {OrderAccepted: "orders_accepted", OrderRefused: "orders_rejected"}
_CLOSED_COUNTS = {"filled": "orders_filled", "rejected": "orders_failed", "canceled": "orders_cancelled"}


def tally(counts: dict[str, int], responses: Sequence[AppResponse], reported: bool) -> None:
    """Count a batch of responses by kind. Invoices only when `reported` (a GetMintInvoice answer is a resend)."""
    for r in responses:
        kind = type(r)
        if kind is OrderProgress:
            counts["fill_reports"] += 1
            closed = _CLOSED_COUNTS.get(r.status)  # type: ignore[union-attr]
            if closed is not None:
                counts[closed] += 1
        elif kind is InvoiceIssued:
            if reported:
                counts["invoices"] += 1
        else:
            key = _ANSWER_COUNTS.get(kind)  # type: ignore[call-overload]
            if key is not None:
                counts[key] += 1


class _CountingPlugin(IndexMakerPlugin):
    """The IndexMaker plugin, tallying what it sends: immediate answers here, reports via `deliver_reports`."""

    def __init__(self, app: Any, counts: dict[str, int], trading_mode: str | None = None) -> None:
        super().__init__(app, trading_mode=trading_mode)
        self.counts = counts

    def deliver(self, responses: Sequence[AppResponse]) -> None:
        tally(self.counts, responses, reported=False)
        super().deliver(responses)

    def deliver_reports(self, responses: Sequence[AppResponse]) -> None:
        tally(self.counts, responses, reported=True)
        super().deliver(responses)


@dataclass(frozen=True)
class GatewayActorOptions:
    redis_url: str
    order_shards: int
    #: The server's own key (hex): its address signs what it sends; stable across restarts.
    server_key: str = field(repr=False)
    namespace: str | None = None
    name: str = GATEWAY_NAME
    #: core.config.GatewayConfig fields (port, limits; the launcher passes the `[gateway]` section); port 0 picks a
    #: free one (tests).
    config: dict[str, Any] = field(default_factory=dict)
    store_prefix: str = "fix:"
    #: Quote requests are answered by this actor (it sizes them on the live books).
    solver_name: str = "solver"
    #: The store is waited out with this (the cursors at start, the server's loads and group commits).
    retry: RetryPolicy = field(default_factory=RetryPolicy.default)
    #: The shards' key prefix (OrderBooksOptions.key_prefix): it names their reports hand-offs.
    shard_prefix: str = "orders"
    #: Most reports read from the hand-offs at once; a read waits at most this long (a bound, not a poll: the
    #: read returns as soon as a shard commits a report).
    read_batch: int = 5_000
    read_block_ms: int = 1_000
    #: "paper" in paper mode: every business report carries `trading_mode: "paper"` (protocol/README.md).
    trading_mode: str | None = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class GatewayActor:
    def __init__(self, options: GatewayActorOptions) -> None:
        import redis.asyncio as aioredis

        from core.config import GatewayConfig
        from protocol.redis_report_store import RedisReportStore
        from protocol.server import GatewayServer
        from protocol.signature import Signer

        setup_logging(options.name)
        self.o = options
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._cursor_key = f"gateway:{options.name}:cursors"
        self.shards = [ray.get_actor(orders_shard_name(k), namespace=options.namespace)
                       for k in range(options.order_shards)]
        self.app = ShardedApp(self.shards, quoter=lambda: ray.get_actor(options.solver_name,
                                                                        namespace=options.namespace))
        self.counts = {"report_calls": 0, "reports": 0, "duplicates": 0, "orders_accepted": 0,
                       "orders_rejected": 0, "orders_failed": 0, "orders_filled": 0, "orders_cancelled": 0,
                       "fill_reports": 0, "invoices": 0}
        self.plugin = _CountingPlugin(self.app, self.counts, options.trading_mode)
        config = GatewayConfig(**options.config)
        store = RedisReportStore.from_url(options.redis_url, options.store_prefix, keep=config.report_retention)
        self.server = GatewayServer(self.plugin, store, Signer(options.server_key), config, retry=options.retry)
        self._cursor: dict[int, int] = {}  # shard -> last report seq delivered (loaded in start)
        self._handoffs = {shard_reports(options.shard_prefix, k): k for k in range(options.order_shards)}
        self._reader_redis = aioredis.Redis.from_url(options.redis_url)  # its blocking reads hold a connection
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._started: asyncio.Task | None = None
        try:
            asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self._start())  # a restart resumes by itself
        except RuntimeError:
            pass

    async def start(self) -> str:
        """Idempotent: listen, and read the shards' reports from the stored cursors. Returns the websocket URL."""
        await self._ensure_started()
        return self.server.url

    async def _ensure_started(self) -> None:
        """Wait for the start; one that failed (a peer or the store unreachable) is tried again, never left as
        a gateway that delivers without its cursors."""
        task = self._started
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            self._started = task = asyncio.ensure_future(self._start())
        await asyncio.shield(task)

    def _cursor_stream(self, shard: int) -> str:
        """The store stream whose score is the last report seq of `shard` delivered (see `_deliver`)."""
        return f"gateway-cursor:{self.o.name}:{shard}"

    async def _load_cursors(self) -> dict[int, int]:
        cursors: dict[int, int] = {}
        raw = await self._redis.hgetall(self._cursor_key)  # where the cursors were kept before (kept readable)
        for k, v in raw.items():
            cursors[int(k)] = int(v)
        for k in range(len(self.shards)):
            _, stored = await self.server.store.last_seqs(self._cursor_stream(k))
            cursors[k] = max(cursors.get(k, 0), stored)
        return cursors

    async def _start(self) -> None:
        from protocol.gc_tuning import tune_gc

        # The store down is waited for (a restart never crash-loops); anything else fails this start, which the
        # next call tries again.
        self._cursor = await self.o.retry.call(self._load_cursors, lambda exc: log.warning(
            "gateway: cannot read the delivery cursors (%s); retrying", exc), bounded=(Exception,))
        if not self.server.port:  # not listening yet (a start tried again after a failure may have got this far)
            await self.server.start()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_reports())
        tune_gc()

    async def _read_reports(self) -> None:
        """Read every shard's reports after its cursor, deliver them, store the cursors, trim the hand-offs."""
        pacer = self.o.retry.pacer()

        async def apply(handoff: Handoff, entries: list[Entry]) -> None:
            shard = self._handoffs[handoff]
            async with self._lock:
                self.counts["report_calls"] += 1
                await self._deliver(shard, [report_of(raw) for _, raw in entries])
            async with self._redis.pipeline(transaction=False) as pipe:
                handoff.ack(pipe, self._cursor[shard])  # stored with the reports: the shard's hand-off lets go
                await pipe.execute()

        async def pause(e: Exception) -> None:
            log.warning("gateway: reading the shards' reports failed (%s); retrying", e)
            await pacer.pause()

        await follow(self._reader_redis, lambda: {h: self._cursor.get(k, 0) for h, k in self._handoffs.items()},
                     apply, count=self.o.read_batch, block_ms=self.o.read_block_ms, pause=pause, healthy=pacer.reset)

    async def _deliver(self, shard: int, reports: Sequence[ShardReport]) -> None:
        last = self._cursor.get(shard, 0)
        fresh = []
        for r in reports:
            if r.seq <= last:  # already delivered (read again after a failure between the store and the trim)
                self.counts["duplicates"] += 1
                continue
            fresh.append(r)
            last = r.seq
        if not fresh:
            return
        responses = [r.response for r in fresh]
        await self._users_loaded(responses)  # so that every report below is queued for the store at once
        self.plugin.deliver_reports(responses)
        await self._users_loaded(responses)
        # Exactly once across a crash: the cursor is a store write queued right behind the reports it covers, so
        # the group committer stores it in the same atomic batch as them or a later one. Stored apart (after the
        # flush), a gateway killed in between sent these reports again, under new stream numbers, after restart.
        self.server.committer.submit(StreamWrite(self._cursor_stream(shard), None, (last, "")))
        await self.server.flush()  # stored (reports and cursor) before anything else is taken from this shard
        self._cursor[shard] = last
        self.counts["reports"] += len(fresh)

    async def _users_loaded(self, responses: Sequence[AppResponse]) -> None:
        """Wait until the server has each user's stream loaded from the store: a report for a user still loading
        is held back by the server and queued only once the load is done, i.e. possibly after our cursor.
        (protocol.server keeps that state private; `_user` creates and loads a stream the first time.)"""
        for ref in {r.user.key: r.user for r in responses}.values():
            stream = self.server._user(ref)  # noqa: SLF001
            if stream.loading is not None:
                await asyncio.shield(stream.loading)

    async def url(self) -> str:
        return await self.start()

    async def inspect(self) -> dict[str, Any]:
        return {"url": self.server.url if self.server.port else None,
                # the last report seq delivered, per shard (a list: JSON keys could not be ints)
                "cursors": [self._cursor.get(k, 0) for k in range(len(self.shards))],
                "counts": dict(self.counts), "server": self.server.inspect()}

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.server.stop()
        await self._redis.aclose()
        await self._reader_redis.aclose()


def start_gateway(options: GatewayActorOptions, *, detached: bool = False) -> Any:
    """Create (or get) the named gateway (after the index-order shards exist) and start it."""
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    return GatewayActor.options(**opts).remote(options)

"""`gateway`: protocol's GatewayServer hosted in a Ray actor, with the IndexMaker plugin over the order-book shards.

Requests: the server hands the plugin batches; the plugin calls ShardedApp.handle, which splits a batch by the
users' shards (one `handle_each` call per shard) and puts the immediate answers back in request order.
Reports (fills, closes, invoices) are pushed by every `orders-{k}` shard to this actor's `on_reports` (one call per
shard batch). Each shard's reports are numbered; the gateway keeps the last seq it delivered per shard (in the
server's report store, written by its group commit right behind the reports it covers: never without them, never
apart from them), so a redelivered seq is dropped, nothing is sent to a user twice across a gateway crash, and a
restarted gateway asks `reports_since(cursor)` for what it missed. A gap (a batch starting past cursor+1) is filled the same way.

Counting: every application response the plugin sends is tallied by kind in plain integers (one dict increment
per response, in the loop that already handles the batch); the `monitor` turns them into the order metrics.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.order_books import ShardReport
from actors.order_shards import ShardedApp, orders_shard_name
from protocol.indexmaker_app import AppResponse, InvoiceIssued, OrderAccepted, OrderProgress, OrderRefused
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.report_store import StreamWrite
from store.retry import RetryPolicy

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

    def __init__(self, app: Any, counts: dict[str, int]) -> None:
        super().__init__(app)
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
        self.counts = {"report_calls": 0, "reports": 0, "duplicates": 0, "catch_ups": 0, "orders_accepted": 0,
                       "orders_rejected": 0, "orders_failed": 0, "orders_filled": 0, "orders_cancelled": 0,
                       "fill_reports": 0, "invoices": 0}
        self.plugin = _CountingPlugin(self.app, self.counts)
        config = GatewayConfig(**options.config)
        store = RedisReportStore.from_url(options.redis_url, options.store_prefix, keep=config.report_retention)
        self.server = GatewayServer(self.plugin, store, Signer(options.server_key), config, retry=options.retry)
        self._cursor: dict[int, int] = {}  # shard -> last report seq delivered (loaded in start)
        self._lock = asyncio.Lock()
        self._started: asyncio.Task | None = None
        try:
            asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self._start())  # a restart resumes by itself
        except RuntimeError:
            pass

    async def start(self) -> str:
        """Idempotent: listen, subscribe to every shard, catch up. Returns the websocket URL."""
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
        await asyncio.gather(*(s.register_subscriber.remote(self.o.name, self.o.namespace) for s in self.shards))
        for k in range(len(self.shards)):
            await self._catch_up(k)
        tune_gc()

    async def _catch_up(self, shard: int) -> None:
        missed = await self.shards[shard].reports_since.remote(self._cursor.get(shard, 0))
        if missed:
            self.counts["catch_ups"] += 1
            log.info("gateway: catching up %d reports of shard %d after seq %d", len(missed), shard,
                     self._cursor.get(shard, 0), extra={"shard": shard, "seq": self._cursor.get(shard, 0)})
            await self._deliver(shard, missed)

    async def _deliver(self, shard: int, reports: Sequence[ShardReport]) -> None:
        last = self._cursor.get(shard, 0)
        fresh = []
        for r in reports:
            if r.seq <= last:  # already delivered (a redelivery after a failed push, or a catch-up overlap)
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

    async def on_reports(self, shard: int, seq_from: int, reports: list[ShardReport]) -> None:
        """A shard's batch of reports, seqs from `seq_from` in order. One call per batch."""
        await self._ensure_started()
        async with self._lock:
            self.counts["report_calls"] += 1
            if seq_from > self._cursor.get(shard, 0) + 1:  # a gap: what came before is fetched first
                await self._catch_up(shard)
            await self._deliver(shard, reports)

    async def url(self) -> str:
        return await self.start()

    async def inspect(self) -> dict[str, Any]:
        return {"url": self.server.url if self.server.port else None,
                # the last report seq delivered, per shard (a list: JSON keys could not be ints)
                "cursors": [self._cursor.get(k, 0) for k in range(len(self.shards))],
                "counts": dict(self.counts), "server": self.server.inspect()}

    async def stop(self) -> None:
        await self.server.stop()
        await self._redis.aclose()


def start_gateway(options: GatewayActorOptions, *, detached: bool = False) -> Any:
    """Create (or get) the named gateway (after the order-book shards exist) and start it."""
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    return GatewayActor.options(**opts).remote(options)

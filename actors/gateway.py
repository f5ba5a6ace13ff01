"""`gateway`: protocol's GatewayServer hosted in a Ray actor, with the IndexMaker plugin over the order-book shards.

Requests: the server hands the plugin batches; the plugin calls ShardedApp.handle, which splits a batch by the
users' shards (one `handle_each` call per shard) and puts the immediate answers back in request order.
Reports (fills, closes, invoices) are pushed by every `orders-{k}` shard to this actor's `on_reports` (one call per
shard batch). Each shard's reports are numbered; the gateway keeps the last seq it delivered per shard (in Redis,
written after the server has stored the emitted messages), so a redelivered seq is dropped and a restarted gateway
asks `reports_since(cursor)` for what it missed. A gap (a batch starting past cursor+1) is filled the same way.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.order_books import ShardedApp, ShardReport, orders_shard_name

log = logging.getLogger(__name__)

GATEWAY_NAME = "gateway"


@dataclass(frozen=True)
class GatewayActorOptions:
    redis_url: str
    order_shards: int
    #: The server's own key (hex): its address signs what it sends; stable across restarts.
    server_key: str = field(repr=False)
    namespace: str | None = None
    name: str = GATEWAY_NAME
    #: protocol.gateway_config.GatewayConfig fields (port, limits); port 0 picks a free one (tests).
    config: dict[str, Any] = field(default_factory=dict)
    store_prefix: str = "fix:"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class GatewayActor:
    def __init__(self, options: GatewayActorOptions) -> None:
        import redis.asyncio as aioredis

        from protocol.gateway_config import GatewayConfig
        from protocol.indexmaker_plugin import IndexMakerPlugin
        from protocol.redis_report_store import RedisReportStore
        from protocol.server import GatewayServer
        from protocol.signature import Signer

        self.o = options
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._cursor_key = f"gateway:{options.name}:cursors"
        self.shards = [ray.get_actor(orders_shard_name(k), namespace=options.namespace)
                       for k in range(options.order_shards)]
        self.app = ShardedApp(self.shards)
        self.plugin = IndexMakerPlugin(self.app)
        self.server = GatewayServer(self.plugin, RedisReportStore.from_url(options.redis_url, options.store_prefix),
                                    Signer(options.server_key), GatewayConfig(**options.config))
        self._cursor: dict[int, int] = {}  # shard -> last report seq delivered (loaded in start)
        self._lock = asyncio.Lock()
        self._started: asyncio.Task | None = None
        self.counts = {"report_calls": 0, "reports": 0, "duplicates": 0, "catch_ups": 0}
        try:
            asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self._start())  # a restart resumes by itself
        except RuntimeError:
            pass

    async def start(self) -> str:
        """Idempotent: listen, subscribe to every shard, catch up. Returns the websocket URL."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)
        return self.server.url

    async def _start(self) -> None:
        from protocol.gc_tuning import tune_gc

        raw = await self._redis.hgetall(self._cursor_key)
        self._cursor = {int(k): int(v) for k, v in raw.items()}
        await self.server.start()
        await asyncio.gather(*(s.register_subscriber.remote(self.o.name, self.o.namespace) for s in self.shards))
        for k in range(len(self.shards)):
            await self._catch_up(k)
        tune_gc()

    async def _catch_up(self, shard: int) -> None:
        missed = await self.shards[shard].reports_since.remote(self._cursor.get(shard, 0))
        if missed:
            self.counts["catch_ups"] += 1
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
        self.plugin.deliver([r.response for r in fresh])
        await self.server.flush()  # stored by the server before the cursor moves past them
        self._cursor[shard] = last
        await self._redis.hset(self._cursor_key, str(shard), str(last))
        self.counts["reports"] += len(fresh)

    async def on_reports(self, shard: int, seq_from: int, reports: list[ShardReport]) -> None:
        """A shard's batch of reports, seqs from `seq_from` in order. One call per batch."""
        if self._started is not None and not self._started.done():
            await asyncio.shield(self._started)
        async with self._lock:
            self.counts["report_calls"] += 1
            if seq_from > self._cursor.get(shard, 0) + 1:  # a gap: what came before is fetched first
                await self._catch_up(shard)
            await self._deliver(shard, reports)

    async def url(self) -> str:
        return await self.start()

    async def inspect(self) -> dict[str, Any]:
        return {"url": self.server.url if self.server.port else None, "cursors": dict(self._cursor),
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

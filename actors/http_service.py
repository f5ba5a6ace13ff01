"""`http`: the HTTP side of the gateway host: `GET /health` for operators, the signed invoice service for users and
`GET /indexes` (the served indexes, their assets and live prices: one `top` call per market shard).

An actor of its own, so that /health still answers 503 when another actor is down. /health is the `monitor`'s
last verdict (503 if unhealthy or silent): probes poll no actor. Invoice routes read the user's shard, one call
per request."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import ray
from aiohttp import web

import core  # noqa: F401  (decimal context in the worker)
from actors.logs import setup_logging
from actors.monitor import MONITOR_NAME
from actors.order_shards import orders_shard_name, shard_of_user
from core.basket import Basket
from core.index_listing import list_index
from core.shard_assignment import shard_name
from protocol.invoice_http import InvoiceHttp

HTTP_NAME = "http"


@dataclass(frozen=True)
class HttpServiceOptions:
    order_shards: int
    #: The address it listens on (the config's http.host, or the launcher's loopback).
    host: str
    namespace: str | None = None
    name: str = HTTP_NAME
    #: 0: any free port (tests).
    port: int = 8766
    monitor_name: str = MONITOR_NAME
    #: How long /health waits for the monitor before answering 503.
    health_timeout_s: float = 3.0
    #: Freshness window of a signed request (the gateway's max_clock_skew_ms).
    max_clock_skew_ms: int = 60_000
    #: The served indexes (GET /indexes): baskets by symbol, each with its registry name; the market shards' count.
    baskets: Mapping[str, Basket] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    market_shards: int = 1
    unit: Decimal = Decimal("0.000001")
    #: "paper" in paper mode: every invoice served says so.
    trading_mode: str | None = None


class HealthRoute:
    """GET /health from a `health()` coroutine source (the monitor's), with the status code it implies."""

    def __init__(self, source: Any, timeout_s: float) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.stats: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.Response:
        try:
            health: Mapping[str, Any] = await asyncio.wait_for(self.source(), self.timeout_s)
        except Exception as exc:  # noqa: BLE001  (monitor gone, restarting or stuck)
            health = {"status": "unhealthy", "healthy": False, "problems": [f"monitor: {type(exc).__name__}: "
                                                                            f"{exc}"[:300]], "actors": {}, "lags": {}}
        status = 200 if health.get("healthy") else 503
        self.stats[str(status)] = self.stats.get(str(status), 0) + 1
        return web.json_response(dict(health), status=status, headers={"Cache-Control": "no-store"})


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class HttpService:
    def __init__(self, options: HttpServiceOptions) -> None:
        setup_logging(options.name)
        self.o = options
        self._handles: dict[str, Any] = {}
        self.invoices = InvoiceHttp(self._user_view, max_skew_ms=options.max_clock_skew_ms,
                                    trading_mode=options.trading_mode)
        self.health = HealthRoute(self._monitor_health, options.health_timeout_s)
        self.app = web.Application()
        self.app.add_routes([web.get("/health", self.health.handle), web.get("/indexes", self._indexes),
                             *self.invoices.routes()])
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._started: asyncio.Task | None = None
        try:
            asyncio.get_running_loop()
            self._started = asyncio.ensure_future(self._start())  # a restart listens again by itself
        except RuntimeError:
            pass

    def _actor(self, name: str) -> Any:
        h = self._handles.get(name)
        if h is None:
            h = ray.get_actor(name, namespace=self.o.namespace)
            self._handles[name] = h
        return h

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._actor(name), method).remote(*args)
        except ray.exceptions.RayActorError:
            self._handles.pop(name, None)  # restarted: a fresh handle next time
            raise

    async def _user_view(self, address: str) -> Mapping[str, Any] | None:
        return await self._call(orders_shard_name(shard_of_user(address, self.o.order_shards)), "user", address)

    async def _indexes(self, request: web.Request) -> web.Response:
        """Public: every served index with its assets and live prices, read from the market shards now."""
        try:
            tops: dict[str, Any] = {}
            for part in await asyncio.gather(*(self._call(shard_name(k), "top") for k in range(self.o.market_shards))):
                tops.update(part)
        except Exception as exc:  # noqa: BLE001  (a market shard restarting: the listing says so, 503)
            return web.json_response({"error": f"market data unavailable: {type(exc).__name__}"}, status=503)
        listing = [list_index(b, self.o.names.get(k, ""), tops, self.o.unit) for k, b in self.o.baskets.items()]
        return web.json_response({"indexes": listing}, headers={"Cache-Control": "no-store"})

    async def _monitor_health(self) -> Mapping[str, Any]:
        return await self._call(self.o.monitor_name, "health")

    async def _start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.o.host, self.o.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]  # the bound port (port 0 asks for any free one)

    async def start(self) -> str:
        """Idempotent: listen; returns the base URL (http://host:port)."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.o.host}:{self.port}"

    async def inspect(self) -> dict[str, Any]:
        return {"url": self.url if self.port else None, "health_answers": dict(self.health.stats),
                "invoice_answers": dict(self.invoices.stats)}

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def start_http_service(options: HttpServiceOptions, *, detached: bool = False) -> Any:
    """Create (or get) the named HTTP service; `ray.get(handle.start.remote())` returns its URL."""
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    return HttpService.options(**opts).remote(options)

"""The `router` actor: the CollateralRouter (chain/collateral_router.py) in a Ray actor.

It takes confirmed deposits from `chain` (one call per batch), steps every route on a timer, and reaches the
exchange through actors/exchange_deposits.py. Its state is in Redis, so a restarted actor resumes each route at its
hop; the keyed transactions in `chain` make sure nothing is paid twice. It books into the index-order shards, or
into RedisLedgers when it runs without them."""
from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import ray

import core  # noqa: F401  (decimal context in the worker)
from actors.logs import setup_logging
from actors.order_shards import ShardedCollateralSink, orders_shard_name, shard_of_user
from actors.exchange_deposits import ExchangeKeys, deposit_gateway, gateway_deposit_callables
from chain.collateral_router import CollateralRouter, RouterConfig
from chain.redis_ledgers import RedisLedgers
from chain.route_effects import BridgeSent, FillSeen, TransferSent
from core.chain_events import CollateralDeposit
from core.clock import SystemClock
from core.config import Settings

log = logging.getLogger(__name__)


class ActorRouteEffects:
    """RouteEffects whose chain hops are calls to the `chain` actor."""

    def __init__(self, chain: Any, deposit_address: Any, exchange_credited: Any) -> None:
        self.chain = chain
        self._deposit_address = deposit_address
        self._exchange_credited = exchange_credited

    async def bridge(self, key: str, amount: Decimal) -> BridgeSent:
        return await self.chain.bridge.remote(key, amount)

    async def find_fill(self, deposit_id: int, from_block: int) -> FillSeen | None:
        return await self.chain.find_fill.remote(deposit_id, from_block)

    async def fill_expired(self, fill_deadline: int) -> bool:
        return await self.chain.fill_expired.remote(fill_deadline)

    async def transfer(self, key: str, address: str, amount: Decimal, *, from_custody: bool = False
                       ) -> TransferSent:
        return await self.chain.transfer.remote(key, address, amount, from_custody=from_custody)

    async def deposit_address(self, coin: str, network: str) -> str:
        return await self._deposit_address(coin, network)

    async def exchange_credited(self, coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None:
        return await self._exchange_credited(coin, network, tx_hash, amount)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class RouterActor:
    def __init__(self, redis_url: str, settings: Settings, exchange_keys: ExchangeKeys | None = None, *,
                 chain_name: str = "chain", chain_namespace: str | None = None, step_s: float = 0.1,
                 store_namespace: str = "router", order_shards: int | None = None) -> None:
        import redis.asyncio as aioredis

        setup_logging("router")

        self.redis = aioredis.Redis.from_url(redis_url)
        self.gateway = deposit_gateway(settings.exchange, exchange_keys or ExchangeKeys.from_env())
        deposit_address, exchange_credited = gateway_deposit_callables(self.gateway,
                                                                       settings.exchange.deposit_address)
        self.ledgers = RedisLedgers(self.redis, unit=settings.chain.usdc_unit)
        # The whole flow books collateral in the users' index-order shards (credited on accept, fees charged per
        # hop); without shards (the chain-side tests) the router keeps its own RedisLedgers.
        self.shards = ([ray.get_actor(orders_shard_name(k), namespace=chain_namespace) for k in range(order_shards)]
                       if order_shards else None)
        sink = ShardedCollateralSink(self.shards) if self.shards else self.ledgers
        chain = ray.get_actor(chain_name, namespace=chain_namespace)
        self.router = CollateralRouter(self.redis, ActorRouteEffects(chain, deposit_address, exchange_credited),
                                       sink, SystemClock(), RouterConfig.from_settings(settings,
                                                                                               store_namespace))
        self.step_s = step_s
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        # Start at once, on creation and on every restart (Ray re-runs __init__ on the actor's running loop), so
        # a restarted actor resumes by itself; start() stays idempotent for launchers that call it.
        try:
            asyncio.get_running_loop().create_task(self.start())
        except RuntimeError:  # no loop: constructed outside Ray (a test); the caller starts it
            pass

    async def start(self) -> bool:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self._run())
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.gateway.close()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.router.step()
            except Exception as exc:  # one failed step is retried on the next tick; routes keep their hop
                log.warning("router step failed: %s", exc)
            try:
                await asyncio.wait_for(self._stop.wait(), self.step_s)  # the stepping interval
            except asyncio.TimeoutError:
                pass

    async def accept(self, deposits: list[CollateralDeposit]) -> int:
        return len(await self.router.accept(deposits))

    async def reverse(self, deposit_keys: list[str]) -> int:
        """Deposits dropped by a reorg after their credit (from `chain`, one call per batch)."""
        return len(await self.router.reverse(deposit_keys))

    async def ledger(self, user: str) -> dict[str, Any]:
        if self.shards:
            view = await self.shards[shard_of_user(user, len(self.shards))].user.remote(user)
            return view["ledger"] if view else {}
        return (await self.ledgers.ledger(user)).to_dict()

    async def inspect(self) -> dict[str, Any]:
        return await self.router.inspect()

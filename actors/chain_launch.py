"""Starts the chain side's two actors, `chain` and `router`, named, num_cpus=0, in the configured namespace."""
from __future__ import annotations

from typing import Any

import ray

from actors.chain_actor import ChainActor
from actors.exchange_deposits import ExchangeKeys
from actors.router_actor import RouterActor
from core.config import Settings
from store.retry import RetryPolicy


def start_chain_actors(*, world_file: str, redis_url: str, settings: Settings,
                       exchange_keys: ExchangeKeys | None = None, namespace: str | None = None,
                       detached: bool = False, poll_s: float = 0.1, step_s: float = 0.1,
                       order_shards: int | None = None) -> tuple[Any, Any]:
    """Create (or get) the named `chain` and `router` actors and start their loops. Returns (chain, router).
    `chain` first: the router looks it up by name when it is built. The router reaches the exchange at
    `settings.exchange.rest_url` with `exchange_keys` (default: ExchangeKeys.from_env()). With `order_shards`, the
    router books collateral in the `orders-{k}` shards (ShardedCollateralSink), and the chain credits index tokens
    sent back to custody there (ShardedTokenSink); the shards must exist first."""
    opts: dict[str, Any] = {"get_if_exists": True}
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    chain = ChainActor.options(name="chain", **opts).remote(world_file, redis_url, settings.chain, poll_s=poll_s,
                                                            router_namespace=namespace,
                                                            retry=RetryPolicy.from_settings(settings),
                                                            order_shards=order_shards)
    router = RouterActor.options(name="router", **opts).remote(redis_url, settings,
                                                                exchange_keys or ExchangeKeys.from_env(),
                                                                chain_namespace=namespace, step_s=step_s,
                                                                order_shards=order_shards)
    ray.get([chain.start.remote(), router.start.remote()])
    return chain, router

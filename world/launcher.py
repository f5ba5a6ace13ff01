"""One object that starts the whole system on this machine and stops it again: the local world (redis-server,
anvil x2 with the contracts, the Across relayer, the exchange simulator watching Base for deposits) and every actor
on a local Ray instance, named, in one namespace.

Why one object: the demo, the e2e tests and (later) `indexmaker up` all need the same wiring in the same order —
the order matters because actors find each other by name: market data, the sender, the order-book shards first;
then the gateway and the router (both look the shards up), then the solver (sender, shards, markets), then the
minter (solver and chain). `stop()` undoes it in reverse and is safe to call twice or after a failed start.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import core  # noqa: F401  (decimal context)
from core.config import ChainConfig, ExchangeConfig, Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NAMESPACE = "indexmaker"
NAMESPACE_ENV = "INDEXMAKER_NAMESPACE"


@dataclass
class LauncherOptions:
    #: The index served and the basket file it is read from (wire symbols are [A-Z0-9]: "SY100.dev" is not one).
    index: str = "SY100DEV"
    index_file: str = "SY100.dev.json"
    users: int = 3
    order_shards: int = 2
    market_shards: int = 2
    #: Ray namespace of every actor. None: env INDEXMAKER_NAMESPACE, else the design's "indexmaker" on a Ray
    #: instance this launcher starts, or the namespace of one already initialised (a test's cluster).
    namespace: str | None = None
    #: The gateway's port: None takes the configured one (settings.ports.gateway), 0 any free port (tests).
    gateway_port: int | None = None
    #: Where redis keeps its AOF and the world file is written (a fresh temporary directory by default).
    state_dir: Path | None = None
    #: The simulator's price process step (ms) and its exchange-side deposit polling.
    price_update_ms: int = 100
    deposit_poll_ms: int = 20
    #: Automine chains: a deposit is final once mined (confirmations 0); the listener still checks reorgs.
    confirmations: int = 0
    tick_interval_ms: int = 50
    poll_s: float = 0.05


class LocalSystem:
    """`start()` brings everything up and returns self; `stop()` takes it all down (reverse order)."""

    def __init__(self, options: LauncherOptions | None = None, settings: Settings | None = None) -> None:
        self.o = options or LauncherOptions()
        self.base_settings = settings or Settings()
        self.settings: Settings | None = None
        self.namespace = self.o.namespace or os.environ.get(NAMESPACE_ENV, DEFAULT_NAMESPACE)
        self._own_ray = False
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.redis: Any = None
        self.chains: Any = None
        self.relayer: Any = None
        self.exchange: Any = None
        self.state: Any = None
        self.world_file: Path | None = None
        self.basket: Any = None
        self.filters: dict[str, Any] = {}
        self.actors: dict[str, Any] = {}
        self.gateway_url: str | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> "LocalSystem":
        try:
            self._start_world()
            self._start_ray()
            self._start_actors()
            return self
        except BaseException:
            self.stop()
            raise

    def _start_world(self) -> None:
        from chain.keys import DEV_MNEMONIC
        from core.basket import load_indexes
        from world.chains import LocalChains, LocalChainsConfig
        from world.local_exchange import LocalExchange, LocalExchangeConfig
        from world.redis_server import RedisServer
        from world.relayer import AcrossRelayer

        if self.o.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="indexmaker-")
            state_dir = Path(self._tmp.name)
        else:
            state_dir = Path(self.o.state_dir)
            state_dir.mkdir(parents=True, exist_ok=True)
        self.basket = load_indexes(self.base_settings.data_dir / "indexes",
                                   {self.o.index: self.o.index_file})[self.o.index]
        symbols = tuple(a.symbol for a in self.basket.assets)
        self.redis = RedisServer(state_dir / "redis").start()
        self.redis.client().flushall()
        self.world_file = state_dir / "world.json"
        self.chains = LocalChains(LocalChainsConfig(users=self.o.users), state_file=self.world_file)
        self.state = self.chains.start()
        self.relayer = AcrossRelayer.from_world(self.state, mnemonic=DEV_MNEMONIC, poll_s=0.02).start()
        self.exchange = LocalExchange(self.state, LocalExchangeConfig(
            confirmations=1, poll_ms=self.o.deposit_poll_ms, symbols=symbols,
            update_ms=self.o.price_update_ms)).start()
        with urllib.request.urlopen(self.exchange.url + "/api/v3/exchangeInfo", timeout=30) as resp:
            info = json.loads(resp.read())
        from core.symbol_filters import parse_exchange_info

        self.filters = {s: f for s, f in parse_exchange_info(info).items() if s in symbols}
        s = self.base_settings
        self.settings = s.model_copy(update={
            "chain": ChainConfig(**{**s.chain.model_dump(), "confirmations": self.o.confirmations,
                                    "receipt_poll_ms": 20}),
            "exchange": ExchangeConfig(**{**s.exchange.model_dump(), "rest_url": self.exchange.url,
                                          "ws_url": self.exchange.ws_url,
                                          "market_shards": self.o.market_shards}),
            "ports": s.ports.model_copy(update={"redis": self.redis.port}),
        })

    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():  # a test's cluster (or a caller's): its namespace unless one was asked for
            if self.o.namespace is None:
                self.namespace = ray.get_runtime_context().namespace or self.namespace
            return
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(namespace=self.namespace, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        self._own_ray = True

    def _start_actors(self) -> None:
        import ray

        from actors.chain_launch import start_chain_actors
        from actors.exchange_deposits import ExchangeKeys
        from actors.gateway import GatewayActorOptions, start_gateway
        from actors.market_data import MarketDataOptions, start_market_data
        from actors.minter import MinterOptions, start_minter
        from actors.order_books import OrderBooksOptions, start_order_books
        from actors.order_sender import SenderOptions, start_sender
        from actors.solver import SolverOptions, start_solver
        from core.batch_planner import PlannerLimits

        s, ns, o = self.settings, self.namespace, self.o
        assert s is not None
        redis_url = self.redis.url
        account = self.exchange.account  # the simulator's own account: deposits land in it, the sender trades it
        symbols = [a.symbol for a in self.basket.assets]
        markets = start_market_data(MarketDataOptions(self.exchange.url, self.exchange.ws_url,
                                                      book_limit=s.exchange.order_book_depth),
                                    symbols, o.market_shards, namespace=ns)
        for k, m in enumerate(markets):
            self.actors[f"market-{k}"] = m
        self.actors["sender"] = start_sender(SenderOptions.from_settings(s, account.api_key, account.secret,
                                                                         redis_url=redis_url),
                                             namespace=ns)
        shards = start_order_books(OrderBooksOptions.from_settings(s, (o.index,), o.order_shards,
                                                                   redis_url=redis_url), namespace=ns)
        for k, sh in enumerate(shards):
            self.actors[f"orders-{k}"] = sh
        port = s.ports.gateway if o.gateway_port is None else o.gateway_port
        gateway = start_gateway(GatewayActorOptions(redis_url, o.order_shards, "0x" + secrets.token_hex(32),
                                                    namespace=ns, config={"port": port}))
        self.actors["gateway"] = gateway
        chain, router = start_chain_actors(world_file=str(self.world_file), redis_url=redis_url, settings=s,
                                           exchange_keys=ExchangeKeys(account.api_key, account.secret),
                                           namespace=ns, poll_s=o.poll_s, step_s=o.poll_s,
                                           order_shards=o.order_shards)
        self.actors["chain"], self.actors["router"] = chain, router
        if not all(ray.get([m.wait_ready.remote(60.0) for m in markets])):
            raise RuntimeError("market data not ready")
        solver = start_solver(SolverOptions.from_settings(s, o.order_shards, redis_url=redis_url, namespace=ns,
                                                          tick_interval_ms=o.tick_interval_ms),
                              {o.index: self.basket}, self.filters, PlannerLimits.from_settings(s))
        self.actors["solver"] = solver
        ray.get(solver.start.remote())
        self.actors["minter"] = start_minter(MinterOptions(namespace=ns, poll_ms=int(o.poll_s * 1000)))
        self.gateway_url = ray.get(gateway.start.remote())

    # ------------------------------------------------------------------ handles and stop
    def actor(self, name: str) -> Any:
        return self.actors[name]

    def shard(self, address: str) -> Any:
        from actors.order_books import shard_of_user

        return self.actors[f"orders-{shard_of_user(address, self.o.order_shards)}"]

    def stop(self) -> None:
        try:
            import ray

            if ray.is_initialized():
                for name in ("minter", "solver", "gateway", "router", "chain"):
                    handle = self.actors.get(name)
                    if handle is not None:
                        try:
                            ray.get(handle.stop.remote(), timeout=10)
                        except Exception:  # noqa: BLE001  (already gone or stuck: killed below anyway)
                            pass
                for handle in reversed(list(self.actors.values())):
                    try:
                        ray.kill(handle, no_restart=True)
                    except Exception:  # noqa: BLE001
                        pass
            self.actors.clear()
            if self._own_ray:
                ray.shutdown()
                self._own_ray = False
        finally:
            for part in (self.exchange, self.relayer, self.chains, self.redis):
                if part is not None:
                    try:
                        part.stop()
                    except Exception as exc:  # noqa: BLE001  (the others must still stop)
                        log.warning("stopping %s: %s", type(part).__name__, exc)
            self.exchange = self.relayer = self.chains = self.redis = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> "LocalSystem":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

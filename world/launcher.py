"""One object that starts the whole system on this machine and stops it again: the local world (redis-server, two
anvil chains, the relayer, the simulator) and every actor on Ray, named, in one namespace. With an external world
(any environment but "local") it starts only the actors (and redis when `[store] url` is "local"), against the
chains, exchange and store the configuration and its deployment file name.

The demo, the tests and `indexmaker up` share this wiring and its order (actors find each other by name; the
minter last). `stop()` is safe twice. `state_dir` with `resume=True` starts from what is stored.
"""
from __future__ import annotations

import dataclasses
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
from core.config import DEPLOY, LOCAL_STORE, ChainConfig, ExchangeConfig, Settings
from world.placement import placed
from world.ports import LOOPBACK

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NAMESPACE = "indexmaker"
NAMESPACE_ENV = "INDEXMAKER_NAMESPACE"
GATEWAY_KEY_ENV = "INDEXMAKER_GATEWAY_KEY"
GATEWAY_KEY_FILE = "gateway.key"
PORTS_FILE = "ports.json"
#: Paper mode: the paper exchange's account, kept across `down` / `up` as the simulator's is (exchange.json).
PAPER_EXCHANGE_FILE = "paper_exchange.json"
#: What a shipped working_dir leaves out (installed per node, or state).
SHIP_EXCLUDES = [".venv/", "node_modules/", "state/", ".git/", ".pytest_cache/", ".hypothesis/", "**/__pycache__/"]


@dataclass(frozen=True)
class _Upstream:
    """An external exchange the paper exchange mirrors: nothing of it runs here (no process to stop)."""

    url: str | None
    ws_url: str | None
    pid: None = None

    def stop(self) -> None:
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _free_or_none(port: int | None) -> int | None:
    """`port` if it can be listened on now (the port a store had before), else None (any free one)."""
    from world.ports import port_is_free

    return int(port) if port and port_is_free(int(port)) else None


def _gcs_address() -> str | None:
    import ray

    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001  (a Ray Client connection has none)
        return None


def _actor_names(namespace: str) -> list[str]:
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a.get("namespace") == namespace)


def _wait_name_released(name: str, namespace: str, timeout_s: float = 30.0) -> None:
    """After ray.kill the name is released asynchronously; a new actor may take it only then."""
    import time

    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.05)  # polling the GCS: no event tells a driver that a name was released
    raise TimeoutError(f"actor {name!r} in namespace {namespace!r} still registered {timeout_s} s after its kill")


@dataclass
class LauncherOptions:
    """What a launch varies (where, which Ray, ports for tests). The numbers default to None: taken from the
    settings (`[system]`, `[local]`, `exchange.market_shards`, `solver.tick_interval_ms`); a test may pin one."""

    users: int | None = None
    order_shards: int | None = None
    market_shards: int | None = None
    #: Ray namespace of every actor. None: env INDEXMAKER_NAMESPACE, else the design's "indexmaker" on a Ray
    #: instance this launcher starts, or the namespace of one already initialised (a test's cluster).
    namespace: str | None = None
    #: The gateway's port: None takes the configured one (settings.ports.gateway), 0 any free port (tests).
    gateway_port: int | None = None
    #: Where redis keeps its AOF and the world file is written (a fresh temporary directory by default).
    state_dir: Path | None = None
    #: With a state dir: resume what it holds (redis, chains, exchange, gateway key) instead of wiping it first.
    resume: bool = False
    #: Ray: None starts a Ray instance (or uses an initialised one); "auto", "host:port", "ray://host:10001" attach.
    address: str | None = None
    #: Detached actors outlive the process that made them (`indexmaker up` on a cluster).
    detached: bool = False
    #: Actor name or "prefix*" -> Ray custom resources; None: the config's ray.placement.
    placement: dict[str, dict[str, float]] | None = None
    #: Attaching to a cluster whose nodes do not have this checkout: ship it as the job's working_dir.
    ship_code: bool = False
    #: The simulator's price process step (ms) and its exchange-side deposit polling.
    price_update_ms: int | None = None
    deposit_poll_ms: int | None = None
    #: Blocks on top of a deposit before it is credited on the local (automine) chains.
    confirmations: int | None = None
    tick_interval_ms: int | None = None
    poll_ms: int | None = None

    def resolved(self, settings: Settings) -> "LauncherOptions":
        """These options with every None taken from the settings."""
        from_settings = {
            "users": settings.local.users, "order_shards": settings.system.order_shards,
            "market_shards": settings.exchange.market_shards, "price_update_ms": settings.local.price_update_ms,
            "deposit_poll_ms": settings.local.deposit_poll_ms, "confirmations": settings.local.confirmations,
            "tick_interval_ms": settings.solver.tick_interval_ms, "poll_ms": settings.system.poll_ms}
        return dataclasses.replace(self, **{k: v for k, v in from_settings.items() if getattr(self, k) is None})


class LocalSystem:
    """`start()` brings everything up and returns self; `stop()` takes it all down (reverse order)."""

    def __init__(self, options: LauncherOptions | None = None, settings: Settings | None = None) -> None:
        self.base_settings = settings or Settings()
        self.o = (options or LauncherOptions()).resolved(self.base_settings)
        self.settings: Settings | None = None
        self.namespace = (self.o.namespace or os.environ.get(NAMESPACE_ENV)
                          or self.base_settings.ray.namespace or DEFAULT_NAMESPACE)
        self.placement = self.base_settings.ray.placement if self.o.placement is None else self.o.placement
        self._own_ray = False
        self._connected_ray = False
        self.ray_address: str | None = None
        self.resumed = False
        self.state_dir: Path | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.redis: Any = None
        self.chains: Any = None
        self.relayer: Any = None
        self.return_relayer: Any = None  # fills the withdrawals' deposits, Base -> Arbitrum
        self.exchange: Any = None
        #: Paper mode: the exchange whose market data the paper exchange (`exchange`) mirrors.
        self.upstream: Any = None
        self.state: Any = None
        self.world_file: Path | None = None
        self.baskets: dict[str, Any] = {}
        self.filters: dict[str, Any] = {}
        self.actors: dict[str, Any] = {}
        self.gateway_url: str | None = None
        self.http_url: str | None = None
        #: Not the local world: the configuration names the chains, the exchange and (unless "local") the store.
        self.external = self.base_settings.environment != "local"
        #: The exchange account the sender and router use (actors.exchange_deposits.ExchangeKeys).
        self.exchange_keys: Any = None

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
        from actors.exchange_deposits import ExchangeKeys
        from chain.keys import DEV_MNEMONIC
        from core.basket import load_indexes
        from world.chains import HOT_WALLET, LocalChains, LocalChainsConfig
        from world.local_exchange import LocalExchange, LocalExchangeConfig
        from world.redis_server import RedisServer
        from world.relayer import AcrossRelayer

        if self.o.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="indexmaker-")
            state_dir = Path(self._tmp.name)
        else:
            state_dir = Path(self.o.state_dir).expanduser()
            state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir
        persistent = self.o.state_dir is not None
        self.baskets = load_indexes(self.base_settings.data_dir / "indexes", self.base_settings.basket_files())
        if self.external:
            self._attach_world(state_dir)
            return
        symbols = self.symbols
        self.world_file = state_dir / "world.json"
        tokens = tuple((index, entry.name or f"IndexMaker {index}") for index, entry in
                       self.base_settings.indexes.items() if entry.token == DEPLOY)
        self.chains = LocalChains(LocalChainsConfig(users=self.o.users, index_tokens=tokens),
                                  state_file=self.world_file,
                                  state_dir=state_dir if persistent else None)
        exchange_file = state_dir / "exchange.json"
        ports = _read_json(state_dir / PORTS_FILE)
        self.redis = RedisServer(state_dir / "redis", _free_or_none(ports.get("redis"))).start()
        self.resumed = self.o.resume and persistent and self.chains.can_resume()
        if self.resumed:
            if self.redis.client().dbsize() == 0:
                raise RuntimeError(
                    f"{state_dir} holds the chains ({self.world_file}, anvil-*.json) but its store (redis) is "
                    f"empty: resuming would credit every deposit again. Start afresh (--fresh) or restore "
                    f"{state_dir / 'redis'}.")
            kept_mode, mode = ports.get("exchange_mode", "live"), self.base_settings.exchange.mode
            if kept_mode != mode:
                raise RuntimeError(
                    f"{state_dir} holds a system that traded in exchange mode {kept_mode!r}, not {mode!r}: its "
                    f"orders and balances are on the other exchange. Start afresh (--fresh) or keep the mode.")
            self.state = self.chains.resume()
        else:
            if self.o.resume and persistent and self.redis.client().dbsize() > 0:
                raise RuntimeError(
                    f"{state_dir} holds a store (redis) but not the chains it belongs to ({self.world_file}, "
                    f"anvil-*.json): resuming would pair old orders with new chains. Start afresh (--fresh) or "
                    f"restore the missing files.")
            self.redis.client().flushall()  # a fresh start: nothing of an earlier world may leak into this one
            exchange_file.unlink(missing_ok=True)
            (state_dir / PAPER_EXCHANGE_FILE).unlink(missing_ok=True)
            self.state = self.chains.start()
        _write_json(state_dir / PORTS_FILE, {**ports, "redis": self.redis.port,
                                             "exchange_mode": self.base_settings.exchange.mode})
        local = self.base_settings.local
        self.relayer = AcrossRelayer.from_world(self.state, mnemonic=DEV_MNEMONIC,
                                                poll_s=local.relayer_poll_ms / 1000).start()
        self.return_relayer = AcrossRelayer.from_world(self.state, mnemonic=DEV_MNEMONIC, origin="base",
                                                       destination="arbitrum",
                                                       poll_s=local.relayer_poll_ms / 1000).start()
        hot = self.state.accounts.get(HOT_WALLET)  # a world saved before it had one: withdrawals not paid on chain
        self.exchange = LocalExchange(self.state, LocalExchangeConfig(
            confirmations=local.exchange_confirmations, poll_ms=self.o.deposit_poll_ms, symbols=symbols,
            update_ms=self.o.price_update_ms, state_file=str(exchange_file) if persistent else None),
            hot_wallet_index=None if hot is None else hot.index).start()
        if self.base_settings.exchange.mode == "paper":
            self._start_paper_exchange(symbols, state_dir / PAPER_EXCHANGE_FILE if persistent else None)
        with urllib.request.urlopen(self.exchange.url + "/api/v3/exchangeInfo", timeout=30) as resp:
            info = json.loads(resp.read())
        from core.symbol_filters import parse_exchange_info

        self.filters = {s: f for s, f in parse_exchange_info(info).items() if s in symbols}
        s = self.base_settings
        self.settings = s.model_copy(update={
            "chain": ChainConfig(**{**s.chain.model_dump(), "confirmations": self.o.confirmations,
                                    "base_confirmations": self.o.confirmations,
                                    "receipt_poll_ms": s.local.receipt_poll_ms}),
            "exchange": ExchangeConfig(**{**s.exchange.model_dump(), "rest_url": self.exchange.url,
                                          "ws_url": self.exchange.ws_url, "ws_api_url": None, "sandbox": False,
                                          "market_shards": self.o.market_shards}),
            "ports": s.ports.model_copy(update={"redis": self.redis.port}),
            **self._addresses(s, self.redis.url),
        })
        account = self.exchange.account  # the simulator's own account: deposits land in it, the sender trades it
        self.exchange_keys = ExchangeKeys(account.api_key, account.secret)

    @staticmethod
    def _addresses(s: Settings, redis_url: str) -> dict[str, Any]:
        """The settings' store URL (the one started or configured) and bind hosts (the loopback where the
        configuration names none): every part then takes its addresses from the settings."""
        return {"store": s.store.model_copy(update={"url": redis_url}),
                "gateway": s.gateway.model_copy(update={"host": s.gateway.host or LOOPBACK}),
                "http": s.http.model_copy(update={"host": s.http.host or LOOPBACK})}

    def _attach_world(self, state_dir: Path) -> None:
        """An external world: nothing of it is started here but a "local" store. Its chains are described by the
        configuration and its deployment file (written as this run's world file, which the chain actor reads), the
        exchange account comes from the secrets. `indexmaker up` has checked it answers (world/world_check.py)."""
        import asyncio

        from actors.exchange_deposits import ExchangeKeys
        from chain.external_world import load_external_world
        from chain.keys import MNEMONIC_ENV
        from core.config import REPO_ROOT
        from world.redis_server import RedisServer
        from world.secrets import require, store_url

        s = self.base_settings
        paper = s.exchange.mode == "paper"
        if paper:  # nothing is signed for the exchange: the operator's key if given, else the simulator's test one
            (mnemonic,) = require(MNEMONIC_ENV)
            self.exchange_keys = ExchangeKeys.from_env()
        else:
            mnemonic, api_key, secret = require(MNEMONIC_ENV, "INDEXMAKER_EXCHANGE_API_KEY",
                                                "INDEXMAKER_EXCHANGE_SECRET")
            self.exchange_keys = ExchangeKeys(api_key, secret)
        self.world_file = state_dir / "world.json"
        self.state = load_external_world(s, REPO_ROOT / "config", mnemonic)
        self.state.save(self.world_file)
        if s.store.url == LOCAL_STORE:
            ports = _read_json(state_dir / PORTS_FILE)
            self.redis = RedisServer(state_dir / "redis", _free_or_none(ports.get("redis"))).start()
            _write_json(state_dir / PORTS_FILE, {**ports, "redis": self.redis.port})
            redis_url = self.redis.url
        else:
            redis_url = store_url(s.store.url)
        self.resumed = self._store_size(redis_url) > 0
        if self.resumed and not self.o.resume:
            raise RuntimeError(f"the store {s.store.url} holds an earlier run's state: an external world's store is "
                               f"never wiped by `up --fresh` (its chains and exchange account go on); empty it "
                               f"yourself if that is meant")
        if paper:
            # The configured exchange is the upstream the paper exchange mirrors; everything after this trades on
            # the paper one (its account kept in the state dir across down/up).
            self.upstream = _Upstream(s.exchange.rest_url, s.exchange.ws_url)
            self._start_paper_exchange(self.symbols, state_dir / PAPER_EXCHANGE_FILE,
                                       confirmations=s.chain.base_confirmations)
            s = s.model_copy(update={"exchange": s.exchange.model_copy(update={
                "rest_url": self.exchange.url, "ws_url": self.exchange.ws_url, "ws_api_url": None, "sandbox": False,
                "deposit_address": None})})
        self.filters = {sym: f for sym, f in asyncio.run(self._exchange_filters(s)).items() if sym in self.symbols}
        self.settings = s.model_copy(update=self._addresses(s, redis_url))

    @staticmethod
    def _store_size(redis_url: str) -> int:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            return int(client.dbsize())
        finally:
            client.close()

    async def _exchange_filters(self, s: Settings) -> dict[str, Any]:
        """The configured exchange's symbol filters (exchangeInfo), which the solver plans with."""
        from core.symbol_filters import parse_exchange_info
        from exchange.gateway import BinanceGateway

        gw = BinanceGateway.from_config(s.exchange, self.exchange_keys.api_key, self.exchange_keys.secret)
        try:
            return parse_exchange_info(await gw.fetch_exchange_info())
        finally:
            await gw.close()

    def _start_paper_exchange(self, symbols: tuple[str, ...], state_file: Path | None,
                              confirmations: int | None = None) -> None:
        """Paper mode: the exchange just started (the local world's simulator) or configured (an external world's)
        plays the live exchange (`upstream`); the paper exchange in front of it mirrors its market data and is the
        exchange of everything after this (market shards, sender, router), so nothing the system sends reaches the
        upstream's order or account endpoints. It credits the deposits the router makes on Base to its address
        after `confirmations` (default: the local world's)."""
        from world.local_exchange import LocalExchangeConfig
        from world.paper_exchange import PaperExchangeProcess

        s, local = self.base_settings, self.base_settings.local
        if self.upstream is None:
            self.upstream = self.exchange
        self.exchange = None  # stop() stops the upstream alone if the paper exchange fails to start
        confirmations = local.exchange_confirmations if confirmations is None else confirmations
        self.exchange = PaperExchangeProcess(
            self.state, LocalExchangeConfig(confirmations=confirmations, poll_ms=self.o.deposit_poll_ms,
                                            symbols=symbols, state_file=str(state_file) if state_file else None),
            upstream_rest_url=self.upstream.url, upstream_ws_url=self.upstream.ws_url,
            paper={**s.paper.model_dump(mode="json"), "host": s.paper.host or LOOPBACK},
            book_depth=s.exchange.order_book_depth).start()
        log.info("exchange mode PAPER: orders matched by the paper exchange %s on the market data of %s; nothing "
                 "is sent to the exchange", self.exchange.url, self.upstream.url)

    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():  # a test's cluster (or a caller's): its namespace unless one was asked for
            if self.o.namespace is None:
                self.namespace = ray.get_runtime_context().namespace or self.namespace
            self.ray_address = _gcs_address()
            return
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.o.address:
            ray.init(address=self.o.address, namespace=self.namespace, log_to_driver=False,
                     configure_logging=False, runtime_env=self._runtime_env())
            self._connected_ray = True
        else:
            ray.init(namespace=self.namespace, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env=self._runtime_env())
            self._own_ray = True
        self.ray_address = _gcs_address() or self.o.address

    def _runtime_env(self) -> dict[str, Any] | None:
        """The actors' environment: this checkout on PYTHONPATH (same machine, or nodes with the same checkout), or
        the checkout itself as working_dir (`ship_code`); inside `ray job submit` the job's own env applies. The
        secrets file's PATH goes along (never its contents): each worker reads it in the setup hook."""
        from world.secrets import SECRETS_FILE_ENV

        from chain.keys import DEV_MNEMONIC, MNEMONIC_ENV

        if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # a submitted job: its runtime_env is already the one
            return None
        # The local world's chains are deployed from anvil's public dev mnemonic: the chain actor must sign with
        # it too, whatever mnemonic this machine's environment holds for a real environment. An external world's
        # is the operator's secret: the actors have it from their environment or the secrets file, never from here.
        dev = {} if self.external else {MNEMONIC_ENV: DEV_MNEMONIC}
        env: dict[str, Any] = {"env_vars": {"PYTHONPATH": str(ROOT), **dev}}
        if self.o.ship_code:
            env = {"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES, "env_vars": dict(dev)}
        if os.environ.get(SECRETS_FILE_ENV):
            env.setdefault("env_vars", {})[SECRETS_FILE_ENV] = os.environ[SECRETS_FILE_ENV]
            env["worker_process_setup_hook"] = "world.secrets.load_into_environ"
        return env

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
        from store.retry import RetryPolicy

        from actors.chain_actor import ChainActor
        from actors.gateway import GatewayActor
        from actors.market_data import MarketDataShard
        from actors.minter import Minter
        from actors.order_books import IndexOrderBooks
        from actors.order_sender import OrderSender
        from actors.router_actor import RouterActor
        from actors.solver import Solver

        s, ns, o = self.settings, self.namespace, self.o
        assert s is not None
        redis_url = s.redis_url
        keys = self.exchange_keys
        symbols = list(self.symbols)
        detached = o.detached
        if detached:
            self._release_stale_actors(ns)
        table = self.placement
        with placed(MarketDataShard, table):
            markets = start_market_data(MarketDataOptions.from_settings(s), symbols, o.market_shards, namespace=ns,
                                        detached=detached)
        for k, m in enumerate(markets):
            self.actors[f"market-{k}"] = m
        with placed(OrderSender, table):
            self.actors["sender"] = start_sender(SenderOptions.from_settings(s, keys.api_key, keys.secret,
                                                                             redis_url=redis_url),
                                                 namespace=ns, detached=detached)
        with placed(IndexOrderBooks, table):
            shards = start_order_books(OrderBooksOptions.from_settings(
                s, tuple(self.baskets), o.order_shards, redis_url=redis_url, minter_name="minter",
                baskets={i: b.quantities() for i, b in self.baskets.items()},
                withdrawals_name="withdrawals", withdrawal_minimum=s.withdrawal.minimum,
                withdrawal_chains=frozenset({s.chain.arbitrum_chain_id})),
                                       namespace=ns, detached=detached)
        for k, sh in enumerate(shards):
            self.actors[f"orders-{k}"] = sh
        port = s.ports.gateway if o.gateway_port is None else o.gateway_port
        with placed(GatewayActor, table):
            gateway = start_gateway(GatewayActorOptions(redis_url, o.order_shards, self._gateway_key(),
                                                        namespace=ns, config={**s.gateway.model_dump(), "port": port},
                                                        retry=RetryPolicy.from_settings(s),
                                                        trading_mode=self.trading_mode),
                                  detached=detached)
        self.actors["gateway"] = gateway
        with placed(ChainActor, table), placed(RouterActor, table):
            chain, router = start_chain_actors(world_file=str(self.world_file), redis_url=redis_url, settings=s,
                                               exchange_keys=keys,
                                               namespace=ns, poll_s=o.poll_ms / 1000, step_s=o.poll_ms / 1000,
                                               order_shards=o.order_shards, detached=detached)
        self.actors["chain"], self.actors["router"] = chain, router
        if not all(ray.get([m.wait_ready.remote(60.0) for m in markets])):
            raise RuntimeError("market data not ready")
        with placed(Solver, table):
            solver = start_solver(SolverOptions.from_settings(s, o.order_shards, redis_url=redis_url, namespace=ns,
                                                              tick_interval_ms=o.tick_interval_ms),
                                  self.baskets, self.filters, PlannerLimits.from_settings(s),
                                  detached=detached)
        self.actors["solver"] = solver
        ray.get(solver.start.remote())
        with placed(Minter, table):
            self.actors["minter"] = start_minter(MinterOptions.from_settings(s, o.order_shards, namespace=ns),
                                                 detached=detached)
        from actors.withdrawals import Withdrawals, WithdrawalsOptions, start_withdrawals

        with placed(Withdrawals, table):
            self.actors["withdrawals"] = start_withdrawals(WithdrawalsOptions.from_settings(
                s, keys.api_key, keys.secret, o.order_shards, self.state.account("base_wallet").address,
                namespace=ns), detached=detached)
        self.gateway_url = ray.get(gateway.start.remote())
        # Observability: `http` (GET /health, the signed invoice service) beside the gateway, and the `monitor`
        # polling every actor above (and `http`) for the metrics and the health verdict.
        from actors.http_service import HttpService, HttpServiceOptions, start_http_service
        from actors.monitor import Monitor, MonitorOptions, start_monitor

        with placed(HttpService, table):
            self.actors["http"] = start_http_service(HttpServiceOptions(
                o.order_shards, namespace=ns, host=s.http.host, port=0 if o.gateway_port == 0 else s.ports.invoices,
                health_timeout_s=s.http.health_timeout_s,
                max_clock_skew_ms=s.gateway.max_clock_skew_ms, baskets=self.baskets,
                names={k: e.name for k, e in s.indexes.items()}, market_shards=o.market_shards,
                unit=s.collateral.unit, trading_mode=self.trading_mode), detached=detached)
        with placed(Monitor, table):
            self.actors["monitor"] = start_monitor(MonitorOptions.from_settings(s, tuple(self.actors), namespace=ns,
                                                                                reserves=self._reserves_options(),
                                                                                trading_mode=self.trading_mode),
                                                   detached=detached)
        self.http_url = ray.get(self.actors["http"].start.remote())

    # ------------------------------------------------------------------ helpers
    @property
    def trading_mode(self) -> str | None:
        """"paper" in paper mode (the users' reports and invoices say it), else None."""
        return "paper" if self.base_settings.exchange.mode == "paper" else None

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every pair the served indexes hold, each once (the simulator serves them, the market shards watch them)."""
        return tuple(sorted({a.symbol for b in self.baskets.values() for a in b.assets}))

    def _reserves_options(self):  # noqa: ANN202
        """What the monitor's (and `indexmaker reconcile`'s) reserves check reads: settings.reserves."""
        from actors.reserves_probe import ReservesOptions

        assert self.settings is not None
        return ReservesOptions.from_settings(self.settings, self.o.order_shards, tuple(self.baskets))

    def _gateway_key(self) -> str:
        """The gateway's signing key, the same on every start (users may pin its address): INDEXMAKER_GATEWAY_KEY,
        else the local world's own key in the state dir (made once, mode 600), else (a throwaway world) a new one."""
        if os.environ.get(GATEWAY_KEY_ENV):
            return os.environ[GATEWAY_KEY_ENV].strip()
        if self.o.state_dir is None:
            return "0x" + secrets.token_hex(32)
        path = self.state_dir / GATEWAY_KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("0x" + secrets.token_hex(32))
        return path.read_text().strip()

    def _release_stale_actors(self, namespace: str) -> None:
        """Detached actors of an earlier run that was not stopped cleanly still hold their names, and options that
        point at a world that is gone (its redis, its exchange URL): they are ended before new ones take the names.
        Their state is in Redis, so nothing is lost."""
        import ray

        stale = _actor_names(namespace)
        for name in stale:
            try:
                ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
            except ValueError:
                continue
        for name in stale:
            _wait_name_released(name, namespace)

    # ------------------------------------------------------------------ handles and stop
    def actor(self, name: str) -> Any:
        return self.actors[name]

    def shard(self, address: str) -> Any:
        from actors.order_shards import shard_of_user

        return self.actors[f"orders-{shard_of_user(address, self.o.order_shards)}"]

    def stop(self) -> None:
        try:
            import ray

            if ray.is_initialized():
                for name in ("withdrawals", "minter", "solver", "gateway", "router", "chain"):
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
            if self._own_ray or self._connected_ray:
                ray.shutdown()  # ends a Ray instance of our own; only disconnects from a cluster we attached to
                self._own_ray = self._connected_ray = False
        finally:
            from world.child_process import stop_parts

            stop_parts(self.exchange, self.upstream, self.relayer, self.return_relayer, self.chains, self.redis)
            self.exchange = self.upstream = self.relayer = self.return_relayer = self.chains = self.redis = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def processes(self) -> dict[str, int]:
        """The world's OS processes by role: pid (for the run file, and for `indexmaker down` after a crash)."""
        out: dict[str, int] = {}
        if self.redis is not None and self.redis.process is not None:
            out["redis"] = self.redis.process.pid
        if self.chains is not None:
            for name, node in self.chains.nodes.items():
                if node.pid is not None:
                    out[f"anvil-{name}"] = node.pid
        if self.upstream is not None:  # paper mode: the simulator (or an external exchange) is upstream
            if self.upstream.pid is not None:
                out["exchange"] = self.upstream.pid
            if self.exchange is not None and self.exchange.pid is not None:
                out["paper-exchange"] = self.exchange.pid
        elif self.exchange is not None and self.exchange.pid is not None:
            out["exchange"] = self.exchange.pid
        return out

    def __enter__(self) -> "LocalSystem":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

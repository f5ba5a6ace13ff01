"""The local world's exchange: the Binance simulator in a process of its own, crediting USDC transfers it sees on the
local Base chain. A process because actors reach it over HTTP and a simulator inside a caller's loop stops serving
when the caller blocks.

    python -m world.local_exchange '<json of LocalExchangeConfig + the Base chain>'

prints one JSON line once it listens. With `state_file` it resumes from its snapshot, on the same port."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from chain.deployment import WorldState
from world.child_process import ReadyLineProcess, announce_and_wait
from world.ports import LOOPBACK, port_is_free


@dataclass(frozen=True)
class LocalExchangeConfig:
    #: The exchange's name for the chain it watches, and the coin it credits.
    network: str = "BASE"
    coin: str = "USDC"
    #: Blocks the exchange waits for on top of a deposit (1: credited once mined).
    confirmations: int = 1
    #: How often the exchange reads the chain.
    poll_ms: int = 50
    #: Markets served: the route needs none, one keeps the start fast; price process off (0: stepped by hand).
    symbols: tuple[str, ...] = ("BTCUSDC",)
    update_ms: int = 0
    port: int = 0  # 0: any free port (the ready line says which), or the saved one when resuming
    #: Where the REST API listens; the market streams and the WebSocket API on addresses of their own where given
    #: (each on any free port), else on `host` too.
    host: str = LOOPBACK
    stream_host: str | None = None
    ws_api_host: str | None = None
    #: Where the exchange's state is kept across restarts (None: in memory only, lost on stop).
    state_file: str | None = None
    snapshot_ms: int = 500


@dataclass(frozen=True)
class ExchangeAccount:
    api_key: str
    secret: str


def deposit_chain(options: dict[str, Any], from_block: int) -> Any:
    """The chain the exchange watches for deposits to its accounts' addresses, from a child's options."""
    from exchange.simulator.chain_deposits import DepositChain

    c = options["config"]
    return DepositChain(c["network"], options["rpc_url"], options["token"], coin=c["coin"],
                        decimals=options["decimals"], confirmations=c["confirmations"], poll_ms=c["poll_ms"],
                        from_block=from_block)


def _serve_config(options: dict[str, Any], saved: dict[str, Any] | None = None) -> Any:
    from exchange.simulator.config import PriceProcessConfig, SimulatorConfig
    from exchange.simulator.persistence import deposit_cursor

    c = options["config"]
    from_block = options["from_block"]
    if saved is not None:  # blocks already read need not be read again (a re-read would credit nothing twice)
        from_block = max(from_block, deposit_cursor(saved, c["network"]) or 0)
    chain = deposit_chain(options, from_block)
    port = c["port"]
    if port == 0 and saved is not None and saved.get("port") and port_is_free(int(saved["port"]), c["host"]):
        port = int(saved["port"])
    return SimulatorConfig(host=c["host"], stream_host=c["stream_host"], ws_api_host=c["ws_api_host"], port=port,
                           symbols=tuple(c["symbols"]) or None, deposit_chains=(chain,),
                           process=PriceProcessConfig(update_ms=c["update_ms"]), accounts=[house_account()],
                           withdraw_chains=_withdraw_chains(options))


def _withdraw_chains(options: dict[str, Any]) -> tuple:
    """The exchange's hot wallet on the watched chain, when the world gave it one (a dev key's derivation index:
    no key on the command line): it pays the withdrawals for real."""
    from chain.keys import DEV_MNEMONIC, derive_account
    from exchange.simulator.chain_withdrawals import WithdrawChain

    index = options.get("hot_wallet_index")
    if index is None:
        return ()
    c = options["config"]
    key = "0x" + bytes(derive_account(DEV_MNEMONIC, int(index)).key).hex().removeprefix("0x")
    return (WithdrawChain(c["network"], options["rpc_url"], options["token"], coin=c["coin"],
                          decimals=options["decimals"], confirmations=c["confirmations"], poll_ms=c["poll_ms"],
                          hot_wallet_key=key),)


def house_account() -> Any:
    """The account the system trades: the operator's keys (INDEXMAKER_EXCHANGE_API_KEY / _SECRET, through the
    environment the child inherits: never on its command line), else the simulator's test keys; funded like the
    simulator's default account."""
    from actors.exchange_deposits import ExchangeKeys
    from exchange.simulator.config import AccountSpec, SimulatorConfig

    keys = ExchangeKeys.from_env()
    (default,) = SimulatorConfig(host=LOOPBACK).accounts
    return AccountSpec(keys.api_key, keys.secret, dict(default.balances))


def _fingerprint(sim: Any) -> tuple[int, ...]:
    """Changes when an account, an order event or a deposit happened (each takes the next id)."""
    from exchange.simulator.persistence import peek_counter

    e = sim.engine
    exec_id, e._exec_ids = peek_counter(e._exec_ids)  # noqa: SLF001
    deposit_id, e._deposit_ids = peek_counter(e._deposit_ids)  # noqa: SLF001
    return exec_id, deposit_id, len(e.accounts)


async def _keep(sim: Any, path: Path, every_ms: int) -> None:
    """Write the snapshot whenever something changed, at most every `every_ms`."""
    from exchange.simulator.persistence import save, snapshot

    last = _fingerprint(sim)
    while True:
        await asyncio.sleep(every_ms / 1000)  # the snapshot cadence
        now = _fingerprint(sim)
        if now != last:
            try:
                save(snapshot(sim), path)
                last = now
            except OSError as exc:  # a full disk must not stop the exchange: tried again next time
                print(f"exchange snapshot to {path} failed: {exc}", file=sys.stderr, flush=True)


async def _serve(options: dict[str, Any]) -> None:
    import core  # noqa: F401  (decimal context)
    from exchange.simulator.persistence import load
    from exchange.simulator.server import Simulator

    c = options["config"]
    path = Path(c["state_file"]) if c.get("state_file") else None
    saved = load(path) if path is not None else None
    sim = Simulator(_serve_config(options, saved), state=saved)
    await sim.start()
    await serve_kept(sim, path, c["snapshot_ms"], {"url": sim.url, "ws_url": sim.ws_url, "ws_api_url": sim.ws_api_url,
                                                   "pid": os.getpid(), "resumed": saved is not None}, sim.stop)


async def serve_kept(sim: Any, path: Path | None, every_ms: int, ready: dict[str, Any],
                     stop: Callable[[], Awaitable[None]]) -> None:
    """A started exchange until SIGTERM: its state written to `path` (when given) at once, whenever it changed,
    and after `stop()`; the ready line printed once the first snapshot is on disk."""
    from exchange.simulator.persistence import save, snapshot

    keeper = asyncio.ensure_future(_keep(sim, path, every_ms)) if path is not None else None
    if path is not None:
        save(snapshot(sim), path)  # the first start's state exists on disk at once
    await announce_and_wait(ready)
    if keeper is not None:
        keeper.cancel()
    await stop()
    if path is not None:
        save(snapshot(sim), path)


class LocalExchange:
    """Start the simulator watching `chain` of the world, wait for its ready line; `stop()` ends it by pid."""

    def __init__(self, state: WorldState, config: LocalExchangeConfig | None = None, *, chain: str = "base",
                 hot_wallet_index: int | None = None) -> None:
        """`hot_wallet_index`: the dev mnemonic's account that pays the exchange's withdrawals on `chain` (None: the
        withdrawals complete with a derived txId and no transfer)."""
        self.config = config or LocalExchangeConfig()
        self.chain = state.chain(chain)
        self.hot_wallet_index = hot_wallet_index
        self._child: ReadyLineProcess | None = None
        self.info: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def ws_url(self) -> str:
        return self.info["ws_url"]

    @property
    def ws_api_url(self) -> str:
        """The WebSocket API's URL: its own address where the child serves it apart, else under `ws_url`."""
        return self.info.get("ws_api_url") or self.ws_url + "/ws-api/v3"

    @property
    def account(self) -> ExchangeAccount:
        """The house's account (house_account(): the operator's keys, else the test keys; 1,000,000 USDC)."""
        from actors.exchange_deposits import ExchangeKeys

        keys = ExchangeKeys.from_env()
        return ExchangeAccount(keys.api_key, keys.secret)

    def start(self) -> "LocalExchange":
        return self._start_child("world.local_exchange", "the exchange simulator", {})

    def _start_child(self, module: str, what: str, extra: dict[str, Any]) -> "LocalExchange":
        """`python -m module '<options>'`: the chain it watches and `extra`; its ready line becomes `info`."""
        options = {"config": asdict(self.config), "rpc_url": self.chain.rpc_url, "token": self.chain.usdc,
                   "decimals": self.chain.usdc_decimals, "from_block": self.chain.start_block,
                   "hot_wallet_index": self.hot_wallet_index, **extra}
        self._child = ReadyLineProcess([sys.executable, "-m", module, json.dumps(options)], what)
        self.info = self._child.start()
        return self

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()

    def __enter__(self) -> "LocalExchange":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_account(self, name: str = "acct") -> ExchangeAccount:
        """A new customer of the exchange (admin endpoint): its own deposit address, no balance."""
        tag = "".join(ch for ch in name if ch.isalnum())
        account = ExchangeAccount(f"{tag}{uuid.uuid4().hex}", uuid.uuid4().hex + uuid.uuid4().hex)
        body = json.dumps({"api_key": account.api_key, "secret": account.secret, "balances": {}}).encode()
        req = urllib.request.Request(self.url + "/_admin/account", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        return account

    def gateway(self, account: ExchangeAccount | None = None) -> Any:
        """A BinanceGateway (real ccxt) on this exchange, for `account` (default: the test account). ccxt's own
        throttle starts with a burst (its first exchangeInfo alone would otherwise hold the next calls ~1 s), and
        its close does not wait the 250 ms meant for TLS shutdowns (plain HTTP on localhost here)."""
        from exchange.gateway import BinanceGateway

        account = account or self.account
        gateway = BinanceGateway(self.url, self.ws_url, account.api_key, account.secret, throttle_burst=100)
        gateway.ccxt.timeout_on_exit = 0
        return gateway


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))

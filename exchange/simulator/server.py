"""The exchange simulator: one aiohttp application on its caller's address serving Binance spot's REST API, market
streams and WebSocket API, around the matching engine and the price processes. Everything runs on one event loop; the
engine is called synchronously, so a REST snapshot and the diff stream always agree on update ids.

Usage (in a test's event loop):

    async with Simulator(SimulatorConfig(host=HOST, port=0)) as sim:
        ... sim.url, sim.ws_url, sim.engine, sim.step(), sim.publish_depth(), sim.credit_deposit(...)
"""
from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from aiohttp import web

from core.clock import Clock, SystemClock
from core.side import Side
from exchange.simulator import payloads
from exchange.simulator.accounts import Account
from exchange.simulator.admin import admin_routes
from exchange.simulator.chain_deposits import ChainDepositWatcher
from exchange.simulator.chain_withdrawals import ChainWithdrawalPayer
from exchange.simulator.config import SimulatorConfig
from exchange.simulator.engine import MatchingEngine
from exchange.simulator.faults import Faults
from exchange.simulator.market_streams import MarketStreams
from exchange.simulator.markets import SimMarket, load_markets
from exchange.simulator.orders import Deposit, Withdrawal
from exchange.simulator.price_process import PriceProcess
from exchange.simulator.regimes import EVENT_NAMES, REGIME_NAMES, regime
from exchange.simulator.replay import DepthReplay
from exchange.simulator.rate_limiter import RateLimiter, RateLimitExceeded
from exchange.simulator.rest import RestApi
from exchange.simulator.user_streams import UserStreams
from exchange.simulator.withdrawals import WithdrawalDesk

#: Deposit networks per coin (the project's collateral arrives as USDC on Base) and their explorers.
NETWORKS: dict[str, tuple[str, ...]] = {"USDC": ("BASE", "ETH", "ARBITRUM", "BSC"), "USDT": ("ETH", "BSC", "TRX")}
_DEFAULT_NETWORKS = ("ETH", "BSC", "BASE", "ARBITRUM")
EXPLORERS = {"BASE": "https://basescan.org/address/", "ETH": "https://etherscan.io/address/",
             "ARBITRUM": "https://arbiscan.io/address/", "BSC": "https://bscscan.com/address/",
             "TRX": "https://tronscan.org/#/address/"}


@lru_cache(maxsize=8)
def _cached_markets(info: Path, indexes: Path, deployment: Path, symbols: tuple[str, ...] | None,
                    extra: tuple[str, ...]) -> dict[str, SimMarket]:
    return load_markets(info, indexes, deployment, symbols, extra)


def _snapshot_symbol(path: Path) -> str:
    stem = path.stem
    return stem[len("depth_snapshot_"):] if stem.startswith("depth_snapshot_") else stem


#: The three parts of Binance's API, each on its own host (spec/binance.md, Hosts).
REST, STREAMS, WS_API = "REST", "market streams", "WebSocket API"
WS_API_PATH = "/ws-api/v3"


def part_of_path(path: str) -> str:
    """Which part of the API a request path belongs to."""
    if path == WS_API_PATH:
        return WS_API
    if path in ("/ws", "/stream") or path.startswith("/ws/"):
        return STREAMS
    return REST


class Simulator:
    def __init__(self, config: SimulatorConfig, *, clock: Clock | None = None,
                 seed_prices: dict[str, Decimal] | None = None, state: dict[str, Any] | None = None,
                 markets: dict[str, SimMarket] | None = None, info_header: dict[str, Any] | None = None) -> None:
        """`state`: a snapshot from exchange.simulator.persistence to resume from (accounts, orders, trades,
        deposits, id counters; prices go on from its mids unless `seed_prices` says otherwise).

        `markets` and `info_header` (exchangeInfo without its symbols): an upstream exchange's, for the paper
        exchange (exchange/simulator/paper.py). Its books are then left empty, for the upstream's levels."""
        self.config = cfg = config
        self.clock = clock or SystemClock()
        mirrored = markets is not None
        self.markets = dict(markets) if markets is not None else _cached_markets(
            Path(cfg.exchange_info_path), Path(cfg.indexes_dir), Path(cfg.deployment_path),
            tuple(cfg.symbols) if cfg.symbols else None, tuple(cfg.extra_symbols))
        self.engine = MatchingEngine(self.markets, self.clock, maker_commission=cfg.maker_commission,
                                     taker_commission=cfg.taker_commission)
        #: Pairs set to a status other than TRADING (/_admin/market_status): served in exchangeInfo, orders refused.
        #: Kept here, not in the market entries, which simulators of one process share.
        self.market_status: dict[str, str] = {}
        if state is not None:  # before the market maker seeds: its new orders must not reuse a restored id
            from exchange.simulator.persistence import restore, seed_prices as saved_prices

            restore(self.engine, state)
            seed_prices = {**saved_prices(state), **(seed_prices or {})}
        else:
            for spec in cfg.accounts:
                self.engine.add_account(spec.api_key, spec.secret, spec.balances, spec.deposit_addresses)
        header = info_header if info_header is not None else json.loads(Path(cfg.rate_limits_path).read_text())
        self._info_header = {k: v for k, v in header.items() if k not in ("symbols", "serverTime")}
        rate_limits = cfg.rate_limits if cfg.rate_limits is not None else header["rateLimits"]
        self._info_header["rateLimits"] = rate_limits
        self.limiter = RateLimiter(rate_limits, self.clock, ban_after_429s=cfg.ban_after_429s,
                                   ban_seconds=cfg.ban_seconds)
        self.faults = Faults()
        self.withdrawals = WithdrawalDesk(cfg.withdrawals, self.clock, self.engine.accounts, self._emit_balance)
        self.withdrawal_payers: list[ChainWithdrawalPayer] = []
        for chain in cfg.withdraw_chains:
            self.withdrawals.paid_networks.add(chain.network)
        if state is not None:
            from exchange.simulator.persistence import restore_withdrawals

            restore_withdrawals(self.withdrawals, state)
        self.streams = MarketStreams(self.markets, max_queue=cfg.max_ws_queue,
                                     max_incoming_per_s=cfg.max_ws_incoming_per_s,
                                     max_streams=cfg.max_streams_per_connection)
        self.user_streams = UserStreams(self._secret_of, self.clock.now_ms, self._ws_rate_limits, self._ws_charge)
        self.processes: dict[str, PriceProcess] = {}
        #: Symbols whose book a recorded depth stream drives instead of their walk (Simulator.replay).
        self.replays: dict[str, DepthReplay] = {}
        #: Pairs a "halted" regime event set to BREAK (what "calm" sets back to TRADING).
        self.halted: set[str] = set()
        self.seed_source: dict[str, str | None] = {}
        #: The market maker's ladder as seeded, per symbol and side (price -> quantity): what `set_liquidity`
        #: restores, so that tests on a frozen market (update_ms 0) can start every run from the same book.
        self.seeded_levels: dict[str, dict[Side, dict[Decimal, Decimal]]] = {}
        if not mirrored:
            self._seed_books(seed_prices or {})
        self._acc_1000: dict[str, tuple[int, int, dict, dict]] = {}
        self._last_top: dict[str, tuple] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self.deposit_watchers: list[ChainDepositWatcher] = []
        self.port: int | None = None
        #: part (REST, STREAMS, WS_API) -> (host, port), where the parts are served apart (config.stream_host,
        #: ws_api_host); empty when the one address serves all three.
        self.sites: dict[str, tuple[str, int]] = {}
        self.depth_events_published = 0
        #: Ticks of the depth cadence (also while the feed is paused), for tests to wait on instead of sleeping.
        self.depth_ticks = 0
        self._tick_event = asyncio.Event()
        self.app = self._build_app()

    # ================================================================ setup
    def _seed_books(self, seed_prices: dict[str, Decimal]) -> None:
        snapshots = {}
        for p in self.config.depth_snapshot_paths:
            snapshots[_snapshot_symbol(Path(p))] = json.loads(Path(p).read_text())
        for symbol, market in self.markets.items():
            snap = snapshots.get(symbol) or snapshots.get(market.base_asset + "USDT")
            price = seed_prices.get(symbol)
            if price is not None:
                source, snap = "config", None
            elif snap is not None:
                source = "depth_snapshot"
            elif market.implied_price is not None:
                source, price = "basket_implied_price", market.implied_price
            else:
                self.seed_source[symbol] = None  # no price known: the book stays empty
                continue
            proc = PriceProcess(market, self.config.process, price or Decimal(0), snap)
            proc.seed(self.engine)
            self.seeded_levels[symbol] = {side: self.engine.mm_levels(symbol, side) for side in Side}
            self.engine.reference_prices[symbol] = proc.seed_price
            self.processes[symbol] = proc
            self.seed_source[symbol] = source
        for book in self.engine.books.values():
            book.take_diff()  # the seeding is the initial state, not a diff
        self.engine.drain()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(RestApi(self).routes())
        app.add_routes([
            web.get("/ws", self.streams.handle),
            web.get("/ws/{tail:.*}", self.streams.handle),
            web.get("/stream", self.streams.handle),
            web.get(WS_API_PATH, self.user_streams.handle),
        ])
        app.add_routes(admin_routes(self))
        app.middlewares.append(self._only_its_part)
        return app

    @web.middleware
    async def _only_its_part(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Where the parts are served apart, each address answers only its own paths (404 otherwise), as Binance's
        hosts do: a client that reaches a part at the wrong address fails instead of working by accident."""
        if self.sites:
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            served = {where: part for part, where in self.sites.items()}
            part = served.get(tuple(sockname[:2])) if sockname else None
            if part is not None and part != part_of_path(request.path):
                raise web.HTTPNotFound(text=f"{request.path} is not served at this address (the {part} host)")
        return await handler(request)

    def _secret_of(self, api_key: str) -> str | None:
        acct = self.engine.accounts.get(api_key)
        return acct.secret if acct is not None else None

    def _ws_rate_limits(self, ip: str) -> list[dict[str, Any]]:
        now = self.clock.now_ms()
        return [w.as_payload(w.used(ip, now)) for w in self.limiter.weight]

    def _ws_charge(self, ip: str, weight: int) -> None:
        try:
            self.limiter.charge(ip, weight)
        except RateLimitExceeded:
            pass  # counted; the WS-API's own 429 is not modelled

    # ================================================================ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        host, port = self.sites.get(STREAMS, (self.config.host, self.port))
        return f"ws://{host}:{port}"

    @property
    def ws_api_url(self) -> str:
        host, port = self.sites.get(WS_API, (self.config.host, self.port))
        return f"ws://{host}:{port}{WS_API_PATH}"

    async def _listen(self, host: str, port: int) -> int:
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # noqa: SLF001  (the bound port when 0 was asked for)
        return server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def start(self) -> "Simulator":
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self.port = await self._listen(self.config.host, self.config.port)
        split = {STREAMS: self.config.stream_host, WS_API: self.config.ws_api_host}
        if any(split.values()):
            self.sites[REST] = (self.config.host, self.port)
            for part, host in split.items():
                if host is not None:
                    self.sites[part] = (host, await self._listen(host, 0))
        self._tasks.append(asyncio.ensure_future(self._depth_loop()))
        if self.config.process.update_ms > 0:
            self._tasks.append(asyncio.ensure_future(self._feed_loop()))
        for chain in self.config.deposit_chains:
            watcher = ChainDepositWatcher(chain, self.deposit_addresses, self.credit_deposit)
            self.deposit_watchers.append(watcher)
            self._tasks.append(asyncio.ensure_future(watcher.run()))
        for chain in self.config.withdraw_chains:
            payer = ChainWithdrawalPayer(chain, self.withdrawals.processing, self.complete_withdrawal,
                                         self.fail_withdrawal)
            self.withdrawal_payers.append(payer)
            self._tasks.append(asyncio.ensure_future(payer.run()))
        self._tasks.append(asyncio.ensure_future(self._withdrawal_loop()))
        return self

    def run_task(self, coro: Any) -> asyncio.Task:
        """A task of the caller's (the paper exchange's feeds) that `stop()` cancels with the simulator's own."""
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    def _emit_balance(self, acct: Account, event: dict[str, Any]) -> None:
        """A withdrawal's balanceUpdate, then the account's outboundAccountPosition (as Binance sends both)."""
        self.engine.user_events.append((acct, event))
        self.engine._positions([acct], event["E"])  # noqa: SLF001

    def advance_withdrawals(self) -> None:
        """Move the withdrawals' statuses on by the clock (the loop does it; so does every withdrawal request)."""
        self.withdrawals.advance(self.clock.now_ms())
        self.dispatch()

    def complete_withdrawal(self, w: Withdrawal, tx_id: str) -> None:
        self.withdrawals.complete(w, tx_id, self.clock.now_ms())

    def fail_withdrawal(self, w: Withdrawal, info: str) -> None:
        self.withdrawals.fail(w, info)
        self.dispatch()

    async def _withdrawal_loop(self) -> None:
        while True:
            self.advance_withdrawals()
            await asyncio.sleep(self.config.withdraw_poll_ms / 1000)  # the statuses' cadence on the clock

    def deposit_addresses(self, coin: str, network: str) -> dict[str, str]:
        """Every account's deposit address for (coin, network), lower case -> API key (for the chain watchers)."""
        return {a.deposit_address(coin, network).lower(): key for key, a in self.engine.accounts.items()}

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for chain_client in [*self.deposit_watchers, *self.withdrawal_payers]:
            await chain_client.w3.provider.disconnect()  # their RPC sessions end with the simulator
        await self.streams.drop_all()
        await self.user_streams.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "Simulator":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def _paced(self, interval_ms: int, tick) -> None:
        loop = asyncio.get_running_loop()
        period = interval_ms / 1000
        next_at = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))  # pacing of the feed, not synchronisation
            next_at += period
            if loop.time() - next_at > 10 * period:
                next_at = loop.time() + period  # fell far behind (busy host): do not burst to catch up
            tick()

    async def _feed_loop(self) -> None:
        dt = self.config.process.update_ms
        await self._paced(dt, lambda: None if self.faults.feed_paused else self.step(1, dt_ms=dt))

    async def _depth_loop(self) -> None:
        def tick() -> None:
            if not self.faults.feed_paused:
                self.publish_depth()
            self.depth_ticks += 1
            event, self._tick_event = self._tick_event, asyncio.Event()
            event.set()

        await self._paced(self.config.depth_interval_ms, tick)

    async def wait_depth_ticks(self, n: int, timeout: float = 10.0) -> None:
        """Wait until the depth cadence has ticked `n` more times."""
        target = self.depth_ticks + n

        async def until() -> None:
            while self.depth_ticks < target:
                await self._tick_event.wait()

        await asyncio.wait_for(until(), timeout)

    # ================================================================ market data
    def step(self, n: int = 1, symbols: Iterable[str] | None = None, dt_ms: int | None = None) -> None:
        """Advance the price processes `n` steps (by hand in tests; the feed loop calls it on its cadence)."""
        dt = dt_ms if dt_ms is not None else (self.config.process.update_ms or 100)
        procs = self.processes.values() if symbols is None else [self.processes[s] for s in symbols]
        for _ in range(n):
            for p in procs:
                replay = self.replays.get(p.symbol)
                if replay is not None:
                    self._replay_step(p, replay)
                elif p.symbol not in self.halted:  # a halted pair's book stands still
                    p.step(self.engine, dt)
        self.dispatch()

    def _replay_step(self, process: PriceProcess, replay: DepthReplay) -> None:
        replay.step(self.engine)
        if replay.done:  # the walk takes the book over where the recording left it
            del self.replays[process.symbol]
            bids, asks = (self.engine.mm_levels(process.symbol, side) for side in (Side.BUY, Side.SELL))
            if bids:
                process.anchor(max(bids), min(asks) if asks else None)

    # ================================================================ market regimes (test and research control)
    def set_regime(self, name: str, symbols: Iterable[str] | None = None, percent: Decimal | None = None,
                   drift_bps_per_min: Decimal | None = None) -> dict[str, Any]:
        """Switch the market of `symbols` (default: every priced one) to a regime (regimes.py), or apply an event:
        "gap" jumps every price by `percent` (default: the configured one), "halted" sets the pairs to BREAK (orders
        refused, books still). "calm" also ends the halts it set. Returns the regimes now in force. A bad request
        changes nothing (ValueError)."""
        chosen = sorted(self.processes if symbols is None else symbols)
        unknown = [s for s in chosen if s not in self.processes]
        if unknown:
            raise ValueError(f"unknown or unpriced symbols {unknown}")
        if name == "halted":
            if symbols is None:
                raise ValueError("halted needs the symbols to halt")
            for symbol in chosen:
                self.market_status[symbol] = "BREAK"
                self.halted.add(symbol)
        elif name == "gap":
            jump = self.config.regimes.gap_percent if percent is None else Decimal(percent)
            if jump <= -100:
                raise ValueError(f"a gap of {jump}% leaves no price")
            for symbol in chosen:
                self.processes[symbol].jump(self.engine, jump)
        else:
            chosen_regime = regime(name, self.config.regimes, drift_bps_per_min)
            for symbol in chosen:
                self.processes[symbol].set_regime(self.engine, chosen_regime)
            if name == "calm":
                for symbol in self.halted.intersection(chosen):
                    self.market_status.pop(symbol, None)
                self.halted.difference_update(chosen)
        self.dispatch()
        return self.regimes()

    def regimes(self) -> dict[str, Any]:
        """The regime of each priced symbol (grouped by name), the halted pairs and the replays running."""
        by_name: dict[str, list[str]] = {}
        for symbol, p in sorted(self.processes.items()):
            by_name.setdefault(p.regime.name, []).append(symbol)
        return {"regimes": by_name, "halted": sorted(self.halted), "replaying": sorted(self.replays),
                "names": list(REGIME_NAMES + EVENT_NAMES)}

    def replay(self, symbol: str, events: list[dict[str, Any]], rebase: bool = False) -> dict[str, Any]:
        """Drive `symbol`'s book with recorded depth events, one per step, from now (replay.py)."""
        process = self.processes.get(symbol)
        if process is None:
            raise ValueError(f"unknown or unpriced symbol {symbol!r}")
        replay = DepthReplay(symbol, events, process.tick, process.step_qty)
        replay.start(self.engine, rebase)
        self.replays[symbol] = replay
        self.dispatch()
        return {"symbol": symbol, "events": len(events), "ratio": str(replay.ratio)}

    def set_liquidity(self, action: str, symbols: Iterable[str] | None = None) -> int:
        """The market maker's resting liquidity, by hand (tests on a frozen market): "withdraw" takes every level
        off the book, "restore" puts back exactly the seeded ladder (levels eaten by trades refilled, others
        withdrawn). Clients see it as ordinary depth diffs. Returns the number of levels changed."""
        if action not in ("withdraw", "restore"):
            raise ValueError(f"liquidity action must be withdraw or restore, not {action!r}")
        changed = 0
        for symbol in sorted(self.seeded_levels if symbols is None else symbols):
            seeded = self.seeded_levels.get(symbol)
            if seeded is None:
                raise KeyError(f"no seeded book for {symbol}")
            for side in Side:
                want = seeded[side] if action == "restore" else {}
                have = self.engine.mm_levels(symbol, side)
                for price in sorted(set(have) | set(want)):
                    qty = want.get(price, Decimal(0))
                    if have.get(price) != qty:
                        self.engine.mm_set_level(symbol, side, price, qty)
                        changed += 1
        self.dispatch()
        return changed

    def publish_depth(self) -> int:
        """Cut every book's pending changes into one depthUpdate each (what the 100 ms cadence does)."""
        now = self.clock.now_ms()
        streams = self.streams
        sent = 0
        second_boundary = (now // 1000) != getattr(self, "_last_second", None)
        self._last_second = now // 1000
        silenced = self.faults.silenced
        for symbol, book in self.engine.books.items():
            if symbol in silenced:
                continue  # its changes stay pending: the first diff after it is heard again carries them
            diff = book.take_diff()
            low = symbol.lower()
            if diff is not None:
                name = low + "@depth@100ms"
                if streams.has(name):
                    streams.publish(name, {
                        "e": "depthUpdate", "E": now, "s": symbol, "U": diff.first_id, "u": diff.last_id,
                        "b": [[f"{p:.8f}", f"{q:.8f}"] for p, q in diff.bids.items()],
                        "a": [[f"{p:.8f}", f"{q:.8f}"] for p, q in diff.asks.items()],
                    })
                    sent += 1
                if streams.has(low + "@depth"):
                    acc = self._acc_1000.get(symbol)
                    if acc is None:
                        self._acc_1000[symbol] = (diff.first_id, diff.last_id, dict(diff.bids), dict(diff.asks))
                    else:
                        acc[2].update(diff.bids)
                        acc[3].update(diff.asks)
                        self._acc_1000[symbol] = (acc[0], diff.last_id, acc[2], acc[3])
                for n in (5, 10, 20):
                    for name in (f"{low}@depth{n}", f"{low}@depth{n}@100ms"):
                        if streams.has(name):
                            streams.publish(name, {"lastUpdateId": book.update_id,
                                                   "bids": payloads.levels(book.depth(Side.BUY, n)),
                                                   "asks": payloads.levels(book.depth(Side.SELL, n))})
                name = low + "@bookTicker"
                if streams.has(name):
                    top = (book.depth(Side.BUY, 1), book.depth(Side.SELL, 1))
                    if top != self._last_top.get(symbol):
                        self._last_top[symbol] = top
                        bt = {"u": book.update_id, "s": symbol, "b": "0.00000000", "B": "0.00000000",
                              "a": "0.00000000", "A": "0.00000000"}
                        if top[0]:
                            bt["b"], bt["B"] = f"{top[0][0][0]:.8f}", f"{top[0][0][1]:.8f}"
                        if top[1]:
                            bt["a"], bt["A"] = f"{top[1][0][0]:.8f}", f"{top[1][0][1]:.8f}"
                        streams.publish(name, bt)
        if second_boundary and self._acc_1000:
            for symbol, (first, last, bids, asks) in self._acc_1000.items():
                streams.publish(symbol.lower() + "@depth", {
                    "e": "depthUpdate", "E": now, "s": symbol, "U": first, "u": last,
                    "b": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids.items()],
                    "a": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks.items()],
                })
            self._acc_1000.clear()
        self.depth_events_published += sent
        return sent

    def dispatch(self) -> None:
        """Send what the engine produced: user events to WS-API subscribers, public trades to `@trade`
        subscribers, first fills to the ORDERS counters."""
        user_events, trades, first_fills = self.engine.drain()
        for acct, event in user_events:
            self.user_streams.push(acct.api_key, event)
        for symbol, event in trades:
            self.streams.publish(symbol.lower() + "@trade", event)
        for account_id in first_fills:
            self.limiter.order_first_fill(account_id)

    # ================================================================ exchangeInfo, deposits, inspection
    def exchange_info(self, symbols: list[str] | None = None) -> dict[str, Any]:
        names = symbols if symbols is not None else list(self.markets)
        h = self._info_header
        return {"timezone": h.get("timezone", "UTC"), "serverTime": self.clock.now_ms(),
                "rateLimits": h["rateLimits"], "exchangeFilters": h.get("exchangeFilters", []),
                "symbols": [self._entry(s) for s in names]}

    def _entry(self, symbol: str) -> dict[str, Any]:
        entry = self.markets[symbol].entry
        status = self.market_status.get(symbol)
        return entry if status is None else {**entry, "status": status}

    def trading(self, symbol: str) -> bool:
        return self.market_status.get(symbol, "TRADING") == "TRADING"

    def networks(self, coin: str) -> tuple[str, ...]:
        return NETWORKS.get(coin, _DEFAULT_NETWORKS)

    def default_network(self, coin: str) -> str:
        return self.networks(coin)[0]

    def explorer_url(self, network: str, address: str) -> str:
        return EXPLORERS.get(network, "https://explorer.invalid/address/") + address

    def credit_deposit(self, api_key: str, coin: str, amount: Decimal, network: str, tx_id: str,
                       address: str | None = None) -> Deposit:
        """Hook for the chain watcher (and the admin endpoint): credit a confirmed on-chain deposit."""
        dep = self.engine.credit_deposit(api_key, coin, amount, network, tx_id, address)
        self.dispatch()
        return dep

    def withdraw(self, api_key: str, asset: str, amount: Decimal) -> Decimal:
        """Admin: move free balance out of an account (engine.withdraw), then publish its events."""
        left = self.engine.withdraw(api_key, asset, amount)
        self.dispatch()
        return left

    def add_account(self, api_key: str, secret: str, balances: dict[str, Decimal] | None = None) -> None:
        self.engine.add_account(api_key, secret, balances)

    def inspect(self) -> dict[str, Any]:
        return {
            "url": self.url if self.port else None,
            "ws_url": self.ws_url if self.port else None,
            "ws_api_url": self.ws_api_url if self.port else None,
            "markets": {
                s: {"origin": m.origin, "seed": self.seed_source.get(s),
                    "seed_price": payloads.fmt(self.processes[s].seed_price) if s in self.processes else None,
                    "implied_price": str(m.implied_price) if m.implied_price is not None else None}
                for s, m in self.markets.items()
            },
            "rate_limits": self._info_header["rateLimits"],
            "accounts": sorted(self.engine.accounts),
            "process": {k: str(getattr(self.config.process, k)) for k in self.config.process.__slots__},
            "market": self.regimes(),
            "faults": {k: str(getattr(self.faults, k)) for k in self.faults.__slots__},
            "depth_events_published": self.depth_events_published,
            "market_messages_sent": self.streams.messages_sent,
            "time": int(time.time() * 1000),
        }

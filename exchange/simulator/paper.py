"""The paper exchange: the simulator in front of an upstream exchange (Binance, its testnet, or another simulator)
whose market data it mirrors, matching the system's orders locally.

Markets and rate limits come from the upstream's exchangeInfo, the books from its depth streams (mirror.py says
how), the filters' reference price from its avgPrice. Orders, balances, fills, deposits and the user data stream
are the simulator's own, so the system talks to this exchange exactly as to a real one, and nothing but public
market-data requests ever reaches the upstream: the upstream client here has no key. The system's market shards
read their books from this exchange too, so the solver plans on the very levels the paper orders match against
(paper fills included). Balances: the configured starting balances, plus what reaches the paper deposit address on
a watched chain (the local world's Base chain); a snapshot resumes them (world/paper_exchange.py keeps one)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.side import Side
from exchange import errors
from exchange.gateway import BinanceGateway
from exchange.simulator.config import AccountSpec, PriceProcessConfig, SimulatorConfig
from exchange.simulator.markets import SimMarket, build_markets
from exchange.simulator.mirror import UpstreamMirror
from exchange.simulator.server import EXPLORERS, Simulator

log = logging.getLogger(__name__)

#: What every paper answer and report says about the exchange side (status, reports, metrics).
PAPER = "paper"


class PaperExchangeError(Exception):
    """The paper exchange cannot start: the upstream lacks a market, or never answered."""


@dataclass(frozen=True)
class PaperOptions:
    upstream_rest_url: str | None
    upstream_ws_url: str | None
    #: The markets mirrored (every pair of the served indexes): each must exist upstream.
    symbols: tuple[str, ...]
    #: The paper account: the keys the system signs with, and its starting balances.
    account: AccountSpec
    #: Where it listens (the system's actors reach it there: `[paper] host`).
    host: str
    port: int = 0
    #: Levels per side mirrored (the upstream snapshot's size; Binance weight 5 up to 100).
    book_depth: int = 100
    #: How often the upstream's avgPrice of every symbol is read again (2 weight each).
    avg_price_poll_ms: int = 30_000
    #: Depth diff cadence of this exchange's own streams.
    depth_interval_ms: int = 100
    #: After a lost upstream connection: the first wait before reconnecting, doubled up to the cap.
    reconnect_min_ms: int = 100
    reconnect_max_ms: int = 5_000
    #: Chains watched for deposits to the paper account's addresses (exchange.simulator.chain_deposits).
    deposit_chains: tuple = ()
    #: Snapshots fetched back to back at start (the upstream client's throttle burst).
    snapshot_burst: int = 100


def paper_deposit_addresses(api_key: str, address: str | None = None) -> dict[str, str]:
    """The paper account's deposit address on every network the simulator knows: `address` when the operator gave
    one, else one derived from the key with a "paper:" prefix, so it never equals the address an upstream simulator
    derives for the same key (its chain watcher would credit the same transfer to the upstream account)."""
    out = {}
    for network in EXPLORERS:
        out[network] = address or "0x" + hashlib.sha256(f"paper:{api_key}:{network}".encode()).hexdigest()[:40]
    return out


def upstream_markets(info: dict[str, Any], symbols: tuple[str, ...]) -> dict[str, SimMarket]:
    """The upstream's own exchangeInfo entry of every symbol; a symbol it does not list is an error (a paper run
    must trade what the real exchange trades, never a twin or a synthesised market)."""
    listed = {e["symbol"] for e in info.get("symbols", ())}
    missing = sorted(set(symbols) - listed)
    if missing:
        raise PaperExchangeError(f"the upstream exchange does not list {', '.join(missing)}")
    return build_markets(info, symbols, {})


class PaperExchange:
    """`await start()` loads the upstream's markets, mirrors every book once, then serves; `stop()` ends it."""

    def __init__(self, options: PaperOptions, *, clock: Clock | None = None,
                 state: dict[str, Any] | None = None) -> None:
        """`state`: a snapshot (exchange.simulator.persistence) to resume the paper account from: its balances,
        orders, trades and deposits; resting paper orders go back on the books before the first mirrored level."""
        self.o = options
        self.clock = clock
        self.state = state
        self.sim: Simulator | None = None
        self.mirror = UpstreamMirror()
        self._upstream: BinanceGateway | None = None
        self._dirty: set[str] = set()
        self._mirrored = asyncio.Event()
        self.counts = {"upstream_updates": 0, "levels_set": 0, "reconnects": 0, "avg_price_errors": 0}

    @property
    def url(self) -> str:
        assert self.sim is not None
        return self.sim.url

    @property
    def ws_url(self) -> str:
        assert self.sim is not None
        return self.sim.ws_url

    async def start(self, ready_timeout_s: float = 60.0) -> "PaperExchange":
        o = self.o
        self._upstream = up = BinanceGateway(o.upstream_rest_url, o.upstream_ws_url, "", "",
                                             watch_book_limit=o.book_depth, throttle_burst=o.snapshot_burst)
        try:
            info = await up.fetch_exchange_info()
        except errors.ExchangeError as exc:
            raise PaperExchangeError(f"the upstream exchange at {o.upstream_rest_url} did not answer: {exc}") from exc
        markets = upstream_markets(info, o.symbols)
        cfg = SimulatorConfig(host=o.host, port=o.port, symbols=o.symbols, accounts=[o.account],
                              deposit_chains=o.deposit_chains, depth_interval_ms=o.depth_interval_ms,
                              process=PriceProcessConfig(update_ms=0))
        self.sim = Simulator(cfg, clock=self.clock, markets=markets, info_header=info, state=self.state)
        await self._read_avg_prices()
        up.set_book_listeners(self._on_update, None)
        self.sim.run_task(self._follow_books())
        self.sim.run_task(self._poll_avg_prices())
        try:
            await asyncio.wait_for(self._mirrored.wait(), ready_timeout_s)
        except asyncio.TimeoutError:
            missing = sorted(set(o.symbols) - set(self.mirror.symbols()))
            await self.stop()
            raise PaperExchangeError(f"no upstream book within {ready_timeout_s:.0f} s for {', '.join(missing)}") \
                from None
        await self.sim.start()
        log.info("paper exchange on %s: %d markets mirrored from %s; orders are matched here, never sent",
                 self.sim.url, len(markets), o.upstream_rest_url)
        return self

    async def stop(self) -> None:
        if self.sim is not None:
            await self.sim.stop()  # the feeds too (its tasks), before their upstream connection closes
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None

    async def __aenter__(self) -> "PaperExchange":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ------------------------------------------------------------------ books
    def _on_update(self, symbol: str, update_id: int, event_ms: int | None) -> None:
        self._dirty.add(symbol)  # read in the follow loop: a burst of diffs costs one conversion of the book

    async def _follow_books(self) -> None:
        assert self._upstream is not None
        symbols = list(self.o.symbols)
        wait_ms = self.o.reconnect_min_ms
        while True:
            try:
                await self._upstream.watch_books(symbols, self.o.book_depth)
            except errors.ExchangeError as exc:
                self.counts["reconnects"] += 1
                log.warning("upstream books lost (%s): every mirrored level withdrawn, reconnecting in %d ms",
                            exc, wait_ms)
                self._withdraw_all()
                await asyncio.sleep(wait_ms / 1000)  # reconnect backoff
                wait_ms = min(wait_ms * 2, self.o.reconnect_max_ms)
                continue
            wait_ms = self.o.reconnect_min_ms
            self.apply_upstream()

    def apply_upstream(self) -> int:
        """Mirror every upstream book that changed since the last call; returns the levels set."""
        up, sim = self._upstream, self.sim
        assert up is not None and sim is not None
        dirty, self._dirty = self._dirty, set()
        n = 0
        for symbol in sorted(dirty):
            if up.book_state(symbol) is None:
                continue  # being rebuilt from a new snapshot: the next update brings it
            changes = self.mirror.update(symbol, up.book_levels(symbol, Side.BUY, self.o.book_depth),
                                         up.book_levels(symbol, Side.SELL, self.o.book_depth))
            n += self._set_levels(symbol, changes)
        self.counts["upstream_updates"] += len(dirty)
        if not self._mirrored.is_set() and len(self.mirror.symbols()) == len(self.o.symbols):
            self._mirrored.set()
        return n

    def _set_levels(self, symbol: str, changes: list) -> int:
        sim = self.sim
        assert sim is not None
        for c in changes:
            sim.engine.mm_set_level(symbol, c.side, c.price, c.qty)
        if changes:
            sim.dispatch()  # a level moving through a resting paper order fills it: its reports go out now
        self.counts["levels_set"] += len(changes)
        return len(changes)

    def _withdraw_all(self) -> None:
        for symbol in self.mirror.symbols():
            self._set_levels(symbol, self.mirror.withdraw_all(symbol))

    # ------------------------------------------------------------------ avgPrice
    async def _read_avg_prices(self) -> None:
        up, sim = self._upstream, self.sim
        assert up is not None and sim is not None
        for symbol in self.o.symbols:
            try:
                price = await up.fetch_avg_price(symbol)
            except errors.ExchangeError as exc:
                self.counts["avg_price_errors"] += 1
                log.warning("upstream avgPrice of %s: %s (the previous one stays)", symbol, exc)
                continue
            if price > 0:
                sim.engine.upstream_avg_prices[symbol] = price

    async def _poll_avg_prices(self) -> None:
        while True:
            await asyncio.sleep(self.o.avg_price_poll_ms / 1000)  # the configured refresh cadence
            await self._read_avg_prices()

    def inspect(self) -> dict[str, Any]:
        sim = self.sim
        return {"mode": PAPER, "upstream": self.o.upstream_rest_url, "url": sim.url if sim and sim.port else None,
                "mirrored": self.mirror.symbols(), **self.counts}

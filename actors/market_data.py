"""`market-{k}`: a MarketData shard, the owner of the market books (depth) of its share of symbols.

ccxt.pro does the book work; the shard keeps the subscription alive, records each diff's lag, and answers many
symbols per call (a call costs ~1 ms: the solver asks once per tick). A symbol without a snapshot or silent too
long is stale and left out (core/stale_books.py). The task starts from an idempotent `start()`: Ray may run
__init__ outside the loop."""
from __future__ import annotations

import asyncio
import logging
import time
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable

import ray

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.packed import packed
from core.shard_assignment import assign_shards, shard_name, shard_of
from core.side import Side
from core.stale_books import stale_symbols
from exchange import errors
from exchange.gateway import BinanceGateway
from protocol.gc_tuning import tune_gc_once
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class MarketDataOptions:
    rest_url: str | None
    ws_url: str | None
    #: Levels per side of the REST snapshot and of the kept book (Binance weight 5 up to 100).
    book_limit: int = 100
    #: A symbol with no diff (nor snapshot) for this long is flagged stale.
    stale_after_ms: int = 5_000
    #: Depth snapshots ccxt may fetch back to back at start and after a reconnect (cost units of its throttle).
    snapshot_burst: int = 100
    #: Lag samples kept for the percentiles in inspect().
    lag_samples: int = 20_000
    #: Reconnect backoff after a dropped websocket: the first wait, then doubled up to the cap (the [store] retry
    #: policy with these numbers).
    reconnect_min_ms: int = 100
    reconnect_max_ms: int = 5_000
    api_key: str = ""
    secret: str = ""
    #: ccxt's sandbox (Binance's spot testnet) where no URL is given.
    sandbox: bool = False

    @property
    def reconnect(self) -> RetryPolicy:
        return dataclasses.replace(RetryPolicy.default(), base_ms=self.reconnect_min_ms, cap_ms=self.reconnect_max_ms)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "MarketDataOptions":
        x, m = settings.exchange, settings.market_data
        values: dict[str, Any] = {
            "rest_url": x.rest_url, "ws_url": x.ws_url, "sandbox": x.sandbox, "book_limit": x.order_book_depth,
            "stale_after_ms": m.stale_after_ms, "snapshot_burst": m.snapshot_burst, "lag_samples": m.lag_samples,
            "reconnect_min_ms": m.reconnect_min_ms, "reconnect_max_ms": m.reconnect_max_ms}
        values.update(overrides)
        return cls(**values)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@ray.remote(num_cpus=0, max_restarts=-1)
class MarketDataShard:
    def __init__(self, shard: int, symbols: list[str], options: MarketDataOptions) -> None:
        setup_logging(f"market-{shard}")
        self.shard = shard
        self.symbols = sorted(set(symbols))
        self._owned = set(self.symbols)
        self.options = options
        self._gw: BinanceGateway | None = None
        self._task: asyncio.Task | None = None
        self._started_at_ms = self._now()
        # hot-path state, written by _on_update once per applied diff
        self._last_seen: dict[str, float] = {}
        self._diffs = 0
        self._diff_counts: dict[str, int] = {}  # since start, per symbol
        self._lags = [0.0] * options.lag_samples
        self._lag_i = 0
        self._lag_n = 0
        # events
        self._gaps: dict[str, int] = {}
        self._reconnects = 0
        self._last_error: str | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first query (or start())
        self._ensure_started()

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def _now() -> float:
        return time.time_ns() / 1e6  # wall-clock ms: lag compares with the exchange's event time E

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            if self._gw is None:
                tune_gc_once()
                o = self.options
                self._gw = BinanceGateway(o.rest_url, o.ws_url, o.api_key, o.secret, watch_book_limit=o.book_limit,
                                          throttle_burst=o.snapshot_burst, sandbox=o.sandbox)
                self._gw.set_book_listeners(self._on_update, self._on_gap)
            self._task = asyncio.ensure_future(self._run())

    async def start(self) -> int:
        """Idempotent: start the feed task if it is not running; returns the number of symbols owned."""
        self._ensure_started()
        return len(self.symbols)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001  (shutting down whatever its state)
                pass
            self._task = None
        if self._gw is not None:
            await self._gw.close()
            self._gw = None

    async def _run(self) -> None:
        assert self._gw is not None
        pacer = self.options.reconnect.pacer()  # starts over once the feed has held a while
        while True:
            try:
                await self._gw.watch_books(self.symbols, self.options.book_limit)
                pacer.reset()
            except asyncio.CancelledError:
                raise
            except errors.ExchangeError as e:
                # The websocket dropped (or the subscription failed): the gateway has forgotten these books; the
                # next watch reconnects, resubscribes and refetches every snapshot.
                self._reconnects += 1
                self._last_error = f"{type(e).__name__}: {e}"
                delay = pacer.next_delay()
                log.warning("market-%s: feed error, reconnecting in %d ms: %s", self.shard, 1000 * delay, e)
                await asyncio.sleep(delay)  # reconnect pacing, not synchronisation
            except Exception as e:  # noqa: BLE001  (a feed bug must not kill the shard's queries)
                self._reconnects += 1
                self._last_error = f"{type(e).__name__}: {e}"
                log.exception("market-%s: unexpected feed error", self.shard)
                await pacer.pause()
            if self._waiters:
                self._check_waiters()

    # ------------------------------------------------------------------ hot path (ccxt's receive loop)
    def _on_update(self, symbol: str, update_id: int, event_ms: int | None) -> None:
        now = time.time_ns() / 1e6
        self._last_seen[symbol] = now
        if event_ms is None:  # a snapshot was applied: fresh, but not a diff
            return
        self._diffs += 1
        counts = self._diff_counts
        counts[symbol] = counts.get(symbol, 0) + 1
        i = self._lag_i
        self._lags[i] = now - event_ms
        self._lag_i = i + 1 if i + 1 < len(self._lags) else 0
        self._lag_n += 1

    def _on_gap(self, symbol: str) -> None:
        self._gaps[symbol] = self._gaps.get(symbol, 0) + 1

    # ------------------------------------------------------------------ waiting on conditions (tests, launcher)
    def _check_waiters(self) -> None:
        still = []
        for predicate, fut in self._waiters:
            if fut.done():
                continue
            if predicate():
                fut.set_result(True)
            else:
                still.append((predicate, fut))
        self._waiters = still

    async def _wait(self, predicate: Callable[[], bool], timeout_s: float, recheck_ms: int | None = None) -> bool:
        """Wait until `predicate()` holds: re-checked after every batch of diffs, and every `recheck_ms` for
        conditions that become true with time alone (staleness)."""
        self._ensure_started()
        if predicate():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        fut = loop.create_future()
        self._waiters.append((predicate, fut))
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                fut.cancel()
                return False
            step = remaining if recheck_ms is None else min(remaining, recheck_ms / 1000)
            try:
                return await asyncio.wait_for(asyncio.shield(fut), step)
            except asyncio.TimeoutError:
                if predicate():
                    fut.cancel()
                    return True

    def _ready(self, symbol: str) -> bool:
        return self._gw is not None and self._gw.book_state(symbol) is not None

    async def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """True once every owned book has a snapshot (re-checked after each batch of diffs)."""
        return await self._wait(lambda: all(self._ready(s) for s in self.symbols), timeout_s)

    async def wait_diffs(self, count: int, timeout_s: float = 30.0) -> bool:
        """True once `count` diffs have been applied since the last stats reset."""
        return await self._wait(lambda: self._diffs >= count, timeout_s)

    async def wait_for_update_ids(self, targets: dict[str, int], timeout_s: float = 30.0) -> bool:
        """True once each book in `targets` has applied the exchange's update id `targets[symbol]` (or later)."""
        self._check_owned(targets)

        def reached() -> bool:
            assert self._gw is not None
            for s, target in targets.items():
                state = self._gw.book_state(s)
                if state is None or state[0] < target:
                    return False
            return True

        return await self._wait(reached, timeout_s)

    async def wait_gap_resynced(self, symbol: str, gaps_before: int, timeout_s: float = 30.0) -> bool:
        """True once `symbol` has seen more than `gaps_before` gaps and its book has a snapshot again."""
        self._check_owned([symbol])
        return await self._wait(lambda: self._gaps.get(symbol, 0) > gaps_before and self._ready(symbol), timeout_s)

    async def wait_reconnected(self, reconnects_before: int, timeout_s: float = 30.0) -> bool:
        """True once the feed has reconnected more than `reconnects_before` times and every book is rebuilt."""
        return await self._wait(lambda: self._reconnects > reconnects_before
                                and all(self._ready(s) for s in self.symbols), timeout_s)

    async def wait_stale(self, symbols: list[str], stale: bool = True, timeout_s: float = 30.0) -> bool:
        """True once every symbol in `symbols` is flagged stale (stale=False: once none of them is)."""
        self._check_owned(symbols)
        wanted = set(symbols)

        def holds() -> bool:
            flagged = wanted.intersection(self._stale_now())
            return flagged == wanted if stale else not flagged

        return await self._wait(holds, timeout_s, recheck_ms=max(10, self.options.stale_after_ms // 10))

    # ------------------------------------------------------------------ queries
    def _check_owned(self, symbols: Iterable[str]) -> None:
        foreign = [s for s in symbols if s not in self._owned]
        if foreign:
            raise ValueError(f"market-{self.shard} does not own {foreign[:5]} (ask shard_of(symbol, shards))")

    async def liquidity(self, symbols: list[str], side: Side | str, depth: int | None = 20,
                        with_stale: bool = False) -> Any:
        """For a taker on `side`, the book levels it would take: BUY -> asks (best first), SELL -> bids.
        `depth` levels per symbol (None = all kept). A book without a snapshot yet answers [].
        with_stale: answers ({symbol: levels}, [stale symbols]) instead, a stale symbol's levels being [] (the
        solver's read: one call tells it what it may plan on)."""
        self._ensure_started()
        self._check_owned(symbols)
        book_side = Side(side).opposite
        gw = self._gw
        assert gw is not None
        if not with_stale:
            return packed({s: gw.book_levels(s, book_side, depth) for s in symbols})
        stale = self._stale_now(symbols)
        skip = set(stale)
        return packed(({s: [] if s in skip else gw.book_levels(s, book_side, depth) for s in symbols}, stale))

    async def book(self, symbol: str, depth: int | None = None) -> dict[str, Any]:
        """One book, both sides, exact: {"update_id", "event_ms", "bids", "asks"} (None ids while not ready)."""
        self._ensure_started()
        self._check_owned([symbol])
        gw = self._gw
        assert gw is not None
        state = gw.book_state(symbol)
        return {"update_id": state[0] if state else None, "event_ms": state[1] if state else None,
                "bids": gw.book_levels(symbol, Side.BUY, depth), "asks": gw.book_levels(symbol, Side.SELL, depth)}

    async def top(self) -> dict[str, tuple[Level | None, Level | None]]:
        """Best bid and best ask of every owned symbol (None for an empty side or a book not ready)."""
        self._ensure_started()
        gw = self._gw
        assert gw is not None
        out = {}
        for s in self.symbols:
            bids, asks = gw.book_levels(s, Side.BUY, 1), gw.book_levels(s, Side.SELL, 1)
            out[s] = (bids[0] if bids else None, asks[0] if asks else None)
        return out

    async def stale(self) -> list[str]:
        """Symbols whose book has no snapshot, or saw nothing for stale_after_ms."""
        self._ensure_started()
        return self._stale_now()

    def _stale_now(self, symbols: Iterable[str] | None = None) -> list[str]:
        return stale_symbols(self.symbols if symbols is None else symbols, self._ready, self._last_seen, self._now(),
                             self.options.stale_after_ms)

    async def stats(self, reset: bool = False) -> dict[str, Any]:
        """Counters and lag percentiles since the last reset (benches measure windows with reset=True)."""
        # the ring holds the latest len(self._lags) samples; before it wraps, only the first _lag_n are real
        lags = sorted(self._lags if self._lag_n >= len(self._lags) else self._lags[: self._lag_n])
        out = {"diffs": self._diffs, "lag_samples": len(lags), "lag_p50_ms": _percentile(lags, 0.50),
               "lag_p99_ms": _percentile(lags, 0.99), "lag_max_ms": lags[-1] if lags else None,
               "gaps": sum(self._gaps.values()), "reconnects": self._reconnects, "at_ms": self._now(),
               "cpu_s": time.process_time()}
        if reset:
            self._diffs = 0
            self._lag_i = self._lag_n = 0
        return out

    async def inspect(self) -> dict[str, Any]:
        """Plain data for notebooks: what is owned, what is ready or stale, counters and lag percentiles."""
        stats = await self.stats()
        stale = self._stale_now()
        ready = sum(1 for s in self.symbols if self._ready(s))
        return {"shard": self.shard, "name": shard_name(self.shard), "symbols": len(self.symbols), "ready": ready,
                "stale": stale, "gaps_by_symbol": dict(self._gaps), "diffs_by_symbol": dict(self._diff_counts),
                "last_error": self._last_error,
                "running": self._task is not None and not self._task.done(),
                "uptime_ms": self._now() - self._started_at_ms, **stats}


# ============================================================================================== launching
def start_market_data(options: MarketDataOptions, symbols: Iterable[str], shards: int, *,
                      namespace: str | None = None, detached: bool = False) -> list[Any]:
    """Create (or get, if they exist) the `market-{k}` shards for `symbols`, each owning shard_of(symbol) == k,
    and start their feeds. Returns the handles in shard order."""
    handles = []
    for k, owned in enumerate(assign_shards(symbols, shards)):
        opts: dict[str, Any] = {"name": shard_name(k), "get_if_exists": True}
        if namespace is not None:
            opts["namespace"] = namespace
        if detached:
            opts["lifetime"] = "detached"
        handle = MarketDataShard.options(**opts).remote(k, owned, options)
        handle.start.remote()
        handles.append(handle)
    return handles


def shard_for(symbol: str, shards: int, namespace: str | None = None) -> Any:
    """The handle of the shard that owns `symbol`."""
    return ray.get_actor(shard_name(shard_of(symbol, shards)), namespace=namespace)

"""`withdrawals`: drives each user's withdrawal of USDC to Arbitrum through core/withdrawal.py's machine.

Thin: the machine decides, this actor stores it and carries out its hops. A request comes from its user's shard,
which held the amount before handing it over (`submit`, after the shard's commit; a restarted actor asks every shard
for the open ones). Each transition is stored (a `withdrawal` record) before its effect, and every hop is idempotent
by the withdrawal id: the exchange's withdrawOrderId is looked up before it is applied (gateway.ensure_withdrawal),
so a restart resumes each withdrawal at its stage. Each stage is reported to the user through their shard, and a
final one is settled there (payout and fees out of the hold, the rest back), once per withdrawal.

The exchange: a client of its own (the sender's account, the wallet endpoints). Binance counts /sapi wallet calls
against their own per-UID limits, apart from the order weight the sender paces; this actor makes at most one history
call per tick (`poll_ms`) for every withdrawal in flight, plus one apply per new withdrawal and one fee lookup per
batch of new ones, with ccxt's own rate limiter on.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Awaitable, Callable, Sequence

import ray
import redis.asyncio as aioredis

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.logs import setup_logging
from actors.order_shards import orders_shard_name, shard_of_user
from actors.ray_context import start_named
from core.clock import SystemClock
from core.withdrawal import (FINAL, BridgeDeposited, BridgeExpired, BridgeFilled, ExchangeApplied, ExchangeCompleted,
                             ExchangeRejected, Event, Paid, Reserve, Transition, Withdrawal, WithdrawalError,
                             WithdrawalReport, WithdrawalRequest, WithdrawalStage)
from exchange import errors
from store.retry import RetryPolicy
from store.withdrawal_records import WithdrawalRecord

log = logging.getLogger(__name__)

#: (shard, stage reports, final withdrawals to settle) -> awaited: the user's shard's `withdrawal_progress`.
ShardCall = Callable[[int, list[WithdrawalReport], list[Withdrawal]], Awaitable[Any]]


@dataclass(frozen=True)
class WithdrawalsOptions:
    redis_url: str
    shards: int
    #: Our wallet on Base: where the exchange withdraws to (the world's `base_wallet` account).
    base_wallet: str
    rest_url: str | None
    ws_url: str | None
    api_key: str = dataclasses.field(repr=False)
    secret: str = dataclasses.field(repr=False)
    ws_api_url: str | None = None
    sandbox: bool = False
    recv_window_ms: int = 10_000
    coin: str = "USDC"
    #: `[withdrawal] exchange_network`: the exchange's name of the network it withdraws to.
    network: str = "BASE"
    #: `[withdrawal] poll_ms`: how often the withdrawals in flight are looked at (one history call for all).
    poll_ms: int = 2_000
    #: `[withdrawal] payout_gas`: the USDC charged for the Arbitrum transfer to the user (an estimate: it is charged
    #: before the transfer is sent; the Base bridge deposit's gas is charged as it was really paid).
    payout_gas: Decimal = Decimal("0.20")
    #: The actor that owns our chain transactions (actors/chain_actor.py: the return route's hops).
    chain_name: str = "chain"
    key_prefix: str = "withdrawals"
    name: str = "withdrawals"
    namespace: str | None = None
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy.default)

    @classmethod
    def from_settings(cls, settings: Any, api_key: str, secret: str, shards: int, base_wallet: str,
                      **overrides: Any) -> "WithdrawalsOptions":
        x, w = settings.exchange, settings.withdrawal
        values: dict[str, Any] = {
            "redis_url": settings.redis_url, "shards": shards, "base_wallet": base_wallet, "rest_url": x.rest_url,
            "ws_url": x.ws_url, "ws_api_url": x.ws_api_url, "sandbox": x.sandbox, "api_key": api_key,
            "secret": secret, "recv_window_ms": x.recv_window_ms, "network": w.exchange_network,
            "poll_ms": w.poll_ms, "payout_gas": w.payout_gas, "retry": RetryPolicy.from_settings(settings)}
        values.update(overrides)
        return cls(**values)


class WithdrawalDesk:
    """The actor's body (Ray wraps it as `Withdrawals`; tests drive it directly with a shard call of their own)."""

    def __init__(self, options: WithdrawalsOptions, *, exchange: Any = None, shard_call: ShardCall | None = None,
                 return_route: Any = None) -> None:
        """`exchange` (a BinanceGateway), `shard_call` and `return_route` (chain.route_effects' RouteEffects of the
        route Base -> Arbitrum: bridge, find_fill, fill_expired, transfer): a test's; None: this actor's own
        exchange client, the shards by name and the chain actor's withdrawal hops."""
        setup_logging(options.name)
        self.o = options
        self._clock = SystemClock()
        self._keys = {"records": f"{options.key_prefix}:records", "settled": f"{options.key_prefix}:settled"}
        self._redis = aioredis.Redis.from_url(options.redis_url)
        self._exchange = exchange
        self._over_ray = shard_call is None  # the shards are Ray actors (else the test's call stands for them)
        self._shard_call = shard_call or self._ray_shard_call
        self._shard_handles: dict[int, Any] = {}
        self._route = return_route
        self.withdrawals: dict[str, Withdrawal] = {}
        self.settled: set[str] = set()  # final withdrawals their shard has settled (told and answered)
        self._reports: dict[int, list[WithdrawalReport]] = {}  # per shard, to send with the next tick
        self._lock = asyncio.Lock()
        self._load_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._loaded = False
        self._counts = {"submitted": 0, "transitions": 0, "exchange_errors": 0, "shard_errors": 0, "chain_errors": 0}
        if self._over_ray:
            # Started at once, on creation and on every restart (Ray re-runs __init__ on the actor's loop): a
            # restarted actor reloads its records and resumes each withdrawal by itself.
            try:
                asyncio.get_running_loop().create_task(self.start())
            except RuntimeError:  # no loop: constructed outside Ray; the caller starts it
                pass

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Idempotent: load the stored withdrawals, start the loop (which first takes every shard's open requests,
        when the shards are Ray actors)."""
        await self._load()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return len(self.withdrawals)

    async def _load(self) -> None:
        """The stored withdrawals, read once (a submit arriving during the start waits for the read)."""
        async with self._load_lock:
            if self._loaded:
                return
            records = await self._redis.hgetall(self._keys["records"])
            settled = await self._redis.smembers(self._keys["settled"])
            self.withdrawals = {k.decode(): WithdrawalRecord.load(v).withdrawal for k, v in records.items()}
            self.settled = {s.decode() for s in settled}
            self._loaded = True
            # A stage's report is queued after its record is stored: one a crash lost in between goes out now
            # (the user may see the stage they were told last once more).
            for w in self.withdrawals.values():
                if w.withdrawal_id not in self.settled and w.stage is not WithdrawalStage.REQUESTED:
                    self._reports.setdefault(shard_of_user(w.user, self.o.shards), []).append(w.report())

    async def catch_up(self) -> None:
        """Requests a shard accepted while this actor was away (its push was lost): asked of every shard."""
        for k in range(self.o.shards):
            try:
                requests = await self._shard(k).withdrawal_requests.remote()
            except Exception as exc:  # noqa: BLE001  (a shard restarting pushes its open ones itself)
                log.warning("withdrawals: shard %d not reached for its open withdrawals (%s)", k, exc)
                continue
            await self.submit(k, requests)

    async def _run(self) -> None:
        if self._over_ray:
            await self.catch_up()
        while True:
            try:
                await self.tick()
            except Exception:  # noqa: BLE001  (the next tick tries again: every hop is idempotent)
                log.exception("withdrawals: tick failed")
            await asyncio.sleep(self.o.poll_ms / 1000)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._exchange is not None and hasattr(self._exchange, "close"):
            await self._exchange.close()
        await self._redis.aclose()

    # ------------------------------------------------------------------ requests
    async def submit(self, shard: int, requests: Sequence[WithdrawalRequest]) -> int:
        """Start the withdrawals of requests their shard accepted (it holds each amount already). Idempotent per
        withdrawal id: a known one is left as it is. Returns how many were new."""
        await self._load()
        async with self._lock:
            new = [r for r in requests if r.withdrawal_id not in self.withdrawals]
            if not new:
                return 0
            try:
                fee = await self._exchange_client().fetch_withdraw_fee(self.o.coin, self.o.network)
            except Exception as exc:  # noqa: BLE001  (not started: the shard's next push or our catch-up again)
                log.warning("withdrawals: the exchange's withdrawal fee is unknown (%s); %d wait", exc, len(new))
                self._counts["exchange_errors"] += 1
                return 0
            for r in new:
                w, transitions = _start(r, fee)
                await self._store(w)
                self.withdrawals[w.withdrawal_id] = w
                for t in transitions:
                    self._queue(w, t)
                self._counts["submitted"] += 1
        return len(new)

    # ------------------------------------------------------------------ the loop
    async def tick(self) -> None:
        """One look at every withdrawal in flight (one history call for all), then the shards told, one call each."""
        async with self._lock:
            live = [w for w in self.withdrawals.values() if w.stage not in FINAL]
            if live:
                await self._drive(live)
            await self._tell_shards()

    async def _drive(self, live: list[Withdrawal]) -> None:
        S = WithdrawalStage
        for w in live:
            if w.stage is S.RESERVED:
                await self._advance(w, await self._apply(w))
        await self._drive_exchange([w for w in live if w.stage is S.APPLIED])
        for w in live:
            try:
                if w.stage is S.ON_BASE:
                    sent = await self._return_route().bridge(self._bridge_key(w), w.on_base)
                    await self._advance(w, BridgeDeposited(str(sent.deposit_id), sent.output_amount))
                if w.stage is S.BRIDGING:
                    await self._advance(w, await self._bridged(w))
                if w.stage is S.BRIDGED and w.payout is not None:
                    paid = await self._return_route().transfer(w.payout_key, w.to, w.payout)
                    await self._advance(w, Paid(paid.tx_hash))
            except Exception as exc:  # noqa: BLE001  (a node or the chain actor away: the next tick, same keys)
                self._counts["chain_errors"] += 1
                log.warning("withdrawals: %s waits at %s (%s: %s)", w.withdrawal_id, w.stage.value,
                            type(exc).__name__, exc)

    @staticmethod
    def _bridge_key(w: Withdrawal) -> str:
        return f"{w.payout_key}:bridge"

    async def _bridged(self, w: Withdrawal) -> Event | None:
        """The bridge deposit's fill on Arbitrum (the deposit looked up again under its key: the same one), or its
        expiry. The gas charged: the Base deposit's, as paid, and the payout's estimate."""
        route = self._return_route()
        sent = await route.bridge(self._bridge_key(w), w.on_base)
        fill = await route.find_fill(sent.deposit_id, sent.destination_block)
        if fill is not None:
            return BridgeFilled(str(sent.deposit_id), sent.gas + self.o.payout_gas)
        if await route.fill_expired(sent.fill_deadline):
            return BridgeExpired(str(sent.deposit_id))
        return None

    async def _drive_exchange(self, applied: list[Withdrawal]) -> None:
        if not applied:
            return
        try:
            rows = await self._exchange_client().fetch_withdrawals(self.o.coin)
        except errors.ExchangeError as exc:
            self._counts["exchange_errors"] += 1
            log.warning("withdrawals: the exchange's history is not readable now (%s)", exc)
            return
        by_order_id = {r.withdraw_order_id: r for r in rows if r.withdraw_order_id}  # oldest first: the last wins
        for w in applied:
            row = by_order_id.get(w.withdraw_order_id)
            if row is None:
                continue
            if row.completed and row.tx_id:
                await self._advance(w, ExchangeCompleted(row.id, row.tx_id))
            elif row.failed:
                await self._advance(w, ExchangeRejected(f"the exchange ended it with status {row.status}", row.id))

    async def _apply(self, w: Withdrawal) -> Event | None:
        """The exchange withdrawal of `w` (looked up by its withdrawOrderId before it is applied)."""
        try:
            exchange_id = await self._exchange_client().ensure_withdrawal(
                self.o.coin, w.on_base, self.o.base_wallet, self.o.network, w.withdraw_order_id)
        except errors.WithdrawRefused as exc:
            return ExchangeRejected(f"{type(exc).__name__}: {exc}")
        except errors.ExchangeError as exc:  # unknown outcome or unreachable: the next tick looks it up again
            self._counts["exchange_errors"] += 1
            log.warning("withdrawals: %s not applied yet (%s)", w.withdrawal_id, exc)
            return None
        return ExchangeApplied(exchange_id)

    async def _advance(self, w: Withdrawal, event: Event | None) -> None:
        if event is None:
            return
        t = w.apply(event)
        if t is None:
            return
        await self._store(w)  # before anything acts on the new stage
        self._queue(w, t)

    def _queue(self, w: Withdrawal, t: Transition) -> None:
        self._counts["transitions"] += 1
        self._reports.setdefault(shard_of_user(w.user, self.o.shards), []).append(t.report)

    async def _tell_shards(self) -> None:
        """Each shard's reports and its final withdrawals not settled yet, in one call per shard; what a shard
        settled is remembered (stored) only once it answered."""
        todo: dict[int, list[Withdrawal]] = {}
        for w in self.withdrawals.values():
            if w.stage in FINAL and w.withdrawal_id not in self.settled:
                todo.setdefault(shard_of_user(w.user, self.o.shards), []).append(w)
        for k in sorted(set(todo) | set(self._reports)):
            reports, done = self._reports.get(k, []), todo.get(k, [])
            try:
                await self._shard_call(k, reports, done)
            except Exception as exc:  # noqa: BLE001  (kept for the next tick: the shard settles once per id)
                self._counts["shard_errors"] += 1
                log.warning("withdrawals: shard %d not told (%s); again next tick", k, exc)
                continue
            self._reports.pop(k, None)
            if done:
                ids = [w.withdrawal_id for w in done]
                await self._redis.sadd(self._keys["settled"], *ids)
                self.settled.update(ids)

    async def _store(self, w: Withdrawal) -> None:
        raw = WithdrawalRecord(withdrawal=w).dump()
        await self.o.retry.call(lambda: self._redis.hset(self._keys["records"], w.withdrawal_id, raw),
                                lambda exc: log.warning("withdrawals: store not reached (%s); retrying", exc))

    # ------------------------------------------------------------------ peers
    def _exchange_client(self) -> Any:
        if self._exchange is None:
            from exchange.gateway import BinanceGateway

            o = self.o
            self._exchange = BinanceGateway(o.rest_url, o.ws_url, o.api_key, o.secret, recv_window_ms=o.recv_window_ms,
                                            sandbox=o.sandbox, ws_api_url=o.ws_api_url)
        return self._exchange

    def _return_route(self) -> Any:
        if self._route is None and not self._over_ray:
            raise RuntimeError("no return route given (a desk driven outside Ray): the withdrawal waits on Base")
        if self._route is None:
            self._route = _ChainReturnRoute(ray.get_actor(self.o.chain_name, namespace=self.o.namespace
                                                          or ray.get_runtime_context().namespace))
        return self._route

    def _shard(self, k: int) -> Any:
        if k not in self._shard_handles:
            self._shard_handles[k] = ray.get_actor(orders_shard_name(k), namespace=self.o.namespace
                                                   or ray.get_runtime_context().namespace)
        return self._shard_handles[k]

    async def _ray_shard_call(self, k: int, reports: list[WithdrawalReport], done: list[Withdrawal]) -> Any:
        try:
            return await self._shard(k).withdrawal_progress.remote(reports, done)
        except Exception:
            self._shard_handles.pop(k, None)  # looked up again next time (a restarted shard)
            raise

    # ------------------------------------------------------------------ views
    async def inspect(self) -> dict[str, Any]:
        stages: dict[str, int] = {}
        for w in self.withdrawals.values():
            stages[w.stage.value] = stages.get(w.stage.value, 0) + 1
        return {"stages": stages, "unsettled": sorted(w for w, x in self.withdrawals.items()
                                                        if x.stage in FINAL and w not in self.settled),
                **self._counts}

    async def withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        return self.withdrawals.get(withdrawal_id)


class _ChainReturnRoute:
    """The chain actor's withdrawal hops under RouteEffects' names (the chain actor owns our transactions)."""

    def __init__(self, chain: Any) -> None:
        self._chain = chain

    async def bridge(self, key: str, amount: Decimal) -> Any:
        return await self._chain.withdrawal_bridge.remote(key, amount)

    async def find_fill(self, deposit_id: int, from_block: int) -> Any:
        return await self._chain.withdrawal_fill.remote(deposit_id, from_block)

    async def fill_expired(self, fill_deadline: int) -> bool:
        return await self._chain.withdrawal_fill_expired.remote(fill_deadline)

    async def transfer(self, key: str, address: str, amount: Decimal) -> Any:
        return await self._chain.withdrawal_pay.remote(key, address, amount)


def _start(r: WithdrawalRequest, fee: Decimal) -> tuple[Withdrawal, list[Transition]]:
    """The machine of an accepted request, reserved (its shard holds the amount): ready for the exchange, or
    released at once when the exchange's fee alone eats the amount or exceeds the user's `max_fee`."""
    try:
        w = Withdrawal.request(r.withdrawal_id, r.user, r.to, r.amount, fee)
        refusal = None
    except WithdrawalError as exc:
        w = Withdrawal(r.withdrawal_id, r.user, r.to, r.amount, fee, history=[WithdrawalStage.REQUESTED.value])
        refusal = f"FEE_EXCEEDS_AMOUNT: {exc}"
    if refusal is None and r.max_fee is not None and w.exchange_fee > r.max_fee:
        refusal = f"MAX_FEE_EXCEEDED: the exchange's fee {w.exchange_fee} is above the {r.max_fee} accepted"
    transitions = [t for t in (w.apply(Reserve(r.amount)),) if t is not None]
    if refusal is not None:
        transitions += [t for t in (w.apply(ExchangeRejected(refusal)),) if t is not None]
    return w, transitions


Withdrawals = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(WithdrawalDesk)


def start_withdrawals(options: WithdrawalsOptions, *, detached: bool = False) -> Any:
    return start_named(Withdrawals, options.name, options.namespace, detached, options)

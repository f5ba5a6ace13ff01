"""The collateral router: drives every deposit's route (core.collateral_route) with the outside world, persisted in
Redis so that it can stop at any moment and resume at the right hop without paying anything twice.

Order of writes: a deposit is credited (idempotent) before it is recorded as accepted; a route is written before
its first effect, each effect keyed `<route id>:<hop>` in the TxSender; a transition is written before its fees
are charged (idempotent per fee id)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Sequence

from redis.asyncio import Redis

from chain.collateral_sink import CollateralSink
from chain.route_effects import RouteEffects
from core.chain_events import CollateralDeposit, DepositReversal
from core.clock import Clock
from core.collateral_route import CollateralRoute, RouteStage
from core.config import Settings
from core.route_batch import BatchPolicy, RouteMember, take_batch
from core.route_hold import RouteHoldPolicy
from store.chain_records import PendingDepositRecord, ReversalRecord, RouteRecord, StrandedReversalRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterConfig:
    destination_chain_id: int = 8453
    unit: Decimal = Decimal("0.000001")
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    coin: str = "USDC"
    network: str = "BASE"  # the exchange's name for the destination network
    namespace: str = "router"
    #: How much of each credited deposit is held for its route's cost (None: nothing held).
    hold: RouteHoldPolicy | None = None

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str = "router") -> "RouterConfig":
        """The router's slice of core.config: chain ids, unit and batching from `chain`, the coin it routes from
        `collateral`, the exchange's name for the destination network from `exchange`."""
        chain = settings.chain
        return cls(destination_chain_id=chain.base_chain_id, unit=chain.usdc_unit, batch=chain.batch_policy,
                   coin=settings.collateral.symbol, network=settings.exchange.deposit_network, namespace=namespace,
                   hold=chain.hold_policy)


class CollateralRouter:
    def __init__(self, redis: Redis, effects: RouteEffects, sink: CollateralSink, clock: Clock,
                 config: RouterConfig | None = None) -> None:
        self.redis = redis
        self.effects = effects
        self.sink = sink
        self.clock = clock
        self.config = config or RouterConfig()
        self.errors: dict[str, str] = {}  # route id -> last error (in memory: the next step retries)
        self._lock = asyncio.Lock()
        #: accept() and the batching step both read and write the pending/deposits hashes. Unserialised, a
        #: deposit replayed by a restarted `chain` actor (two accept calls for it at once) could be re-queued as
        #: "pending" after a step had already put it in a route, and be bridged twice.
        self._intake = asyncio.Lock()

    def _k(self, what: str) -> str:
        return f"{self.config.namespace}:{what}"

    # --- reads ------------------------------------------------------------------------------------------------------

    async def route(self, route_id: str) -> CollateralRoute | None:
        raw = await self.redis.hget(self._k("routes"), route_id)
        return RouteRecord.load(raw).route if raw is not None else None

    async def routes(self) -> list[CollateralRoute]:
        raw = await self.redis.hgetall(self._k("routes"))
        return sorted((RouteRecord.load(v).route for v in raw.values()), key=lambda r: r.created_ms)

    async def active_routes(self) -> list[CollateralRoute]:
        ids = sorted(i.decode() for i in await self.redis.smembers(self._k("active")))
        found = [await self.route(i) for i in ids]
        return [r for r in found if r is not None]

    async def pending(self) -> list[RouteMember]:
        raw = await self.redis.hgetall(self._k("pending"))
        return sorted((PendingDepositRecord.load(v).member for v in raw.values()),
                      key=lambda m: (m.seen_ms, m.deposit_key))

    async def route_of(self, deposit_key: str) -> str | None:
        """'pending' while waiting for a batch, then the route id; None if the deposit is unknown."""
        raw = await self.redis.hget(self._k("deposits"), deposit_key)
        return raw.decode() if raw is not None else None

    async def inspect(self) -> dict[str, Any]:
        """Plain data for notebooks and health checks."""
        routes = await self.routes()
        return {
            "pending": [m.to_dict() for m in await self.pending()],
            "routes": [r.to_dict() for r in routes],
            "by_stage": {s.value: sum(1 for r in routes if r.stage == s) for s in RouteStage},
            "errors": dict(self.errors),
            "reversed_after_routing": await self.reversed_after_routing(),
        }

    # --- deposits in ------------------------------------------------------------------------------------------------

    async def accept(self, deposits: Sequence[CollateralDeposit]) -> list[CollateralDeposit]:
        """Credit confirmed deposits to their users and queue them for routing. Replays are no-ops; returns the
        deposits that were new."""
        if not deposits:
            return []
        async with self._intake:
            known = await self.redis.hmget(self._k("deposits"), [d.key for d in deposits])
            fresh = [d for d, seen in zip(deposits, known) if seen is None]
            fresh = list({d.key: d for d in fresh}.values())
            if not fresh:
                return []
            hold = self.config.hold
            holds = {d.key: hold.hold_for(d.amount, d.chain_id) for d in fresh} if hold is not None else {}
            await self.sink.credit(fresh, holds)  # first: a crash after it re-credits as a no-op; before, lost
            now = self.clock.now_ms()
            pipe = self.redis.pipeline(transaction=True)
            for d in fresh:
                member = RouteMember(d.key, d.user, d.amount, now)
                pipe.hset(self._k("deposits"), d.key, "pending")
                pipe.hset(self._k("pending"), d.key, PendingDepositRecord(member=member, chain_id=d.chain_id).dump())
            await pipe.execute()
            return fresh

    # --- deposits out: a reorg deeper than the confirmations ---------------------------------------------------------

    async def reverse(self, deposit_keys: Sequence[str]) -> list[DepositReversal]:
        """Deposits credited before and now dropped by a reorg (event keys from the chain listener), taken out of
        routing where they still can be: a pending one leaves the queue; a route not bridged yet whose members are all
        reversed fails; one whose money left custody is recorded for the operator. Then every reversal goes to the sink.
        Idempotent per key (records first; the sink is idempotent too). Unknown keys are ignored. Returns the reversals.
        """
        if not deposit_keys:
            return []
        async with self._lock, self._intake:
            out: list[DepositReversal] = []
            known = dict(zip(deposit_keys, await self.redis.hmget(self._k("deposits"), list(deposit_keys))))
            recorded = dict(zip(deposit_keys, await self.redis.hmget(self._k("reversed"), list(deposit_keys))))
            touched_routes: dict[str, CollateralRoute] = {}
            for key in dict.fromkeys(deposit_keys):
                if recorded[key] is not None:  # a replay: tell the sink again
                    done = ReversalRecord.load(recorded[key])
                    out.append(DepositReversal(key, done.user, done.amount, done.routed))
                    continue
                where = known[key].decode() if known[key] is not None else None
                if where is None:
                    continue
                if where == "pending":
                    raw = await self.redis.hget(self._k("pending"), key)
                    if raw is None:
                        continue
                    member = PendingDepositRecord.load(raw).member
                    pipe = self.redis.pipeline(transaction=True)
                    pipe.hdel(self._k("pending"), key)
                    pipe.hset(self._k("deposits"), key, "reversed")
                    pipe.hset(self._k("reversed"), key, ReversalRecord(
                        user=member.user, amount=member.amount, routed=False, route=None, stage=None).dump())
                    await pipe.execute()
                    out.append(DepositReversal(key, member.user, member.amount, False))
                    continue
                if where == "reversed":
                    continue
                route = touched_routes.get(where) or await self.route(where)
                if route is None:
                    continue
                touched_routes[where] = route
                [member] = [m for m in route.members if m.deposit_key == key]
                # The money left custody with the route's first transaction: the bridge (from Arbitrum) or the
                # transfer to the exchange (a route that started on Base).
                routed = route.bridge is not None or route.transfer is not None
                pipe = self.redis.pipeline(transaction=True)  # both records or neither: a replay trusts the first
                pipe.hset(self._k("reversed"), key, ReversalRecord(
                    user=member.user, amount=member.amount, routed=routed, route=route.route_id,
                    stage=route.stage).dump())
                if routed:
                    pipe.hset(self._k("reversed_after_routing"), key, StrandedReversalRecord(
                        user=member.user, amount=member.amount, route=route.route_id, stage=route.stage).dump())
                await pipe.execute()
                if routed:  # the operator's to recover: /health and status name it
                    log.warning("deposit %s (%s USDC of %s) reversed by a reorg after its money left custody in %s: "
                                "the house is short of it", key, member.amount, member.user, route.route_id)
                out.append(DepositReversal(key, member.user, member.amount, routed))
            await self._fail_reversed_routes(touched_routes.values())
            if out:
                await self.sink.reverse(out)
            return out

    async def _fail_reversed_routes(self, routes: Iterable[CollateralRoute]) -> None:
        """A route that has sent nothing yet and carries only reversed deposits fails: its money is gone."""
        for route in routes:
            if route.is_final or route.transfer is not None or route.bridge is not None:
                continue
            keys = [m.deposit_key for m in route.members]
            flags = await self.redis.hmget(self._k("reversed"), keys)
            if any(f is None for f in flags):
                log.warning("route %s carries reversed and live deposits and has not bridged: operator to split it",
                            route.route_id)
                self.errors[route.route_id] = "carries deposits reversed by a reorg; not failed (live members)"
                continue
            route.fail("every deposit of the route was dropped by a chain reorg", now_ms=self.clock.now_ms())
            await self._save(route)
            await self.redis.srem(self._k("active"), route.route_id)

    async def reversed_after_routing(self) -> dict[str, dict[str, Any]]:
        """Reversed deposits whose money had already left custody: the operator must recover it."""
        raw = await self.redis.hgetall(self._k("reversed_after_routing"))
        return {k.decode(): StrandedReversalRecord.load(v).model_dump(mode="json") for k, v in raw.items()}

    # --- the loop body ----------------------------------------------------------------------------------------------

    async def step(self) -> list[CollateralRoute]:
        """Close due batches into routes, then move every active route as far as it can go now."""
        async with self._lock:
            await self._open_batches()
            active = await self.active_routes()
            results = await asyncio.gather(*(self._advance(r) for r in active), return_exceptions=True)
            out = []
            for route, res in zip(active, results):
                if isinstance(res, BaseException):
                    if not isinstance(res, Exception):
                        raise res
                    self.errors[route.route_id] = f"{type(res).__name__}: {res}"
                    log.warning("route %s stuck at %s: %s", route.route_id, route.stage.value, res)
                    out.append(route)
                else:
                    self.errors.pop(route.route_id, None)
                    out.append(res)
            return out

    async def _open_batches(self) -> None:
        async with self._intake:
            await self._open_batches_locked()

    async def _open_batches_locked(self) -> None:
        raw = await self.redis.hgetall(self._k("pending"))
        by_chain: dict[int, list[RouteMember]] = {}
        for v in raw.values():
            waiting = PendingDepositRecord.load(v)
            by_chain.setdefault(waiting.chain_id, []).append(waiting.member)
        now = self.clock.now_ms()
        for chain_id, members in sorted(by_chain.items()):
            while True:
                batch = take_batch(members, self.config.batch, now)
                if batch is None:
                    break
                taken = {m.deposit_key for m in batch}
                members = [m for m in members if m.deposit_key not in taken]
                seq = await self.redis.incr(self._k("seq"))
                route = CollateralRoute.open(f"route-{seq}", batch, origin_chain_id=chain_id,
                                             destination_chain_id=self.config.destination_chain_id,
                                             unit=self.config.unit, now_ms=now)
                pipe = self.redis.pipeline(transaction=True)
                pipe.hset(self._k("routes"), route.route_id, RouteRecord(route=route).dump())
                pipe.sadd(self._k("active"), route.route_id)
                pipe.hdel(self._k("pending"), *taken)
                for key in taken:
                    pipe.hset(self._k("deposits"), key, route.route_id)
                await pipe.execute()

    async def _save(self, route: CollateralRoute) -> None:
        await self.redis.hset(self._k("routes"), route.route_id, RouteRecord(route=route).dump())

    async def _charge(self, route: CollateralRoute) -> None:
        due = route.uncharged()
        if due:
            await self.sink.charge(due)
            route.mark_charged([c.fee_id for c in due])
            await self._save(route)

    async def _advance(self, route: CollateralRoute) -> CollateralRoute:
        await self._charge(route)  # charges a crash left unbooked
        while not route.is_final:
            moved = await self._hop(route)
            if not moved:
                break
            await self._save(route)
            await self._charge(route)
        if route.is_final:
            # A final route leaves the active set only after the sink heard of it (idempotent per route id), so a
            # crash in between tells the sink again rather than never.
            if route.stage == RouteStage.CREDITED:
                await self.sink.routed(route.route_id, route.net_amounts(),
                                       {m.deposit_key: m.user for m in route.members})
            await self.redis.srem(self._k("active"), route.route_id)
        return route

    async def _hop(self, route: CollateralRoute) -> bool:
        """Try the route's next hop; True if its stage moved."""
        now = self.clock.now_ms
        cfg = self.config
        if route.stage == RouteStage.CUSTODY:
            sent = await self.effects.bridge(f"{route.route_id}:bridge", route.total)
            route.bridge_sent(tx_hash=sent.tx_hash, deposit_id=sent.deposit_id, input_amount=sent.input_amount,
                              output_amount=sent.output_amount, gas=sent.gas, now_ms=now(), block=sent.block,
                              gas_wei=sent.gas_wei, destination_block=sent.destination_block,
                              fill_deadline=sent.fill_deadline)
            return True
        if route.stage == RouteStage.BRIDGING:
            assert route.bridge is not None
            fill = await self.effects.find_fill(route.bridge["deposit_id"], route.bridge["destination_block"])
            if fill is None:
                if await self.effects.fill_expired(route.bridge["fill_deadline"]):
                    route.fail(f"no fill of Across deposit {route.bridge['deposit_id']} before its deadline",
                               now_ms=now())
                    return True
                return False
            route.bridge_filled(tx_hash=fill.tx_hash, amount_received=fill.amount, now_ms=now(), block=fill.block)
            return True
        if route.stage == RouteStage.ON_DESTINATION:
            address = await self.effects.deposit_address(cfg.coin, cfg.network)
            # A route that never bridged (its deposits were made on the destination chain) still sits at custody
            # there; a bridged one was delivered to the wallet.
            direct = route.origin_chain_id == route.destination_chain_id
            sent_t = await self.effects.transfer(f"{route.route_id}:transfer", address, route.amount_held,
                                                 from_custody=direct)
            route.transferred(tx_hash=sent_t.tx_hash, address=address, amount=route.amount_held, gas=sent_t.gas,
                              now_ms=now(), block=sent_t.block, gas_wei=sent_t.gas_wei)
            return True
        if route.stage == RouteStage.AT_EXCHANGE:
            assert route.transfer is not None
            credited = await self.effects.exchange_credited(cfg.coin, cfg.network, route.transfer["tx_hash"],
                                                            route.amount_held)
            if credited is None:
                return False
            route.credited(amount_credited=credited, now_ms=now())
            return True
        return False

"""A CollateralSink that keeps each user's CollateralLedger in Redis (one JSON per user in a hash).

For a router running without the index-order shards (the bench, a chain-only deployment, the actor tests): the
ledgers survive restarts like everything else. In the full system the `orders-{k}` shards own the ledgers and
implement CollateralSink themselves. Each call loads the touched ledgers, applies every item (each idempotent by
its id) and writes them back in one MULTI. Single writer (the router).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping, Sequence

from redis.asyncio import Redis

from core.chain_events import CollateralDeposit, DepositReversal
from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.collateral_route import FeeCharge
from store.chain_records import RoutedNetRecord, RouterLedgerRecord


class RedisLedgers:
    def __init__(self, redis: Redis, *, namespace: str = "ledgers", unit: Decimal = USDC_UNIT) -> None:
        self.redis = redis
        self.namespace = namespace
        self.unit = unit

    def _k(self, what: str) -> str:
        return f"{self.namespace}:{what}"

    async def ledger(self, user: str) -> CollateralLedger:
        return self._ledger(await self.redis.hget(self._k("users"), user.lower()))

    def _ledger(self, raw: bytes | None) -> CollateralLedger:
        return RouterLedgerRecord.load(raw).collateral_ledger() if raw is not None else CollateralLedger(self.unit)

    async def _apply(self, users: set[str], fn) -> None:  # noqa: ANN001
        ordered = sorted(users)
        raws = await self.redis.hmget(self._k("users"), ordered) if ordered else []
        ledgers = {u: self._ledger(r) for u, r in zip(ordered, raws)}
        fn(ledgers)
        if ledgers:
            await self.redis.hset(self._k("users"),
                                  mapping={u: RouterLedgerRecord.of(l).dump() for u, l in ledgers.items()})

    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        def go(ledgers: dict[str, CollateralLedger]) -> None:
            for d in deposits:
                ledgers[d.user.lower()].credit(d.key, d.amount, holds.get(d.key, 0))
        await self._apply({d.user.lower() for d in deposits}, go)

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        def go(ledgers: dict[str, CollateralLedger]) -> None:
            for c in charges:
                ledgers[c.user.lower()].charge_fee(c.fee_id, c.amount, hold_id=c.deposit_key)
        await self._apply({c.user.lower() for c in charges}, go)

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        def go(ledgers: dict[str, CollateralLedger]) -> None:
            for key, user in users.items():
                ledgers[user.lower()].release_hold(key)
        await self._apply({u.lower() for u in users.values()}, go)
        await self.redis.hset(self._k("routed"), route_id,
                              RoutedNetRecord(net_by_deposit=dict(net_by_deposit)).dump())

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        def go(ledgers: dict[str, CollateralLedger]) -> None:
            for r in reversals:
                ledgers[r.user.lower()].reverse_deposit(r.deposit_key)
        await self._apply({r.user.lower() for r in reversals}, go)

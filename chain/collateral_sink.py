"""Where the router books what it does to users' collateral: the deposit credit, each fee share, the route's end.

In the running system this is the index-order shard that owns each user's CollateralLedger. Calls are batched (one
per step, not per user) and every item carries its idempotency key, so a replay books nothing twice.
`InMemoryLedgers` is the plain implementation for tests, the bench and a single process."""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping, Protocol, Sequence

from core.chain_events import CollateralDeposit, DepositReversal
from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.collateral_route import FeeCharge


class CollateralSink(Protocol):
    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        """Book confirmed deposits to their users, each holding `holds[key]` for its route (idempotent per key)."""

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        """Charge routing-fee shares from their deposits' holds (idempotent per fee id)."""

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        """A route reached the exchange: each deposit's net amount is now tradable there, and what is left of its
        hold goes back to its user (`users`: deposit key -> user)."""

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        """Deposits dropped by a reorg after their credit: take each back from its user (unengaged orders first,
        the rest as debt), idempotent per deposit key."""


class InMemoryLedgers:
    """One CollateralLedger per user address (lower case), in this process."""

    def __init__(self, unit: Decimal = USDC_UNIT) -> None:
        self.unit = unit
        self.ledgers: dict[str, CollateralLedger] = {}
        self.routed_routes: dict[str, dict[str, Decimal]] = {}

    def ledger(self, user: str) -> CollateralLedger:
        key = user.lower()
        if key not in self.ledgers:
            self.ledgers[key] = CollateralLedger(self.unit)
        return self.ledgers[key]

    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        for d in deposits:
            self.ledger(d.user).credit(d.key, d.amount, holds.get(d.key, 0))

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        for c in charges:
            self.ledger(c.user).charge_fee(c.fee_id, c.amount, hold_id=c.deposit_key)

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        self.routed_routes[route_id] = dict(net_by_deposit)
        for key, user in users.items():
            self.ledger(user).release_hold(key)

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        for r in reversals:
            self.ledger(r.user).reverse_deposit(r.deposit_key)

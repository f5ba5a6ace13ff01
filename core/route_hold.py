"""What a deposit's route will cost, estimated when the deposit is credited, so that the user's ledger can hold it.

Why: a route's real cost (the bridge's cut, each hop's gas) is known only hops later, while the deposit is credited
at once. Without a hold a user who orders the whole deposit at once leaves nothing to pay the route with, and the
house pays. The hold is an upper estimate: the bridge's fee rate on the amount, rounded UP to the unit (the real
output is rounded down, so the real cut is never more), plus the gas of a route that carries this deposit alone
(a shared route splits its gas, so each member pays less). The estimate is capped at the deposit by the ledger;
what the real cost leaves of it is released when the route is credited at the exchange.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from core.money import ZERO, quantize_up


@dataclass(frozen=True, slots=True)
class RouteHoldPolicy:
    destination_chain_id: int
    bridge_fee_rate: Decimal
    unit: Decimal
    #: origin chain id -> the most gas (in collateral) a route from that chain costs when it carries one deposit.
    gas: Mapping[int, Decimal] = field(default_factory=dict)

    def hold_for(self, amount: Decimal, origin_chain_id: int) -> Decimal:
        """The hold for a deposit of `amount` made on `origin_chain_id` (a deposit on the destination chain takes
        only the last hop: no bridge cut)."""
        bridged = origin_chain_id != self.destination_chain_id
        cut = quantize_up(amount * self.bridge_fee_rate, self.unit) if bridged else ZERO
        return cut + self.gas.get(origin_chain_id, ZERO)

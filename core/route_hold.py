"""What a deposit's route will cost, estimated when the deposit is credited, so that the user's ledger can hold it.

The real cost is known only hops later: without a hold, a user ordering the whole deposit leaves the house to pay.
The hold is an upper estimate (the bridge's rate rounded UP, plus the gas of a route carrying this deposit alone),
capped at the deposit; the rest is released once the route is credited."""
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

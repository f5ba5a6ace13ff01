"""Fees: what each hop of a collateral route costs, and how a shared cost is split between users.

Routing costs are real amounts (bridge input - output, gas in USDC); a configured rate is used only where no real
cost exists. A rate-based hop rounds the forwarded amount DOWN to the unit (the fee is what the hop keeps), and a
shared cost is split by telescoping so the shares add up exactly."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from core.money import ZERO, cumulative_shares, is_multiple, quantize_down


@dataclass(frozen=True, slots=True)
class HopCost:
    hop: str  # e.g. "across:42161->8453", "transfer:base->exchange"
    amount_in: Decimal
    amount_out: Decimal
    gas: Decimal = ZERO  # gas paid by the house for this hop, in collateral

    @property
    def fee(self) -> Decimal:
        return self.amount_in - self.amount_out + self.gas


def hop_by_rate(hop: str, amount_in: Decimal, rate: Decimal, unit: Decimal) -> HopCost:
    """A simulated hop that keeps `rate` of the amount; the output is rounded down to the unit."""
    if not (ZERO <= rate < 1):
        raise ValueError(f"hop rate {rate} outside [0, 1)")
    return HopCost(hop, amount_in, quantize_down(amount_in * (1 - rate), unit))


def route_fee(hops: Sequence[HopCost]) -> Decimal:
    """Total cost of a route: each hop must take what the previous one gave."""
    for prev, nxt in zip(hops, hops[1:]):
        if nxt.amount_in != prev.amount_out:
            raise ValueError(f"hop {nxt.hop} takes {nxt.amount_in}, but {prev.hop} gave {prev.amount_out}")
    return sum((h.fee for h in hops), ZERO)


def split_cost(cost: Decimal, amounts: Sequence[Decimal], unit: Decimal) -> list[Decimal]:
    """Split a cost shared by several deposits (one bridge transfer for many users) in proportion to their amounts.
    Shares are whole units and add up to `cost` exactly (the cost must itself be whole units)."""
    if not is_multiple(cost, unit):
        raise ValueError(f"cost {cost} is not a whole number of {unit}")
    if not amounts:
        raise ValueError("nothing to split the cost over")
    return cumulative_shares(cost, list(amounts), unit)


def max_units_for(collateral: Decimal, index_price: Decimal, fee_factor: Decimal, unit: Decimal) -> Decimal:
    """Index units that `collateral` buys at `index_price` with the fee headroom, rounded down to `unit`."""
    if index_price <= 0:
        raise ValueError("index price must be positive")
    return quantize_down(collateral / fee_factor / index_price, unit)

"""Implementation shortfall of an index order against its arrival value, in basis points, split into its causes.

For a buy of one index unit, with A the basket's mid at arrival, Ta its touch (best asks) at arrival, Tb the touch
at the batches that bought it (weighted by the units each bought), P the average price paid for the assets and F
the exchange fee, per unit:

    total  = (P + F - A) / A      spread = (Ta - A) / A      delay = (Tb - Ta) / A
    impact = (P - Tb) / A         fee    = F / A

and spread + delay + impact + fee == total exactly. Each is quoted in bps, quantized to 0.01: the total is
computed once and rounded UP (ROUND_CEILING: never understate what the user lost to execution); spread, delay and
fee are rounded to the nearest (half-even); impact takes the remainder, so the parts add up to the quoted total to
the last digit. Without a batch touch (an order planned by older code), delay is unknown (None) and impact holds
delay and impact together. Without an arrival value there is no shortfall at all (None), never a made-up one.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

BPS = Decimal(10_000)
#: Shortfalls are quoted to a hundredth of a basis point.
BPS_QUANTUM = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Shortfall:
    total_bps: Decimal
    spread_bps: Decimal
    delay_bps: Decimal | None  # None: no batch touch known; impact_bps then includes the delay
    impact_bps: Decimal
    fee_bps: Decimal


def _bps_up(x: Decimal, base: Decimal) -> Decimal:
    return (x * BPS / base).quantize(BPS_QUANTUM, rounding=ROUND_CEILING)


def _bps_near(x: Decimal, base: Decimal) -> Decimal:
    return (x * BPS / base).quantize(BPS_QUANTUM, rounding=ROUND_HALF_EVEN)


def total_bps(arrival_mid: Decimal | None, cost_per_unit: Decimal) -> Decimal | None:
    """(cost - arrival) / arrival in bps, rounded UP to 0.01; None without an arrival value (or a zero one)."""
    if arrival_mid is None or arrival_mid <= 0:
        return None
    return _bps_up(cost_per_unit - arrival_mid, arrival_mid)


def running_bps(arrival_mid: Decimal | None, cost_exact: Decimal, filled_units: Decimal) -> Decimal | None:
    """A partly filled order's shortfall so far: assets and fees paid per unit bought against the arrival mid."""
    if filled_units <= 0:
        return None
    return total_bps(arrival_mid, cost_exact / filled_units)


def decompose(arrival_mid: Decimal, arrival_touch: Decimal, batch_touch: Decimal | None, paid_per_unit: Decimal,
              fee_per_unit: Decimal) -> Shortfall:
    """The shortfall and its parts (module docstring); the parts add up to `total_bps` exactly."""
    if arrival_mid <= 0:
        raise ValueError(f"arrival value must be positive, got {arrival_mid}")
    total = _bps_up(paid_per_unit + fee_per_unit - arrival_mid, arrival_mid)
    spread = _bps_near(arrival_touch - arrival_mid, arrival_mid)
    fee = _bps_near(fee_per_unit, arrival_mid)
    delay = None if batch_touch is None else _bps_near(batch_touch - arrival_touch, arrival_mid)
    impact = total - spread - fee - (delay or 0)
    return Shortfall(total, spread, delay, impact, fee)

"""Gas paid in the chain's native token, expressed in collateral (USDC) so that a route hop's cost is one number.

The rate (collateral per native token, e.g. 3000 USDC per ETH) is configuration, not a live price: routing fees
must be reproducible from the route's record. The result is rounded UP to the collateral unit: it is a cost the
house paid, and recovering less than it paid would make every hop a small loss that nobody booked.
"""
from __future__ import annotations

from decimal import Decimal

from core.money import quantize_up

WEI_PER_NATIVE = Decimal(10) ** 18


def gas_cost_in_collateral(gas_used: int, effective_gas_price_wei: int, collateral_per_native: Decimal,
                           unit: Decimal) -> Decimal:
    if gas_used < 0 or effective_gas_price_wei < 0:
        raise ValueError("gas used and gas price cannot be negative")
    if collateral_per_native < 0:
        raise ValueError("collateral per native token cannot be negative")
    native = Decimal(gas_used * effective_gas_price_wei) / WEI_PER_NATIVE  # exact: a power-of-ten division
    # UP: the house paid at least this much; see the module docstring.
    return quantize_up(native * collateral_per_native, unit)

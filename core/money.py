"""Exact money and quantity arithmetic.

Every amount in the system is a `Decimal` (or an integer count of base units). Floats are refused at the door:
a float has already lost the exchange's digits. Rounding is never implicit: each helper names its direction, and
callers say why they picked it.
"""
from __future__ import annotations

import decimal
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Iterable, Sequence

#: Precision of the arithmetic context. 60 significant digits keep products of exchange numbers (8 dp, up to 1e9)
#: and basket quantities (up to 17 significant digits) exact; only divisions round, and those go through helpers.
PRECISION = 60

ZERO = Decimal(0)
ONE = Decimal(1)


def install_decimal_context() -> None:
    """Make the project's context the default for this thread and every thread started later."""
    for ctx in (decimal.DefaultContext, decimal.getcontext()):
        ctx.prec = PRECISION
        ctx.rounding = decimal.ROUND_HALF_EVEN
        ctx.traps[decimal.InvalidOperation] = True
        ctx.traps[decimal.DivisionByZero] = True
        ctx.traps[decimal.Overflow] = True


def D(value: str | int | Decimal) -> Decimal:
    """A Decimal from exact input. Floats are refused: use `from_float_text` where ccxt hands one over."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"refusing {type(value).__name__} {value!r}: money must come from a string or an int")
    if isinstance(value, (int, str)):
        try:
            result = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
        if not result.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return result
    raise TypeError(f"cannot make money of {type(value).__name__}")


def from_float_text(value: float) -> Decimal:
    """Exact for floats that were parsed from <= 15 significant digits (ccxt's book levels): repr round-trips them."""
    return Decimal(repr(value))


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` that is <= value (step may be any positive number, not only 10^-n)."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def quantize_up(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of `step` that is >= value."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


def to_units(value: Decimal, unit: Decimal) -> int:
    """Exact conversion to an integer count of `unit`; raises if `value` is not a whole number of units."""
    n = value / unit
    if n != n.to_integral_value():
        raise ValueError(f"{value} is not a whole number of {unit}")
    return int(n)


def units_down(value: Decimal, unit: Decimal) -> int:
    """Whole units contained in `value`, rounding down."""
    return int((value / unit).to_integral_value(rounding=ROUND_FLOOR))


def units_up(value: Decimal, unit: Decimal) -> int:
    return int((value / unit).to_integral_value(rounding=ROUND_CEILING))


def plain(value: Decimal) -> str:
    """Exact plain notation without trailing zeros, for people ("0.00001", not "1E-5"; "0", not "0E-8")."""
    return format(value.normalize(), "f")


def from_units(n: int, unit: Decimal) -> Decimal:
    return Decimal(n) * unit


def decimals_of(unit: Decimal) -> int:
    """10^-k -> k (number of decimal places a quantum carries)."""
    return max(0, -unit.normalize().as_tuple().exponent)  # type: ignore[operator]


def cumulative_shares(total: Decimal, weights: Sequence[Decimal], quantum: Decimal) -> list[Decimal]:
    """Split `total` over `weights` so that the parts sum to `total` exactly.

    Telescoping rounding: part_i = R(total * W_i / W) - R(total * W_{i-1} / W), with W_i the running sum of weights
    and R rounding down to `quantum`. Every part is within one quantum of its exact share and the last running value
    equals R(total), which is `total` itself whenever `total` is a multiple of `quantum`.
    """
    whole = sum(weights, ZERO)
    if whole <= 0:
        raise ValueError("weights must sum to a positive number")
    parts: list[Decimal] = []
    running = ZERO
    previous = ZERO
    for w in weights:
        running += w
        here = total if running == whole else quantize_down(total * running / whole, quantum)
        parts.append(here - previous)
        previous = here
    return parts


def sum_decimals(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)

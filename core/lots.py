"""Lots: what one exchange fill put into our hands, in whole base units, with its exact cost.

A buy's commission is taken in the received asset (Binance's default), so the lot holds the NET quantity; the
commission, converted to the quote asset at the fill price, is the lot's fee. value + fee == gross qty * price,
exactly. Slices of a lot carry their share of the fee by a cumulative rule, so the shares of all slices of a lot
add up to its fee exactly, with no epsilon.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from core.money import ZERO, D, to_units

#: Fee shares of slices are computed in this quantum (far below any currency unit) and telescope exactly.
FEE_QUANTUM_EXP = 24


@dataclass(slots=True)
class Lot:
    lot_id: str  # the exchange trade id, qualified by symbol: the fill's idempotency key
    symbol: str
    quantity: int  # net units of the base asset held (unit = 10^-base precision)
    unit: Decimal
    price: Decimal  # quote per base unit of the fill
    fee: Decimal  # exchange fee in quote, exact
    timestamp_ms: int = 0
    consumed: int = 0  # units already assigned

    @property
    def remaining(self) -> int:
        return self.quantity - self.consumed

    @property
    def value(self) -> Decimal:
        return self.price * self.unit * self.quantity

    def fee_upto(self, units: int) -> Decimal:
        """Fee share of the first `units` units of the lot, rounded down to 1e-24; fee_upto(quantity) == fee."""
        if units >= self.quantity:
            return self.fee
        if units <= 0:
            return ZERO
        scaled = int(self.fee.scaleb(FEE_QUANTUM_EXP))  # fee has at most 16 decimals: exact
        return Decimal(scaled * units // self.quantity).scaleb(-FEE_QUANTUM_EXP)

    def take(self, units: int) -> "Slice":
        """Consume `units` from the front of what is left; the slice's value and fee are exact."""
        if units <= 0 or units > self.remaining:
            raise ValueError(f"lot {self.lot_id}: cannot take {units} of {self.remaining} remaining units")
        start = self.consumed
        self.consumed += units
        fee = self.fee_upto(self.consumed) - self.fee_upto(start)
        return Slice(self.lot_id, self.symbol, units, self.price * self.unit * units, fee)

    def split(self, units: int) -> tuple["Lot", "Lot | None"]:
        """The first `units` of what is left as one lot and the rest as another, fees split exactly (inventory taken
        into a batch). The ids stay traceable: `<id>/<start>`."""
        if units <= 0 or units > self.remaining:
            raise ValueError(f"lot {self.lot_id}: cannot split {units} of {self.remaining} remaining units")
        start = self.consumed
        cut = start + units
        head = Lot(f"{self.lot_id}/{start}", self.symbol, units, self.unit, self.price,
                   self.fee_upto(cut) - self.fee_upto(start), self.timestamp_ms)
        if cut == self.quantity:
            return head, None
        tail = Lot(f"{self.lot_id}/{cut}", self.symbol, self.quantity - cut, self.unit, self.price,
                   self.fee - self.fee_upto(cut), self.timestamp_ms)
        return head, tail

    def to_dict(self) -> dict[str, Any]:
        return {"lot_id": self.lot_id, "symbol": self.symbol, "quantity": self.quantity, "unit": str(self.unit),
                "price": str(self.price), "fee": str(self.fee), "timestamp_ms": self.timestamp_ms,
                "consumed": self.consumed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Lot":
        return cls(d["lot_id"], d["symbol"], int(d["quantity"]), D(d["unit"]), D(d["price"]), D(d["fee"]),
                   int(d["timestamp_ms"]), int(d["consumed"]))

    def leftover(self, lot_id_suffix: str = "") -> "Lot":
        """The unassigned rest as a new lot (inventory carried to the next batch), with exactly the fee not yet shared."""
        rest = self.remaining
        return Lot(
            self.lot_id + lot_id_suffix, self.symbol, rest, self.unit, self.price,
            self.fee - self.fee_upto(self.consumed), self.timestamp_ms,
        )


@dataclass(frozen=True, slots=True)
class Slice:
    lot_id: str
    symbol: str
    units: int
    value: Decimal
    fee: Decimal


def lot_from_fill(
    *,
    trade_id: str | int,
    symbol: str,
    base_asset: str,
    quote_asset: str,
    price: Decimal,
    quantity: Decimal,
    commission: Decimal,
    commission_asset: str | None,
    unit: Decimal,
    timestamp_ms: int = 0,
    conversion: Mapping[str, Decimal] | None = None,
) -> Lot:
    """A buy fill as a lot. Commission in the base asset reduces the quantity held; in the quote asset it is the fee
    as is; in a third asset (BNB) it is converted with `conversion[asset]` (quote per unit), which must be given."""
    if quantity <= 0 or price <= 0:
        raise ValueError(f"fill {trade_id}: quantity and price must be positive")
    if commission < 0:
        raise ValueError(f"fill {trade_id}: negative commission")
    if commission == 0 or commission_asset in (None, ""):
        net, fee = quantity, ZERO
    elif commission_asset == base_asset:
        net, fee = quantity - commission, commission * price
    elif commission_asset == quote_asset:
        net, fee = quantity, commission
    else:
        rate = (conversion or {}).get(commission_asset)
        if rate is None:
            raise ValueError(f"fill {trade_id}: no {commission_asset}/{quote_asset} rate to convert the commission")
        net, fee = quantity, commission * rate
    if net <= 0:
        raise ValueError(f"fill {trade_id}: commission leaves nothing")
    return Lot(f"{symbol}:{trade_id}", symbol, to_units(net, unit), unit, price, fee, timestamp_ms)

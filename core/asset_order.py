"""One exchange order as the sender tracks it, from the intent recorded before sending to its last fill.

Every update merges the same way: fills keyed by trade id (counted once), the status only moves forward, and the
order settles when final AND its fills add up to the executed quantity. An unknown outcome stays SENT until a
query by client order id resolves it: Binance refuses a duplicate id only while the order is open."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Iterable

from core.money import ZERO
from core.side import Side

#: Binance's rule for newClientOrderId.
CLIENT_ORDER_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")


def client_order_id(batch_id: str, symbol: str, attempt: int = 0) -> str:
    """Deterministic id from batch, symbol and attempt: a restarted sender derives the same id for the same intent."""
    cid = f"{batch_id}.{symbol}.{attempt}"
    if not CLIENT_ORDER_ID_RE.match(cid):
        raise ValueError(f"client order id {cid!r} breaks Binance's rule (36 chars of [.A-Za-z0-9:/_-])")
    return cid


class AssetOrderStatus(str, Enum):
    INTENDED = "INTENDED"  # recorded, not sent yet
    SENT = "SENT"  # sent, outcome unknown until the exchange answers or is asked
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"  # refused by the exchange (or never reached it: resolved as not found)

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {AssetOrderStatus.FILLED, AssetOrderStatus.CANCELED, AssetOrderStatus.EXPIRED, AssetOrderStatus.REJECTED}
_RANK = {s: i for i, s in enumerate(AssetOrderStatus)}
_EXCHANGE_STATUS = {
    "NEW": AssetOrderStatus.NEW, "PARTIALLY_FILLED": AssetOrderStatus.PARTIALLY_FILLED,
    "FILLED": AssetOrderStatus.FILLED, "CANCELED": AssetOrderStatus.CANCELED,
    "PENDING_CANCEL": AssetOrderStatus.PARTIALLY_FILLED, "EXPIRED": AssetOrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": AssetOrderStatus.EXPIRED, "REJECTED": AssetOrderStatus.REJECTED,
}


def status_from_exchange(text: str) -> AssetOrderStatus:
    try:
        return _EXCHANGE_STATUS[text]
    except KeyError:
        raise ValueError(f"unknown exchange order status {text!r}") from None


@dataclass(frozen=True, slots=True)
class ExchangeFill:
    """One trade of an AssetOrder, as the order keeps it (the exchange's ExchangeTrade without the order's identity)."""

    trade_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str | None
    time_ms: int = 0
    is_maker: bool = False


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """What the exchange said about one order, normalised by the gateway (from raw strings, never floats)."""

    client_order_id: str
    status: AssetOrderStatus
    executed_qty: Decimal
    exchange_order_id: int | None = None
    fills: tuple[ExchangeFill, ...] = ()
    reason: str = ""


@dataclass(slots=True)
class AssetOrder:
    client_order_id: str
    batch_id: str
    symbol: str
    side: Side
    order_type: str
    quantity: Decimal
    price: Decimal | None
    time_in_force: str | None = "IOC"
    status: AssetOrderStatus = AssetOrderStatus.INTENDED
    exchange_order_id: int | None = None
    executed_qty: Decimal = ZERO  # as the exchange reports it
    fills: dict[int, ExchangeFill] = field(default_factory=dict)
    reason: str = ""

    @property
    def filled_qty(self) -> Decimal:
        """What the fills we hold add up to."""
        return sum((f.quantity for f in self.fills.values()), ZERO)

    @property
    def settled(self) -> bool:
        """Final, and every fill the exchange counted is in hand."""
        return self.status.is_final and self.filled_qty == self.executed_qty

    @property
    def missing_fills(self) -> bool:
        return self.filled_qty < self.executed_qty

    def mark_sent(self) -> None:
        if self.status is not AssetOrderStatus.INTENDED:
            raise ValueError(f"{self.client_order_id}: cannot send an order that is {self.status.value}")
        self.status = AssetOrderStatus.SENT

    def apply(self, update: OrderUpdate) -> list[ExchangeFill]:
        """Merge an update; returns the fills not seen before (to report exactly once)."""
        if update.client_order_id != self.client_order_id:
            raise ValueError(f"update for {update.client_order_id} applied to {self.client_order_id}")
        new = []
        for f in update.fills:
            if f.trade_id not in self.fills:
                self.fills[f.trade_id] = f
                new.append(f)
        if update.exchange_order_id is not None:
            self.exchange_order_id = update.exchange_order_id
        if update.executed_qty > self.executed_qty:
            self.executed_qty = update.executed_qty
        if not self.status.is_final and _RANK[update.status] >= _RANK[self.status]:
            self.status = update.status
            if update.reason:
                self.reason = update.reason
        if self.filled_qty > self.quantity:
            raise AssertionError(f"{self.client_order_id}: fills {self.filled_qty} exceed the order {self.quantity}")
        return new

    def resolve_not_found(self) -> None:
        """The exchange has no order with this client id (checked after an unknown send): it never arrived, so it
        may be sent again under a new attempt id."""
        if self.status not in (AssetOrderStatus.INTENDED, AssetOrderStatus.SENT):
            raise ValueError(f"{self.client_order_id}: the exchange knew it as {self.status.value}")
        self.status = AssetOrderStatus.REJECTED
        self.reason = "NOT_FOUND_AFTER_UNKNOWN_SEND"

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id, "batch_id": self.batch_id, "symbol": self.symbol,
            "side": self.side.value, "order_type": self.order_type, "quantity": str(self.quantity),
            "price": None if self.price is None else str(self.price), "time_in_force": self.time_in_force,
            "status": self.status.value, "exchange_order_id": self.exchange_order_id,
            "executed_qty": str(self.executed_qty), "reason": self.reason,
            "fills": [_fill_to_dict(f) for f in self.fills.values()],
        }


def _fill_to_dict(f: ExchangeFill) -> dict[str, Any]:
    return {"trade_id": f.trade_id, "price": str(f.price), "quantity": str(f.quantity),
            "commission": str(f.commission), "commission_asset": f.commission_asset, "time_ms": f.time_ms,
            "is_maker": f.is_maker}


def fills_total(fills: Iterable[ExchangeFill]) -> tuple[Decimal, Decimal]:
    """(quantity, quote) of a set of fills."""
    qty = quote = ZERO
    for f in fills:
        qty += f.quantity
        quote += f.quantity * f.price
    return qty, quote

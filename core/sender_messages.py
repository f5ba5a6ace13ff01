"""What the order sender hands back: the verdict on each submitted order, and the executions it reports.

Plain frozen dataclasses (they cross Ray actor boundaries pickled). Every execution carries a sequence number from
the sender's durable log, so a subscriber that sees one twice (a redelivery after a restart) drops it by seq.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Union

from core.asset_order import AssetOrder, ExchangeFill
from core.money import D
from core.side import Side


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """One planned order after the sender looked at it: accepted (recorded and queued under `client_order_id`,
    with the rounded quantity and price that will be sent) or rejected at once (`filter` names the Binance filter
    no rounding could satisfy; `reason` says why in words)."""

    symbol: str
    side: Side
    accepted: bool
    client_order_id: str | None
    quantity: Decimal | None
    price: Decimal | None
    status: str
    reason: str = ""
    filter: str | None = None


@dataclass(frozen=True, slots=True)
class SenderFill:
    """One exchange fill of one of our orders, reported exactly once per (symbol, trade_id)."""

    seq: int
    batch_id: str
    client_order_id: str
    symbol: str
    side: Side
    trade_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str | None
    time_ms: int
    is_maker: bool

    @property
    def key(self) -> tuple[str, int]:
        return (self.symbol, self.trade_id)


@dataclass(frozen=True, slots=True)
class OrderDone:
    """An order reached a final status and every fill the exchange counted has been reported before this entry:
    the subscriber can close its books on that order. `status` is Binance's final word (FILLED, EXPIRED,
    CANCELED, REJECTED); `executed_qty` equals the sum of its SenderFill quantities."""

    seq: int
    batch_id: str
    client_order_id: str
    symbol: str
    side: Side
    status: str
    executed_qty: Decimal
    reason: str = ""


Execution = Union[SenderFill, OrderDone]


def sender_fill(seq: int, order: AssetOrder, fill: ExchangeFill) -> SenderFill:
    return SenderFill(seq, order.batch_id, order.client_order_id, order.symbol, order.side, fill.trade_id,
                      fill.price, fill.quantity, fill.commission, fill.commission_asset, fill.time_ms, fill.is_maker)


def order_done(seq: int, order: AssetOrder) -> OrderDone:
    return OrderDone(seq, order.batch_id, order.client_order_id, order.symbol, order.side, order.status.value,
                     order.executed_qty, order.reason)


def execution_to_dict(e: Execution) -> dict[str, Any]:
    if isinstance(e, SenderFill):
        return {"kind": "fill", "seq": e.seq, "batch_id": e.batch_id, "client_order_id": e.client_order_id,
                "symbol": e.symbol, "side": e.side.value, "trade_id": e.trade_id, "price": str(e.price),
                "quantity": str(e.quantity), "commission": str(e.commission),
                "commission_asset": e.commission_asset, "time_ms": e.time_ms, "is_maker": e.is_maker}
    return {"kind": "done", "seq": e.seq, "batch_id": e.batch_id, "client_order_id": e.client_order_id,
            "symbol": e.symbol, "side": e.side.value, "status": e.status, "executed_qty": str(e.executed_qty),
            "reason": e.reason}


def execution_from_dict(d: Mapping[str, Any]) -> Execution:
    if d["kind"] == "fill":
        return SenderFill(int(d["seq"]), d["batch_id"], d["client_order_id"], d["symbol"], Side(d["side"]),
                          int(d["trade_id"]), D(d["price"]), D(d["quantity"]), D(d["commission"]),
                          d["commission_asset"], int(d["time_ms"]), bool(d["is_maker"]))
    if d["kind"] == "done":
        return OrderDone(int(d["seq"]), d["batch_id"], d["client_order_id"], d["symbol"], Side(d["side"]),
                         d["status"], D(d["executed_qty"]), d["reason"])
    raise ValueError(f"unknown execution kind {d['kind']!r}")

"""What the order sender hands back: the verdict on each submitted order, and the executions it reports.

Plain frozen dataclasses (they cross Ray actor boundaries pickled). Every execution carries a sequence number from
the sender's durable log, so a subscriber that sees one twice (a redelivery after a restart) drops it by seq.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Union

from core.asset_order import AssetOrder, ExchangeFill
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
    """One fill of one of our orders as the sender's log reports it: the order's identity and its log seq around the
    order's ExchangeFill; reported exactly once per (symbol, trade_id)."""

    seq: int
    batch_id: str
    client_order_id: str
    symbol: str
    side: Side
    fill: ExchangeFill

    @property
    def key(self) -> tuple[str, int]:
        return (self.symbol, self.fill.trade_id)


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
    return SenderFill(seq, order.batch_id, order.client_order_id, order.symbol, order.side, fill)


def order_done(seq: int, order: AssetOrder) -> OrderDone:
    return OrderDone(seq, order.batch_id, order.client_order_id, order.symbol, order.side, order.status.value,
                     order.executed_qty, order.reason)

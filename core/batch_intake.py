"""A planned batch turned into exchange orders: rounded and validated with the exchange's own filters, each given its
deterministic client order id, or rejected at once with the name of the filter no rounding could satisfy.

Rejecting before sending keeps filter failures off the exchange: a -1013 still costs request weight and an ORDERS
slot. The price band and MAX_NUM_ORDERS are checked when the caller knows the average price and open orders."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping, Protocol

from core.asset_order import AssetOrder, client_order_id
from core.sender_messages import SubmitResult
from core.side import Side
from core.symbol_filters import LIMIT, MARKET, FilterError, SymbolFilters, round_order

UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
DUPLICATE_SYMBOL = "DUPLICATE_SYMBOL"
BAD_ORDER = "BAD_ORDER"


class PlannedOrder(Protocol):
    """What the planner hands over (core.batch_planner.BasketLeg fits): a limit price, or None for MARKET."""

    symbol: str
    side: Side
    price: Decimal | None
    quantity: Decimal


def intake_batch(
    batch_id: str,
    planned: Iterable[PlannedOrder],
    filters: Mapping[str, SymbolFilters],
    time_in_force: str = "IOC",
    *,
    avg_prices: Mapping[str, Decimal] | None = None,
    open_orders: Mapping[str, int] | None = None,
) -> tuple[list[AssetOrder], list[SubmitResult]]:
    """(orders to send, one result per planned order in input order). At most one order per symbol (the client order id
    is batch + symbol + attempt): a second is DUPLICATE_SYMBOL. `avg_prices`: the exchange's average price per symbol;
    `open_orders`: the account's orders per symbol that are or may become open before this batch's (MAX_NUM_ORDERS
    refuses this one when the count is at the maximum)."""
    avg_prices = avg_prices or {}
    open_orders = open_orders or {}
    orders: list[AssetOrder] = []
    results: list[SubmitResult] = []
    seen: set[str] = set()
    for p in planned:
        side = Side(p.side)

        def reject(reason: str, name: str | None) -> None:
            results.append(SubmitResult(p.symbol, side, False, None, None, None, "REJECTED", reason, name))

        if p.symbol in seen:
            reject(f"{p.symbol} appears twice in batch {batch_id}", DUPLICATE_SYMBOL)
            continue
        seen.add(p.symbol)
        f = filters.get(p.symbol)
        if f is None:
            reject(f"{p.symbol} is not traded on this exchange", UNKNOWN_SYMBOL)
            continue
        try:
            # Passive rounding: a BUY's price down and a SELL's up to the tick, the quantity down to the step, so the
            # exchange order never buys more or pays more than planned. Nothing is padded: the planner already
            # padded to the minimum, and a quantity still below it is an error to report, not to hide.
            qty, price = round_order(f, side, p.quantity, p.price, avg_price=avg_prices.get(p.symbol),
                                     open_orders=open_orders.get(p.symbol, 0))
        except FilterError as e:
            reject(e.reason, e.filter)
            continue
        except ValueError as e:  # malformed (negative quantity, ...): Binance would refuse the parameters
            reject(str(e), BAD_ORDER)
            continue
        cid = client_order_id(batch_id, p.symbol, 0)
        order_type = MARKET if price is None else LIMIT
        orders.append(AssetOrder(cid, batch_id, p.symbol, side, order_type, qty, price,
                                 None if price is None else time_in_force))
        results.append(SubmitResult(p.symbol, side, True, cid, qty, price, "INTENDED"))
    return orders, results


def attempt_of(cid: str) -> int:
    """The attempt number at the end of a client order id made by client_order_id()."""
    return int(cid.rsplit(".", 1)[1])


def next_attempt(order: AssetOrder) -> AssetOrder:
    """A fresh INTENDED copy of `order` under the next attempt's client order id (after its send was resolved as
    never having reached the exchange)."""
    cid = client_order_id(order.batch_id, order.symbol, attempt_of(order.client_order_id) + 1)
    return AssetOrder(cid, order.batch_id, order.symbol, order.side, order.order_type, order.quantity, order.price,
                      order.time_in_force)

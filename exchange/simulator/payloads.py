"""Binance's JSON shapes, built from the engine's records. Key order follows the real payloads in data/binance/
(clients do not care, but a key-by-key comparison with real captures reads better that way)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from exchange.simulator.orders import Deposit, Fill, Order

_EIGHT = -8


def fmt(x: Decimal) -> str:
    """Binance's 8-decimal text ("0.00100000"). An amount with more decimals (a product of an 8-dp price and an
    8-dp quantity) keeps all its digits instead of being rounded: the simulator never misreports a balance."""
    if x.as_tuple().exponent >= _EIGHT:  # type: ignore[operator]
        return f"{x:.8f}"
    n = x.normalize()
    if n.as_tuple().exponent >= _EIGHT:  # type: ignore[operator]
        return f"{n:.8f}"
    return format(n, "f")


def levels(pairs: Iterable[tuple[Decimal, Decimal]]) -> list[list[str]]:
    return [[f"{p:.8f}", f"{q:.8f}"] for p, q in pairs]


def fill_entry(f: Fill) -> dict[str, Any]:
    return {"price": fmt(f.price), "qty": fmt(f.qty), "commission": fmt(f.commission),
            "commissionAsset": f.commission_asset, "tradeId": f.trade_id}


def order_response(order: Order, resp_type: str, fills: list[Fill], transact_time: int) -> dict[str, Any]:
    """POST /api/v3/order answer for newOrderRespType ACK, RESULT or FULL."""
    out: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": transact_time,
    }
    if resp_type == "ACK":
        return out
    out.update({
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.orig_quote_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side.value,
        "workingTime": order.working_time,
    })
    if resp_type == "FULL":
        out["fills"] = [fill_entry(f) for f in fills]
    out["selfTradePreventionMode"] = order.self_trade_prevention
    return out


def order_query(order: Order) -> dict[str, Any]:
    """GET /api/v3/order and /openOrders element."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side.value,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": order.working_time >= 0,
        "workingTime": order.working_time,
        "origQuoteOrderQty": fmt(order.orig_quote_qty),
        "selfTradePreventionMode": order.self_trade_prevention,
    }


def cancel_response(order: Order, cancel_client_id: str, transact_time: int) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id,
        "transactTime": transact_time,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.orig_quote_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side.value,
        "selfTradePreventionMode": order.self_trade_prevention,
    }


_ZERO8 = "0.00000000"


def execution_report(
    order: Order,
    exec_type: str,
    event_time: int,
    execution_id: int,
    fill: Fill | None = None,
    *,
    cancel_client_id: str = "",
    reject_reason: str = "NONE",
    on_book: bool = False,
) -> dict[str, Any]:
    """One executionReport (spec §f), field order as in the real BNBUSDT capture."""
    ev: dict[str, Any] = {
        "e": "executionReport",
        "E": event_time,
        "s": order.symbol,
        # A cancel's report carries the cancel request's own id in c and the order's id in C (spec §f).
        "c": cancel_client_id or order.client_order_id,
        "S": order.side.value,
        "o": order.type,
        "f": order.time_in_force,
        "q": fmt(order.orig_qty),
        "p": fmt(order.price),
        "P": _ZERO8,
        "F": _ZERO8,
        "g": -1,
        "C": order.client_order_id if cancel_client_id else "",
        "x": exec_type,
        "X": order.status,
        "r": reject_reason,
        "i": order.order_id,
        "l": fmt(fill.qty) if fill else _ZERO8,
        "z": fmt(order.executed_qty),
        "L": fmt(fill.price) if fill else _ZERO8,
        "n": fmt(fill.commission) if fill else "0",
        "N": fill.commission_asset if fill else None,
        "T": fill.time if fill else event_time,
        "t": fill.trade_id if fill else -1,
        "I": execution_id,
        "w": on_book,
        "m": fill.is_maker if fill else False,
        "M": fill is not None,
        "O": order.time,
        "Z": fmt(order.cum_quote),
        "Y": fmt(fill.quote_qty) if fill else _ZERO8,
        "Q": fmt(order.orig_quote_qty),
    }
    if order.working_time >= 0:
        ev["W"] = order.working_time
    ev["V"] = order.self_trade_prevention
    if exec_type == "EXPIRED" and order.expiry_reason:
        ev["eR"] = order.expiry_reason
    return ev


def account_position(balances: list[tuple[str, Decimal, Decimal]], event_time: int, update_time: int) -> dict:
    return {"e": "outboundAccountPosition", "E": event_time, "u": update_time,
            "B": [{"a": a, "f": fmt(f), "l": fmt(lk)} for a, f, lk in balances]}


def balance_update(asset: str, delta: Decimal, event_time: int) -> dict[str, Any]:
    return {"e": "balanceUpdate", "E": event_time, "a": asset, "d": fmt(delta), "T": event_time}


def trade_event(symbol: str, trade_id: int, price: Decimal, qty: Decimal, time: int, buyer_is_maker: bool) -> dict:
    return {"e": "trade", "E": time, "s": symbol, "t": trade_id, "p": f"{price:.8f}", "q": f"{qty:.8f}",
            "T": time, "m": buyer_is_maker, "M": True}


def my_trade(f: Fill) -> dict[str, Any]:
    return {
        "symbol": f.symbol,
        "id": f.trade_id,
        "orderId": f.order_id,
        "orderListId": -1,
        "price": fmt(f.price),
        "qty": fmt(f.qty),
        "quoteQty": fmt(f.quote_qty),
        "commission": fmt(f.commission),
        "commissionAsset": f.commission_asset,
        "time": f.time,
        "isBuyer": f.is_buyer,
        "isMaker": f.is_maker,
        "isBestMatch": True,
    }


def deposit_row(d: Deposit) -> dict[str, Any]:
    """GET /sapi/v1/capital/deposit/hisrec element (Binance wallet docs)."""
    return {
        "id": d.id,
        "amount": fmt(d.amount).rstrip("0").rstrip(".") if "." in fmt(d.amount) else fmt(d.amount),
        "coin": d.coin,
        "network": d.network,
        "status": d.status,
        "address": d.address,
        "addressTag": "",
        "txId": d.tx_id,
        "insertTime": d.insert_time,
        "completeTime": d.insert_time,
        "transferType": 0,
        "confirmTimes": d.confirmations,
        "unlockConfirm": 0,
        "walletType": 0,
    }

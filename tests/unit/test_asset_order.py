"""The sender's order tracking: fills counted once whatever the order and repetition of updates, status only
forward, settled only when the fills add up, unknown sends resolved by a query."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.asset_order import (
    AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, client_order_id, status_from_exchange,
)
from core.side import Side
from store.sender_records import SenderOrderRecord

S = AssetOrderStatus


def order() -> AssetOrder:
    return AssetOrder(client_order_id("b17", "BTCUSDC"), "b17", "BTCUSDC", Side.BUY, "LIMIT", Decimal("1.0"),
                      Decimal("60000"))


def fill(t: int, qty: str) -> ExchangeFill:
    return ExchangeFill(t, Decimal("60000"), Decimal(qty), Decimal("0"), "BTC")


def test_client_order_ids_are_deterministic_and_valid():
    assert client_order_id("b17", "BTCUSDC", 2) == client_order_id("b17", "BTCUSDC", 2) == "b17.BTCUSDC.2"
    with pytest.raises(ValueError):
        client_order_id("b" * 30, "BTCUSDC")
    with pytest.raises(ValueError):
        client_order_id("b 1", "BTCUSDC")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20))
def test_any_order_and_repetition_of_updates_counts_each_fill_once(picks):
    # The true history: NEW, then three fills, ending FILLED; updates arrive in any order, some repeated.
    cid = client_order_id("b17", "BTCUSDC")
    history = [
        OrderUpdate(cid, S.NEW, Decimal(0), 9),
        OrderUpdate(cid, S.PARTIALLY_FILLED, Decimal("0.3"), 9, (fill(1, "0.3"),)),
        OrderUpdate(cid, S.PARTIALLY_FILLED, Decimal("0.5"), 9, (fill(1, "0.3"), fill(2, "0.2"))),
        OrderUpdate(cid, S.FILLED, Decimal("1.0"), 9, (fill(3, "0.5"),)),
    ]
    o = order()
    o.mark_sent()
    reported = []
    for i in picks + [0, 1, 2, 3]:
        reported.extend(o.apply(history[i]))
    assert sorted(f.trade_id for f in reported) == [1, 2, 3]
    assert o.status is S.FILLED and o.settled and o.filled_qty == Decimal("1.0")


def test_final_status_is_not_undone_and_missing_fills_block_settlement():
    o = order()
    o.mark_sent()
    o.apply(OrderUpdate(o.client_order_id, S.EXPIRED, Decimal("0.4"), 9, (fill(1, "0.1"),)))
    assert o.status is S.EXPIRED and o.missing_fills and not o.settled  # a trade query is still owed
    o.apply(OrderUpdate(o.client_order_id, S.PARTIALLY_FILLED, Decimal("0.4"), 9, (fill(2, "0.3"),)))
    assert o.status is S.EXPIRED and o.settled


def test_unknown_send_resolution_and_snapshot_round_trip():
    o = order()
    o.mark_sent()
    with pytest.raises(ValueError):
        o.mark_sent()
    o.resolve_not_found()
    assert o.status is S.REJECTED and o.settled
    p = order()
    p.mark_sent()
    p.apply(OrderUpdate(p.client_order_id, S.PARTIALLY_FILLED, Decimal("0.2"), 5, (fill(4, "0.2"),)))
    q = SenderOrderRecord.load(SenderOrderRecord(order=p, replaced_by=None, sent_at=None).dump()).order
    assert q == p and q is not p
    with pytest.raises(ValueError):
        q.resolve_not_found()  # the exchange knew it: never resend
    with pytest.raises(ValueError):
        status_from_exchange("WEIRD")
    with pytest.raises(AssertionError):
        q.apply(OrderUpdate(q.client_order_id, S.FILLED, Decimal("1.5"), 5, (fill(5, "1.3"),)))

"""The sender's execution log: gap-free numbering, each fill once, an order closed once and only after its fills."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, client_order_id
from core.fill_log import FillLog
from core.sender_messages import OrderDone, SenderFill
from core.side import Side

D = Decimal


def order(symbol: str = "ETHUSDC", qty: str = "1.0") -> AssetOrder:
    return AssetOrder(client_order_id("b1", symbol), "b1", symbol, Side.BUY, "LIMIT", D(qty), D("2500"))


def fill(trade_id: int, qty: str) -> ExchangeFill:
    return ExchangeFill(trade_id, D("2500.01"), D(qty), D(qty) * D("0.001"), "ETH", 1_700_000_000_000 + trade_id)


def test_numbers_are_gap_free_and_fills_are_recorded_once() -> None:
    log = FillLog()
    o = order()
    first = log.add_fills(o, [fill(1, "0.4"), fill(2, "0.1")])
    assert [e.seq for e in first] == [1, 2]
    again = log.add_fills(o, [fill(2, "0.1"), fill(3, "0.5")])
    assert [(e.seq, e.trade_id) for e in again] == [(3, 3)]
    assert [e.seq for e in log.since(0)] == [1, 2, 3]
    assert [e.seq for e in log.since(1)] == [2, 3]
    assert log.since(3) == [] and log.since(1, limit=1) == [log.since(0)[1]]
    assert [e.seq for e in log.since(0, limit=2)] == [1, 2]
    log.forget(2)  # stored: only what is not is kept in memory, the numbering and the dedupe go on
    assert [e.seq for e in log.since(0)] == [3] and log.last_seq == 3 and log.has_fill("ETHUSDC", 1)
    assert log.add_fills(o, [fill(1, "0.4"), fill(4, "0.1")])[0].seq == 4
    assert log.has_fill("ETHUSDC", 3) and not log.has_fill("BTCUSDC", 3)  # trade ids are per symbol


def test_an_order_closes_once_and_only_when_settled() -> None:
    log = FillLog()
    o = order()
    fills = (fill(7, "0.25"),)
    o.mark_sent()
    new = o.apply(OrderUpdate(o.client_order_id, AssetOrderStatus.EXPIRED, D("0.25"), 42, fills))
    with pytest.raises(ValueError):
        log.add_done(o)  # its fill is not in the log yet: closing now would hide it
    log.add_fills(o, new)
    done = log.add_done(o)
    assert isinstance(done, OrderDone) and done.seq == 2 and done.executed_qty == D("0.25")
    assert done.status == "EXPIRED" and log.add_done(o) is None and log.is_done(o.client_order_id)
    unsettled = order("BTCUSDC")
    unsettled.mark_sent()
    unsettled.apply(OrderUpdate(unsettled.client_order_id, AssetOrderStatus.FILLED, D("1.0"), 9, ()))
    with pytest.raises(ValueError):
        log.add_done(unsettled)  # final, but the exchange counted fills we do not hold


def test_a_log_rebuilt_from_the_stored_orders_goes_on_without_repeating_anything() -> None:
    log = FillLog()
    o, replaced, open_ = order(), order("BTCUSDC"), order("SOLUSDC")
    o.mark_sent()
    log.add_fills(o, o.apply(OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("1.0"), 3,
                                         (fill(1, "0.5"), fill(2, "0.5")))))
    log.add_done(o)
    replaced.mark_sent()
    replaced.apply(OrderUpdate(replaced.client_order_id, AssetOrderStatus.EXPIRED, D(0), 4, ()))
    open_.mark_sent()
    log.add_fills(open_, open_.apply(OrderUpdate(open_.client_order_id, AssetOrderStatus.PARTIALLY_FILLED,
                                                 D("0.5"), 5, (fill(1, "0.5"),))))
    orders = {x.client_order_id: x for x in (o, replaced, open_)}
    back = FillLog.of_orders(log.last_seq, orders, replaced=[replaced.client_order_id])
    assert back.last_seq == 4 and back.since(0) == []  # the entries themselves are in the hand-off
    assert back.add_fills(o, [fill(2, "0.5")]) == [] and back.add_done(o) is None
    assert back.add_fills(open_, [fill(1, "0.5")]) == []  # same trade id, another symbol's: already logged
    assert not back.is_done(replaced.client_order_id) and not back.is_done(open_.client_order_id)
    assert back.add_fills(open_, [fill(6, "0.5")])[0].seq == 5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 9)), max_size=60))
def test_any_replay_of_updates_reports_each_trade_once(events: list[tuple[int, int]]) -> None:
    """Updates repeated and reordered (REST answer, user stream, queries) still give one entry per trade id."""
    log = FillLog()
    o = AssetOrder(client_order_id("b9", "SOLUSDC"), "b9", "SOLUSDC", Side.BUY, "LIMIT", D("1000"), D("150"))
    reported: list[SenderFill] = []
    for trade_id, qty in events:
        reported += log.add_fills(o, [ExchangeFill(trade_id, D("150"), D(qty), D(0), "SOL")])
    assert len({e.trade_id for e in reported}) == len(reported) == len({t for t, _ in events})
    assert [e.seq for e in log.since(0)] == list(range(1, len(reported) + 1))

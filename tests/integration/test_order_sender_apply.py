"""The sender writes an order again only when an update changed it. The user data stream repeats what a FULL REST
answer already said (the same trade, the same final status): during a batch's burst, rewriting every order a second
time would double the sender's commits for nothing. The sender class runs here outside Ray, over a real redis."""
from __future__ import annotations

from decimal import Decimal

from actors.order_sender import OrderSender, SenderOptions
from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate
from core.side import Side


def test_an_update_that_changes_nothing_schedules_no_write(redis_server):
    redis_server.client().flushall()
    sender = OrderSender.__ray_metadata__.modified_class(SenderOptions(
        "http://127.0.0.1:1", "ws://127.0.0.1:1", "key", "secret", redis_url=redis_server.url, account="apply"))
    order = AssetOrder("b1.BTCUSDC.0", "b1", "BTCUSDC", Side.BUY, "LIMIT", Decimal("0.002"), Decimal("60000"))
    order.mark_sent()
    sender._orders[order.client_order_id] = order  # noqa: SLF001
    cid = order.client_order_id
    fill = ExchangeFill(7, Decimal("59999.5"), Decimal("0.002"), Decimal("0.000002"), "BTC", 1, False)
    steps = [  # (what the exchange says, whether the sender must write the order again)
        (OrderUpdate(cid, AssetOrderStatus.NEW, Decimal(0), 42), True),  # acknowledged: an exchange id
        (OrderUpdate(cid, AssetOrderStatus.NEW, Decimal(0), 42), False),  # the stream says it again
        (OrderUpdate(cid, AssetOrderStatus.FILLED, Decimal("0.002"), 42, (fill,)), True),  # the FULL answer
        (OrderUpdate(cid, AssetOrderStatus.FILLED, Decimal("0.002"), 42, (fill,)), False),  # the stream's TRADE
    ]
    for update, writes in steps:
        version, logged = sender._version, sender._log.last_seq  # noqa: SLF001
        sender._dirty.clear()  # noqa: SLF001  (as a commit would)
        sender._apply(order, update)  # noqa: SLF001
        assert (sender._version > version) is writes and (cid in sender._dirty) is writes, update  # noqa: SLF001
        if not writes:
            assert sender._log.last_seq == logged  # noqa: SLF001  (nothing reported twice either)
    assert sender._log.last_seq == 2  # noqa: SLF001  (the fill, then the order's completion: once each)

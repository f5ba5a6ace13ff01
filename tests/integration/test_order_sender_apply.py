"""The sender writes an order again only when an update changed it. The user data stream repeats what a FULL REST
answer already said (the same trade, the same final status): during a batch's burst, rewriting every order a second
time would double the sender's commits for nothing. The sender class runs here outside Ray, over a real redis."""
from __future__ import annotations

from decimal import Decimal

from actors.order_sender import OrderSender, SenderOptions
from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate
from core.side import Side
from store.sender_records import SenderExecutionRecord, SenderStateRecord


def test_an_update_that_changes_nothing_schedules_no_write(redis_server):
    redis_server.client().flushall()
    sender = OrderSender.__ray_metadata__.modified_class(SenderOptions(
        "http://127.0.0.1:1", "ws://127.0.0.1:1", "key", "secret", redis_url=redis_server.url, account="apply"))
    order = AssetOrder("b1.BTCUSDC.0", "b1", "BTCUSDC", Side.BUY, "LIMIT", Decimal("0.002"), Decimal("60000"))
    order.mark_sent()
    sender._book.orders[order.client_order_id] = order  # noqa: SLF001
    cid = order.client_order_id
    fill = ExchangeFill(7, Decimal("59999.5"), Decimal("0.002"), Decimal("0.000002"), "BTC", 1, False)
    steps = [  # (what the exchange says, whether the sender must write the order again)
        (OrderUpdate(cid, AssetOrderStatus.NEW, Decimal(0), 42), True),  # acknowledged: an exchange id
        (OrderUpdate(cid, AssetOrderStatus.NEW, Decimal(0), 42), False),  # the stream says it again
        (OrderUpdate(cid, AssetOrderStatus.FILLED, Decimal("0.002"), 42, (fill,)), True),  # the FULL answer
        (OrderUpdate(cid, AssetOrderStatus.FILLED, Decimal("0.002"), 42, (fill,)), False),  # the stream's TRADE
    ]
    for update, writes in steps:
        version, logged = sender._book.version, sender._book.log.last_seq  # noqa: SLF001
        sender._book.dirty.clear()  # noqa: SLF001  (as a commit would)
        sender._apply(order, update)  # noqa: SLF001
        assert (sender._book.version > version) is writes and (cid in sender._book.dirty) is writes, update  # noqa: SLF001
        if not writes:
            assert sender._book.log.last_seq == logged  # noqa: SLF001  (nothing reported twice either)
    assert sender._book.log.last_seq == 2  # noqa: SLF001  (the fill, then the order's completion: once each)


def test_the_breaker_is_stored_with_the_state_and_state_written_before_it_still_loads(redis_server):
    """The sender's state key as the code before the breaker wrote it loads with no breaker open; a breaker the
    sender tripped is read back by the next process (the sender class outside Ray, over a real redis)."""
    import asyncio
    import json

    client = redis_server.client()
    client.flushall()
    client.set("sender:old:state", json.dumps({"delivered": 3, "subscriber": None}))  # no "breaker" field
    # ... and its log as a hash (seq -> entry): it moves into the executions hand-off at the first commit
    done = {"kind": "done", "seq": 1, "batch_id": "b0", "client_order_id": "b0.ETHUSDC.0", "symbol": "ETHUSDC",
            "side": "BUY", "status": "EXPIRED", "executed_qty": "0", "reason": ""}
    client.hset("sender:old:log", mapping={1: json.dumps(done), 2: json.dumps({**done, "seq": 2,
                                                                              "client_order_id": "b0.BTCUSDC.0"})})
    options = SenderOptions("http://127.0.0.1:1", "ws://127.0.0.1:1", "key", "secret", redis_url=redis_server.url,
                            account="old", breaker_threshold=1)
    cls = OrderSender.__ray_metadata__.modified_class
    sender = cls(options)
    assert sender._breaker.open == [] and sender._book.log.last_seq == 2  # noqa: SLF001
    trip = sender._breaker.on_reject("BTCUSDC", "-2010: Order rejected")  # noqa: SLF001
    assert trip is not None
    sender._book.touch(state=True)  # noqa: SLF001

    async def commit_and_close() -> None:
        await sender._commit()  # noqa: SLF001
        await sender._redis.aclose()  # noqa: SLF001

    asyncio.run(commit_and_close())
    raw = client.get("sender:old:state")
    assert json.loads(raw)["schema"] == "sender.state"  # written back as a versioned record
    stored = SenderStateRecord.load(raw)
    assert stored.breaker.open[0].key == "BTCUSDC" and stored.log_seq == 2
    moved = [SenderExecutionRecord.load(fields[b"r"]).entry for _, fields in client.xrange("sender:old:executions")]
    assert [e.client_order_id for e in moved] == ["b0.ETHUSDC.0", "b0.BTCUSDC.0"] and not client.exists(
        "sender:old:log")
    again = cls(options)
    assert again._breaker.open == [trip] and again._book.log.last_seq == 2  # noqa: SLF001


def test_the_guards_come_from_the_settings():
    from core.config import Settings

    settings = Settings.load(None, exchange_guards={"avg_price_max_age_ms": 30_000, "breaker_threshold": 4,
                                                    "breaker_cool_off_ms": 0})
    o = SenderOptions.from_settings(settings, "key", "secret")
    assert (o.avg_price_max_age_ms, o.avg_price_weight, o.breaker_threshold, o.breaker_cool_off_ms) == (
        30_000, 2, 4, 0)


def test_a_sender_started_while_the_store_is_down_waits_for_it_and_loads_its_state(tmp_path):
    """The state read in __init__ goes through the retry policy: a store that is down at start is waited for,
    with a warning, and what it held is loaded once it is back (the sender class outside Ray, a real redis)."""
    import json
    import logging
    import threading

    from store.retry import RetryPolicy
    from world.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        server.client().set("sender:down:state", json.dumps({"log_seq": 7}))
        server.stop()  # AOF with fsync always: the state is back on start
        warned = threading.Event()
        warnings: list[logging.LogRecord] = []

        class Seen(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                warnings.append(record)
                if "cannot read the state" in record.getMessage():
                    warned.set()

        seen = Seen(level=logging.WARNING)
        logging.getLogger("actors.order_sender").addHandler(seen)
        built: list[object] = []
        options = SenderOptions("http://127.0.0.1:1", "ws://127.0.0.1:1", "key", "secret", redis_url=server.url,
                                account="down", retry=RetryPolicy(20, 100, 1))
        thread = threading.Thread(target=lambda: built.append(OrderSender.__ray_metadata__.modified_class(options)))
        try:
            thread.start()
            assert warned.wait(30), "no warning while the store was down"
            assert thread.is_alive()  # still waiting for the store, not crashed
            server.start()
            thread.join(30)
        finally:
            logging.getLogger("actors.order_sender").removeHandler(seen)
        assert not thread.is_alive() and len(built) == 1
        assert built[0]._book.log.last_seq == 7  # noqa: SLF001
        assert all(r.levelno == logging.WARNING for r in warnings)  # a handled wait is not an error
    finally:
        server.stop()

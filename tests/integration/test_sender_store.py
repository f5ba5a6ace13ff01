"""The sender's book written by one process is the book the next one reads (a real redis, no Ray): orders with
their next attempt, batches, the breaker, and a log that goes on after the hand-off's last entry."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import redis.asyncio as aioredis

from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, client_order_id
from core.circuit_breaker import CircuitBreaker
from core.clock import ManualClock
from core.rate_limits import ORDERS, RateLimit, RateLimiter
from core.send_queue import SendQueue
from core.sender_book import SenderBook
from core.sender_messages import SubmitResult
from core.side import Side
from store.handoff import execute
from store.sender_store import SenderStore

D = Decimal


def test_a_committed_book_loads_back_whole(redis_server) -> None:
    redis_server.client().flushall()
    clock = ManualClock()
    store = SenderStore("roundtrip")
    book = SenderBook(CircuitBreaker(1, 60_000, clock))
    book.queue = SendQueue(RateLimiter([RateLimit(ORDERS, 10_000, 100)], clock), 1)
    filled = AssetOrder(client_order_id("b1", "BTCUSDC"), "b1", "BTCUSDC", Side.BUY, "LIMIT", D("0.002"), D("60000"))
    lost = AssetOrder(client_order_id("b1", "ETHUSDC"), "b1", "ETHUSDC", Side.BUY, "LIMIT", D("0.5"), D("2500"))
    results = [SubmitResult(o.symbol, o.side, True, o.client_order_id, o.quantity, o.price, "INTENDED")
               for o in (filled, lost)]
    book.record_batch("b1", [filled, lost], results)
    for o in book.take_group(max_in_flight=10):
        book.sent_at[o.client_order_id] = clock.now_ms()
    fill = ExchangeFill(7, D("59999.5"), D("0.002"), D("0.000002"), "BTC", 1, False)
    book.apply(filled, OrderUpdate(filled.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill,)))
    again = book.resend(lost)
    trip = book.on_reject(lost, "-2010: rejected", insufficient_balance=False)
    changes = book.take_changes()

    async def commit() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            p = client.pipeline(transaction=True)
            store.write(p, book, changes)
            await execute(p)
        finally:
            await client.aclose()

    asyncio.run(commit())
    book.stored(changes)
    stream = redis_server.client().xrange(store.executions.key)
    assert len(stream) == 2  # the fill, then the completion

    loaded = SenderBook(CircuitBreaker(1, 60_000, clock))
    store.restore(store.read(redis_server.url), loaded)
    assert {c: o.to_dict() for c, o in loaded.orders.items()} == {c: o.to_dict() for c, o in book.orders.items()}
    assert loaded.replaced_by == {lost.client_order_id: again.client_order_id} and loaded.batches == {"b1": results}
    assert loaded.breaker.open == [trip] and loaded.log.last_seq == loaded.persisted_seq == 2
    assert loaded.log.is_done(filled.client_order_id) and loaded.log.has_fill("BTCUSDC", 7)
    assert loaded.open_by_symbol == {"BTCUSDC": set(), "ETHUSDC": {again.client_order_id}}
    sent_at = redis_server.client().hget(store.keys["orders"], filled.client_order_id)
    assert str(clock.now_ms()).encode() in sent_at  # when this process sent it, for a later resolution

"""The sender's book without Ray, Redis or an exchange: what an answer changes and writes, what the in-flight cap and
the breakers let out, what a failed intake commit undoes, what a commit takes and gives back."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, client_order_id
from core.circuit_breaker import ACCOUNT, CircuitBreaker
from core.clock import ManualClock
from core.rate_limits import ORDERS, RAW_REQUESTS, REQUEST_WEIGHT, RateLimit, RateLimiter
from core.send_queue import SendQueue
from core.sender_book import SenderBook
from core.sender_messages import OrderDone, SenderFill, SubmitResult
from core.side import Side

D = Decimal
T0 = 1_700_000_040_000


def book(clock: ManualClock | None = None, *, orders_per_10s: int = 100, threshold: int = 2,
         cool_off_ms: int = 60_000) -> tuple[SenderBook, list[str]]:
    """A book with a queue; the second item records its wake-ups ("change", "queued") in order."""
    clock = clock or ManualClock(T0)
    woken: list[str] = []
    b = SenderBook(CircuitBreaker(threshold, cool_off_ms, clock), on_change=lambda: woken.append("change"),
                   on_queued=lambda: woken.append("queued"))
    limiter = RateLimiter([RateLimit(REQUEST_WEIGHT, 60_000, 6000), RateLimit(ORDERS, 10_000, orders_per_10s),
                           RateLimit(RAW_REQUESTS, 300_000, 61_000)], clock)
    b.queue = SendQueue(limiter, 1)
    return b, woken


def order(batch: str = "b1", symbol: str = "BTCUSDC", qty: str = "0.002") -> AssetOrder:
    return AssetOrder(client_order_id(batch, symbol), batch, symbol, Side.BUY, "LIMIT", D(qty), D("60000"))


def result(o: AssetOrder) -> SubmitResult:
    return SubmitResult(o.symbol, o.side, True, o.client_order_id, o.quantity, o.price, "INTENDED")


def fill(trade_id: int, qty: str) -> ExchangeFill:
    return ExchangeFill(trade_id, D("59999.5"), D(qty), D("0.000002"), "BTC", 1, False)


def sent(b: SenderBook, o: AssetOrder) -> AssetOrder:
    o.mark_sent()
    b.orders[o.client_order_id] = o
    b.track_open(o)
    return o


def test_an_update_is_written_and_logged_only_when_it_changes_something() -> None:
    b, _ = book()
    o = sent(b, order())
    cid = o.client_order_id
    f = fill(7, "0.002")
    steps = [  # (what the exchange says, whether the order is written again)
        (OrderUpdate(cid, AssetOrderStatus.NEW, D(0), 42), True),
        (OrderUpdate(cid, AssetOrderStatus.NEW, D(0), 42), False),  # the stream repeats it
        (OrderUpdate(cid, AssetOrderStatus.FILLED, D("0.002"), 42, (f,)), True),
        (OrderUpdate(cid, AssetOrderStatus.FILLED, D("0.002"), 42, (f,)), False),  # the stream's TRADE
    ]
    for update, writes in steps:
        version, logged = b.version, b.log.last_seq
        b.dirty.clear()
        assert b.apply(o, update) is False
        assert (b.version > version) is writes and (cid in b.dirty) is writes, update
        if not writes:
            assert b.log.last_seq == logged
    entries = b.log.since(0)
    assert [type(e) for e in entries] == [SenderFill, OrderDone] and b.open_counts(["BTCUSDC"]) == {"BTCUSDC": 0}


def test_a_final_order_with_fills_missing_is_checked_later_once_and_not_while_resolving() -> None:
    b, _ = book()
    o = sent(b, order())
    cid = o.client_order_id
    partial = OrderUpdate(cid, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.001"),))
    assert b.apply(o, partial) is True  # final, one fill of two in hand
    assert b.apply(o, partial) is False  # already missing before: already scheduled
    assert not b.log.is_done(cid)
    b.apply(o, OrderUpdate(cid, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(2, "0.001"),)))
    assert b.log.is_done(cid) and o.settled

    other = sent(b, order("b2"))
    b.resolving.add(other.client_order_id)  # a query is under way: it fetches the trades itself
    assert b.apply(other, OrderUpdate(other.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 43,
                                      (fill(3, "0.001"),))) is False


def test_the_stream_skips_intended_and_unknown_orders() -> None:
    b, _ = book()
    waiting = order("b1")
    b.orders[waiting.client_order_id] = waiting  # INTENDED: not sent
    out = sent(b, order("b2"))
    updates = [OrderUpdate(c, AssetOrderStatus.FILLED, D("0.002"), 9, (fill(5, "0.001"),))
               for c in (waiting.client_order_id, out.client_order_id, "nobody.BTCUSDC.0")]
    assert b.merge_reports(updates) == [out]
    assert waiting.status is AssetOrderStatus.INTENDED and not waiting.fills and out.exchange_order_id == 9


def test_a_group_is_taken_under_the_in_flight_cap_and_marked_sent() -> None:
    b, woken = book()
    orders = [order(f"b{i}") for i in range(5)]
    b.record_batch("b", orders, [result(o) for o in orders])
    assert "queued" not in woken  # the intake wakes the send loop itself, after its commit
    b.in_flight.add("elsewhere")
    group = b.take_group(max_in_flight=3)
    assert group == orders[:2] and all(o.status is AssetOrderStatus.SENT for o in group)
    assert b.in_flight == {"elsewhere", *(o.client_order_id for o in group)}
    assert b.take_group(max_in_flight=3) == [] and len(b.queue) == 3
    assert b.wait_ms(3, T0) is None  # the cap is full: nothing to wait for but an answer


def test_a_batch_with_a_known_id_is_refused_before_anything_is_booked() -> None:
    b, _ = book()
    first = order("b1")
    b.record_batch("b1", [first], [result(first)])
    again = order("b1")
    with pytest.raises(ValueError, match="already exists"):
        b.record_batch("b1x", [again], [result(again)])
    assert b.orders[first.client_order_id] is first and "b1x" not in b.batches and len(b.queue) == 1


def test_a_batch_that_could_not_be_recorded_leaves_nothing_and_gives_back_what_it_took() -> None:
    b, _ = book()
    older = order("b0", "ETHUSDC")
    b.record_batch("b0", [older], [result(older)])
    b.stored(b.take_changes())  # b0 is stored
    b.breaker.on_reject("SOLUSDC", "-2010")
    b.breaker.on_reject("SOLUSDC", "-2010")  # tripped: the new batch's SOLUSDC order is held
    mine = [order("b1", "BTCUSDC"), order("b1", "SOLUSDC")]
    b.record_batch("b1", mine, [result(o) for o in mine])
    assert b.held == {"SOLUSDC": [mine[1]]}
    later = order("b2", "ETHUSDC")
    b.enqueue([later])
    group = b.take_group(max_in_flight=2)
    assert group == [older, mine[0]]
    b.forget_batch("b1", mine, group)
    assert set(b.orders) == {older.client_order_id} and "b1" not in b.batches and "b1" not in b.dirty_batches
    assert not b.held and not b.in_flight and list(b.queue) == [older, later]  # the older one still goes first
    assert older.status is AssetOrderStatus.INTENDED and not b.dirty & {o.client_order_id for o in mine}
    assert b.open_counts(["BTCUSDC", "SOLUSDC", "ETHUSDC"]) == {"BTCUSDC": 0, "SOLUSDC": 0, "ETHUSDC": 1}


def test_a_tripped_breaker_holds_the_queued_orders_of_its_symbol_until_resumed() -> None:
    b, woken = book()
    btc, eth = sent(b, order("b1")), order("b1", "ETHUSDC")
    queued = [order("b2"), order("b2", "ETHUSDC")]
    b.enqueue(queued, wake=False)
    assert b.on_reject(btc, "-2010: rejected", insufficient_balance=False) is None and b.state_dirty
    trip = b.on_reject(btc, "-2010: rejected", insufficient_balance=False)
    assert trip is not None and trip.key == "BTCUSDC" and b.counts["breaker_trips"] == 1
    assert list(b.queue) == [queued[1]] and b.held == {"BTCUSDC": [queued[0]]}
    assert b.wait_ms(10, T0) == 0  # ETHUSDC's order fits now: no sleeping until the breaker cools off
    taken = sent(b, order("b3"))  # taken before the trip, not sent yet
    assert b.hold_back(taken) and taken.status is AssetOrderStatus.INTENDED and len(b.held["BTCUSDC"]) == 2
    assert not b.hold_back(sent(b, eth))
    woken.clear()
    with pytest.raises(ValueError, match="either"):
        b.resume("BTCUSDC", True, traded={"BTCUSDC"})
    with pytest.raises(ValueError, match="not traded"):
        b.resume("DOGEUSDC", False, traded={"BTCUSDC"})
    assert woken == [] and b.held  # a refused call changes nothing
    cleared, released = b.resume("BTCUSDC", False, traded={"BTCUSDC", "ETHUSDC"})
    assert cleared == trip and released == 2 and not b.held and woken[-1] == "change" and "queued" in woken
    assert [o.client_order_id for o in b.queue] == [queued[1].client_order_id, "b2.BTCUSDC.0", "b3.BTCUSDC.0"]


def test_an_insufficient_balance_stops_every_symbol_and_cools_off() -> None:
    clock = ManualClock(T0)
    b, _ = book(clock, cool_off_ms=1_000)
    trip = b.on_reject(sent(b, order()), "-2010: insufficient balance", insufficient_balance=True)
    assert trip is not None and trip.key == ACCOUNT
    b.enqueue([order("b2", "ETHUSDC")])
    assert len(b.queue) == 0 and b.wait_ms(10, clock.now_ms()) == 1_000
    clock.advance(400)
    assert b.expire_breakers() == ([], 0) and b.wait_ms(10, clock.now_ms()) == 600
    clock.advance(600)
    expired, released = b.expire_breakers()
    assert [t.key for t in expired] == [ACCOUNT] and released == 1 and len(b.queue) == 1
    assert b.wait_ms(10, clock.now_ms()) == 0  # the released order fits the limits now
    b.on_reject(sent(b, order("b3")), "-2010: insufficient balance", insufficient_balance=True)
    b.enqueue([order("b4", "ETHUSDC")])
    cleared, released = b.resume(None, True, traded=())
    assert cleared is not None and cleared.key == ACCOUNT and b.breaker.open == []
    assert released == 2 and [o.batch_id for o in b.queue] == ["b2", "b4"]  # the queued one was held again too


def test_a_rate_limited_order_goes_back_first_and_an_accepted_one_ends_the_streak() -> None:
    b, _ = book(threshold=2)
    b.enqueue([order("b1")])
    refused = sent(b, order("b0"))
    b.requeue(refused, front=True)
    assert refused.status is AssetOrderStatus.INTENDED and list(b.queue)[0] is refused
    b.on_reject(refused, "-2010", insufficient_balance=False)
    b.state_dirty = False
    b.on_accepted(refused)
    assert b.state_dirty  # the streak was counting: stored again
    b.state_dirty = False
    b.on_accepted(refused)
    assert not b.state_dirty
    assert b.on_reject(refused, "-2010", insufficient_balance=False) is None  # a new streak of one


def test_a_resend_books_the_next_attempt_and_the_first_never_completes_in_the_log() -> None:
    b, _ = book()
    first = sent(b, order())
    again = b.resend(first)
    assert again.client_order_id == "b1.BTCUSDC.1" and again.status is AssetOrderStatus.INTENDED
    assert b.replaced_by == {first.client_order_id: again.client_order_id} and first.status.is_final
    assert {first.client_order_id, again.client_order_id} <= b.dirty and b.counts["resent"] == 1
    assert b.open_by_symbol["BTCUSDC"] == {again.client_order_id}
    b.apply(first, OrderUpdate(first.client_order_id, AssetOrderStatus.REJECTED, D(0)))
    assert not b.log.is_done(first.client_order_id) and b.log.last_seq == 0


def test_fetched_trades_add_fills_and_change_nothing_else() -> None:
    b, _ = book()
    o = sent(b, order())
    b.apply(o, OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.001"),)))
    update = b.trades_update(o, iter([fill(1, "0.001"), fill(2, "0.001")]))
    assert (update.status, update.executed_qty, update.exchange_order_id) == (AssetOrderStatus.FILLED, D("0.002"), 42)
    assert b.apply(o, update) is False and o.settled and b.log.is_done(o.client_order_id) and b.log.last_seq == 3


def test_reconcile_queues_intended_orders_at_start_and_returns_the_unknown_ones() -> None:
    b, _ = book()
    late, early = order("b2"), order("b1")
    for o in (late, early):
        b.orders[o.client_order_id] = o
    unknown, flying, asked = sent(b, order("b3")), sent(b, order("b4")), sent(b, order("b5"))
    b.in_flight.add(flying.client_order_id)
    b.resolving.add(asked.client_order_id)
    done = sent(b, order("b6"))
    b.apply(done, OrderUpdate(done.client_order_id, AssetOrderStatus.EXPIRED, D(0), 1))
    assert b.reconcile() == [unknown] and len(b.queue) == 0  # a dropped stream: INTENDED ones stay where they are
    assert b.reconcile(initial=True) == [unknown] and list(b.queue) == [early, late]


def test_a_failed_commit_gives_its_changes_back_and_a_stored_one_moves_the_cursor() -> None:
    b, _ = book()
    b.legacy = [OrderDone(1, "b0", "b0.ETHUSDC.0", "ETHUSDC", Side.BUY, "EXPIRED", D(0), "")]
    o = sent(b, order())
    b.apply(o, OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.002"),)))
    b.batches["b1"] = [result(o)]
    b.dirty_batches.add("b1")
    b.touch(state=True)
    changes = b.take_changes()
    assert changes.orders == {o.client_order_id} and changes.batches == {"b1"} and changes.writes_state
    assert [e.seq for e in changes.entries] == [1, 2] and changes.log_seq == 2 and len(changes.legacy) == 1
    assert not b.dirty and not b.state_dirty and not b.legacy and b.take_changes().log_seq == 2
    b.put_back(changes)
    assert b.dirty == {o.client_order_id} and b.dirty_batches == {"b1"} and b.state_dirty and b.legacy
    again = b.take_changes()
    assert [e.seq for e in again.entries] == [1, 2]  # the log entries were not dropped either
    b.stored(again)
    assert b.persisted_seq == 2 and b.log.since(0) == [] and b.committed == again.version == b.version
    quiet = b.take_changes()
    assert not quiet.writes_state and quiet.log_seq == 2


def test_idle_and_the_view() -> None:
    b, _ = book()
    assert b.idle()
    o = sent(b, order())
    b.in_flight.add(o.client_order_id)
    assert not b.idle()
    b.in_flight.clear()
    b.apply(o, OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.002"),)))
    assert not b.idle()  # settled, not committed yet
    b.stored(b.take_changes())
    assert b.idle()
    view = b.view()
    assert view["orders"] == 1 and view["by_status"] == {"FILLED": 1} and view["unsettled"] == []
    assert view["log_seq"] == view["persisted_seq"] == 2 and view["queued"] == 0
    assert b.batch_orders("b1")[0]["replaced_by"] is None and b.batch_orders("b9") == []


def test_restore_rebuilds_the_open_orders_and_the_log_dedupe() -> None:
    b, _ = book()
    o = order()
    o.mark_sent()
    o.apply(OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.002"),)))
    waiting = order("b2")
    b.restore({o.client_order_id: o, waiting.client_order_id: waiting}, {}, {"b1": [result(o)]}, 5, [])
    assert b.log.last_seq == b.persisted_seq == 5 and b.log.is_done(o.client_order_id)
    assert b.log.has_fill("BTCUSDC", 1) and b.open_by_symbol["BTCUSDC"] == {waiting.client_order_id}
    assert b.apply(o, OrderUpdate(o.client_order_id, AssetOrderStatus.FILLED, D("0.002"), 42, (fill(1, "0.002"),))) \
        is False and b.log.last_seq == 5

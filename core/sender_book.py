"""The order sender's book: its asset orders and batches, what the guards hold back, what is left to write.

The actor (actors/order_sender.py) makes the requests, waits out the limits and writes `take_changes()` in one
transaction; the book decides what each answer, refusal or batch changes. Each method runs between two awaits of
the actor, so no lock is needed. `on_change` (something to write) and `on_queued` (something to send) wake the
actor's loops.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Container, Iterable, Mapping

from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate
from core.batch_intake import next_attempt
from core.circuit_breaker import ACCOUNT, CircuitBreaker, Trip
from core.fill_log import FillLog
from core.send_queue import SendQueue
from core.sender_messages import Execution, SubmitResult

#: What inspect() counts; the actor adds to the transport's counts itself.
COUNTS = ("sent", "answered", "rate_limited", "unknown", "resent", "rejected", "queries", "trade_queries",
          "stream_errors", "commits", "commit_failures", "avg_price_fetches", "avg_price_refreshes",
          "avg_price_failures", "breaker_trips", "held")


@dataclass(slots=True)
class Changes:
    """One commit's content, taken out of the book: put back if the write fails, so nothing is lost."""

    version: int
    orders: set[str]
    batches: set[str]
    state: bool
    entries: list[Execution]
    legacy: list[Execution]
    log_seq: int  # the stored cursor of the log: the last entry this commit writes (or holds already)

    @property
    def writes_state(self) -> bool:
        return self.state or bool(self.entries)


def _nothing() -> None:
    return None


class SenderBook:
    """Not thread-safe: the owner serialises the calls. `queue` is attached once the limits are known."""

    def __init__(self, breaker: CircuitBreaker, *, on_change: Callable[[], None] = _nothing,
                 on_queued: Callable[[], None] = _nothing) -> None:
        self.breaker = breaker
        self.orders: dict[str, AssetOrder] = {}
        self.replaced_by: dict[str, str] = {}  # cid -> the next attempt's cid
        self.batches: dict[str, list[SubmitResult]] = {}
        self.log = FillLog()
        self.persisted_seq = 0
        self.legacy: list[Execution] = []  # entries of an older log layout, still to go into the hand-off
        self.open_by_symbol: dict[str, set[str]] = {}  # not final: open on the exchange, or may become so
        self.held: dict[str, list[AssetOrder]] = {}  # symbol -> INTENDED orders a breaker keeps from the queue
        self.queue: SendQueue[AssetOrder] | None = None
        self.in_flight: set[str] = set()
        self.resolving: set[str] = set()
        self.sent_at: dict[str, int] = {}  # cid -> ms stamped right before the request left (this process)
        self.counts = dict.fromkeys(COUNTS, 0)
        self.dirty: set[str] = set()
        self.dirty_batches: set[str] = set()
        self.state_dirty = False
        self.version = 0
        self.committed = 0
        self._on_change = on_change
        self._on_queued = on_queued

    def restore(self, orders: Mapping[str, AssetOrder], replaced_by: Mapping[str, str],
                batches: Mapping[str, list[SubmitResult]], last_seq: int, legacy: Iterable[Execution]) -> None:
        """The state as stored; the log's dedupe is rebuilt from the orders (FillLog.of_orders)."""
        self.orders.update(orders)
        self.replaced_by.update(replaced_by)
        self.batches.update(batches)
        self.log = FillLog.of_orders(last_seq, self.orders, self.replaced_by)
        self.persisted_seq = last_seq
        self.legacy = list(legacy)
        for order in self.orders.values():
            self.track_open(order)

    # ------------------------------------------------------------------ what to write
    def touch(self, cids: Iterable[str] = (), *, state: bool = False) -> None:
        """Mark orders (and with `state`, the breaker and log cursor) to write at the next commit."""
        self.dirty.update(cids)
        self.state_dirty |= state
        self.version += 1
        self._on_change()

    def take_changes(self) -> Changes:
        entries = self.log.since(self.persisted_seq)
        changes = Changes(self.version, self.dirty, self.dirty_batches, self.state_dirty, entries, self.legacy,
                          entries[-1].seq if entries else self.log.last_seq)
        self.dirty, self.dirty_batches, self.state_dirty, self.legacy = set(), set(), False, []
        return changes

    def put_back(self, changes: Changes) -> None:
        """The write failed: what it held is to write again."""
        self.dirty |= changes.orders
        self.dirty_batches |= changes.batches
        self.state_dirty |= changes.state
        self.legacy = changes.legacy

    def stored(self, changes: Changes) -> None:
        """The write is durable: the log entries it held live in the hand-off now, not in memory."""
        if changes.entries:
            self.persisted_seq = changes.entries[-1].seq
            self.log.forget(self.persisted_seq)
        self.committed = max(self.committed, changes.version)

    # ------------------------------------------------------------------ intake
    def open_counts(self, symbols: Iterable[str]) -> dict[str, int]:
        """Orders per symbol that count against the exchange's MAX_NUM_ORDERS (see track_open)."""
        return {s: len(self.open_by_symbol.get(s, ())) for s in symbols}

    def record_batch(self, batch_id: str, accepted: list[AssetOrder], results: list[SubmitResult]) -> None:
        """Book a batch's verdicts and queue its accepted orders (the caller wakes the send loop after the commit)."""
        for order in accepted:
            if order.client_order_id in self.orders:
                raise ValueError(f"{order.client_order_id} already exists: batch ids must be unique")
        for order in accepted:
            self.orders[order.client_order_id] = order
            self.track_open(order)
        self.batches[batch_id] = results
        self.dirty_batches.add(batch_id)
        self.counts["rejected"] += len(results) - len(accepted)
        self.touch(o.client_order_id for o in accepted)
        self.enqueue(accepted, wake=False)

    def forget_batch(self, batch_id: str, accepted: list[AssetOrder], group: list[AssetOrder]) -> None:
        """The batch could not be recorded: nothing unrecorded may go out. The group taken for sending goes back
        INTENDED (older batches' orders to the queue's front), the batch's own orders are gone."""
        assert self.queue is not None
        mine = {o.client_order_id for o in accepted}
        older = []
        for order in group:  # taken, not sent: back to what they were
            self.in_flight.discard(order.client_order_id)
            order.status = AssetOrderStatus.INTENDED
            if order.client_order_id not in mine:
                older.append(order)
        for order in accepted:
            if not self.queue.remove(order):
                self._unhold(order)
            self.orders.pop(order.client_order_id, None)
            self.open_by_symbol.get(order.symbol, set()).discard(order.client_order_id)
            self.dirty.discard(order.client_order_id)
        self.queue.push_front(older)
        self.batches.pop(batch_id, None)
        self.dirty_batches.discard(batch_id)

    def take_group(self, max_in_flight: int) -> list[AssetOrder]:
        """Take what the rate limits and the in-flight cap admit now, marked sent (the caller writes it, then
        sends)."""
        assert self.queue is not None
        free = max_in_flight - len(self.in_flight)
        group = self.queue.take(free) if free > 0 else []
        for order in group:
            order.mark_sent()
            self.in_flight.add(order.client_order_id)
        if group:
            self.touch(o.client_order_id for o in group)
        return group

    def wait_ms(self, max_in_flight: int, now_ms: int) -> int | None:
        """How long the send loop may sleep: until the queue's head fits the limits or a breaker cools off (None:
        until woken)."""
        assert self.queue is not None
        wait = self.queue.wait_ms() if max_in_flight > len(self.in_flight) else None
        expiry = self.breaker.next_expiry_ms()
        if expiry is not None:  # wake when a breaker cools off, to release what it held
            until = max(0, expiry - now_ms)
            wait = until if wait is None else min(wait, until)
        return wait

    # ------------------------------------------------------------------ guards
    def track_open(self, order: AssetOrder) -> None:
        """Keep the per-symbol set of orders that count against MAX_NUM_ORDERS: every one not final (queued,
        held, in flight, open on the exchange), so a batch is refused before the exchange would refuse it."""
        ids = self.open_by_symbol.setdefault(order.symbol, set())
        if order.status.is_final:
            ids.discard(order.client_order_id)
        else:
            ids.add(order.client_order_id)

    def enqueue(self, orders: list[AssetOrder], *, front: bool = False, wake: bool = True) -> None:
        """Queue orders to send, except those a breaker stops: they wait, INTENDED, until it clears."""
        assert self.queue is not None
        go = []
        for order in orders:
            if self.breaker.blocking(order.symbol) is not None:
                self.held.setdefault(order.symbol, []).append(order)
                self.counts["held"] += 1
            else:
                go.append(order)
        if go:
            (self.queue.push_front if front else self.queue.push)(go)
            if wake:
                self._on_queued()

    def _unhold(self, order: AssetOrder) -> None:
        held = self.held.get(order.symbol)
        if held and order in held:
            held.remove(order)
            if not held:
                del self.held[order.symbol]

    def requeue(self, order: AssetOrder, *, front: bool = False) -> None:
        """Taken for sending but not sent: INTENDED again, back in line (a 429 goes first: it was refused, not
        executed)."""
        order.status = AssetOrderStatus.INTENDED
        self.touch([order.client_order_id])
        self.enqueue([order], front=front)

    def hold_back(self, order: AssetOrder) -> bool:
        """True if a breaker tripped since `order` was taken (a group leaves over several loop turns): it was not
        sent, so it waits INTENDED with the others."""
        if self.breaker.blocking(order.symbol) is None:
            return False
        self.requeue(order)
        return True

    def on_accepted(self, order: AssetOrder) -> None:
        if self.breaker.on_accepted(order.symbol):
            self.touch(state=True)

    def on_reject(self, order: AssetOrder, detail: str, *, insufficient_balance: bool) -> Trip | None:
        """Count an exchange reject; if it trips a breaker (returned), what is queued for the stopped symbol(s) is
        held back."""
        trip = self.breaker.on_reject(order.symbol, detail, insufficient_balance=insufficient_balance)
        self.touch(state=True)
        if trip is None:
            return None
        self.counts["breaker_trips"] += 1
        assert self.queue is not None
        blocked = [o for o in self.queue if self.breaker.blocking(o.symbol) is not None]
        for o in blocked:
            self.queue.remove(o)
        self.enqueue(blocked, wake=False)
        return trip

    def release(self) -> int:
        """Queue the held orders no breaker stops any more, oldest client order id first; returns how many."""
        freed: list[AssetOrder] = []
        for symbol in list(self.held):
            if self.breaker.blocking(symbol) is None:
                freed += self.held.pop(symbol)
        if freed:
            self.enqueue(sorted(freed, key=lambda o: o.client_order_id))
        return len(freed)

    def expire_breakers(self) -> tuple[list[Trip], int]:
        """Close the breakers that cooled off and release what they held: (closed, orders released)."""
        expired = self.breaker.expire()
        if not expired:
            return [], 0
        released = self.release()
        self.touch(state=True)
        return expired, released

    def resume(self, symbol: str | None, account: bool, traded: Container[str]) -> tuple[Trip | None, int]:
        """The operator clears the breaker of a traded `symbol` or, with `account`, the account's: (the breaker,
        None if it was not open; orders released)."""
        if account == (symbol is not None):
            raise ValueError("resume takes either a symbol or account=True")
        if symbol is not None and symbol not in traded:
            raise ValueError(f"{symbol} is not traded on this exchange")
        trip = self.breaker.resume(ACCOUNT if symbol is None else symbol)
        released = self.release()
        self.touch(state=True)
        return trip, released

    # ------------------------------------------------------------------ outcomes
    def apply(self, order: AssetOrder, update: OrderUpdate) -> bool:
        """Merge one update; log new fills and, once settled, the order's completion; mark the order to write if
        anything changed (the stream repeats what a FULL answer already said). True: final with fills missing,
        and nobody asking yet: the caller checks its trades later."""
        was_missing = order.status.is_final and order.missing_fills
        before = (order.status, order.executed_qty, order.exchange_order_id, order.reason, self.log.last_seq)
        new = order.apply(update)
        if new:
            self.log.add_fills(order, new)
        cid = order.client_order_id
        check_later = False
        if order.settled and cid not in self.replaced_by and not self.log.is_done(cid):
            self.log.add_done(order)
        elif order.status.is_final and order.missing_fills and not was_missing and cid not in self.resolving:
            check_later = True
        if new or before != (order.status, order.executed_qty, order.exchange_order_id, order.reason,
                             self.log.last_seq):
            self.touch([cid])
        self.track_open(order)
        return check_later

    @staticmethod
    def trades_update(order: AssetOrder, fills: Iterable[ExchangeFill]) -> OrderUpdate:
        """The order's trades, fetched because the stream lagged: an update that adds fills and nothing else."""
        return OrderUpdate(order.client_order_id, order.status, order.executed_qty, order.exchange_order_id,
                           tuple(fills))

    def merge_reports(self, updates: Iterable[OrderUpdate]) -> list[AssetOrder]:
        """The user data stream's reports, merged into the orders they are about (one still INTENDED has not been
        sent: a report naming it is ignored); returns the orders to check the trades of later (see apply)."""
        later = []
        for update in updates:
            order = self.orders.get(update.client_order_id)
            if order is not None and order.status is not AssetOrderStatus.INTENDED and self.apply(order, update):
                later.append(order)
        return later

    def resend(self, order: AssetOrder) -> AssetOrder:
        """The exchange never got `order` and never will: the next attempt, booked (the caller commits it, then
        enqueues it at the front)."""
        order.resolve_not_found()
        again = next_attempt(order)
        self.orders[again.client_order_id] = again
        self.replaced_by[order.client_order_id] = again.client_order_id
        self.counts["resent"] += 1
        self.touch([order.client_order_id, again.client_order_id])
        self.track_open(order)
        self.track_open(again)
        return again

    def reconcile(self, initial: bool = False) -> list[AssetOrder]:
        """Orders whose outcome may be unknown: INTENDED ones (surely never sent: at start only) are queued; the
        other unsettled ones nobody is sending or asking about are returned, to ask the exchange about."""
        intended, unknown = [], []
        for cid, order in self.orders.items():
            if order.settled or cid in self.in_flight or cid in self.resolving:
                continue
            if order.status is AssetOrderStatus.INTENDED:
                if initial:
                    intended.append(order)
                continue
            unknown.append(order)
        if intended:
            self.enqueue(sorted(intended, key=lambda x: x.client_order_id))
        return unknown

    # ------------------------------------------------------------------ views
    def idle(self) -> bool:
        """Nothing queued, in flight or unresolved, every order settled, everything committed."""
        return (self.queue is not None and not len(self.queue) and not self.in_flight and not self.resolving
                and all(o.settled for o in self.orders.values()) and self.committed >= self.version)

    def batch_orders(self, batch_id: str) -> list[dict[str, Any]]:
        """Every order of a batch (all attempts), as plain data."""
        return [o.to_dict() | {"replaced_by": self.replaced_by.get(cid)}
                for cid, o in sorted(self.orders.items()) if o.batch_id == batch_id]

    def view(self) -> dict[str, Any]:
        """The book's part of inspect(): plain data."""
        by_status: dict[str, int] = {}
        for o in self.orders.values():
            by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
        return {
            "orders": len(self.orders), "by_status": by_status,
            "unsettled": sorted(c for c, o in self.orders.items() if not o.settled)[:50],
            "batches": len(self.batches), "queued": len(self.queue) if self.queue is not None else None,
            "in_flight": len(self.in_flight), "resolving": sorted(self.resolving),
            "log_seq": self.log.last_seq, "persisted_seq": self.persisted_seq, "counts": dict(self.counts),
            "breakers": [t.to_dict() for t in self.breaker.open],
            "held": {sym: len(orders) for sym, orders in sorted(self.held.items())},
        }

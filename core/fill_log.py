"""The order sender's execution log: every fill and every order completion it reports, numbered 1, 2, 3, ...

A gap-free sequence lets the consumer keep one number (the last seq it applied) and read on from it after any
restart (store/handoff.py). Recording is idempotent: a fill is keyed by (symbol, trade id) and an order completes
once, so merging the same exchange update twice adds nothing. Memory keeps the dedupe keys and the entries not
yet stored: stored entries live in the hand-off until the consumer acknowledges them.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from core.asset_order import AssetOrder, ExchangeFill
from core.sender_messages import Execution, OrderDone, SenderFill, order_done, sender_fill


class FillLog:
    def __init__(self, last_seq: int = 0, fill_keys: Iterable[tuple[str, int]] = (),
                 done: Iterable[str] = ()) -> None:
        self._first = last_seq + 1  # the seq of _entries[0]
        self._entries: list[Execution] = []
        self._fill_keys: set[tuple[str, int]] = set(fill_keys)
        self._done: set[str] = set(done)

    @classmethod
    def of_orders(cls, last_seq: int, orders: Mapping[str, AssetOrder], replaced: Iterable[str]) -> "FillLog":
        """The log after a restart, its dedupe rebuilt from the stored orders: an order's fills and its completion
        are logged in the same commit as the order itself (the sender's rule), so every fill an order holds is
        logged, and so is the completion of every settled order that was not replaced by a new attempt."""
        skip = set(replaced)
        return cls(last_seq, ((o.symbol, t) for o in orders.values() for t in o.fills),
                   (cid for cid, o in orders.items() if o.settled and cid not in skip))

    def _append(self, e: Execution) -> None:
        if e.seq != self.last_seq + 1:
            raise ValueError(f"log entry seq {e.seq} does not follow {self.last_seq}")
        self._entries.append(e)
        if isinstance(e, SenderFill):
            self._fill_keys.add(e.key)
        else:
            self._done.add(e.client_order_id)

    @property
    def last_seq(self) -> int:
        """The seq of the latest entry (0 when none ever was)."""
        return self._first + len(self._entries) - 1

    def has_fill(self, symbol: str, trade_id: int) -> bool:
        return (symbol, trade_id) in self._fill_keys

    def is_done(self, client_order_id: str) -> bool:
        return client_order_id in self._done

    def add_fills(self, order: AssetOrder, fills: Iterable[ExchangeFill]) -> list[SenderFill]:
        """Record the fills of `order` not recorded before; returns the new entries (in the order given)."""
        out = []
        for f in fills:
            if (order.symbol, f.trade_id) in self._fill_keys:
                continue
            entry = sender_fill(self.last_seq + 1, order, f)
            self._append(entry)
            out.append(entry)
        return out

    def add_done(self, order: AssetOrder) -> OrderDone | None:
        """Record that `order` is complete, once. Only a settled order completes: its fills must all be in the log
        first, so a consumer never sees an order closed before the fills that make up its executed quantity."""
        if not order.settled:
            raise ValueError(f"{order.client_order_id} is not settled ({order.status.value}, "
                             f"{order.filled_qty}/{order.executed_qty})")
        if order.client_order_id in self._done:
            return None
        missing = [t for t in order.fills if (order.symbol, t) not in self._fill_keys]
        if missing:
            raise ValueError(f"{order.client_order_id}: fills {missing} are not in the log yet")
        entry = order_done(self.last_seq + 1, order)
        self._append(entry)
        return entry

    def since(self, seq: int, limit: int | None = None) -> list[Execution]:
        """Entries still in memory with seq > `seq`, oldest first, at most `limit` of them."""
        start = max(0, seq + 1 - self._first)
        end = len(self._entries) if limit is None else min(len(self._entries), start + limit)
        return self._entries[start:end]

    def forget(self, upto: int) -> None:
        """Drop the entries up to `upto` from memory (they are stored: the hand-off has them)."""
        drop = max(0, min(upto + 1 - self._first, len(self._entries)))
        del self._entries[:drop]
        self._first += drop

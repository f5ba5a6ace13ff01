"""The order sender's execution log: every fill and every order completion it reports, numbered 1, 2, 3, ...

Delivery can fail or repeat across restarts, so with a durable, gap-free sequence the subscriber keeps its last
seq, drops anything at or below it, and asks `since(seq)` for what it missed; the sender never needs to know
whether a push landed. Recording is idempotent: fills keyed by (symbol, trade id), an order completes once."""
from __future__ import annotations

from typing import Iterable

from core.asset_order import AssetOrder, ExchangeFill
from core.sender_messages import Execution, OrderDone, SenderFill, order_done, sender_fill


class FillLog:
    def __init__(self, entries: Iterable[Execution] = ()) -> None:
        self._entries: list[Execution] = []
        self._fill_keys: set[tuple[str, int]] = set()
        self._done: set[str] = set()
        for e in entries:
            self._append(e)

    def _append(self, e: Execution) -> None:
        if e.seq != len(self._entries) + 1:
            raise ValueError(f"log entry seq {e.seq} does not follow {len(self._entries)}")
        self._entries.append(e)
        if isinstance(e, SenderFill):
            self._fill_keys.add(e.key)
        else:
            self._done.add(e.client_order_id)

    @property
    def last_seq(self) -> int:
        """The seq of the latest entry (0 when empty)."""
        return len(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

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
        first, so a subscriber never sees an order closed before the fills that make up its executed quantity."""
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

    def since(self, seq: int, upto: int | None = None, limit: int | None = None) -> list[Execution]:
        """Entries with seq in (seq, upto], oldest first, at most `limit` of them."""
        start = max(0, seq)
        end = self.last_seq if upto is None else min(upto, self.last_seq)
        if limit is not None:
            end = min(end, start + limit)
        return self._entries[start:end] if end > start else []

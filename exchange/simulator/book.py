"""One symbol's price-time priority order book, which also numbers its own changes the way Binance does.

Every change of a level's quantity takes the next update id, and the book remembers the levels changed since the
last diff, so a diff `U..u` can be cut at any time and a snapshot's `lastUpdateId` is the last change it includes.
Both are read in the thread that makes the changes, so snapshot and diffs never disagree."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator

from sortedcontainers import SortedDict

from core.money import ZERO
from core.side import Side
from exchange.simulator.orders import Order


class Level:
    """Orders at one price in arrival order (a dict keeps insertion order and removes in O(1))."""

    __slots__ = ("price", "orders", "total")

    def __init__(self, price: Decimal) -> None:
        self.price = price
        self.orders: dict[int, Order] = {}
        self.total = ZERO


class DepthDiff:
    __slots__ = ("first_id", "last_id", "bids", "asks")

    def __init__(self, first_id: int, last_id: int, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]):
        self.first_id = first_id
        self.last_id = last_id
        self.bids = bids
        self.asks = asks


class Book:
    def __init__(self, symbol: str, first_update_id: int = 1_000_000) -> None:
        self.symbol = symbol
        # Bids keyed by -price so that both sides iterate best-first in ascending key order.
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self.update_id = first_update_id
        self._pending_first = 0  # 0 = nothing pending
        self._pending_bids: dict[Decimal, Decimal] = {}
        self._pending_asks: dict[Decimal, Decimal] = {}

    # ------------------------------------------------------------------ reading
    def side(self, side: Side) -> SortedDict:
        return self._bids if side is Side.BUY else self._asks

    def best(self, side: Side) -> Level | None:
        levels = self.side(side)
        return levels.peekitem(0)[1] if levels else None

    def best_price(self, side: Side) -> Decimal | None:
        level = self.best(side)
        return level.price if level is not None else None

    def levels(self, side: Side) -> Iterator[Level]:
        return iter(self.side(side).values())

    def depth(self, side: Side, limit: int) -> list[tuple[Decimal, Decimal]]:
        out = []
        for level in self.side(side).values():
            if len(out) >= limit:
                break
            out.append((level.price, level.total))
        return out

    def level_count(self, side: Side) -> int:
        return len(self.side(side))

    # ------------------------------------------------------------------ changing
    def _key(self, side: Side, price: Decimal) -> Decimal:
        return -price if side is Side.BUY else price

    def _changed(self, side: Side, price: Decimal, total: Decimal) -> None:
        self.update_id += 1
        if not self._pending_first:
            self._pending_first = self.update_id
        (self._pending_bids if side is Side.BUY else self._pending_asks)[price] = total

    def add(self, order: Order) -> None:
        """Rest `order.remaining` at `order.price`, behind everything already there."""
        levels = self.side(order.side)
        key = self._key(order.side, order.price)
        level = levels.get(key)
        if level is None:
            level = levels[key] = Level(order.price)
        level.orders[order.order_id] = order
        level.total += order.remaining
        self._changed(order.side, order.price, level.total)

    def remove(self, order: Order) -> None:
        """Take a resting order off the book (cancel, expiry)."""
        levels = self.side(order.side)
        key = self._key(order.side, order.price)
        level = levels[key]
        del level.orders[order.order_id]
        level.total -= order.remaining
        if not level.orders:
            del levels[key]
            self._changed(order.side, order.price, ZERO)
        else:
            self._changed(order.side, order.price, level.total)

    def reduce(self, order: Order, qty: Decimal) -> None:
        """A resting order traded or shrank by `qty`; it leaves the book when nothing remains."""
        levels = self.side(order.side)
        key = self._key(order.side, order.price)
        level = levels[key]
        order.remaining -= qty
        level.total -= qty
        if order.remaining <= ZERO:
            del level.orders[order.order_id]
        if not level.orders:
            del levels[key]
            self._changed(order.side, order.price, ZERO)
        else:
            self._changed(order.side, order.price, level.total)

    def grow(self, order: Order, qty: Decimal) -> None:
        """Increase a resting order in place (market maker only: a real client would lose priority)."""
        level = self.side(order.side)[self._key(order.side, order.price)]
        order.remaining += qty
        level.total += qty
        self._changed(order.side, order.price, level.total)

    # ------------------------------------------------------------------ diffs
    def take_diff(self) -> DepthDiff | None:
        """Levels changed since the previous call, with the update-id range covering them; None if none."""
        if not self._pending_first:
            return None
        diff = DepthDiff(self._pending_first, self.update_id, self._pending_bids, self._pending_asks)
        self._pending_first = 0
        self._pending_bids = {}
        self._pending_asks = {}
        return diff

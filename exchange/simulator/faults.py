"""Faults the tests inject through /_admin (ccxt never calls it): delayed answers, rejected orders, forced 429s, a
paused feed, silenced symbols. Counters count down per request; -1 means "until cleared".

A silenced symbol's book goes quiet on a live connection, its changes kept for the next diff (no gap).
`order_delay_*` holds only order placements, `before` or `after` execution, so a test can keep a batch's orders in
flight while other traffic flows."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class OrderReject:
    http_status: int = 400
    code: int = -2010
    msg: str = "Order rejected (simulator fault injection)."
    symbol: str | None = None  # only this symbol's orders (others pass and do not use up the count); None: any


@dataclass(slots=True)
class Faults:
    delay_ms: int = 0
    delay_count: int = 0
    reject: OrderReject | None = None
    reject_count: int = 0
    force_429_count: int = 0
    feed_paused: bool = False
    order_delay_ms: int = 0
    order_delay_count: int = 0
    order_delay_after: bool = False  # False: before the order executes; True: after, before its answer
    silenced: set[str] = field(default_factory=set)

    @staticmethod
    def _take(count: int) -> tuple[bool, int]:
        if count == 0:
            return False, 0
        return True, (count - 1 if count > 0 else count)

    def take_delay(self) -> int:
        hit, self.delay_count = self._take(self.delay_count)
        return self.delay_ms if hit else 0

    def take_reject(self, symbol: str | None = None) -> OrderReject | None:
        if self.reject is not None and self.reject.symbol is not None and symbol != self.reject.symbol:
            return None
        hit, self.reject_count = self._take(self.reject_count)
        return self.reject if hit else None

    def take_order_delay(self) -> tuple[int, bool]:
        """(ms to hold this order placement, whether to hold it after it executed)."""
        hit, self.order_delay_count = self._take(self.order_delay_count)
        return (self.order_delay_ms if hit else 0), self.order_delay_after

    def take_429(self) -> bool:
        hit, self.force_429_count = self._take(self.force_429_count)
        return hit

    def clear(self) -> None:
        self.delay_ms = self.delay_count = self.reject_count = self.force_429_count = 0
        self.order_delay_ms = self.order_delay_count = 0
        self.order_delay_after = False
        self.reject = None
        self.feed_paused = False
        self.silenced = set()

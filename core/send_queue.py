"""Requests waiting for rate-limit room, released in FIFO order exactly as fast as the budgets allow.

Each request is admitted by the RateLimiter first, so in normal running the exchange never answers 429. When
nothing fits, `wait_ms` says how long until the head will, so the sender sleeps instead of polling. A request
refused with a 429 anyway was not executed: it goes back to the FRONT with its client order id."""
from __future__ import annotations

from collections import deque
from typing import Generic, Iterable, TypeVar

from core.rate_limits import RateLimiter

T = TypeVar("T")


class SendQueue(Generic[T]):
    def __init__(self, limiter: RateLimiter, weight: int, orders: int = 1) -> None:
        """Every item costs `weight` request weight, one raw request and `orders` orders."""
        self.limiter = limiter
        self.weight = weight
        self.orders = orders
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, items: Iterable[T]) -> None:
        self._items.extend(items)

    def push_front(self, items: Iterable[T]) -> None:
        """Put refused items back ahead of everything, keeping their relative order."""
        self._items.extendleft(reversed(list(items)))

    def take(self, max_items: int | None = None) -> list[T]:
        """Pop and admit as many items as fit every budget right now (at most `max_items`); their usage is
        recorded in the limiter."""
        out: list[T] = []
        while self._items and (max_items is None or len(out) < max_items):
            if not self.limiter.try_acquire(self.weight, self.orders):
                break
            out.append(self._items.popleft())
        return out

    def wait_ms(self) -> int | None:
        """None when empty; else milliseconds until the head fits (0 = now)."""
        if not self._items:
            return None
        return self.limiter.wait_ms(self.weight, self.orders)

    def remove(self, item: T) -> bool:
        try:
            self._items.remove(item)
        except ValueError:
            return False
        return True

    def __iter__(self):  # noqa: ANN204
        return iter(list(self._items))

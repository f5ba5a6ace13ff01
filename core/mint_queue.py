"""The minter's queue: mints owed, deduplicated by order id, taken in batches, failed ones retried after a backoff.

The same order can arrive several times (a shard's push, its restart, the minter's own catch-up) and goes out once
per attempt. A failure waits a delay that doubles per failure of that order (capped), so one order the chain keeps
refusing does not hold back the others. Pure: the caller gives the time.
"""
from __future__ import annotations

from typing import Iterable

from core.mint_request import MintRequest


class MintQueue:
    def __init__(self, retry_initial_ms: int, retry_max_ms: int) -> None:
        self.retry_initial_ms = retry_initial_ms
        self.retry_max_ms = retry_max_ms
        self._waiting: dict[str, MintRequest] = {}  # in arrival order (a retried one goes to the back)
        self._not_before: dict[str, int] = {}  # order id -> earliest retry (ms); absent: ready now
        self._failures: dict[str, int] = {}  # order id -> failures in a row
        self._in_flight: dict[str, MintRequest] = {}

    def __len__(self) -> int:
        return len(self._waiting) + len(self._in_flight)

    def add(self, requests: Iterable[MintRequest]) -> int:
        """Queue the orders not already waiting or in flight; returns how many were new."""
        added = 0
        for m in requests:
            if m.order_id in self._waiting or m.order_id in self._in_flight:
                continue
            self._waiting[m.order_id] = m
            added += 1
        return added

    def take(self, limit: int, now_ms: int) -> list[MintRequest]:
        """Up to `limit` ready requests, oldest first; they are in flight until landed/failed/dropped."""
        out: list[MintRequest] = []
        for oid, m in self._waiting.items():
            if len(out) >= limit:
                break
            if self._not_before.get(oid, 0) <= now_ms:
                out.append(m)
        for m in out:
            del self._waiting[m.order_id]
            self._not_before.pop(m.order_id, None)
            self._in_flight[m.order_id] = m
        return out

    def landed(self, order_ids: Iterable[str]) -> None:
        """Minted and taken by the order's shard: done."""
        for oid in order_ids:
            self._in_flight.pop(oid, None)
            self._failures.pop(oid, None)

    def dropped(self, order_ids: Iterable[str]) -> None:
        """Nothing to mint (fewer units than one token unit): forgotten, not retried."""
        self.landed(order_ids)

    def failed(self, order_ids: Iterable[str], now_ms: int) -> None:
        """Back in the queue, ready again after the order's backoff."""
        for oid in order_ids:
            m = self._in_flight.pop(oid, None)
            if m is None:
                continue
            failures = self._failures.get(oid, 0) + 1
            self._failures[oid] = failures
            self._waiting[oid] = m
            self._not_before[oid] = now_ms + self.delay_ms(failures)

    def delay_ms(self, failures: int) -> int:
        """retry_initial_ms after the first failure, doubling each time, never above retry_max_ms."""
        return min(self.retry_max_ms, self.retry_initial_ms * 2 ** min(failures - 1, 32))

    def next_ready_ms(self) -> int | None:
        """When the earliest waiting request is ready (None: nothing waits)."""
        if not self._waiting:
            return None
        return min(self._not_before.get(oid, 0) for oid in self._waiting)

    def waiting(self) -> list[MintRequest]:
        return list(self._waiting.values()) + list(self._in_flight.values())

    def in_flight(self) -> list[str]:
        return list(self._in_flight)

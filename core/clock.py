"""Injected time and ids, so that core logic and its tests are deterministic."""
from __future__ import annotations

import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: tests and simulations drive it."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("time does not run backwards")
        self._now += ms
        return self._now

    def set(self, ms: int) -> None:
        if ms < self._now:
            raise ValueError("time does not run backwards")
        self._now = ms


class SequentialIds:
    """Deterministic ids `<prefix>-<n>`; a restarted owner resumes from its persisted counter."""

    def __init__(self, prefix: str, start: int = 1) -> None:
        self._prefix = prefix
        self._counter = itertools.count(start)
        self.last = start - 1

    def next(self) -> str:
        self.last = next(self._counter)
        return f"{self._prefix}-{self.last}"

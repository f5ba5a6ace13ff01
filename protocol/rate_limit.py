"""Token buckets for the gateway's limits (per session, per user, global; §10.8).

Not core's sliding-window log (core/rate_limits.py), which mirrors Binance's counting so we never exceed it: here
we are the one limiting, a short burst is fine, and a bucket costs two integer operations per message. Integer
milli-tokens: exact, no drift."""
from __future__ import annotations


class TokenBucket:
    """`rate_per_s` tokens per second, at most `burst` in hand. A request of weight `n` takes n tokens."""

    __slots__ = ("rate_per_s", "burst", "_milli", "_last_ms")

    def __init__(self, rate_per_s: int, burst: int, now_ms: int) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError(f"rate_per_s and burst must be positive, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._milli = burst * 1000  # a new bucket starts full
        self._last_ms = now_ms

    def _refill(self, now_ms: int) -> None:
        elapsed = now_ms - self._last_ms
        if elapsed > 0:  # a clock that steps back refills nothing
            # rate_per_s tokens per 1000 ms = rate_per_s milli-tokens per ms
            self._milli = min(self.burst * 1000, self._milli + elapsed * self.rate_per_s)
            self._last_ms = now_ms

    def take(self, n: int, now_ms: int) -> int:
        """Take `n` tokens and return 0, or take nothing and return the ms until `n` would fit."""
        self._refill(now_ms)
        need = n * 1000
        if self._milli >= need:
            self._milli -= need
            return 0
        # Up: waiting one ms too long is harmless, one too short earns the client another NAK.
        return max(1, -(-(need - self._milli) // self.rate_per_s))

    def available(self, now_ms: int) -> int:
        self._refill(now_ms)
        return self._milli // 1000

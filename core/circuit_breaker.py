"""When the sender stops sending: a circuit breaker on the exchange's rejects.

One reject may be a bad order; `threshold` in a row for a symbol means something resending will not fix, and each
further order burns weight and ORDERS slots. One insufficient-balance reject stops every symbol: books and exchange
disagree. A tripped breaker holds until `indexmaker resume` or `cool_off_ms`; an accepted order resets the count.
Plain data, stored with the sender's state."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from core.clock import Clock

#: The key of the account-wide breaker (no symbol is named "*").
ACCOUNT = "*"
CONSECUTIVE_REJECTS = "CONSECUTIVE_REJECTS"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"


@dataclass(frozen=True, slots=True)
class Trip:
    """An open breaker: `key` is a symbol or ACCOUNT; `reason` is CONSECUTIVE_REJECTS or INSUFFICIENT_BALANCE;
    `detail` is the exchange's last answer."""

    key: str
    reason: str
    detail: str
    since_ms: int
    rejects: int

    @property
    def scope(self) -> str:
        return "account" if self.key == ACCOUNT else "symbol"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "scope": self.scope, "reason": self.reason, "detail": self.detail,
                "since_ms": self.since_ms, "rejects": self.rejects}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Trip":
        return cls(str(d["key"]), str(d["reason"]), str(d.get("detail", "")), int(d["since_ms"]),
                   int(d.get("rejects", 0)))


class CircuitBreaker:
    def __init__(self, threshold: int, cool_off_ms: int, clock: Clock) -> None:
        if threshold < 1 or cool_off_ms < 0:
            raise ValueError(f"need threshold >= 1 and cool_off_ms >= 0, got {threshold} and {cool_off_ms}")
        self.threshold = threshold
        self.cool_off_ms = cool_off_ms
        self.clock = clock
        self._streak: dict[str, int] = {}  # symbol -> consecutive rejects since its last accepted order
        self._open: dict[str, Trip] = {}

    # ------------------------------------------------------------------ outcomes
    def on_reject(self, symbol: str, detail: str, *, insufficient_balance: bool = False) -> Trip | None:
        """Count one exchange reject; returns the breaker it trips now (None if none trips, or it already was)."""
        streak = self._streak.get(symbol, 0) + 1
        self._streak[symbol] = streak
        now = self.clock.now_ms()
        if insufficient_balance and ACCOUNT not in self._open:
            trip = self._open[ACCOUNT] = Trip(ACCOUNT, INSUFFICIENT_BALANCE, f"{symbol}: {detail}", now, 1)
            return trip
        if streak >= self.threshold and symbol not in self._open:
            trip = self._open[symbol] = Trip(symbol, CONSECUTIVE_REJECTS, detail, now, streak)
            return trip
        return None

    def on_accepted(self, symbol: str) -> bool:
        """The exchange took an order of `symbol`: its run of rejects is over (an open breaker stays open).
        True if that changed the state (a run was counting)."""
        return self._streak.pop(symbol, None) is not None

    # ------------------------------------------------------------------ state
    def blocking(self, symbol: str) -> Trip | None:
        """The open breaker that stops `symbol` (the account's first), or None. Does not expire anything: the
        owner calls `expire()` so that what it releases is released in one place."""
        return self._open.get(ACCOUNT) or self._open.get(symbol)

    def expire(self) -> list[Trip]:
        """Close the breakers whose cool-off has passed; returns them."""
        if self.cool_off_ms == 0:
            return []
        now = self.clock.now_ms()
        done = [t for t in self._open.values() if now - t.since_ms >= self.cool_off_ms]
        for t in done:
            self._clear(t.key)
        return done

    def next_expiry_ms(self) -> int | None:
        """When the earliest open breaker cools off (epoch ms), or None (none open, or no cool-off)."""
        if self.cool_off_ms == 0 or not self._open:
            return None
        return min(t.since_ms for t in self._open.values()) + self.cool_off_ms

    def resume(self, key: str) -> Trip | None:
        """The operator clears the breaker of a symbol (or ACCOUNT); returns it, None if it was not open."""
        if key not in self._open:
            self._streak.pop(key, None)
            return None
        return self._clear(key)

    def _clear(self, key: str) -> Trip:
        self._streak.pop(key, None)  # a cleared symbol starts a new count: the next reject alone does not trip it
        return self._open.pop(key)

    @property
    def open(self) -> list[Trip]:
        return sorted(self._open.values(), key=lambda t: (t.since_ms, t.key))

    def to_dict(self) -> dict[str, Any]:
        return {"streak": dict(self._streak), "open": [t.to_dict() for t in self.open]}

    def load(self, d: Mapping[str, Any] | None) -> None:
        """Restore what `to_dict` wrote (None or {}: a sender that never stored a breaker, nothing open)."""
        d = d or {}
        self._streak = {str(k): int(v) for k, v in (d.get("streak") or {}).items()}
        self._open = {t.key: t for t in (Trip.from_dict(x) for x in d.get("open") or ())}


def describe(trip: Mapping[str, Any]) -> str:
    """One line for operators (status, /health, the CLI) from a Trip's `to_dict()`: what is stopped, why, since
    when (UTC). Pure: the time printed is the one stored."""
    since = datetime.fromtimestamp(int(trip["since_ms"]) / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stopped(str(trip['key']))}: {trip['reason']} since {since} UTC ({trip.get('detail', '')})"


def stopped(key: str) -> str:
    """What a breaker's key stops, in words: a symbol, or the whole account."""
    return "the whole account" if key == ACCOUNT else key

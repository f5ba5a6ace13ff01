"""Binance's rate limits as the exchange enforces them: fixed calendar windows (a minute, 10 s, a day, aligned
to the epoch), REQUEST_WEIGHT and RAW_REQUESTS per IP, ORDERS per account counting only *unfilled* orders (a
first fill gives the slot back). Over a limit: 429 with Retry-After until the window ends; an IP that keeps
going after `ban_after_429s` refusals in one window is banned (418) for `ban_seconds`.

Pure bookkeeping over an injected clock: the server asks, this module answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from core.clock import Clock

_INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


class RateLimitExceeded(Exception):
    def __init__(self, http_status: int, code: int, msg: str, retry_after_s: int) -> None:
        super().__init__(f"{http_status} {code} {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class Window:
    """One rateLimits entry: at most `limit` per `interval_num` x `interval`, counted per key."""

    kind: str
    interval: str
    interval_num: int
    limit: int
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (window start ms, count)

    @property
    def length_ms(self) -> int:
        return _INTERVAL_MS[self.interval] * self.interval_num

    @property
    def header_suffix(self) -> str:
        return f"{self.interval_num}{_LETTER[self.interval]}"

    def _start(self, now: int) -> int:
        return now - now % self.length_ms

    def used(self, key: str, now: int) -> int:
        start, count = self.counts.get(key, (0, 0))
        return count if start == self._start(now) else 0

    def add(self, key: str, n: int, now: int) -> int:
        start = self._start(now)
        old_start, count = self.counts.get(key, (start, 0))
        count = (count if old_start == start else 0) + n
        self.counts[key] = (start, max(count, 0))
        return max(count, 0)

    def retry_after_s(self, now: int) -> int:
        return max(1, -(-(self._start(now) + self.length_ms - now) // 1000))  # ceil to whole seconds

    def as_payload(self, count: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"rateLimitType": self.kind, "interval": self.interval,
                               "intervalNum": self.interval_num, "limit": self.limit}
        if count is not None:
            out["count"] = count
        return out


class RateLimiter:
    def __init__(self, rate_limits: Iterable[dict[str, Any]], clock: Clock, *, ban_after_429s: int = 3,
                 ban_seconds: int = 120) -> None:
        self.clock = clock
        self.windows = [Window(r["rateLimitType"], r["interval"], int(r["intervalNum"]), int(r["limit"]))
                        for r in rate_limits]
        self.weight = [w for w in self.windows if w.kind == "REQUEST_WEIGHT"]
        self.raw = [w for w in self.windows if w.kind == "RAW_REQUESTS"]
        self.orders = [w for w in self.windows if w.kind == "ORDERS"]
        self.ban_after_429s = ban_after_429s
        self.ban_seconds = ban_seconds
        self.banned_until: dict[str, int] = {}
        self._refusals: dict[str, tuple[int, int]] = {}  # ip -> (window start, 429s answered)

    def payload(self) -> list[dict[str, Any]]:
        return [w.as_payload() for w in self.windows]

    # ------------------------------------------------------------------ per IP
    def charge(self, ip: str, weight: int) -> None:
        """Count one request of `weight` for `ip`; raise RateLimitExceeded (429 / 418) when over a limit."""
        now = self.clock.now_ms()
        until = self.banned_until.get(ip)
        if until is not None:
            if now < until:
                raise RateLimitExceeded(
                    418, -1003,
                    f"Way too much request weight used; IP banned until {until}. "
                    "Please use WebSocket Streams for live updates to avoid bans.",
                    max(1, -(-(until - now) // 1000)))
            del self.banned_until[ip]
        for w in self.raw:
            if w.add(ip, 1, now) > w.limit:
                self._refuse(ip, w, now, f"Too many requests; current limit of IP(s) is {w.limit} requests per "
                                         f"{w.interval_num} {w.interval}.")
        for w in self.weight:
            if w.add(ip, weight, now) > w.limit:
                self._refuse(ip, w, now, f"Too much request weight used; current limit is {w.limit} request weight "
                                         f"per {w.interval_num} {w.interval}. Please use WebSocket Streams for live "
                                         "updates to avoid polling the API.")

    def _refuse(self, ip: str, w: Window, now: int, msg: str) -> None:
        start = now - now % w.length_ms
        old_start, n = self._refusals.get(ip, (start, 0))
        n = (n if old_start == start else 0) + 1
        self._refusals[ip] = (start, n)
        if n > self.ban_after_429s:
            until = now + self.ban_seconds * 1000
            self.banned_until[ip] = until
            raise RateLimitExceeded(
                418, -1003,
                f"Way too much request weight used; IP banned until {until}. "
                "Please use WebSocket Streams for live updates to avoid bans.", self.ban_seconds)
        raise RateLimitExceeded(429, -1003, msg, w.retry_after_s(now))

    def refuse_forced(self, ip: str) -> RateLimitExceeded:
        """A 429 forced by fault injection, counted like a real one (so ignoring it leads to a ban)."""
        now = self.clock.now_ms()
        w = self.weight[0] if self.weight else Window("REQUEST_WEIGHT", "MINUTE", 1, 6000)
        try:
            self._refuse(ip, w, now, f"Too much request weight used; current limit is {w.limit} request weight per "
                                     f"{w.interval_num} {w.interval}. Please use WebSocket Streams for live updates "
                                     "to avoid polling the API.")
        except RateLimitExceeded as e:
            return e
        raise AssertionError("unreachable")

    def weight_headers(self, ip: str) -> dict[str, str]:
        now = self.clock.now_ms()
        return {f"X-MBX-USED-WEIGHT-{w.header_suffix}": str(w.used(ip, now)) for w in self.weight}

    def used_weight(self, ip: str) -> int:
        now = self.clock.now_ms()
        return max((w.used(ip, now) for w in self.weight), default=0)

    # ------------------------------------------------------------------ per account
    def check_order(self, account: str) -> None:
        now = self.clock.now_ms()
        for w in self.orders:
            if w.used(account, now) >= w.limit:
                raise RateLimitExceeded(
                    429, -1015,
                    f"Too many new orders; current limit is {w.limit} orders per {w.interval_num} {w.interval}.",
                    w.retry_after_s(now))

    def order_placed(self, account: str) -> None:
        now = self.clock.now_ms()
        for w in self.orders:
            w.add(account, 1, now)

    def order_first_fill(self, account: str) -> None:
        """Binance counts unfilled orders: the first fill of an order gives its slot back in every interval."""
        now = self.clock.now_ms()
        for w in self.orders:
            if w.used(account, now) > 0:
                w.add(account, -1, now)

    def order_headers(self, account: str) -> dict[str, str]:
        now = self.clock.now_ms()
        return {f"X-MBX-ORDER-COUNT-{w.header_suffix}": str(w.used(account, now)) for w in self.orders}

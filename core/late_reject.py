"""When the solver gives up on an order: deferred too long for a reason that time may not fix.

No liquidity, too small and a sale below its minimum may pass (books refill), so an order is rejected only after
`reject_after_ms` deferred for such a reason at every cycle; rate limits and a full batch always pass. A stale book
is our feed's fault: its own clock is `stale_reject_after_ms` (0: wait). A pair the exchange halted never ends in a
reject: the order waits for it (or for its user's cancel). A change of kind restarts the clock."""
from __future__ import annotations

from typing import Iterable

from core.batch_planner import Deferred
from core.market_status import is_closed_reason
from core.sell_plan import BELOW_MINIMUM, TOO_SMALL_TO_SELL
from core.stale_books import is_stale_reason, symbols_of


def lasting(reason: str) -> bool:
    return reason in ("TOO_SMALL", BELOW_MINIMUM, TOO_SMALL_TO_SELL) or reason.startswith("NO_LIQUIDITY")


def explain(reason: str, after_ms: int) -> str:
    if is_stale_reason(reason):
        return f"book of {', '.join(symbols_of(reason)) or 'an asset'} stale for {after_ms // 1000} s"
    if reason == BELOW_MINIMUM:
        return f"the book would not pay the minimum asked for {after_ms // 1000} s"
    if reason == TOO_SMALL_TO_SELL:
        return f"too small to sell (worth nothing at the collateral unit) for {after_ms // 1000} s"
    text = (f"no liquidity for {reason.split(':', 1)[1]} within the slippage cap" if reason.startswith("NO_LIQUIDITY:")
            else "no liquidity" if reason.startswith("NO_LIQUIDITY") else "too small to buy one unit of the index")
    return f"{text} for {after_ms // 1000} s"


class StuckOrders:
    def __init__(self, reject_after_ms: int, stale_reject_after_ms: int = 0) -> None:
        self.reject_after_ms = reject_after_ms
        self.stale_reject_after_ms = stale_reject_after_ms
        #: order id -> (kind, first deferral (ms) of the current unbroken run of that kind)
        self.since: dict[str, tuple[str, int]] = {}

    def _limit(self, reason: str) -> tuple[str, int] | None:
        """(kind, delay) of a reason that may end in a reject; None: never one (a halted pair: the order waits for
        the exchange to reopen it, or for the user's cancel)."""
        if is_closed_reason(reason):
            return None
        if is_stale_reason(reason):
            return ("stale", self.stale_reject_after_ms) if self.stale_reject_after_ms > 0 else None
        return ("market", self.reject_after_ms) if lasting(reason) else None

    def update(self, deferred: Iterable[Deferred], now_ms: int) -> list[tuple[str, str]]:
        """One planning cycle's deferrals; returns (order id, reason text) of the orders to reject now. An order not
        deferred this cycle (planned, or gone), or deferred for the other kind of reason, starts over."""
        stuck = {}
        for d in deferred:
            limit = self._limit(d.reason)
            if limit is not None:
                stuck[d.order_id] = (d.reason, *limit)
        self.since = {oid: run for oid, run in self.since.items() if oid in stuck and stuck[oid][1] == run[0]}
        out: list[tuple[str, str]] = []
        for oid, (reason, kind, after_ms) in stuck.items():
            _, since = self.since.setdefault(oid, (kind, now_ms))
            if now_ms - since >= after_ms:
                out.append((oid, explain(reason, after_ms)))
                del self.since[oid]
        return out

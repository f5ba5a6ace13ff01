"""When the solver gives up on an order: deferred too long for a reason that time may not fix.

The planner defers an order for no liquidity in one of its assets (within the slippage cap) or for being too small
to buy one index unit. Both can pass (a book refills, prices move), so an order is not rejected at the first
deferral; but a user must not wait forever either: after `reject_after_ms` of being deferred at every planning
cycle for such a reason, the order is rejected with it. Rate limits and a full batch always pass: never a reason.
"""
from __future__ import annotations

from typing import Iterable

from core.batch_planner import Deferred


def lasting(reason: str) -> bool:
    return reason == "TOO_SMALL" or reason.startswith("NO_LIQUIDITY")


def explain(reason: str, after_ms: int) -> str:
    text = (f"no liquidity for {reason.split(':', 1)[1]} within the slippage cap" if reason.startswith("NO_LIQUIDITY:")
            else "no liquidity" if reason.startswith("NO_LIQUIDITY") else "too small to buy one unit of the index")
    return f"{text} for {after_ms // 1000} s"


class StuckOrders:
    def __init__(self, reject_after_ms: int) -> None:
        self.reject_after_ms = reject_after_ms
        self.since: dict[str, int] = {}  # order id -> first deferral (ms) of the current unbroken run

    def update(self, deferred: Iterable[Deferred], now_ms: int) -> list[tuple[str, str]]:
        """One planning cycle's deferrals; returns (order id, reason text) of the orders to reject now. An order not
        deferred this cycle (planned, or gone) starts over."""
        stuck = {d.order_id: d.reason for d in deferred if lasting(d.reason)}
        self.since = {oid: t for oid, t in self.since.items() if oid in stuck}
        out: list[tuple[str, str]] = []
        for oid, reason in stuck.items():
            if now_ms - self.since.setdefault(oid, now_ms) >= self.reject_after_ms:
                out.append((oid, explain(reason, self.reject_after_ms)))
                del self.since[oid]
        return out

"""Orders deferred for a lasting reason are rejected after the delay; others never; a break starts over."""
from __future__ import annotations

from core.batch_planner import Deferred
from core.late_reject import StuckOrders


def test_rejected_only_after_an_unbroken_run_of_lasting_deferrals():
    s = StuckOrders(60_000)
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("b", "RATE_LIMIT"),
                     Deferred("c", "TOO_SMALL")], 0) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("c", "TOO_SMALL")], 59_999) == []
    # c was planned once in between: its clock starts over.
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 30_000 + 29_999) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("c", "TOO_SMALL"),
                     Deferred("b", "RATE_LIMIT")], 60_000) == [
        ("a", "no liquidity for XUSDC within the slippage cap for 60 s")]
    assert s.update([Deferred("c", "TOO_SMALL"), Deferred("b", "RATE_LIMIT")], 120_000) == [
        ("c", "too small to buy one unit of the index for 60 s")]
    assert s.update([Deferred("b", "RATE_LIMIT")], 10**9) == []  # rate limits always pass

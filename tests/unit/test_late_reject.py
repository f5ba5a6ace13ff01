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


def test_a_stale_book_never_counts_towards_the_liquidity_timeout():
    s = StuckOrders(60_000, stale_reject_after_ms=0)
    assert s.update([Deferred("a", "STALE_BOOK:XUSDC")], 0) == []
    assert s.update([Deferred("a", "STALE_BOOK:XUSDC")], 10**9) == []  # 0: waits as long as the book is stale
    # no liquidity once the book is back: its own clock starts then, not at the first stale deferral
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 10**9 + 1) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 10**9 + 60_000) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 10**9 + 60_001) == [
        ("a", "no liquidity for XUSDC within the slippage cap for 60 s")]


def test_stale_deferrals_have_their_own_clock_and_a_switch_starts_over():
    s = StuckOrders(60_000, stale_reject_after_ms=900_000)
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("b", "STALE_BOOK:XUSDC,YUSDC")], 0) == []
    # a's liquidity run is broken by a stale book: neither clock reaches its limit
    assert s.update([Deferred("a", "STALE_BOOK:XUSDC"), Deferred("b", "STALE_BOOK:XUSDC,YUSDC")], 59_000) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("b", "STALE_BOOK:YUSDC")], 60_000) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("b", "STALE_BOOK:YUSDC")], 119_999) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC"), Deferred("b", "STALE_BOOK:YUSDC")], 120_000) == [
        ("a", "no liquidity for XUSDC within the slippage cap for 60 s")]
    assert s.update([Deferred("b", "STALE_BOOK:YUSDC")], 899_999) == []
    assert s.update([Deferred("b", "STALE_BOOK:YUSDC")], 900_000) == [("b", "book of YUSDC stale for 900 s")]


def test_a_halted_pair_never_ends_in_a_reject_and_the_market_clock_starts_after_it():
    s = StuckOrders(60_000, stale_reject_after_ms=900_000)
    for t in (0, 10**6, 10**9):
        assert s.update([Deferred("a", "MARKET_CLOSED:XUSDC")], t) == []  # waits for the exchange to reopen it
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 10**9 + 1) == []
    assert s.update([Deferred("a", "NO_LIQUIDITY:XUSDC")], 10**9 + 60_001) != []  # its own clock, from reopening


def test_a_sale_below_its_minimum_is_rejected_after_the_delay():
    s = StuckOrders(60_000)
    assert s.update([Deferred("s", "BELOW_MINIMUM")], 0) == []
    assert s.update([Deferred("s", "BELOW_MINIMUM")], 59_999) == []
    assert s.update([Deferred("s", "BELOW_MINIMUM"), Deferred("t", "TOO_SMALL_TO_SELL")], 60_000) == [
        ("s", "the book would not pay the minimum asked for 60 s")]
    assert s.update([Deferred("t", "TOO_SMALL_TO_SELL")], 120_000) == [
        ("t", "too small to sell (worth nothing at the collateral unit) for 60 s")]

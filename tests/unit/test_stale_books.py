"""When a book is stale, and how the reason that defers its orders is read back."""
from __future__ import annotations

from decimal import Decimal

from core.basket import Basket, BasketAsset
from core.stale_books import is_stale_reason, stale_reason, stale_symbols, symbols_of, waiting_on_stale


def test_stale_when_no_snapshot_never_seen_or_silent_too_long():
    snap = {"A", "B", "C"}  # D has none (not there yet, or being rebuilt after a gap)
    seen = {"A": 1_000.0, "B": 4_000.0, "D": 5_900.0}  # C never heard from
    out = stale_symbols(["A", "B", "C", "D"], snap.__contains__, seen, now_ms=6_000.0, stale_after_ms=2_000)
    assert out == ["A", "C", "D"]  # A: 5 s of silence; B: 2 s exactly is still fresh
    assert stale_symbols(["B"], snap.__contains__, seen, now_ms=6_000.1, stale_after_ms=2_000) == ["B"]


def test_reason_names_every_stale_book_and_reads_back():
    reason = stale_reason(["YUSDC", "XUSDC"])
    assert reason == "STALE_BOOK:XUSDC,YUSDC" and is_stale_reason(reason)
    assert symbols_of(reason) == ["XUSDC", "YUSDC"]
    assert not is_stale_reason("NO_LIQUIDITY:XUSDC") and symbols_of("NO_LIQUIDITY:XUSDC") == []


def test_waiting_on_stale_lists_only_the_indexes_that_need_one():
    baskets = {"P": Basket("P", (BasketAsset("XUSDC", Decimal(1)), BasketAsset("YUSDC", Decimal(2)))),
               "Q": Basket("Q", (BasketAsset("ZUSDC", Decimal(1)),))}
    assert waiting_on_stale(baskets, {"YUSDC", "WUSDC"}) == {"P": ["YUSDC"]}
    assert waiting_on_stale(baskets, set()) == {}

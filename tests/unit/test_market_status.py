"""Halted pairs (core/market_status.py): a -1013 closes a pair, only the exchange's TRADING reopens it, and a pair
exchangeInfo no longer lists stays closed."""
from __future__ import annotations

from core.market_status import ClosedPairs, closed_reason, is_closed_reason


def test_a_pair_reopens_only_when_the_exchange_lists_it_trading() -> None:
    c = ClosedPairs()
    assert not c and c.close("AUSDC") and not c.close("AUSDC")  # the second -1013 is no news
    assert c.update({"AUSDC": "BREAK", "BUSDC": "TRADING", "CUSDC": "HALT"}) == ([], ["CUSDC"])
    assert c.closed == {"AUSDC": "BREAK", "CUSDC": "HALT"}
    assert c.update({"BUSDC": "TRADING"}) == ([], [])  # not listed: AUSDC and CUSDC stay closed
    assert c.update({"AUSDC": "TRADING", "CUSDC": "TRADING"}) == (["AUSDC", "CUSDC"], [])
    assert not c and c.symbols() == []


def test_the_deferral_reason_names_the_closed_pairs() -> None:
    reason = closed_reason(["BUSDC", "AUSDC"])
    assert reason == "MARKET_CLOSED:AUSDC,BUSDC" and is_closed_reason(reason)
    assert not is_closed_reason("STALE_BOOK:AUSDC") and not is_closed_reason("NO_LIQUIDITY:AUSDC")

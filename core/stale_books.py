"""Stale books: when a symbol's book may not be planned on, and how the orders that need it are told.

A book without a snapshot, or silent for `stale_after_ms`, may be far from the exchange's: a limit computed from it
could miss the market or pay through it. The planner treats it as having no book, but defers its orders as
STALE_BOOK:<symbols>, never NO_LIQUIDITY: the cause is our feed, so the liquidity timeout must not reject them."""
from __future__ import annotations

from typing import Callable, Collection, Iterable, Mapping

from core.basket import Basket
from core.symbol_reasons import held_in, is_kind, reason_naming

STALE_BOOK = "STALE_BOOK"


def stale_symbols(symbols: Iterable[str], has_snapshot: Callable[[str], bool], last_seen_ms: Mapping[str, float],
                  now_ms: float, stale_after_ms: int) -> list[str]:
    """The symbols (in the given order) whose book has no snapshot, or saw nothing for more than stale_after_ms."""
    out = []
    for s in symbols:
        seen = last_seen_ms.get(s)
        if seen is None or now_ms - seen > stale_after_ms or not has_snapshot(s):
            out.append(s)
    return out


def stale_in(basket: Basket, stale: Collection[str]) -> list[str]:
    """The basket's symbols that are stale, sorted (empty: the index may be planned)."""
    return held_in(basket, stale)


def stale_reason(symbols: Iterable[str]) -> str:
    """The deferral reason of an order whose index needs these stale books."""
    return reason_naming(STALE_BOOK, symbols)


def is_stale_reason(reason: str) -> bool:
    return is_kind(reason, STALE_BOOK)


def symbols_of(reason: str) -> list[str]:
    """The stale books a STALE_BOOK reason names ([] for any other reason)."""
    if not is_stale_reason(reason):
        return []
    _, _, tail = reason.partition(":")
    return [s for s in tail.split(",") if s]


def waiting_on_stale(baskets: Mapping[str, Basket], stale: Collection[str]) -> dict[str, list[str]]:
    """Per index that cannot be planned now, the stale books it waits for (what status and health show)."""
    out = {}
    for index, basket in baskets.items():
        books = stale_in(basket, stale)
        if books:
            out[index] = books
    return out

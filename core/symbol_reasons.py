"""Deferral reasons that name symbols, `KIND:SYM1,SYM2` (STALE_BOOK, MARKET_CLOSED): an index waits for the symbols
of its basket that are in a set, and the reason says which, sorted, so the same wait reads the same every cycle."""
from __future__ import annotations

from typing import Collection, Iterable

from core.basket import Basket


def held_in(basket: Basket, symbols: Collection[str]) -> list[str]:
    """The basket's symbols among `symbols`, sorted (empty: the index need not wait for them)."""
    return sorted(a.symbol for a in basket.assets if a.symbol in symbols)


def reason_naming(kind: str, symbols: Iterable[str]) -> str:
    return f"{kind}:{','.join(sorted(symbols))}"


def is_kind(reason: str, kind: str) -> bool:
    return reason == kind or reason.startswith(kind + ":")

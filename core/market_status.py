"""Pairs the exchange has halted (status BREAK, HALT, ...: not TRADING). An order for one is refused (-1013 "Market
is closed."), so an index holding one cannot be bought whole: its orders wait, deferred with MARKET_CLOSED, never
rejected for it (the user may cancel), and no batch buys the rest of its basket meanwhile.

The sender learns a halt from a -1013 answer or from exchangeInfo, which it reads again while a pair is closed
(a pair reopens only when the exchange lists it TRADING), and tells the solver with its order budget."""
from __future__ import annotations

from typing import Collection, Iterable, Mapping

from core.basket import Basket
from core.symbol_filters import MARKET_CLOSED
from core.symbol_reasons import held_in, is_kind, reason_naming

TRADING = "TRADING"


class ClosedPairs:
    def __init__(self) -> None:
        #: symbol -> the status the exchange gave (or "CLOSED" after a -1013 before exchangeInfo said more)
        self.closed: dict[str, str] = {}

    def close(self, symbol: str, status: str = "CLOSED") -> bool:
        """A pair found closed; True if it was not known closed."""
        fresh = symbol not in self.closed
        self.closed[symbol] = status
        return fresh

    def update(self, statuses: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """The exchange's status of some pairs: (reopened, newly closed), each sorted. Pairs it did not list keep
        their state (a pair it stopped listing stays closed: it is not TRADING)."""
        reopened = sorted(s for s, st in statuses.items() if st == TRADING and s in self.closed)
        closed = sorted(s for s, st in statuses.items() if st != TRADING and s not in self.closed)
        for s in reopened:
            del self.closed[s]
        for s, st in statuses.items():
            if st != TRADING:
                self.closed[s] = st
        return reopened, closed

    def __bool__(self) -> bool:
        return bool(self.closed)

    def symbols(self) -> list[str]:
        return sorted(self.closed)


def closed_in(basket: Basket, closed: Collection[str]) -> list[str]:
    """The basket's pairs that are closed, sorted (empty: the index may be planned)."""
    return held_in(basket, closed)


def closed_reason(symbols: Iterable[str]) -> str:
    """The deferral reason of an order whose index holds these closed pairs."""
    return reason_naming(MARKET_CLOSED, symbols)


def is_closed_reason(reason: str) -> bool:
    return is_kind(reason, MARKET_CLOSED)

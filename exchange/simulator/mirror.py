"""The paper exchange's rule for keeping its books a copy of the upstream exchange's: pure, no I/O.

The upstream's top levels become the market maker's levels of the local book, so paper orders match them with the
simulator's engine and filters. Each look at the upstream book is compared with the previous look, price by price:
only a level whose upstream quantity changed is set again (to the new quantity), a level gone upstream is withdrawn.
So a paper fill, which takes quantity from the local level only, leaves that level short until the upstream reports
a new quantity at that price; the new figure then replaces it whole (the upstream never saw the paper order, so its
figure is what rests there now). Withdrawals come before the other changes, so a moving book never crosses itself
halfway through an update. With no upstream (the feed is down), `withdraw_all` takes every level off: nothing fills
on prices nobody is quoting any more."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from core.money import ZERO
from core.side import Side

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class LevelChange:
    """Set the local market maker's quantity at `price` on `side` to `qty` (0: withdraw the level)."""

    side: Side
    price: Decimal
    qty: Decimal


class UpstreamMirror:
    """The upstream levels last seen per symbol and side, and the changes a new look implies."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[Side, dict[Decimal, Decimal]]] = {}

    def symbols(self) -> list[str]:
        """The symbols mirrored at least once (and not withdrawn since)."""
        return sorted(self._seen)

    def update(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> list[LevelChange]:
        """The upstream's book of `symbol` now (best first, any depth): the local changes, withdrawals first."""
        new = {Side.BUY: {p: q for p, q in bids if q > ZERO}, Side.SELL: {p: q for p, q in asks if q > ZERO}}
        old = self._seen.get(symbol, {Side.BUY: {}, Side.SELL: {}})
        gone: list[LevelChange] = []
        changed: list[LevelChange] = []
        for side in (Side.BUY, Side.SELL):
            before, after = old[side], new[side]
            gone += [LevelChange(side, p, ZERO) for p in sorted(before.keys() - after.keys())]
            changed += [LevelChange(side, p, q) for p, q in sorted(after.items()) if before.get(p) != q]
        self._seen[symbol] = new
        return gone + changed

    def withdraw_all(self, symbol: str) -> list[LevelChange]:
        """Every level mirrored for `symbol`, withdrawn (the upstream's book is unknown now); the next `update`
        sets every upstream level afresh."""
        old = self._seen.pop(symbol, None)
        if old is None:
            return []
        return [LevelChange(side, p, ZERO) for side in (Side.BUY, Side.SELL) for p in sorted(old[side])]

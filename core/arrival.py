"""The arrival value of an index unit: what its basket was worth on the live books when an order arrived.

An order shard keeps, per index, the latest value computed from the market shards' best bid and ask (refreshed in
the background, never on the accept path) and stamps each accepted order with it and its age. A value is the
basket's quantities times each asset's mid (the benchmark) and times its best ask (the touch a buyer pays). An
index with a book missing a side, or whose value is older than `max_age_ms`, has no value: the order carries none
rather than a made-up one.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence

from core.money import ZERO

#: A book side's best level as the market shards give it: (price, quantity).
Level = tuple[Decimal, Decimal]


@dataclass(frozen=True, slots=True)
class ArrivalValue:
    """One index unit's value at `at_ms`: Σ quantity × mid and Σ quantity × best ask, and per symbol (mid, ask).
    Exact: a mid is (bid + ask) / 2, which a Decimal holds exactly."""

    mid: Decimal
    touch: Decimal
    at_ms: int
    assets: Mapping[str, tuple[Decimal, Decimal]]

    def to_dict(self) -> dict[str, object]:
        return {"mid": str(self.mid), "touch": str(self.touch), "at_ms": self.at_ms,
                "assets": {s: [str(m), str(a)] for s, (m, a) in sorted(self.assets.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "ArrivalValue":
        assets = data["assets"]
        assert isinstance(assets, Mapping)
        return cls(Decimal(str(data["mid"])), Decimal(str(data["touch"])), int(str(data["at_ms"])),
                   {s: (Decimal(str(m)), Decimal(str(a))) for s, (m, a) in assets.items()})


def basket_value(quantities: Mapping[str, Decimal], tops: Mapping[str, tuple[Level | None, Level | None]],
                 now_ms: int) -> ArrivalValue | None:
    """The basket's value per index unit from the best bid and ask of each of its symbols; None if a symbol has no
    book or a side is empty (a partial sum would understate the basket)."""
    mid = touch = ZERO
    assets: dict[str, tuple[Decimal, Decimal]] = {}
    for symbol, qty in quantities.items():
        bid, ask = tops.get(symbol, (None, None))
        if bid is None or ask is None:
            return None
        m = (bid[0] + ask[0]) / 2
        assets[symbol] = (m, ask[0])
        mid += qty * m
        touch += qty * ask[0]
    return ArrivalValue(mid, touch, now_ms, assets)


class ArrivalBoard:
    """Per index, the latest arrival value (plain state: the owner refreshes it and stamps orders with it)."""

    def __init__(self, baskets: Mapping[str, Mapping[str, Decimal]], max_age_ms: int) -> None:
        """`baskets`: index -> symbol -> quantity per index unit."""
        self.baskets = {i: dict(q) for i, q in baskets.items()}
        self.max_age_ms = max_age_ms
        self.values: dict[str, ArrivalValue] = {}

    def symbols(self) -> list[str]:
        return sorted({s for q in self.baskets.values() for s in q})

    def refresh(self, tops: Mapping[str, tuple[Level | None, Level | None]], now_ms: int) -> list[str]:
        """Recompute every index from one read of the tops. An index whose books lack a side keeps its last value,
        which ages out. Returns the indexes without a fresh value."""
        missing = []
        for index, quantities in self.baskets.items():
            value = basket_value(quantities, tops, now_ms)
            if value is None:
                missing.append(index)
            else:
                self.values[index] = value
        return missing

    def stamp(self, index: str, now_ms: int) -> ArrivalValue | None:
        """The value to record with an order of `index` accepted at `now_ms`: the latest, if not older than
        max_age_ms; else None (unknown, said so)."""
        value = self.values.get(index)
        if value is None or now_ms - value.at_ms > self.max_age_ms:
            return None
        return value


def basket_touch(quantities: Mapping[str, Decimal], asks: Mapping[str, Sequence[Level]]) -> Decimal | None:
    """One index unit at the best asks (what the solver sees when it plans a batch); None if a book has no ask."""
    touch = ZERO
    for symbol, qty in quantities.items():
        levels = asks.get(symbol)
        if not levels:
            return None
        touch += qty * levels[0][0]
    return touch

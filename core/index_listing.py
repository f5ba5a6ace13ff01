"""What `GET /indexes` and `indexmaker indexes` show: every served index, its assets and its basket's live price.

One unit's price is the sum of each asset's quantity times its mid (what the basket is worth) or best ask (what
buying costs before depth and fees). Rounded to the collateral unit: the mid half-even (a display value), the ask
up (a cost never shows lower than it is). An asset without a two-sided book leaves no live price."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Mapping

from core.basket import Basket
from core.money import quantize_up

Level = tuple[Decimal, Decimal]


def list_index(basket: Basket, name: str, tops: Mapping[str, tuple[Level | None, Level | None]],
               unit: Decimal) -> dict[str, Any]:
    """One index as plain data (strings for Decimals): its assets with their mids, its prices, what has no book."""
    assets, missing = [], []
    mid_value = ask_value = Decimal(0)
    for a in basket.assets:
        bid, ask = tops.get(a.symbol, (None, None))
        mid = (bid[0] + ask[0]) / 2 if bid is not None and ask is not None else None
        if mid is None:
            missing.append(a.symbol)
        else:
            mid_value += a.quantity * mid
            ask_value += a.quantity * ask[0]  # type: ignore[index]
        assets.append({"symbol": a.symbol, "quantity": str(a.quantity), "weight": str(a.weight),
                       "mid": None if mid is None else str(mid)})
    priced = not missing
    return {"index": basket.index, "name": name, "assets": assets, "missing_books": missing,
            "mid_price": str(mid_value.quantize(unit, rounding=ROUND_HALF_EVEN)) if priced else None,
            "ask_price": str(quantize_up(ask_value, unit)) if priced else None}

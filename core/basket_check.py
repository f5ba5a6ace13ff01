"""Whether an exchange can serve a basket: every pair listed, TRADING, and one index unit's quantity at least the
pair's LOT_SIZE step (below it, an order for one unit rounds to nothing). `config check` and `up` run it on every
index of the registry against the exchange's exchangeInfo, so a bad basket is refused before any user sees it."""
from __future__ import annotations

from typing import Mapping

from core.basket import Basket
from core.symbol_filters import SymbolFilters

TRADING = "TRADING"


def basket_problems(basket: Basket, filters: Mapping[str, SymbolFilters]) -> list[str]:
    """One line per problem, naming the index and the pair; [] when the exchange can serve the basket."""
    problems = []
    for a in basket.assets:
        f = filters.get(a.symbol)
        if f is None:
            problems.append(f"indexes.{basket.index}: {a.symbol} is not a pair of the exchange")
        elif f.status != TRADING:
            problems.append(f"indexes.{basket.index}: {a.symbol} is {f.status}, not {TRADING}")
        elif f.step_size > 0 and a.quantity < f.step_size:
            problems.append(f"indexes.{basket.index}: {a.symbol} holds {a.quantity} per index unit, below the "
                            f"pair's step {f.step_size}")
    return problems

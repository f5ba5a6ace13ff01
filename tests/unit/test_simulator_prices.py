"""The simulator's seed prices for the six real indexes: SY100 at its deployment price, every other index valued
from the pairs it shares with the ones priced before it, so a pair only another index holds gets a market price
(not one derived from a launch price, which left pairs that no order could buy at the minimum notional)."""
from __future__ import annotations

from decimal import Decimal

from core.basket import load_indexes
from exchange.simulator.markets import implied_prices, load_initial_prices

REAL = ("SY100", "SYAI", "SYAZ", "SYDF", "SYL2", "SYME")


def test_every_index_is_valued_from_the_pairs_it_shares_with_the_ones_priced_before(data_dir) -> None:
    baskets = {k: v for k, v in load_indexes(data_dir / "indexes").items() if k in REAL}
    prices = implied_prices(baskets, load_initial_prices(data_dir / "indexes" / "index_deployment.json"))
    assert set(prices) == {a.symbol for b in baskets.values() for a in b.assets}
    assert baskets["SY100"].value(prices) == Decimal(200000)  # its own prices rebuild its deployment price
    for i, name in enumerate(REAL[1:], start=1):  # priced in this order: SY100, then by name
        basket = baskets[name]
        before = {s for k in REAL[:i] for s in baskets[k].symbols}
        # The value behind the index's own pairs' prices (p = value * weight / 100 / quantity) is the median of its
        # estimates from the pairs priced before it: as many estimates above it as below.
        new = [a for a in basket.assets if a.symbol not in before]
        value = prices[new[0].symbol] * new[0].quantity * 100 / new[0].weight
        shared = [a for a in basket.assets if a.symbol in before]
        assert shared, name
        estimates = [prices[a.symbol] * a.quantity * 100 / a.weight for a in shared]
        above = sum(e > value * Decimal("1.000001") for e in estimates)
        below = sum(e < value * Decimal("0.999999") for e in estimates)
        assert abs(above - below) <= len(estimates) - above - below + 1, name
    # Pairs only SYDF holds are priced like the market prices them, not at SYDF's 1.15 launch price.
    assert Decimal("0.1") < prices["RUNEUSDC"] < Decimal(100) and Decimal("0.05") < prices["SUSHIUSDC"] < Decimal(10)

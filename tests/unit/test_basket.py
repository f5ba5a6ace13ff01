"""Baskets from the real index files: exact quantities, index value, the curator formula."""
from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest

from core.basket import Basket, BasketAsset, base_asset_of, load_indexes
from core.money import D


def test_real_indexes_load_exactly(data_dir):
    idx = load_indexes(data_dir / "indexes")
    assert {"SY100", "SYAI", "SYAZ", "SYDF", "SYL2", "SYME", "SY100.dev"} <= set(idx)
    assert len(idx["SY100"].assets) == 81 and len(idx["SY100.dev"].assets) == 6
    raw = json.loads((data_dir / "indexes" / "SY100.dev.json").read_text(), parse_float=str)
    btc = idx["SY100.dev"].quantities()["BTCUSDC"]
    assert btc == Decimal(raw[0]["quantity"])  # the file's digits, not a float's
    assert sum(a.weight for a in idx["SY100"].assets) == Decimal("100.00")


def test_sy100_implied_prices_rebuild_its_initial_price(data_dir):
    """For SY100, q_i = 200000 * w_i / p_i: at the implied prices the index is worth 200000 * sum(w)/100."""
    b = load_indexes(data_dir / "indexes")["SY100"]
    prices = {a.symbol: Decimal(200000) * a.weight / 100 / a.quantity for a in b.assets}
    assert abs(b.value(prices) - Decimal(200000)) < Decimal("1e-40")


def test_worked_example_composition(data_dir):
    rows = list(csv.DictReader((data_dir / "indexes" / "example_index_composition.csv").open()))
    prices = {r["asset"] + "USDC": D(r["price_usd"]) for r in rows}
    weights = {r["asset"] + "USDC": D(r["weight"]) for r in rows}
    b = Basket.from_weights("EX", weights, prices, Decimal(1000))
    for r in rows:
        q = b.quantities()[r["asset"] + "USDC"]
        assert q.quantize(Decimal("0.0001")) == D(r["quantity_per_index_unit"])  # the sheet shows 4 dp
        assert (q * prices[r["asset"] + "USDC"]).quantize(Decimal("0.01")) == D(r["value_usd_per_index_unit"])
    two = b.for_units(Decimal(2))
    assert sum(two[s] * prices[s] for s in two).quantize(Decimal("1e-30")) == Decimal(2000)


def test_bad_baskets_are_refused():
    with pytest.raises(ValueError):
        Basket("X", ())
    with pytest.raises(ValueError):
        Basket("X", (BasketAsset("BTCUSDC", Decimal(0)),))
    with pytest.raises(ValueError):
        Basket("X", (BasketAsset("BTCUSDC", Decimal(1)), BasketAsset("BTCUSDC", Decimal(2))))
    with pytest.raises(KeyError):
        Basket("X", (BasketAsset("BTCUSDC", Decimal(1)),)).value({})
    with pytest.raises(TypeError):
        D(0.1)  # type: ignore[arg-type]
    assert base_asset_of("DOGEUSDC") == "DOGE"

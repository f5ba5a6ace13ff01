"""Index baskets: how many units of each asset one index unit holds, and what an index unit is worth.

At run time only the quantities matter (spec/domain.md §2); weights are carried for information. Basket files give
quantities as JSON numbers; they are read with `parse_float=Decimal`, so the digits written in the file are kept
exactly and never pass through a float.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Mapping

from core.money import ZERO, D

#: Quote suffixes stripped from a pair to name its base asset (BTCUSDC -> BTC).
QUOTE_SUFFIXES = ("USDC", "USDT", "FDUSD", "EUR")


def base_asset_of(pair: str) -> str:
    for suffix in QUOTE_SUFFIXES:
        if pair.endswith(suffix) and len(pair) > len(suffix):
            return pair[: -len(suffix)]
    raise ValueError(f"cannot tell the base asset of {pair!r}: no known quote suffix")


@dataclass(frozen=True, slots=True)
class BasketAsset:
    symbol: str  # the exchange market, e.g. BTCUSDC
    quantity: Decimal  # units of the asset per one index unit
    weight: Decimal = ZERO  # percent, informational

    @property
    def base_asset(self) -> str:
        return base_asset_of(self.symbol)


@dataclass(frozen=True, slots=True)
class Basket:
    index: str
    assets: tuple[BasketAsset, ...]

    def __post_init__(self) -> None:
        if not self.assets:
            raise ValueError(f"basket {self.index} has no assets")
        seen: set[str] = set()
        for a in self.assets:
            if a.quantity <= 0:
                raise ValueError(f"basket {self.index}: {a.symbol} quantity must be positive, got {a.quantity}")
            if a.symbol in seen:
                raise ValueError(f"basket {self.index}: {a.symbol} appears twice")
            seen.add(a.symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(a.symbol for a in self.assets)

    def quantities(self) -> dict[str, Decimal]:
        return {a.symbol: a.quantity for a in self.assets}

    def value(self, prices: Mapping[str, Decimal]) -> Decimal:
        """Index price P = sum q_i * p_i (exact). Missing prices are an error, never a zero."""
        missing = [a.symbol for a in self.assets if a.symbol not in prices]
        if missing:
            raise KeyError(f"no price for {', '.join(missing)}")
        return sum((a.quantity * prices[a.symbol] for a in self.assets), ZERO)

    def for_units(self, units: Decimal) -> dict[str, Decimal]:
        """Asset quantities that `units` index units hold (exact)."""
        return {a.symbol: a.quantity * units for a in self.assets}

    @classmethod
    def from_weights(
        cls, index: str, weights: Mapping[str, Decimal], prices: Mapping[str, Decimal], target_price: Decimal
    ) -> "Basket":
        """Curator flow: normalise weights, q_i = target * w_i / p_i. Division is kept at full context precision."""
        total = sum(weights.values(), ZERO)
        if total <= 0:
            raise ValueError("weights must sum to a positive number")
        assets = []
        for symbol, w in weights.items():
            price = prices.get(symbol)
            if price is None or price <= 0:
                raise ValueError(f"no usable price for {symbol}")
            q = target_price * (w / total) / price
            if q <= 0:
                raise ValueError(f"quantity of {symbol} comes out zero")
            assets.append(BasketAsset(symbol, q, w / total * 100))
        return cls(index, tuple(assets))


def load_basket_file(index: str, path: Path) -> Basket:
    rows = json.loads(Path(path).read_text(), parse_float=Decimal)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a basket file is a JSON array")
    assets = []
    for row in rows:
        try:
            assets.append(BasketAsset(row["pair"], D(row["quantity"]), D(str(row.get("weights", "0")))))
        except KeyError as e:
            raise ValueError(f"{path}: a basket entry lacks {e}") from None
    return Basket(index, tuple(assets))


def load_indexes(directory: Path, files: Mapping[str, str] | None = None) -> dict[str, Basket]:
    """Load baskets: `files` maps index symbol -> file name inside `directory`; by default every `<SYM>.json`
    whose content is a basket array (SY100.json -> SY100, SY100.dev.json -> SY100.dev)."""
    directory = Path(directory)
    if files is None:
        files = {}
        for p in sorted(directory.glob("*.json")):
            if p.name in ("BasketManagerConfig.json", "index_deployment.json"):
                continue
            files[p.name[: -len(".json")]] = p.name
    return {symbol: load_basket_file(symbol, directory / name) for symbol, name in files.items()}

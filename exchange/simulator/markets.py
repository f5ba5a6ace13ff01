"""The simulator's market list: the real exchangeInfo entry of every basket pair where we have one.

The recorded exchangeInfo predates the baskets, so each market says where its entry came from: "real" (its own),
"usdt_twin" (the base asset's USDT entry renamed to USDC: filters are per base asset in practice) or "synthetic"
(a default scaled to the implied price). Seed prices: initial_price * weight_i / 100 / quantity_i."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

from core.basket import Basket, base_asset_of, load_indexes
from core.money import ZERO, D
from core.symbol_filters import SymbolFilters

REAL = "real"
USDT_TWIN = "usdt_twin"
SYNTHETIC = "synthetic"

#: Index whose file quantities match its initial_price (data/README.md); its implied prices are preferred.
PREFERRED_PRICE_INDEX = "SY100"
#: index_deployment.json writes initial_price in 18-decimal units.
_INITIAL_PRICE_SCALE = Decimal(10) ** 18

#: Shape of a current USDC spot entry (fields as on every real 2024 symbol); the filters are filled in per market.
_DEFAULT_ENTRY: dict[str, Any] = {
    "symbol": "",
    "status": "TRADING",
    "baseAsset": "",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDC",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "otoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": True,
    "cancelReplaceAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "filters": [],
    "permissions": [],
    "permissionSets": [["SPOT"]],
    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
}


@dataclass(frozen=True, slots=True)
class SimMarket:
    symbol: str
    origin: str  # REAL | USDT_TWIN | SYNTHETIC
    entry: dict[str, Any]  # the exchangeInfo symbols[] entry served to clients
    filters: SymbolFilters
    #: Price implied by the baskets (None if no basket prices the symbol).
    implied_price: Decimal | None

    @property
    def tick(self) -> Decimal:
        return self.filters.tick_size

    @property
    def step(self) -> Decimal:
        return self.filters.step_size

    @property
    def base_asset(self) -> str:
        return self.filters.base_asset

    @property
    def quote_asset(self) -> str:
        return self.filters.quote_asset

    def commission_unit(self, asset: str) -> Decimal:
        key = "baseCommissionPrecision" if asset == self.base_asset else "quoteCommissionPrecision"
        return Decimal(10) ** -int(self.entry.get(key, 8))


def _f8(x: Decimal) -> str:
    return f"{x:.8f}"


def implied_prices(baskets: Mapping[str, Basket], initial_prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Price per pair implied by the baskets: an index's value times the pair's weight over its quantity. SY100
    goes first, at its deployment price. The others' deployment prices are launch prices, unrelated to their
    quantities (SYDF's 1.15 would price LINK at 0.0002): each is valued from the pairs it shares with those priced
    before it (the median of price * quantity / weight), its launch price only when it shares none."""
    order = sorted(baskets, key=lambda name: (name != PREFERRED_PRICE_INDEX, name))
    prices: dict[str, Decimal] = {}
    for name in order:
        weighted = [a for a in baskets[name].assets if a.weight > 0]
        shared = sorted(prices[a.symbol] * a.quantity * 100 / a.weight for a in weighted if a.symbol in prices)
        value = shared[len(shared) // 2] if shared else initial_prices.get(name)
        if value is None:
            continue  # e.g. SY100.dev: no deployment entry and no pair priced yet
        for asset in weighted:
            if asset.symbol not in prices:
                prices[asset.symbol] = value * asset.weight / 100 / asset.quantity
    return prices


def load_initial_prices(deployment_path: Path) -> dict[str, Decimal]:
    doc = json.loads(Path(deployment_path).read_text())
    return {ix["symbol"]: D(ix["initial_price"]) / _INITIAL_PRICE_SCALE for ix in doc.get("indexes", ())}


def _pow10(exponent: int) -> Decimal:
    return Decimal(1).scaleb(exponent)


def synthetic_entry(symbol: str, base: str, quote: str, price: Decimal) -> dict[str, Any]:
    """A default entry whose grid suits `price`: about 5-6 significant digits of price (tick) and a step worth
    roughly 0.01-0.1 quote (as on real symbols: BTC 0.01/0.00001, ETH 0.01/0.0001, DOGE 0.00001/1)."""
    magnitude = price.adjusted()  # floor(log10(price))
    tick = min(max(_pow10(magnitude - 5), _pow10(-8)), Decimal(1))
    step = min(max(_pow10(-(magnitude + 1)), _pow10(-8)), Decimal(1))
    entry = copy.deepcopy(_DEFAULT_ENTRY)
    entry.update(symbol=symbol, baseAsset=base, quoteAsset=quote)
    entry["filters"] = [
        {"filterType": "PRICE_FILTER", "minPrice": _f8(tick), "maxPrice": _f8(max(price * 1000, Decimal(1000))),
         "tickSize": _f8(tick)},
        {"filterType": "LOT_SIZE", "minQty": _f8(step), "maxQty": "9000000.00000000", "stepSize": _f8(step)},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "1000000.00000000",
         "stepSize": "0.00000000"},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
         "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]
    return entry


def build_markets(
    exchange_info: Mapping[str, Any],
    symbols: Iterable[str],
    prices: Mapping[str, Decimal],
) -> dict[str, SimMarket]:
    """One SimMarket per symbol, from the real entry, its USDT twin, or a synthetic entry at the implied price."""
    real = {e["symbol"]: e for e in exchange_info.get("symbols", ())}
    markets: dict[str, SimMarket] = {}
    for symbol in symbols:
        if symbol in markets:
            continue
        price = prices.get(symbol)
        if symbol in real:
            entry, origin = copy.deepcopy(real[symbol]), REAL
        else:
            base = base_asset_of(symbol)
            quote = symbol[len(base):]
            twin = real.get(base + "USDT")
            if twin is not None:
                entry, origin = copy.deepcopy(twin), USDT_TWIN
                entry["symbol"], entry["quoteAsset"] = symbol, quote
            else:
                if price is None or price <= ZERO:
                    raise ValueError(f"{symbol}: no real entry, no USDT twin and no implied price to synthesise one")
                entry, origin = synthetic_entry(symbol, base, quote, price), SYNTHETIC
        markets[symbol] = SimMarket(symbol, origin, entry, SymbolFilters.from_symbol(entry), price)
    return markets


def basket_symbols(baskets: Mapping[str, Basket]) -> list[str]:
    seen: dict[str, None] = {}
    for name in sorted(baskets):
        for s in baskets[name].symbols:
            seen.setdefault(s, None)
    return list(seen)


def load_markets(
    exchange_info_path: Path,
    indexes_dir: Path,
    deployment_path: Path,
    symbols: Iterable[str] | None = None,
    extra_symbols: Iterable[str] = (),
) -> dict[str, SimMarket]:
    info = json.loads(Path(exchange_info_path).read_text())
    baskets = load_indexes(Path(indexes_dir))
    prices = implied_prices(baskets, load_initial_prices(deployment_path))
    wanted = list(symbols) if symbols is not None else basket_symbols(baskets)
    wanted += [s for s in extra_symbols if s not in wanted]
    return build_markets(info, wanted, prices)

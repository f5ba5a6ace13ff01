"""Binance spot symbol filters: parsed from exchangeInfo, checked exactly as the exchange checks them.

`validate` is the rule: the sender pre-checks with it and the simulator rejects with it, so they cannot disagree.
`round_order` turns a wish into what `validate` accepts without buying or paying more than asked; what no rounding
can save is rejected with the failing filter's name. A zero bound disables its check; numbers are Decimals from
the payload's strings."""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from core.money import ZERO, D, decimals_of, plain, quantize_down, quantize_up
from core.side import Side

# Names used in FilterError.filter. The first group are Binance filter types ("Filter failure: <NAME>", -1013);
# the rest are matching-engine rejects that are not filters but are checked at the same place.
PRICE_FILTER = "PRICE_FILTER"
PERCENT_PRICE = "PERCENT_PRICE"
PERCENT_PRICE_BY_SIDE = "PERCENT_PRICE_BY_SIDE"
LOT_SIZE = "LOT_SIZE"
MARKET_LOT_SIZE = "MARKET_LOT_SIZE"
NOTIONAL = "NOTIONAL"
MIN_NOTIONAL = "MIN_NOTIONAL"
MAX_NUM_ORDERS = "MAX_NUM_ORDERS"
MARKET_CLOSED = "MARKET_CLOSED"  # symbol not TRADING: -1013 "Market is closed."
ORDER_TYPE = "ORDER_TYPE"  # order type (or quoteOrderQty) not enabled on the symbol: -2010
ZERO_NOTIONAL = "ZERO_NOTIONAL"  # every filter disabled and price * qty <= 0: -2010 "Price * QTY is zero or less."

LIMIT = "LIMIT"
MARKET = "MARKET"
LIMIT_MAKER = "LIMIT_MAKER"
#: Order types this module knows how to check (the ones IndexMaker sends). Stop orders need stopPrice rules.
SUPPORTED_ORDER_TYPES = frozenset({LIMIT, MARKET, LIMIT_MAKER})
_PRICED_TYPES = frozenset({LIMIT, LIMIT_MAKER})

_NOT_FILTERS = {MARKET_CLOSED, ORDER_TYPE, ZERO_NOTIONAL}
_DEFAULT_MESSAGES = {
    MARKET_CLOSED: "Market is closed.",
    ORDER_TYPE: "Unsupported order combination",
    ZERO_NOTIONAL: "Price * QTY is zero or less.",
}


class FilterError(ValueError):
    """An order Binance would reject. `filter` names the Binance filter (or the non-filter reject), `reason` says
    which bound failed; `code` and `binance_msg` are what the exchange would answer (the simulator serves them)."""

    def __init__(self, filter: str, reason: str, *, message: str | None = None) -> None:
        self.filter = filter
        self.reason = reason
        self._message = message
        super().__init__(f"Filter failure: {filter} ({reason})")

    @property
    def code(self) -> int:
        # Filter failures and "Market is closed." are -1013; other matching-engine rejects are -2010 (errors doc).
        return -2010 if self.filter in (ORDER_TYPE, ZERO_NOTIONAL) else -1013

    @property
    def binance_msg(self) -> str:
        if self._message is not None:
            return self._message
        if self.filter in _NOT_FILTERS:
            return _DEFAULT_MESSAGES[self.filter]
        return f"Filter failure: {self.filter}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions cross Ray actor boundaries pickled; keep the attributes, not only str(self).
        return (FilterError, (self.filter, self.reason), {"_message": self._message})


#: 10^-p for the precisions Binance uses: the planner asks for a unit thousands of times per batch, and a table
#: lookup is ~10x cheaper than the power (same exact Decimal).
_UNITS = tuple(Decimal(10) ** -p for p in range(33))


def _unit(precision: int) -> Decimal:
    return _UNITS[precision] if 0 <= precision < len(_UNITS) else Decimal(10) ** -precision


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """One symbol's trading rules. Decimal bounds of 0 mean "disabled", exactly as Binance publishes them."""

    symbol: str
    base_asset: str
    quote_asset: str
    status: str
    base_precision: int
    quote_precision: int
    order_types: frozenset[str]
    quote_order_qty_market_allowed: bool
    min_price: Decimal
    max_price: Decimal
    tick_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    market_step_size: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO
    apply_min_to_market: bool = False
    apply_max_to_market: bool = False
    notional_filter: str | None = None  # "NOTIONAL", legacy "MIN_NOTIONAL", or None (no notional rule)
    bid_up: Decimal | None = None
    bid_down: Decimal | None = None
    ask_up: Decimal | None = None
    ask_down: Decimal | None = None
    max_num_orders: int | None = None
    # Extras the brief did not name: which price-band filter the multipliers came from (PERCENT_PRICE applies the
    # same band to both sides), and the VWAP minutes that define the reference price (5 on every real symbol).
    percent_price_filter: str | None = None
    avg_price_mins: int = 5

    @property
    def base_unit(self) -> Decimal:
        """Smallest amount of the base asset Binance accepts (quantities with more decimals get -1111)."""
        return _unit(self.base_precision)

    @property
    def quote_unit(self) -> Decimal:
        return _unit(self.quote_precision)

    @classmethod
    def from_symbol(cls, entry: Mapping[str, Any]) -> "SymbolFilters":
        """Parse one `symbols[]` entry of GET /api/v3/exchangeInfo."""
        filters = {f["filterType"]: f for f in entry.get("filters", ())}
        price = filters.get(PRICE_FILTER, {})
        lot = filters.get(LOT_SIZE, {})
        market_lot = filters.get(MARKET_LOT_SIZE, {})

        # NOTIONAL superseded MIN_NOTIONAL (2023); no current symbol carries both, prefer the new one if one does.
        notional_filter: str | None = None
        min_notional = max_notional = ZERO
        apply_min = apply_max = False
        avg_mins: int | None = None
        if NOTIONAL in filters:
            nf = filters[NOTIONAL]
            notional_filter = NOTIONAL
            min_notional = _dec(nf.get("minNotional"))
            max_notional = _dec(nf.get("maxNotional"))
            apply_min = bool(nf.get("applyMinToMarket", False))
            apply_max = bool(nf.get("applyMaxToMarket", False))
            avg_mins = _int_or_none(nf.get("avgPriceMins"))
        elif MIN_NOTIONAL in filters:
            nf = filters[MIN_NOTIONAL]
            notional_filter = MIN_NOTIONAL
            min_notional = _dec(nf.get("minNotional"))
            apply_min = bool(nf.get("applyToMarket", False))
            avg_mins = _int_or_none(nf.get("avgPriceMins"))

        band_filter: str | None = None
        bid_up = bid_down = ask_up = ask_down = None
        if PERCENT_PRICE_BY_SIDE in filters:
            pf = filters[PERCENT_PRICE_BY_SIDE]
            band_filter = PERCENT_PRICE_BY_SIDE
            bid_up, bid_down = _dec(pf["bidMultiplierUp"]), _dec(pf["bidMultiplierDown"])
            ask_up, ask_down = _dec(pf["askMultiplierUp"]), _dec(pf["askMultiplierDown"])
            avg_mins = avg_mins if avg_mins is not None else _int_or_none(pf.get("avgPriceMins"))
        elif PERCENT_PRICE in filters:
            pf = filters[PERCENT_PRICE]
            band_filter = PERCENT_PRICE
            bid_up = ask_up = _dec(pf["multiplierUp"])
            bid_down = ask_down = _dec(pf["multiplierDown"])
            avg_mins = avg_mins if avg_mins is not None else _int_or_none(pf.get("avgPriceMins"))

        max_orders = filters.get(MAX_NUM_ORDERS, {}).get("maxNumOrders")
        # quotePrecision is the deprecated alias of quoteAssetPrecision; read the current name first.
        quote_precision = entry.get("quoteAssetPrecision", entry.get("quotePrecision"))
        return cls(
            symbol=entry["symbol"],
            base_asset=entry["baseAsset"],
            quote_asset=entry["quoteAsset"],
            status=entry["status"],
            base_precision=int(entry["baseAssetPrecision"]),
            quote_precision=int(quote_precision),
            order_types=frozenset(entry.get("orderTypes", ())),
            quote_order_qty_market_allowed=bool(entry.get("quoteOrderQtyMarketAllowed", False)),
            min_price=_dec(price.get("minPrice")),
            max_price=_dec(price.get("maxPrice")),
            tick_size=_dec(price.get("tickSize")),
            min_qty=_dec(lot.get("minQty")),
            max_qty=_dec(lot.get("maxQty")),
            step_size=_dec(lot.get("stepSize")),
            market_min_qty=_dec(market_lot.get("minQty")),
            market_max_qty=_dec(market_lot.get("maxQty")),
            market_step_size=_dec(market_lot.get("stepSize")),
            min_notional=min_notional,
            max_notional=max_notional,
            apply_min_to_market=apply_min,
            apply_max_to_market=apply_max,
            notional_filter=notional_filter,
            bid_up=bid_up,
            bid_down=bid_down,
            ask_up=ask_up,
            ask_down=ask_down,
            max_num_orders=int(max_orders) if max_orders is not None else None,
            percent_price_filter=band_filter,
            avg_price_mins=avg_mins if avg_mins is not None else 5,
        )


def _dec(value: Any) -> Decimal:
    """A payload number (a string in the real payload) as Decimal; absent means 0, i.e. "disabled"."""
    if value is None:
        return ZERO
    return D(value)  # refuses floats: a float has already lost the exchange's digits


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_exchange_info(payload: Mapping[str, Any]) -> dict[str, SymbolFilters]:
    """All symbols of an exchangeInfo payload, by symbol name."""
    return {entry["symbol"]: SymbolFilters.from_symbol(entry) for entry in payload.get("symbols", ())}


# --------------------------------------------------------------------------------------------------- validation


def validate(
    f: SymbolFilters,
    side: Side | str,
    order_type: str,
    quantity: Decimal | None,
    price: Decimal | None = None,
    *,
    avg_price: Decimal | None = None,
    open_orders: int = 0,
    quote_order_qty: Decimal | None = None,
) -> None:
    """Raise FilterError naming the first check Binance would fail, in Binance's order; return None if it passes.

    Without `avg_price` (GET /api/v3/avgPrice) the checks that need it are skipped. `quote_order_qty` makes a MARKET
    order by quote amount (`quantity` None): its notional is that amount. Malformed calls (no price on LIMIT, price on
    MARKET, negatives) raise plain ValueError: Binance rejects those before any filter runs."""
    side = Side(side)
    _check_arguments(order_type, quantity, price, quote_order_qty)

    if f.status != "TRADING":
        raise FilterError(MARKET_CLOSED, f"symbol {f.symbol} status is {f.status}")
    if order_type not in f.order_types:
        message = "Market orders are not supported for this symbol." if order_type == MARKET else None
        raise FilterError(ORDER_TYPE, f"order type {order_type} not enabled on {f.symbol}", message=message)
    if quote_order_qty is not None and not f.quote_order_qty_market_allowed:
        raise FilterError(
            ORDER_TYPE,
            f"quoteOrderQty market orders not enabled on {f.symbol}",
            message="Quote order qty market orders are not support for this symbol.",  # sic: Binance's text
        )

    if order_type in _PRICED_TYPES:
        assert price is not None
        _check_price_filter(f, price)
        if avg_price is not None:
            _check_percent_price(f, side, price, avg_price)

    if quantity is not None:
        _check_lot(LOT_SIZE, "", f.min_qty, f.max_qty, f.step_size, quantity)
        if order_type == MARKET:
            _check_lot(MARKET_LOT_SIZE, "market ", f.market_min_qty, f.market_max_qty, f.market_step_size, quantity)

    _check_notional(f, order_type, quantity, price, avg_price, quote_order_qty)

    if f.max_num_orders is not None and open_orders >= f.max_num_orders:
        raise FilterError(MAX_NUM_ORDERS, f"{open_orders} open orders, maxNumOrders {f.max_num_orders}")

    if order_type in _PRICED_TYPES and quantity is not None and price is not None and quantity * price <= 0:
        raise FilterError(ZERO_NOTIONAL, f"price {plain(price)} x quantity {plain(quantity)} is not positive")


def _check_arguments(
    order_type: str, quantity: Decimal | None, price: Decimal | None, quote_order_qty: Decimal | None
) -> None:
    if order_type not in SUPPORTED_ORDER_TYPES:
        raise ValueError(f"order type {order_type!r} is not one of {sorted(SUPPORTED_ORDER_TYPES)}")
    for name, value in (("quantity", quantity), ("price", price), ("quoteOrderQty", quote_order_qty)):
        if value is not None and (not isinstance(value, Decimal) or value < 0):
            raise ValueError(f"{name} must be a non-negative Decimal, got {value!r}")
    if order_type in _PRICED_TYPES:
        if price is None or quantity is None:
            raise ValueError(f"{order_type} needs both quantity and price")
        if quote_order_qty is not None:
            raise ValueError("quoteOrderQty is only for MARKET orders")
    else:
        if price is not None:
            raise ValueError("MARKET orders take no price")
        if (quantity is None) == (quote_order_qty is None):
            raise ValueError("a MARKET order needs exactly one of quantity and quoteOrderQty")


def _check_price_filter(f: SymbolFilters, price: Decimal) -> None:
    if f.min_price != 0 and price < f.min_price:
        raise FilterError(PRICE_FILTER, f"price {plain(price)} below minPrice {plain(f.min_price)}")
    if f.max_price != 0 and price > f.max_price:
        raise FilterError(PRICE_FILTER, f"price {plain(price)} above maxPrice {plain(f.max_price)}")
    if f.tick_size != 0 and price % f.tick_size != 0:
        raise FilterError(PRICE_FILTER, f"price {plain(price)} not a multiple of tickSize {plain(f.tick_size)}")


def _percent_band(f: SymbolFilters, side: Side, avg_price: Decimal) -> tuple[Decimal, Decimal] | None:
    up, down = (f.bid_up, f.bid_down) if side is Side.BUY else (f.ask_up, f.ask_down)
    if f.percent_price_filter is None or up is None or down is None:
        return None
    return avg_price * down, avg_price * up


def _check_percent_price(f: SymbolFilters, side: Side, price: Decimal, avg_price: Decimal) -> None:
    band = _percent_band(f, side, avg_price)
    if band is None:
        return
    low, high = band
    assert f.percent_price_filter is not None
    if price < low:
        raise FilterError(
            f.percent_price_filter, f"{side.value} price {plain(price)} below {plain(low)} (avg {plain(avg_price)})"
        )
    if price > high:
        raise FilterError(
            f.percent_price_filter, f"{side.value} price {plain(price)} above {plain(high)} (avg {plain(avg_price)})"
        )


def _check_lot(name: str, label: str, min_qty: Decimal, max_qty: Decimal, step: Decimal, qty: Decimal) -> None:
    if min_qty != 0 and qty < min_qty:
        raise FilterError(name, f"{label}quantity {plain(qty)} below minQty {plain(min_qty)}")
    if max_qty != 0 and qty > max_qty:
        raise FilterError(name, f"{label}quantity {plain(qty)} above maxQty {plain(max_qty)}")
    if step != 0 and qty % step != 0:
        raise FilterError(name, f"{label}quantity {plain(qty)} not a multiple of stepSize {plain(step)}")


def _check_notional(
    f: SymbolFilters,
    order_type: str,
    quantity: Decimal | None,
    price: Decimal | None,
    avg_price: Decimal | None,
    quote_order_qty: Decimal | None,
) -> None:
    if f.notional_filter is None:
        return
    if order_type in _PRICED_TYPES:
        assert quantity is not None and price is not None
        notional, check_min, check_max = quantity * price, True, True
    else:
        if quote_order_qty is not None:
            notional = quote_order_qty  # the quote amount is the notional itself
        elif avg_price is not None:
            assert quantity is not None
            notional = quantity * avg_price  # the engine values a MARKET quantity at the reference price
        else:
            return  # no reference price: cannot be evaluated here (documented above)
        check_min, check_max = f.apply_min_to_market, f.apply_max_to_market
    if check_min and f.min_notional != 0 and notional < f.min_notional:
        raise FilterError(
            f.notional_filter, f"notional {plain(notional)} below minNotional {plain(f.min_notional)}"
        )
    if check_max and f.max_notional != 0 and notional > f.max_notional:
        raise FilterError(
            f.notional_filter, f"notional {plain(notional)} above maxNotional {plain(f.max_notional)}"
        )


# ----------------------------------------------------------------------------------------------------- rounding


def _lcm(a: Decimal, b: Decimal) -> Decimal:
    """Least common multiple of two positive decimal steps (a quantity that is a multiple of both)."""
    scale = Decimal(10) ** max(decimals_of(a), decimals_of(b))
    return Decimal(math.lcm(int(a * scale), int(b * scale))) / scale


def quantity_step(f: SymbolFilters, market: bool = False) -> Decimal:
    """The grid quantities are rounded to. LOT_SIZE applies to every order and MARKET_LOT_SIZE to MARKET orders
    as well, so a market quantity must be a multiple of both steps. With no step at all, the base asset's precision
    is the grid (finer quantities get -1111 "too much precision")."""
    step = f.step_size
    if market and f.market_step_size != 0:
        step = _lcm(step, f.market_step_size) if step != 0 else f.market_step_size
    return step if step != 0 else f.base_unit


def round_price(f: SymbolFilters, price: Decimal, side: Side | str, aggressive: bool = False) -> Decimal:
    """Price onto the tick grid. Passive by default: a BUY rounds down and a SELL rounds up, so the order never
    pays more (BUY) or accepts less (SELL) than asked. `aggressive` rounds the other way (crosses one more tick
    to get filled). No range check here; `round_order` does that."""
    side = Side(side)
    price = D(price)
    if f.tick_size == 0:
        return price
    round_up = (side is Side.SELL) != aggressive
    return quantize_up(price, f.tick_size) if round_up else quantize_down(price, f.tick_size)


def round_quantity_down(f: SymbolFilters, qty: Decimal, market: bool = False) -> Decimal:
    """Quantity down onto the step grid: rounding down never orders more than asked."""
    return quantize_down(D(qty), quantity_step(f, market))


def min_quantity_for(f: SymbolFilters, price: Decimal | None, *, market: bool = False) -> Decimal:
    """Smallest quantity on the step grid that meets minQty (and MARKET_LOT_SIZE.minQty for a market order) and
    the minimum notional at `price` (for a market order: the reference price, and only if applyMinToMarket).
    `price=None` skips the notional part. Raises FilterError if even that quantity exceeds maxQty."""
    step = quantity_step(f, market)
    floor = max(f.min_qty, f.market_min_qty) if market else f.min_qty
    # Up: the minimum must be met, and the next grid point above it is the smallest that meets it.
    qty = quantize_up(floor, step)
    notional_applies = f.notional_filter is not None and f.min_notional != 0 and (not market or f.apply_min_to_market)
    if price is not None and notional_applies:
        price = D(price)
        if price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        # Up again: the division is rounded at 60 digits, so step up until the product really meets the minimum.
        need = quantize_up(f.min_notional / price, step)
        while need * price < f.min_notional:
            need += step
        qty = max(qty, need)
    if qty == 0:
        qty = step  # a zero quantity is never an order
    max_qty = f.max_qty
    if max_qty != 0 and qty > max_qty:
        raise FilterError(LOT_SIZE, f"minimum quantity {plain(qty)} above maxQty {plain(max_qty)}")
    if market and f.market_max_qty != 0 and qty > f.market_max_qty:
        raise FilterError(MARKET_LOT_SIZE, f"minimum quantity {plain(qty)} above market maxQty {plain(f.market_max_qty)}")
    return qty


def round_order(
    f: SymbolFilters,
    side: Side | str,
    quantity: Decimal,
    price: Decimal | None = None,
    *,
    aggressive_price: bool = False,
    pad_to_minimum: bool = False,
    avg_price: Decimal | None = None,
    open_orders: int = 0,
) -> tuple[Decimal, Decimal | None]:
    """(quantity, price) that `validate` accepts as a LIMIT order (or a MARKET order when `price` is None).

    Price: onto the tick toward the passive side unless `aggressive_price`. Quantity: down onto the step, never more
    than asked; `pad_to_minimum` raises one below the minimums instead. Nothing is clamped: a quantity, price, band,
    notional or open-order count out of bounds raises FilterError naming the filter (the band checked when `avg_price`
    is given)."""
    side = Side(side)
    quantity = D(quantity)
    if quantity < 0:
        raise ValueError(f"quantity must not be negative, got {quantity}")
    if avg_price is not None and D(avg_price) <= 0:
        raise ValueError(f"avg_price must be positive, got {avg_price}")
    market = price is None
    rounded_price: Decimal | None = None
    if price is not None:
        rounded_price = round_price(f, price, side, aggressive_price)
        if rounded_price <= 0:
            raise FilterError(PRICE_FILTER, f"price {plain(D(price))} rounds to 0 at tickSize {plain(f.tick_size)}")
    reference = avg_price if market else rounded_price

    qty = round_quantity_down(f, quantity, market)
    if pad_to_minimum and quantity > 0:
        minimum = min_quantity_for(f, reference, market=market)
        if qty < minimum:
            qty = minimum
    if qty == 0:
        raise FilterError(
            LOT_SIZE, f"quantity {plain(quantity)} rounds down to 0 at stepSize {plain(quantity_step(f, market))}"
        )

    # The final word is the exchange's rule itself: whatever fails is reported with Binance's filter name.
    validate(f, side, MARKET if market else LIMIT, qty, rounded_price, avg_price=avg_price, open_orders=open_orders)
    return qty, rounded_price

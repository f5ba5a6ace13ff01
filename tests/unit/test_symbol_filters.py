"""Symbol filters: parsed from the real exchangeInfo, checked like Binance, rounded safely."""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.side import Side
from tests.conftest import DATA
from core.symbol_filters import (
    FilterError,
    SymbolFilters,
    min_quantity_for,
    parse_exchange_info,
    quantity_step,
    round_order,
    round_price,
    round_quantity_down,
    validate,
)

D = Decimal
EXCHANGE_INFO_PATH = DATA / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json"


@pytest.fixture(scope="module")
def filters(exchange_info: dict) -> dict[str, SymbolFilters]:
    return parse_exchange_info(exchange_info)


@pytest.fixture(scope="module")
def btc(filters: dict[str, SymbolFilters]) -> SymbolFilters:
    return filters["BTCUSDC"]


def raw_entry(exchange_info: dict, symbol: str) -> dict:
    return copy.deepcopy(next(s for s in exchange_info["symbols"] if s["symbol"] == symbol))


def failing_filter(*args, **kwargs) -> str | None:
    try:
        validate(*args, **kwargs)
    except FilterError as e:
        return e.filter
    return None


# ------------------------------------------------------------------------------------------------------- parsing


def test_parses_every_real_symbol(filters: dict[str, SymbolFilters]) -> None:
    assert len(filters) == 456
    # The distribution documented in spec/binance.md (b), recomputed from our parse.
    assert Counter(f.min_notional for f in filters.values()) == {D(5): 429, D(1): 27}
    bands = Counter((f.bid_up, f.bid_down, f.ask_up, f.ask_down) for f in filters.values())
    assert bands[(D(5), D("0.2"), D(5), D("0.2"))] == 448
    assert bands[(D("1.2"), D("0.8"), D("1.2"), D("0.8"))] == 7
    assert bands[(D("1.1"), D("0.9"), D("1.1"), D("0.9"))] == 1
    assert all(f.max_num_orders == 200 for f in filters.values())
    assert all(f.notional_filter == "NOTIONAL" and f.apply_min_to_market and not f.apply_max_to_market
               for f in filters.values())


def test_btcusdc_real_values(btc: SymbolFilters) -> None:
    assert (btc.base_asset, btc.quote_asset, btc.status) == ("BTC", "USDC", "TRADING")
    assert btc.tick_size == D("0.01") and btc.min_price == D("0.01") and btc.max_price == D(1_000_000)
    assert btc.step_size == D("0.00001") and btc.min_qty == D("0.00001") and btc.max_qty == D(9000)
    assert btc.market_min_qty == 0 and btc.market_step_size == 0 and btc.market_max_qty == D("30.94034205")
    assert btc.min_notional == D(5) and btc.max_notional == D(9_000_000)
    assert btc.order_types >= {"LIMIT", "MARKET", "LIMIT_MAKER"}
    assert btc.quote_order_qty_market_allowed
    assert btc.base_unit == D("0.00000001") and btc.quote_unit == D("0.00000001")


def test_low_precision_asset(filters: dict[str, SymbolFilters]) -> None:
    shib = filters["SHIBUSDT"]
    assert shib.base_precision == 2 and shib.base_unit == D("0.01")
    assert shib.step_size == D(1) and shib.tick_size == D("0.00000001") and shib.min_notional == D(1)
    assert filters["BTTCUSDT"].base_unit == D("0.1")


def test_every_number_is_a_decimal_equal_to_the_payload_string(exchange_info: dict,
                                                                filters: dict[str, SymbolFilters]) -> None:
    names = {
        "PRICE_FILTER": {"minPrice": "min_price", "maxPrice": "max_price", "tickSize": "tick_size"},
        "LOT_SIZE": {"minQty": "min_qty", "maxQty": "max_qty", "stepSize": "step_size"},
        "MARKET_LOT_SIZE": {"minQty": "market_min_qty", "maxQty": "market_max_qty", "stepSize": "market_step_size"},
        "NOTIONAL": {"minNotional": "min_notional", "maxNotional": "max_notional"},
    }
    for entry in exchange_info["symbols"]:
        f = filters[entry["symbol"]]
        for raw in entry["filters"]:
            for key, attr in names.get(raw["filterType"], {}).items():
                value = getattr(f, attr)
                assert type(value) is Decimal
                assert value == Decimal(raw[key]), (entry["symbol"], key)


def test_refuses_float_numbers(exchange_info: dict) -> None:
    entry = raw_entry(exchange_info, "BTCUSDC")
    entry["filters"][0]["tickSize"] = 0.01
    with pytest.raises(TypeError):
        SymbolFilters.from_symbol(entry)


def test_legacy_min_notional_and_percent_price(exchange_info: dict) -> None:
    entry = raw_entry(exchange_info, "BTCUSDC")
    entry["filters"] = [x for x in entry["filters"] if x["filterType"] not in ("NOTIONAL", "PERCENT_PRICE_BY_SIDE")]
    entry["filters"].append({"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": False,
                             "avgPriceMins": 5})
    entry["filters"].append({"filterType": "PERCENT_PRICE", "multiplierUp": "1.1", "multiplierDown": "0.9",
                             "avgPriceMins": 5})
    f = SymbolFilters.from_symbol(entry)
    assert f.notional_filter == "MIN_NOTIONAL" and f.min_notional == D(10) and not f.apply_min_to_market
    assert f.max_notional == 0
    assert failing_filter(f, Side.BUY, "LIMIT", D("0.0002"), D("49999.99")) == "MIN_NOTIONAL"
    assert failing_filter(f, Side.BUY, "LIMIT", D("0.0002"), D("50000")) is None
    # applyToMarket false: a tiny market order passes the notional rule
    assert failing_filter(f, Side.BUY, "MARKET", D("0.00001"), avg_price=D(100)) is None
    assert failing_filter(f, Side.SELL, "LIMIT", D("1"), D("110.01"), avg_price=D(100)) == "PERCENT_PRICE"
    assert failing_filter(f, Side.SELL, "LIMIT", D("1"), D("110"), avg_price=D(100)) is None


# ---------------------------------------------------------------------------------------------------- validation


def test_error_text_code_and_pickle(btc: SymbolFilters) -> None:
    with pytest.raises(FilterError) as info:
        validate(btc, Side.BUY, "LIMIT", D("0.000001"), D("60000"))
    e = info.value
    assert str(e) == "Filter failure: LOT_SIZE (quantity 0.000001 below minQty 0.00001)"
    assert (e.filter, e.code, e.binance_msg) == ("LOT_SIZE", -1013, "Filter failure: LOT_SIZE")
    assert isinstance(e, ValueError)
    back = pickle.loads(pickle.dumps(e))
    assert (back.filter, back.reason, str(back)) == (e.filter, e.reason, str(e))


@pytest.mark.parametrize(
    "price, filter_name",
    [
        ("0.01", None), ("0.009", "PRICE_FILTER"), ("0", "PRICE_FILTER"),
        ("1000000", None), ("1000000.01", "PRICE_FILTER"),
        ("60000.01", None), ("60000.005", "PRICE_FILTER"),
    ],
)
def test_price_filter_boundaries(btc: SymbolFilters, price: str, filter_name: str | None) -> None:
    qty = D(9000) if D(price) < 1 else D(1)  # keep the notional valid so only the price rule is tested
    assert failing_filter(btc, Side.BUY, "LIMIT", qty, D(price)) == filter_name
    assert failing_filter(btc, Side.SELL, "LIMIT_MAKER", qty, D(price)) == filter_name


@pytest.mark.parametrize(
    "side, price, filter_name",
    [
        (Side.BUY, "12000.00", None), (Side.BUY, "11999.99", "PERCENT_PRICE_BY_SIDE"),
        (Side.BUY, "300000.00", None), (Side.BUY, "300000.01", "PERCENT_PRICE_BY_SIDE"),
        (Side.SELL, "12000.00", None), (Side.SELL, "11999.99", "PERCENT_PRICE_BY_SIDE"),
        (Side.SELL, "300000.00", None), (Side.SELL, "300000.01", "PERCENT_PRICE_BY_SIDE"),
    ],
)
def test_percent_price_by_side_boundaries(btc: SymbolFilters, side: Side, price: str, filter_name: str | None) -> None:
    assert failing_filter(btc, side, "LIMIT", D("0.001"), D(price), avg_price=D(60000)) == filter_name
    # without a reference price the band cannot be evaluated
    assert failing_filter(btc, side, "LIMIT", D("0.001"), D(price)) is None


def test_percent_price_uses_the_side_multipliers(btc: SymbolFilters) -> None:
    asym = dataclasses.replace(btc, bid_up=D("1.05"), bid_down=D("0.5"), ask_up=D("2"), ask_down=D("0.95"))
    assert failing_filter(asym, Side.BUY, "LIMIT", D("0.01"), D("105.01"), avg_price=D(100)) == "PERCENT_PRICE_BY_SIDE"
    assert failing_filter(asym, Side.SELL, "LIMIT", D("0.1"), D("105.01"), avg_price=D(100)) is None
    assert failing_filter(asym, Side.SELL, "LIMIT", D("0.1"), D("94.99"), avg_price=D(100)) == "PERCENT_PRICE_BY_SIDE"
    assert failing_filter(asym, Side.BUY, "LIMIT", D("0.1"), D("94.99"), avg_price=D(100)) is None


@pytest.mark.parametrize(
    "qty, price, filter_name",
    [
        ("0.00001", "600000", None), ("0.000009", "600000", "LOT_SIZE"), ("0", "600000", "LOT_SIZE"),
        ("9000", "1", None), ("9000.00001", "1", "LOT_SIZE"),
        ("0.00002", "600000", None), ("0.000015", "600000", "LOT_SIZE"),
    ],
)
def test_lot_size_boundaries(btc: SymbolFilters, qty: str, price: str, filter_name: str | None) -> None:
    assert failing_filter(btc, Side.BUY, "LIMIT", D(qty), D(price)) == filter_name


def test_market_lot_size_applies_to_market_only(btc: SymbolFilters) -> None:
    assert failing_filter(btc, Side.SELL, "MARKET", D("30.94034"), avg_price=D(60000)) is None
    assert failing_filter(btc, Side.SELL, "MARKET", D("30.94035"), avg_price=D(60000)) == "MARKET_LOT_SIZE"
    assert failing_filter(btc, Side.SELL, "LIMIT", D("30.94035"), D(60000)) is None
    # LOT_SIZE still applies to market orders, and comes first
    assert failing_filter(btc, Side.SELL, "MARKET", D("30.940341"), avg_price=D(60000)) == "LOT_SIZE"


def test_notional_limit_and_market(btc: SymbolFilters) -> None:
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.0001"), D("50000")) is None  # exactly 5
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.0001"), D("49999.99")) == "NOTIONAL"
    assert failing_filter(btc, Side.BUY, "LIMIT", D(9), D(1_000_000)) is None  # exactly 9,000,000
    assert failing_filter(btc, Side.BUY, "LIMIT", D("9.00001"), D(1_000_000)) == "NOTIONAL"
    # applyMinToMarket: the reference price values a market quantity
    assert failing_filter(btc, Side.BUY, "MARKET", D("0.0001"), avg_price=D("49999.99")) == "NOTIONAL"
    assert failing_filter(btc, Side.BUY, "MARKET", D("0.0001"), avg_price=D("50000")) is None
    # applyMaxToMarket is false: a huge market notional passes
    assert failing_filter(btc, Side.BUY, "MARKET", D(30), avg_price=D(1_000_000)) is None
    # quote amount market orders: the amount is the notional
    assert failing_filter(btc, Side.BUY, "MARKET", None, quote_order_qty=D("4.99999999")) == "NOTIONAL"
    assert failing_filter(btc, Side.BUY, "MARKET", None, quote_order_qty=D(5)) is None
    assert failing_filter(btc, Side.BUY, "MARKET", None, quote_order_qty=D(10_000_000)) is None
    # with applyMaxToMarket the max applies to both kinds of market order
    strict = dataclasses.replace(btc, apply_max_to_market=True)
    assert failing_filter(strict, Side.BUY, "MARKET", None, quote_order_qty=D("9000000.01")) == "NOTIONAL"
    assert failing_filter(strict, Side.BUY, "MARKET", D(10), avg_price=D(900_001)) == "NOTIONAL"


def test_max_num_orders(btc: SymbolFilters) -> None:
    assert failing_filter(btc, Side.BUY, "LIMIT", D(1), D(60000), open_orders=199) is None
    assert failing_filter(btc, Side.BUY, "LIMIT", D(1), D(60000), open_orders=200) == "MAX_NUM_ORDERS"


def test_non_filter_rejects(btc: SymbolFilters) -> None:
    with pytest.raises(FilterError) as info:
        validate(dataclasses.replace(btc, status="BREAK"), Side.BUY, "LIMIT", D(1), D(60000))
    assert (info.value.filter, info.value.code, info.value.binance_msg) == ("MARKET_CLOSED", -1013, "Market is closed.")
    no_market = dataclasses.replace(btc, order_types=frozenset({"LIMIT"}))
    with pytest.raises(FilterError) as info:
        validate(no_market, Side.BUY, "MARKET", D(1))
    assert info.value.filter == "ORDER_TYPE" and info.value.code == -2010
    assert info.value.binance_msg == "Market orders are not supported for this symbol."
    assert failing_filter(no_market, Side.BUY, "LIMIT_MAKER", D(1), D(60000)) == "ORDER_TYPE"
    no_quote = dataclasses.replace(btc, quote_order_qty_market_allowed=False)
    with pytest.raises(FilterError) as info:
        validate(no_quote, Side.BUY, "MARKET", None, quote_order_qty=D(10))
    assert info.value.binance_msg == "Quote order qty market orders are not support for this symbol."


def test_checks_run_in_binance_order(btc: SymbolFilters) -> None:
    closed = dataclasses.replace(btc, status="HALT")
    assert failing_filter(closed, Side.BUY, "LIMIT", D("0.000001"), D("0.001")) == "MARKET_CLOSED"
    # bad price and bad quantity: PRICE_FILTER is reported
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.000001"), D("0.001")) == "PRICE_FILTER"
    # price out of band and bad quantity: the band comes first
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.000001"), D(1), avg_price=D(60000)) == "PERCENT_PRICE_BY_SIDE"
    # bad quantity and bad notional: LOT_SIZE
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.000001"), D(1)) == "LOT_SIZE"
    # bad notional and too many open orders: NOTIONAL
    assert failing_filter(btc, Side.BUY, "LIMIT", D("0.00001"), D(1), open_orders=500) == "NOTIONAL"


def test_zero_bounds_disable_checks(btc: SymbolFilters) -> None:
    free = dataclasses.replace(btc, tick_size=D(0), max_qty=D(0), step_size=D(0), max_price=D(0), max_notional=D(0))
    assert failing_filter(free, Side.BUY, "LIMIT", D("12345.123456789"), D("2000000.123")) is None
    nothing = dataclasses.replace(free, min_price=D(0), min_qty=D(0), min_notional=D(0))
    with pytest.raises(FilterError) as info:
        validate(nothing, Side.BUY, "LIMIT", D(0), D(5))
    assert info.value.binance_msg == "Price * QTY is zero or less."


def test_malformed_calls_are_value_errors_not_filter_failures(btc: SymbolFilters) -> None:
    for kwargs in (
        dict(order_type="LIMIT", quantity=D(1), price=None),
        dict(order_type="MARKET", quantity=D(1), price=D(60000)),
        dict(order_type="MARKET", quantity=None),
        dict(order_type="STOP_LOSS_LIMIT", quantity=D(1), price=D(60000)),
        dict(order_type="LIMIT", quantity=1.0, price=D(60000)),
        dict(order_type="LIMIT", quantity=D(-1), price=D(60000)),
    ):
        with pytest.raises(ValueError) as info:
            validate(btc, Side.BUY, **kwargs)
        assert not isinstance(info.value, FilterError), kwargs
    with pytest.raises(ValueError):
        validate(btc, Side.BUY, "MARKET", D(1), quote_order_qty=D(10))


# ------------------------------------------------------------------------------------------------------ rounding


def test_round_price_directions(btc: SymbolFilters) -> None:
    p = D("60000.129")
    assert round_price(btc, p, Side.BUY) == D("60000.12")
    assert round_price(btc, p, Side.SELL) == D("60000.13")
    assert round_price(btc, p, Side.BUY, aggressive=True) == D("60000.13")
    assert round_price(btc, p, Side.SELL, aggressive=True) == D("60000.12")
    for side in Side:
        for aggressive in (False, True):
            assert round_price(btc, D("60000.12"), side, aggressive) == D("60000.12")


def test_round_quantity_down(btc: SymbolFilters, filters: dict[str, SymbolFilters]) -> None:
    assert round_quantity_down(btc, D("0.123456789")) == D("0.12345")
    assert round_quantity_down(btc, D("0.12345")) == D("0.12345")
    assert round_quantity_down(filters["SHIBUSDT"], D("1234567.99")) == D(1234567)
    both = dataclasses.replace(btc, market_step_size=D("0.00004"))
    assert quantity_step(both, market=True) == D("0.00004")
    assert round_quantity_down(both, D("0.00011"), market=True) == D("0.00008")
    odd = dataclasses.replace(btc, step_size=D("0.00006"), market_step_size=D("0.00004"))
    assert quantity_step(odd, market=True) == D("0.00012")
    assert quantity_step(odd, market=False) == D("0.00006")


def test_min_quantity_for(btc: SymbolFilters) -> None:
    assert min_quantity_for(btc, D(60000)) == D("0.00009")  # 5 / 60000 = 0.0000833.. -> up to the step
    assert min_quantity_for(btc, D(50000)) == D("0.0001")  # exact
    assert min_quantity_for(btc, D(1_000_000)) == D("0.00001")  # minQty binds
    assert min_quantity_for(btc, None) == D("0.00001")
    # market orders: the notional minimum applies only with applyMinToMarket
    assert min_quantity_for(btc, D(60000), market=True) == D("0.00009")
    assert min_quantity_for(dataclasses.replace(btc, apply_min_to_market=False), D(60000), market=True) == D("0.00001")
    with pytest.raises(FilterError) as info:
        min_quantity_for(btc, D("0.0001"))  # 50,000 BTC for 5 USDC: above maxQty
    assert info.value.filter == "LOT_SIZE"


def test_round_order_examples(btc: SymbolFilters) -> None:
    assert round_order(btc, Side.BUY, D("0.123456789"), D("60000.129")) == (D("0.12345"), D("60000.12"))
    assert round_order(btc, Side.SELL, D("0.123456789"), D("60000.129")) == (D("0.12345"), D("60000.13"))
    assert round_order(btc, Side.BUY, D("1.2345678"), avg_price=D(60000)) == (D("1.23456"), None)


@pytest.mark.parametrize(
    "kwargs, filter_name",
    [
        (dict(quantity=D("0.00005"), price=D(60000)), "NOTIONAL"),  # 3 USDC, no pad
        (dict(quantity=D("0.000009"), price=D(60000)), "LOT_SIZE"),  # rounds down to 0
        (dict(quantity=D("9000.5"), price=D(1)), "LOT_SIZE"),  # above maxQty: not clamped
        (dict(quantity=D(1), price=D("1000000.5")), "PRICE_FILTER"),  # BUY rounds down to 1,000,000.50 > max
        (dict(quantity=D(1), price=D(11000), avg_price=D(60000)), "PERCENT_PRICE_BY_SIDE"),
        (dict(quantity=D(10), price=D(1_000_000)), "NOTIONAL"),  # 10M > maxNotional
        (dict(quantity=D(31), avg_price=D(60000)), "MARKET_LOT_SIZE"),
        (dict(quantity=D("0.00005"), avg_price=D(60000)), "NOTIONAL"),  # applyMinToMarket
    ],
)
def test_round_order_rejects_what_rounding_cannot_save(btc: SymbolFilters, kwargs: dict, filter_name: str) -> None:
    with pytest.raises(FilterError) as info:
        round_order(btc, Side.BUY, **kwargs)
    assert info.value.filter == filter_name


def test_round_order_pads_to_the_minimum(btc: SymbolFilters) -> None:
    padded = round_order(btc, Side.BUY, D("0.00005"), D("60000.129"), pad_to_minimum=True)
    assert padded == (D("0.00009"), D("60000.12"))
    assert round_order(btc, Side.BUY, D("0.00005"), avg_price=D(60000), pad_to_minimum=True) == (D("0.00009"), None)
    # already above the minimum: padding does not change the quantity, it still rounds down
    assert round_order(btc, Side.BUY, D("0.123456"), D(60000), pad_to_minimum=True) == (D("0.12345"), D(60000))
    # padding never rescues a bad price
    with pytest.raises(FilterError) as info:
        round_order(btc, Side.BUY, D("0.00005"), D("0.001"), pad_to_minimum=True)
    assert info.value.filter == "PRICE_FILTER"


# ----------------------------------------------------------------------------------------------- properties

# Hypothesis draws symbols by name from the real payload (module level: strategies cannot use fixtures).
REAL = parse_exchange_info(json.loads(EXCHANGE_INFO_PATH.read_text()))
real_symbols = st.sampled_from(sorted(REAL)).map(REAL.__getitem__)


@st.composite
def order_wishes(draw: st.DrawFn):
    f = draw(real_symbols)
    side = draw(st.sampled_from(list(Side)))
    # price: a random number of ticks with some sub-tick noise, spread over many orders of magnitude
    price = (f.tick_size * draw(st.integers(1, 10**9))).scaleb(-draw(st.integers(0, 8)))
    price += f.tick_size * draw(st.integers(0, 99)) / 100
    market = draw(st.booleans())
    # quantity: around the minimum needed at this price, from 1/100 of it to 10^5 times it
    base = max(f.min_qty, f.min_notional / price)
    quantity = (base * draw(st.integers(1, 10**7)) / 100).scaleb(-draw(st.integers(0, 2)))
    quantity = quantity.quantize(D(1).scaleb(-12))  # a realistic number of decimals
    assume(quantity > 0)
    avg_price = None
    if draw(st.booleans()):
        avg_price = (price * draw(st.integers(15, 600)) / 100).quantize(f.tick_size)
        assume(avg_price > 0)
    return dict(
        f=f, side=side, quantity=quantity, price=None if market else price, avg_price=avg_price,
        aggressive_price=draw(st.booleans()), pad_to_minimum=draw(st.booleans()),
    )


@pytest.fixture(scope="module")
def symbols(filters: dict[str, SymbolFilters]) -> list[SymbolFilters]:
    return sorted(filters.values(), key=lambda f: f.symbol)


@settings(max_examples=400, deadline=None)
@given(w=order_wishes())
def test_round_order_result_always_validates(w: dict) -> None:
    f, side, asked_q, asked_p = w["f"], w["side"], w["quantity"], w["price"]
    try:
        q, p = round_order(f, side, asked_q, asked_p, aggressive_price=w["aggressive_price"],
                           pad_to_minimum=w["pad_to_minimum"], avg_price=w["avg_price"])
    except FilterError:
        return
    market = asked_p is None
    validate(f, side, "MARKET" if market else "LIMIT", q, p, avg_price=w["avg_price"])
    step = quantity_step(f, market)
    assert q % step == 0 and q > 0
    if not w["pad_to_minimum"]:
        assert q <= asked_q and asked_q - q < step  # down, by less than one step
    elif q > asked_q:
        # padded: the smallest passing quantity, so one step less must fail
        assert q == min_quantity_for(f, w["avg_price"] if market else p, market=market)
        smaller = q - step
        if smaller > 0:
            with pytest.raises(FilterError):
                validate(f, side, "MARKET" if market else "LIMIT", smaller, p, avg_price=w["avg_price"])
    if market:
        assert p is None
        return
    assert p % f.tick_size == 0 and abs(p - asked_p) < f.tick_size
    passive_side_is_down = (side is Side.BUY) != w["aggressive_price"]
    if passive_side_is_down:
        assert p <= asked_p  # a BUY never pays more than asked (unless told to be aggressive)
    else:
        assert p >= asked_p


@settings(max_examples=200, deadline=None)
@given(f=real_symbols, data=st.data())
def test_valid_orders_are_fixed_points_of_rounding(f: SymbolFilters, data: st.DataObject) -> None:
    side = data.draw(st.sampled_from(list(Side)))
    p = f.tick_size * data.draw(st.integers(1, 10**8))
    q = f.step_size * data.draw(st.integers(1, 10**9))
    try:
        validate(f, side, "LIMIT", q, p)
    except FilterError:
        assume(False)
    for aggressive in (False, True):
        for pad in (False, True):
            assert round_order(f, side, q, p, aggressive_price=aggressive, pad_to_minimum=pad) == (q, p)


@settings(max_examples=200, deadline=None)
@given(f=real_symbols, data=st.data())
def test_min_quantity_is_minimal(f: SymbolFilters, data: st.DataObject) -> None:
    p = f.tick_size * data.draw(st.integers(1, 10**8))
    assume(p >= f.min_price and (f.max_price == 0 or p <= f.max_price))
    try:
        q = min_quantity_for(f, p)
    except FilterError:
        return
    validate(f, Side.BUY, "LIMIT", q, p)
    with pytest.raises(FilterError) as info:
        validate(f, Side.BUY, "LIMIT", q - f.step_size, p)
    assert info.value.filter in ("LOT_SIZE", "NOTIONAL")


def test_the_generator_produces_passing_orders(symbols: list[SymbolFilters]) -> None:
    """Guard against a vacuous property: plenty of real symbols accept a sensible rounded order."""
    passed = 0
    for f in symbols:
        price = max(f.min_price, f.tick_size * 1000) + f.tick_size / 3
        q = min_quantity_for(f, price) * 3 + f.step_size / 7
        q_r, p_r = round_order(f, Side.BUY, q, price)
        validate(f, Side.BUY, "LIMIT", q_r, p_r)
        passed += 1
    assert passed == len(symbols)

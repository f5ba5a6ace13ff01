"""Batch intake: orders rounded onto the exchange's grids (never more than planned), deterministic client ids,
and what no rounding can save rejected at once with the filter's name."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from core.asset_order import AssetOrderStatus
from core.batch_intake import DUPLICATE_SYMBOL, UNKNOWN_SYMBOL, attempt_of, intake_batch, next_attempt
from core.batch_planner import BasketLeg
from core.side import Side
from core.symbol_filters import parse_exchange_info, validate

D = Decimal


@pytest.fixture(scope="module")
def filters(exchange_info):
    return parse_exchange_info(exchange_info)


def test_accepted_orders_are_rounded_passively_and_valid(filters) -> None:
    planned = [BasketLeg("BTCUSDC", Side.BUY, D("60000.019"), D("0.0123456"), D("0.0123")),
               BasketLeg("ETHUSDC", Side.SELL, D("2500.001"), D("0.33339"), D("0.3"))]
    orders, results = intake_batch("b42", planned, filters)
    assert [r.accepted for r in results] == [True, True]
    btc, eth = orders
    assert (btc.client_order_id, btc.price, btc.quantity) == ("b42.BTCUSDC.0", D("60000.01"), D("0.01234"))
    assert (eth.client_order_id, eth.price, eth.quantity) == ("b42.ETHUSDC.0", D("2500.01"), D("0.3333"))
    assert btc.quantity <= planned[0].quantity and btc.price <= planned[0].price  # a BUY never pays more
    assert eth.price >= planned[1].price  # a SELL never accepts less
    for o in orders:
        validate(filters[o.symbol], o.side, o.order_type, o.quantity, o.price)
        assert o.status is AssetOrderStatus.INTENDED and o.time_in_force == "IOC"
    assert results[0].client_order_id == btc.client_order_id and results[0].quantity == btc.quantity


def test_filter_violations_unknown_and_duplicate_symbols_are_rejected_by_name(filters) -> None:
    planned = [BasketLeg("BTCUSDC", Side.BUY, D("60000"), D("0.00001"), D(0)),  # 0.6 USDC: below minNotional 5
               BasketLeg("ETHUSDC", Side.BUY, D("2500"), D("100000"), D(0)),  # above LOT_SIZE maxQty
               BasketLeg("NOPEUSDC", Side.BUY, D("1"), D("10"), D(0)),
               BasketLeg("SOLUSDC", Side.BUY, D("150"), D("1"), D(0)),
               BasketLeg("SOLUSDC", Side.BUY, D("150"), D("1"), D(0))]
    orders, results = intake_batch("b43", planned, filters)
    assert [(r.accepted, r.filter) for r in results] == [
        (False, "NOTIONAL"), (False, "LOT_SIZE"), (False, UNKNOWN_SYMBOL), (True, None), (False, DUPLICATE_SYMBOL)]
    assert [o.symbol for o in orders] == ["SOLUSDC"]
    assert all(r.client_order_id is None and r.status == "REJECTED" for r in results if not r.accepted)


def test_a_market_order_has_no_price_and_no_time_in_force(filters) -> None:
    @dataclass
    class P:
        symbol: str
        side: Side
        price: Decimal | None
        quantity: Decimal

    orders, results = intake_batch("b44", [P("ETHUSDC", Side.BUY, None, D("0.5"))], filters)
    assert orders[0].order_type == "MARKET" and orders[0].price is None and orders[0].time_in_force is None


def test_next_attempt_derives_a_new_id_and_a_fresh_intent(filters) -> None:
    orders, _ = intake_batch("b45", [BasketLeg("ETHUSDC", Side.BUY, D("2500"), D("0.01"), D(0))], filters)
    first = orders[0]
    first.mark_sent()
    first.resolve_not_found()
    second = next_attempt(first)
    assert second.client_order_id == "b45.ETHUSDC.1" and attempt_of(second.client_order_id) == 1
    assert second.status is AssetOrderStatus.INTENDED and (second.quantity, second.price) == (first.quantity,
                                                                                            first.price)


def test_a_price_outside_the_average_price_band_is_refused_by_filter_name(filters) -> None:
    """BTCUSDC's real PERCENT_PRICE_BY_SIDE: a BUY between 0.2x and 5x the exchange's average price."""
    band = filters["BTCUSDC"]
    assert (band.percent_price_filter, band.bid_up, band.bid_down) == ("PERCENT_PRICE_BY_SIDE", D("5"), D("0.2"))
    planned = [BasketLeg("BTCUSDC", Side.BUY, D("60000"), D("0.001"), D(0)),  # 6x the average: above the band
               BasketLeg("ETHUSDC", Side.BUY, D("2500"), D("0.01"), D(0)),  # within its band
               BasketLeg("SOLUSDC", Side.SELL, D("20"), D("1"), D(0))]  # 0.1x the average: below the band
    avg = {"BTCUSDC": D("10000"), "ETHUSDC": D("2500"), "SOLUSDC": D("200")}
    orders, results = intake_batch("b46", planned, filters, avg_prices=avg)
    assert [(r.accepted, r.filter) for r in results] == [
        (False, "PERCENT_PRICE_BY_SIDE"), (True, None), (False, "PERCENT_PRICE_BY_SIDE")]
    assert "above 50000" in results[0].reason and "below 40" in results[2].reason
    assert [o.symbol for o in orders] == ["ETHUSDC"]
    # The same batch without the average price passes the band (only the exchange would have caught it).
    _, blind = intake_batch("b47", planned, filters)
    assert [r.accepted for r in blind] == [True, True, True]


def test_the_band_edge_is_inclusive_and_rounding_never_moves_a_price_into_the_band(filters) -> None:
    avg = {"BTCUSDC": D("10000")}
    ok, _ = intake_batch("b48", [BasketLeg("BTCUSDC", Side.BUY, D("50000"), D("0.001"), D(0))], filters,
                         avg_prices=avg)
    assert ok[0].price == D("50000")  # exactly 5x: allowed
    # 50000.009 rounds down (passive BUY) to 50000.00: inside; 50000.01 is on the grid and one tick outside.
    _, res = intake_batch("b49", [BasketLeg("BTCUSDC", Side.BUY, D("50000.01"), D("0.001"), D(0))], filters,
                          avg_prices=avg)
    assert (res[0].accepted, res[0].filter) == (False, "PERCENT_PRICE_BY_SIDE")


def test_max_num_orders_counts_the_open_orders_of_the_symbol(filters) -> None:
    cap = filters["BTCUSDC"].max_num_orders
    assert cap == 200  # the real payload's MAX_NUM_ORDERS
    planned = [BasketLeg("BTCUSDC", Side.BUY, D("60000"), D("0.001"), D(0)),
               BasketLeg("ETHUSDC", Side.BUY, D("2500"), D("0.01"), D(0))]
    orders, results = intake_batch("b50", planned, filters, open_orders={"BTCUSDC": cap - 1, "ETHUSDC": cap})
    assert [(r.accepted, r.filter) for r in results] == [(True, None), (False, "MAX_NUM_ORDERS")]
    assert [o.symbol for o in orders] == ["BTCUSDC"]
    assert "200 open orders" in results[1].reason

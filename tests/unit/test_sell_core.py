"""Sells in the batch core: the sell plan (release rounded down, sell limit up to the tick, minimums), crossing
(only the net goes out, one order per asset, none on a net of zero, one price for both sides) and the sell
assignment (exact, rounded toward the house), with conservation over random batches of buys and sells."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.basket import Basket, BasketAsset, load_indexes
from core.batch_planner import PendingOrder, PlannerLimits, plan_batch
from core.crossing import CROSS_PRICE_QUANTUM, crossing_price, is_crossed, plan_mixed
from core.lots import Lot
from core.money import quantize_down, quantize_up
from core.sell_assignment import STOPPED_BELOW_MINIMUM, assign_sells, sale_lot_from_fill
from core.sell_plan import BELOW_MINIMUM, PendingSell, plan_sells, release_of
from core.side import Side
from core.symbol_filters import parse_exchange_info, validate
from tests.unit.sell_world import run_batch

PRICES = {"BTCUSDC": "60000.00", "ETHUSDC": "2500.00", "XRPUSDC": "0.5000", "SOLUSDC": "140.00",
          "BNBUSDC": "550.0", "DOGEUSDC": "0.10000", "LINKUSDC": "14.50", "ADAUSDC": "0.3500"}
IU = Decimal("1e-18")
LIMITS = PlannerLimits()


@pytest.fixture(scope="module")
def filters(exchange_info):
    return parse_exchange_info(exchange_info)


@pytest.fixture(scope="module")
def baskets(data_dir):
    idx = {"SY100.dev": load_indexes(data_dir / "indexes")["SY100.dev"]}
    idx["PAIR"] = Basket("PAIR", (BasketAsset("BTCUSDC", Decimal("0.001")), BasketAsset("LINKUSDC", Decimal(3))))
    idx["TRIO"] = Basket("TRIO", (BasketAsset("ETHUSDC", Decimal("0.02")), BasketAsset("DOGEUSDC", Decimal(700)),
                                  BasketAsset("ADAUSDC", Decimal("123.456789"))))
    return idx


def books(filters, depth=Decimal(1000), levels=5):
    """Bids from the price down, asks from one tick above, `levels` ticks deep (the limits reach them all)."""
    bids, asks = {}, {}
    for s, p in PRICES.items():
        tick, p = filters[s].tick_size, Decimal(p)
        bids[s] = [(p - tick * i, depth) for i in range(levels)]
        asks[s] = [(p + tick * (i + 1), depth) for i in range(levels)]
    return bids, asks


# ---- the sell plan -------------------------------------------------------------------------------------------------

def test_sell_limit_is_rounded_up_to_the_tick_and_release_down_to_the_unit(filters, baskets):
    bids = {"BTCUSDC": [(Decimal("60000.01"), Decimal(1)), (Decimal("59000"), Decimal(5))],
            "LINKUSDC": [(Decimal("14.51"), Decimal(1000))]}
    plan = plan_sells([PendingSell("s", "PAIR", Decimal("0.123456789"))], baskets, bids, filters, order_budget=10,
                      limits=LIMITS)
    btc = plan.quotes["BTCUSDC"]
    assert btc.limit == Decimal("59400.01")  # 60000.01 x 0.99 = 59400.0099, UP to the 0.01 tick
    assert btc.limit >= Decimal("60000.01") * Decimal("0.99")
    assert btc.levels == ((Decimal("60000.01"), Decimal(1)),)  # 59000 is below the limit: not reachable
    # 0.123456789 x 0.001 = 0.000123456789 BTC: 12345 satoshi, the 0.6789 rest is not sold
    assert plan.release["PAIR"]["BTCUSDC"] == 12345
    assert plan.release["PAIR"]["LINKUSDC"] == 37037036  # 0.370370367 LINK, down to 1e-8


def test_sells_that_cannot_reach_their_minimum_are_not_started(filters, baskets):
    bids, asks = books(filters)
    value = Decimal("0.5") * (Decimal("0.001") * Decimal(60000) + 3 * Decimal("14.50"))  # ~51.75 at the best bids
    sells = [PendingSell("low", "PAIR", Decimal("0.5"), min_proceeds=Decimal(50)),
             PendingSell("high", "PAIR", Decimal("0.5"), min_proceeds=value),  # more than the walk less commission
             PendingSell("none", "PAIR", Decimal("0.5"))]
    plan = plan_sells(sells, baskets, bids, filters, order_budget=10, limits=LIMITS, asks=asks)
    assert {e.order_id for e in plan.engagements} == {"low", "none"}
    assert [(d.order_id, d.reason) for d in plan.deferred] == [("high", BELOW_MINIMUM)]
    low = next(e for e in plan.engagements if e.order_id == "low")
    assert Decimal(50) <= low.expected < value


def test_sell_plan_defers_unknown_stale_illiquid_and_over_budget(filters, baskets):
    bids, asks = books(filters)
    del bids["LINKUSDC"]
    sells = [PendingSell("u", "NOPE", Decimal(1)), PendingSell("p", "PAIR", Decimal(1)),
             PendingSell("t", "TRIO", Decimal(1)), PendingSell("y", "SY100.dev", Decimal("0.01")),
             PendingSell("frac", "TRIO", Decimal("1e-19"))]
    plan = plan_sells(sells, baskets, bids, filters, order_budget=4, limits=LIMITS, stale={"SOLUSDC"})
    reasons = {d.order_id: d.reason for d in plan.deferred}
    assert reasons == {"u": "UNKNOWN_INDEX", "p": "NO_LIQUIDITY:LINKUSDC", "y": "STALE_BOOK:SOLUSDC",
                       "frac": "TOO_SMALL_TO_SELL"}
    assert [e.order_id for e in plan.engagements] == ["t"]
    plan = plan_sells(sells[2:4], baskets, books(filters)[0], filters, order_budget=4, limits=LIMITS)
    assert [e.order_id for e in plan.engagements] == ["t"]  # SY100.dev's 6 assets do not fit with TRIO's 3
    assert [(d.order_id, d.reason) for d in plan.deferred] == [("y", "RATE_LIMIT")]


def test_sell_limit_is_raised_into_the_percent_price_band(filters):
    """BTCUSDC's PERCENT_PRICE_BY_SIDE: a sell limit must be >= avg x askMultiplierDown and <= avg x askMultiplierUp."""
    from core.sell_plan import sell_quote
    f = filters["BTCUSDC"]
    bids = [(Decimal("60000.00"), Decimal(1)), (Decimal("59999.00"), Decimal(1))]
    plain = sell_quote("BTCUSDC", bids, None, f, LIMITS)
    assert plain is not None and plain.limit == Decimal("59400.00") and len(plain.levels) == 2
    avg = Decimal("299998")  # the band's floor: 59999.6, above the 1 % cap's 59400 and the second bid
    raised = sell_quote("BTCUSDC", bids, None, f, LIMITS, avg_price=avg)
    assert raised is not None and raised.limit == Decimal("59999.60")
    assert raised.levels == ((Decimal("60000.00"), Decimal(1)),)
    assert sell_quote("BTCUSDC", bids, None, f, LIMITS, avg_price=Decimal("59400") / f.ask_up / 2) is None


# ---- crossing ------------------------------------------------------------------------------------------------------

def test_without_sells_the_buy_plan_is_unchanged(filters, baskets):
    bids, asks = books(filters)
    buys = [PendingOrder("a", "SY100.dev", Decimal(900)), PendingOrder("b", "PAIR", Decimal(300))]
    alone = plan_batch(buys, baskets, asks, filters, inventory_units={"BTCUSDC": 1000}, order_budget=20,
                       limits=LIMITS)
    mixed = plan_mixed(buys, [], baskets, filters, bids, asks, inventory_units={"BTCUSDC": 1000}, order_budget=20,
                       limits=LIMITS)
    assert mixed.batch == alone and mixed.crossings == {} and mixed.sells.is_empty


def test_only_the_net_goes_out_one_order_per_asset(filters, baskets):
    bids, asks = books(filters)
    buys = [PendingOrder("b", "SY100.dev", Decimal(20000))]
    sells = [PendingSell("s", "TRIO", Decimal(2)), PendingSell("p", "PAIR", Decimal(40))]
    m = plan_mixed(buys, sells, baskets, filters, bids, asks, order_budget=20, limits=LIMITS)
    legs = {}
    for leg in m.batch.legs:
        assert leg.symbol not in legs, "one exchange order per asset"
        legs[leg.symbol] = leg
        validate(filters[leg.symbol], leg.side, "LIMIT", leg.quantity, leg.price)
    # ETH and DOGE: the TRIO sell releases a little of what SY100.dev buys: all of it crosses, the rest is bought.
    for s in ("ETHUSDC", "DOGEUSDC"):
        c = m.crossings[s]
        assert c.crossed == c.released > 0 and c.to_exchange == 0 and legs[s].side is Side.BUY
        assert legs[s].need < Decimal(c.released) * 0 + legs[s].quantity  # the buy carries only the net
    # BTC: PAIR releases 0.04 BTC, SY100.dev needs ~0.27: the buy is the need less the release.
    btc = m.crossings["BTCUSDC"]
    assert btc.crossed == btc.released == 4_000_000 and legs["BTCUSDC"].side is Side.BUY
    # ADA and LINK are only sold: one sell each, at the limit, never more than released.
    for s in ("ADAUSDC", "LINKUSDC"):
        c, leg = m.crossings[s], legs[s]
        assert leg.side is Side.SELL and c.crossed == 0
        assert leg.quantity == Decimal(c.to_exchange) * filters[s].base_unit
        assert leg.quantity <= Decimal(c.released) * filters[s].base_unit
        assert leg.price == m.sells.quotes[s].limit


def test_a_net_of_zero_sends_nothing(filters, baskets):
    """A buy whose need is exactly what a sell of the same index releases: every unit crosses, no order goes out."""
    bids, asks = books(filters)
    sells = [PendingSell("s", "PAIR", Decimal(10))]  # 0.01 BTC and 30 LINK: whole base units
    # Served from the release alone, the buy is sized at the mid whatever its size: read that price on a small buy,
    # then cap the order at exactly 10 units' worth.
    small = plan_mixed([PendingOrder("b", "PAIR", Decimal(10**6))], sells, baskets, filters, bids, asks,
                       order_budget=10, limits=PlannerLimits(max_order_notional=Decimal(100)))
    price = small.batch.engagements[0].index_price
    limits = PlannerLimits(max_order_notional=Decimal(10) * price * LIMITS.fee_factor)
    m = plan_mixed([PendingOrder("b", "PAIR", Decimal(10**6))], sells, baskets, filters, bids, asks,
                   order_budget=10, limits=limits)
    (e,) = m.batch.engagements
    assert e.units == Decimal(10) and e.index_price == price
    assert m.batch.legs == () and m.batch.inventory_used == {}
    assert {s: (c.crossed, c.to_exchange, c.to_inventory) for s, c in m.crossings.items()} == {
        "BTCUSDC": (1_000_000, 0, 0), "LINKUSDC": (3_000_000_000, 0, 0)}


def test_sells_are_scaled_to_the_bids_the_net_can_reach(filters, baskets):
    """PAIR's LINK bids hold 10 LINK within the limit: a 40-unit sale (120 LINK) is scaled to fit, its minimum pro
    rata; the net sell fits the bids."""
    bids, asks = books(filters)
    bids["LINKUSDC"] = [(p, Decimal(2)) for p, _ in bids["LINKUSDC"]]
    m = plan_mixed([], [PendingSell("s", "PAIR", Decimal(40), min_proceeds=Decimal(800))], baskets, filters, bids,
                   asks, order_budget=10, limits=LIMITS)
    (e,) = m.sells.engagements
    assert Decimal(3) < e.units < Decimal("3.34")  # 10 / 3 LINK per unit, down
    assert e.min_proceeds == quantize_up(Decimal(800) * e.units / 40, Decimal("0.000001"))
    link = next(leg for leg in m.batch.legs if leg.symbol == "LINKUSDC")
    assert link.side is Side.SELL and link.quantity <= Decimal(10)


def test_crossing_price_is_the_batch_average_or_the_mid_rounded_down():
    assert crossing_price(Decimal("100.5"), []) == Decimal("100.5")
    p = crossing_price(Decimal(1), [(Decimal(100), Decimal(1)), (Decimal(101), Decimal(2))])
    assert p == quantize_down(Decimal(302) / 3, CROSS_PRICE_QUANTUM) and p <= Decimal(302) / 3
    assert Decimal(302) / 3 - p < CROSS_PRICE_QUANTUM


def test_a_sell_below_the_exchange_minimums_is_taken_by_inventory(filters, baskets):
    """0.001 PAIR releases 0.000001 BTC (0.06 USDC): no exchange order can carry it; inventory takes it at mid."""
    bids, asks = books(filters)
    m = plan_mixed([], [PendingSell("s", "PAIR", Decimal("0.001"))], baskets, filters, bids, asks,
                   order_budget=10, limits=LIMITS)
    assert m.batch.legs == ()
    for s in ("BTCUSDC", "LINKUSDC"):
        c = m.crossings[s]
        assert c.to_inventory == c.released > 0 and c.to_exchange == c.crossed == 0


# ---- the sell assignment -------------------------------------------------------------------------------------------

U = Decimal("1e-8")


def _sale(symbol, trade, qty, price, fee):
    return sale_lot_from_fill(trade_id=trade, symbol=symbol, quote_asset="USDC", price=Decimal(price),
                              quantity=Decimal(qty), commission=Decimal(fee), commission_asset="USDC", unit=U)


def test_sale_split_by_units_rounded_down_rest_to_the_house():
    baskets = {"X": Basket("X", (BasketAsset("AUSDC", Decimal(1)),))}
    from core.sell_plan import SellEngagement
    engagements = [SellEngagement("a", "X", Decimal(1), None, Decimal(0)),
                   SellEngagement("b", "X", Decimal(2), None, Decimal(0))]
    release = {"X": {"AUSDC": 300_000_000}}
    crossed = Lot("cross:b1:AUSDC", "AUSDC", 100_000_000, U, Decimal("10.000000000001"), Decimal(0))
    pools = {"AUSDC": [crossed, _sale("AUSDC", 1, "2", "9.99", "0.01998")]}
    sale = assign_sells(engagements, baskets, release, pools, {"AUSDC": U}, index_unit=IU,
                        collateral_unit=Decimal("0.000001"))
    a, b = sale.results
    assert a.units == 1 and b.units == 2 and a.stopped is b.stopped is None
    total = Decimal("10.000000000001") + Decimal("19.98") - Decimal("0.01998")
    assert a.proceeds + b.proceeds == total  # every unit was redeemed: all the proceeds go to the orders
    assert a.payout == quantize_down(a.proceeds, Decimal("0.000001")) and a.payout <= a.proceeds
    assert sale.house_quote == total - a.payout - b.payout
    (line,) = a.lines
    assert line.units == 100_000_000 and line.crossed == Decimal("0.33333333")
    assert any(is_crossed(x) for x in line.lot_ids)
    assert sale.pools["AUSDC"].house_units == 0 and sale.pools["AUSDC"].unsold == 0
    sale.check()


def test_a_partial_sale_redeems_what_every_asset_covers_and_stops_below_minimum():
    baskets = {"X": Basket("X", (BasketAsset("AUSDC", Decimal(1)), BasketAsset("BUSDC", Decimal(2))))}
    from core.sell_plan import SellEngagement
    engagements = [SellEngagement("a", "X", Decimal(1), None, Decimal(0)),
                   SellEngagement("m", "X", Decimal(1), Decimal(25), Decimal(0))]
    release = {"X": {"AUSDC": 200_000_000, "BUSDC": 400_000_000}}
    pools = {"AUSDC": [_sale("AUSDC", 1, "2", "10", "0.02")],  # all A sold
             "BUSDC": [_sale("BUSDC", 1, "3", "5", "0.015")]}  # 3 of 4 B: a rate of 3/4
    sale = assign_sells(engagements, baskets, release, pools, {"AUSDC": U, "BUSDC": U}, index_unit=IU,
                        collateral_unit=Decimal("0.000001"))
    a, m = sale.results
    # m would get 3/4 x (10 + 10) less fees = ~14.98 < 25: stopped; a redeems 3/4 of its unit.
    assert m.stopped == STOPPED_BELOW_MINIMUM and m.units == 0 and m.payout == 0
    assert a.units == Decimal("0.75") and a.stopped is None
    lines = {l.symbol: l for l in a.lines}
    assert lines["AUSDC"].units == 75_000_000 and lines["BUSDC"].units == 150_000_000
    assert lines["AUSDC"].value == Decimal("7.5") and lines["BUSDC"].value == Decimal("7.5")
    pa, pb = sale.pools["AUSDC"], sale.pools["BUSDC"]
    assert (pa.to_orders, pa.house_units, pa.unsold) == (75_000_000, 125_000_000, 0)
    assert (pb.to_orders, pb.house_units, pb.unsold) == (150_000_000, 150_000_000, 100_000_000)
    fetched = Decimal(20) - Decimal("0.02") + Decimal(15) - Decimal("0.015")
    assert a.payout + sale.house_quote == fetched == sale.fetched
    sale.check()


def test_selling_more_than_released_is_refused():
    baskets = {"X": Basket("X", (BasketAsset("AUSDC", Decimal(1)),))}
    from core.sell_plan import SellEngagement
    with pytest.raises(ValueError, match="released"):
        assign_sells([SellEngagement("a", "X", Decimal(1), None, Decimal(0))], baskets, {"X": {"AUSDC": 1}},
                     {"AUSDC": [_sale("AUSDC", 1, "1", "1", "0")]}, {"AUSDC": U}, index_unit=IU,
                     collateral_unit=Decimal("0.000001"))
    with pytest.raises(ValueError, match="no engaged sell released"):  # a fill nobody's sell explains: not dropped
        assign_sells([SellEngagement("a", "X", Decimal(1), None, Decimal(0))], baskets, {"X": {"AUSDC": 10**8}},
                     {"BUSDC": [_sale("BUSDC", 1, "1", "1", "0")]}, {"AUSDC": U, "BUSDC": U}, index_unit=IU,
                     collateral_unit=Decimal("0.000001"))


def test_both_sides_see_the_crossed_lots_at_one_price(filters, baskets):
    bids, asks = books(filters)
    out = run_batch([PendingOrder("b", "SY100.dev", Decimal(20000))], [PendingSell("s", "TRIO", Decimal(2))],
                    baskets, filters, bids, asks, {}, LIMITS)
    eth = out.plan.crossings["ETHUSDC"]
    assert eth.crossed == eth.released == 4_000_000  # 2 x 0.02 ETH
    crossed = out.crossed_lots["ETHUSDC"]
    # ETH was also bought on the exchange: the crossing price is the batch's average ETH price, not the mid.
    buy_fills = [(p, q) for p, q in asks["ETHUSDC"]][:1]
    assert crossed.price == crossing_price(eth.mid, buy_fills) != eth.mid
    (buy_line,) = [l for l in out.allocation.breakdown("b") if l.symbol == "ETHUSDC"]
    assert any(is_crossed(x) for x in buy_line.lot_ids)
    (sale,) = out.sale.results
    (sell_line,) = [l for l in sale.lines if l.symbol == "ETHUSDC"]
    assert sell_line.crossed == Decimal("0.04") == sell_line.quantity and sell_line.fee == 0
    assert sell_line.average_price == crossed.price
    # DOGE: crossed too; ADA only TRIO holds: sold on the exchange at its bids, less the commission.
    (ada,) = [l for l in sale.lines if l.symbol == "ADAUSDC"]
    assert ada.crossed == 0 and ada.fee > 0 and ada.average_price == bids["ADAUSDC"][0][0]
    assert sale.payout == quantize_down(sum((l.proceeds for l in sale.lines), Decimal(0)), Decimal("0.000001"))


# ---- conservation over random batches ------------------------------------------------------------------------------

INDEXES = ("SY100.dev", "PAIR", "TRIO")
WORTH = {"SY100.dev": Decimal("42623.9"), "PAIR": Decimal("103.5"), "TRIO": Decimal("163.2")}  # at PRICES


@st.composite
def batches(draw):
    buys = [PendingOrder(f"b{i}", draw(st.sampled_from(INDEXES)), Decimal(draw(st.integers(5, 40_000))))
            for i in range(draw(st.integers(0, 6)))]
    sells = []
    for i in range(draw(st.integers(0, 8))):
        index = draw(st.sampled_from(INDEXES))
        units = Decimal(draw(st.integers(1, 10**6))).scaleb(-draw(st.integers(2, 7)))
        # A minimum near the units' worth at the book (some pass the plan, and a thinner book stops some)
        share = draw(st.one_of(st.none(), st.sampled_from(("0.5", "0.95", "0.985", "0.995", "1.01"))))
        minimum = None if share is None else quantize_down(units * WORTH[index] * Decimal(share), Decimal("0.01"))
        sells.append(PendingSell(f"s{i}", index, units, minimum))
    depth = {s: Decimal(draw(st.integers(1, 10**6))).scaleb(-draw(st.integers(0, 4))) for s in PRICES}
    inventory = {s: draw(st.integers(0, 10**7)) for s in PRICES}
    # The book when the sells arrive: % of each bid level still there, and how far the bids fell since the plan.
    left = {s: draw(st.sampled_from((100, 100, 100, 90, 50, 1, 0))) for s in PRICES}
    fell = {s: Decimal(draw(st.sampled_from(("0", "0", "0.003", "0.008")))) for s in PRICES}
    return buys, sells, depth, inventory, left, fell


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_conservation_over_random_batches_of_buys_and_sells(filters, baskets, case):
    buys, sells, depth, held, left, fell = case
    bids, asks = books(filters)
    bids = {s: [(p, depth[s]) for p, _ in levels] for s, levels in bids.items()}
    bids_then = {s: [(quantize_down(p * (1 - fell[s]), filters[s].tick_size), q * left[s] / 100) for p, q in levels]
                 for s, levels in bids.items()}
    inventory = {s: Lot(f"inv:{s}", s, n, filters[s].base_unit, Decimal(PRICES[s]), Decimal(0))
                 for s, n in held.items() if n}
    out = run_batch(buys, sells, baskets, filters, bids, asks, inventory, LIMITS, bids_then=bids_then)
    m, alloc, sale = out.plan, out.allocation, out.sale
    for name, seen in (("crossed", any(c.crossed for c in m.crossings.values())),
                       ("sold on the exchange", bool(out.sold)),
                       ("taken by inventory", any(c.to_inventory for c in m.crossings.values())),
                       ("partial sale", any(p.unsold for p in sale.pools.values())),
                       ("sells engaged", bool(m.sells.engagements)),
                       ("stopped below minimum", any(r.stopped for r in sale.results))):
        if seen:
            event(name)

    # One exchange order per asset at most; a sell never carries more than its asset's net, a net of zero nothing.
    symbols = [leg.symbol for leg in m.batch.legs]
    assert len(symbols) == len(set(symbols))
    for leg in m.batch.legs:
        validate(filters[leg.symbol], leg.side, "LIMIT", leg.quantity, leg.price)
        if leg.side is Side.SELL:
            c = m.crossings[leg.symbol]
            assert c.to_exchange > 0 and leg.quantity == c.to_exchange * filters[leg.symbol].base_unit
    for s, c in m.crossings.items():
        if c.crossed == c.released:
            assert all(not (leg.symbol == s and leg.side is Side.SELL) for leg in m.batch.legs)

    # Per asset: units for buys + inventory change = exchange buys - exchange sells + units from sells.
    assigned = alloc.assigned_units()
    leftovers: dict[str, int] = {}
    for lot in alloc.leftovers():
        leftovers[lot.symbol] = leftovers.get(lot.symbol, 0) + lot.remaining
    for s in PRICES:
        pool = sale.pools.get(s)
        to_orders = pool.to_orders if pool else 0
        inventory_change = (leftovers.get(s, 0) + (m.crossings[s].to_inventory if s in m.crossings else 0)
                            - (pool.house_units if pool else 0) - out.inventory_taken.get(s, 0))
        assert assigned.get(s, 0) + inventory_change == out.bought.get(s, 0) - out.sold.get(s, 0) + to_orders, s
        if pool:
            c = m.crossings[s]
            # Never more sold than released, and every released unit accounted: redeemed, house's or unsold.
            assert pool.sold == c.crossed + c.to_inventory + out.sold.get(s, 0) <= pool.released == c.released
            assert pool.to_orders + pool.house_units + pool.unsold == pool.released
            # The crossed units are the same units at the same price on both sides.
            if c.crossed:
                assert out.crossed_lots[s].quantity == c.crossed

    # Per buyer: cost within the reserve, itself within the order's collateral; never more units than engaged.
    for e in m.batch.engagements:
        order = next(o for o in buys if o.order_id == e.order_id)
        cost = sum((l.value + l.fee for l in alloc.breakdown(e.order_id)), Decimal(0))
        assert cost <= e.collateral <= order.collateral
        assert alloc.filled_units(e.order_id) <= e.units

    # Per seller: never more units than engaged, paid at most the proceeds, which add up with the house's to
    # exactly what the sale fetched; a minimum is met or nothing is redeemed.
    fetched = sum((l.value - l.fee for lots in out.pools.values() for l in lots), Decimal(0))
    assert sale.fetched == fetched
    assert sum((r.payout for r in sale.results), Decimal(0)) + sale.house_quote == fetched
    for r in sale.results:
        e = next(x for x in m.sells.engagements if x.order_id == r.order_id)
        assert 0 <= r.units <= e.units and 0 <= r.payout <= r.proceeds
        if r.units and e.min_proceeds is not None:  # the minimum, pro rata to what was redeemed
            assert r.payout >= e.min_proceeds * r.units / e.units
        q = baskets[r.index].quantities()
        for line in r.lines:
            # Its share of the asset: the redeemed units' holding, within the one unit telescoping may move.
            assert line.units <= q[line.symbol] * r.units / filters[line.symbol].base_unit + 1
    for s, pool in sale.pools.items():
        assert sum(l.units for r in sale.results for l in r.lines if l.symbol == s) == pool.to_orders


def test_release_of_rounds_down(filters, baskets):
    r = release_of(baskets["PAIR"], Decimal("0.0000123456789"), filters)
    assert r == {"BTCUSDC": 1, "LINKUSDC": 3703}  # 1.23e-8 BTC and 3.70370367e-5 LINK, both down

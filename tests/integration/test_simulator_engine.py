"""The simulator's matching engine and price process, without any socket: priority, fills, balances, errors."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core  # noqa: F401
from core.clock import ManualClock
from core.side import Side
from exchange.simulator.book import Book
from exchange.simulator.config import DATA_DIR, PriceProcessConfig
from exchange.simulator.engine import SYSTEM, EngineError, MatchingEngine
from exchange.simulator.markets import load_markets
from exchange.simulator.price_process import PriceProcess

D = Decimal
SYMBOLS = ("BTCUSDC", "ETHUSDC", "PENGUUSDC")


@pytest.fixture(scope="module")
def markets():
    return load_markets(DATA_DIR / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json", DATA_DIR / "indexes",
                        DATA_DIR / "indexes" / "index_deployment.json", SYMBOLS)


def make_engine(markets, rate="0.001"):
    eng = MatchingEngine(markets, ManualClock(), maker_commission=D(rate), taker_commission=D(rate))
    eng.add_account("alice", "s1", {"USDC": D("1000000"), "BTC": D("10")})
    eng.add_account("bob", "s2", {"USDC": D("1000000"), "BTC": D("10")})
    # A fixed ladder from the market maker: asks 60000, 60001, 60002 (0.01 BTC each), bids 59990, 59989.
    for i in range(3):
        eng.mm_set_level("BTCUSDC", Side.SELL, D("60000") + i, D("0.01"))
    for i in range(2):
        eng.mm_set_level("BTCUSDC", Side.BUY, D("59990") - i, D("0.01"))
    eng.books["BTCUSDC"].take_diff()
    eng.drain()
    return eng


def total(eng, key, asset):
    free, locked = eng.accounts[key].balance(asset)
    return free + locked


def test_taker_crosses_levels_with_increasing_trade_ids_and_fills_add_up(markets):
    eng = make_engine(markets)
    order, fills = eng.place("alice", "BTCUSDC", Side.BUY, "MARKET", quantity=D("0.025"), client_order_id="m1")
    assert order.status == "FILLED"
    assert [f.price for f in fills] == [D("60000"), D("60001"), D("60002")]
    assert [f.qty for f in fills] == [D("0.01"), D("0.01"), D("0.005")]
    ids = [f.trade_id for f in fills]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert sum(f.qty for f in fills) == order.executed_qty == D("0.025")
    assert sum(f.price * f.qty for f in fills) == order.cum_quote
    # commission: 0.1 % of the received base, per fill
    assert all(f.commission == f.qty * D("0.001") and f.commission_asset == "BTC" for f in fills)
    assert total(eng, "alice", "USDC") == D("1000000") - order.cum_quote
    assert total(eng, "alice", "BTC") == D("10") + D("0.025") - sum(f.commission for f in fills)
    assert eng.accounts["alice"].locked.get("USDC", 0) == 0
    # the book lost exactly what was taken
    _, _, asks = eng.depth("BTCUSDC", 10)
    assert asks == [(D("60002"), D("0.005"))]


def test_price_time_priority_and_maker_commission_in_quote(markets):
    eng = make_engine(markets)
    a, _ = eng.place("alice", "BTCUSDC", Side.SELL, "LIMIT", quantity=D("0.002"), price=D("59995"),
                     time_in_force="GTC", client_order_id="a")
    b, _ = eng.place("bob", "BTCUSDC", Side.SELL, "LIMIT", quantity=D("0.002"), price=D("59995"),
                     time_in_force="GTC", client_order_id="b")
    assert a.status == b.status == "NEW"
    taker, fills = eng.place("bob", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.003"), price=D("59995"),
                             time_in_force="IOC", client_order_id="t")
    # alice was first at the price: she is filled completely, then bob's own order expires (self-trade prevention)
    assert a.status == "FILLED" and a.executed_qty == D("0.002")
    assert b.status == "EXPIRED_IN_MATCH"
    assert taker.status == "EXPIRED" and taker.executed_qty == D("0.002")
    assert [f.is_maker for f in fills] == [False]
    maker_fill = eng.accounts["alice"].fills["BTCUSDC"][-1]
    assert maker_fill.is_maker and maker_fill.commission_asset == "USDC"
    assert maker_fill.commission == D("59995") * D("0.002") * D("0.001")
    assert total(eng, "alice", "USDC") == D("1000000") + D("59995") * D("0.002") - maker_fill.commission
    # nothing stays locked once every order is closed
    assert eng.accounts["bob"].locked.get("BTC", 0) == 0 and eng.accounts["bob"].locked.get("USDC", 0) == 0


def test_fok_expires_untouched_when_not_fully_fillable_and_fills_when_it_is(markets):
    eng = make_engine(markets)
    o, fills = eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.025"), price=D("60001"),
                         time_in_force="FOK", client_order_id="f1")
    assert o.status == "EXPIRED" and fills == [] and o.executed_qty == 0
    assert eng.accounts["alice"].balance("USDC") == (D("1000000"), 0)
    o, fills = eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.015"), price=D("60001"),
                         time_in_force="FOK", client_order_id="f2")
    assert o.status == "FILLED" and sum(f.qty for f in fills) == D("0.015")


def test_limit_rest_lock_release_on_cancel_and_query_errors(markets):
    eng = make_engine(markets)
    o, _ = eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.001"), price=D("59000"),
                     time_in_force="GTC", client_order_id="r1")
    assert eng.accounts["alice"].balance("USDC") == (D("1000000") - D("59"), D("59"))
    with pytest.raises(EngineError) as e:
        eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.001"), price=D("59000"),
                  time_in_force="GTC", client_order_id="r1")
    assert (e.value.code, e.value.msg) == (-2010, "Duplicate order sent.")
    eng.cancel("alice", "BTCUSDC", orig_client_id="r1")
    assert o.status == "CANCELED" and eng.accounts["alice"].balance("USDC") == (D("1000000"), 0)
    with pytest.raises(EngineError) as e:
        eng.cancel("alice", "BTCUSDC", order_id=o.order_id)
    assert (e.value.code, e.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(EngineError) as e:
        eng.query("alice", "BTCUSDC", order_id=987654)
    assert (e.value.code, e.value.msg) == (-2013, "Order does not exist.")
    assert eng.query("alice", "BTCUSDC", orig_client_id="r1") is o
    # a closed order's client id can be used again
    again, _ = eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.001"), price=D("59000"),
                         time_in_force="GTC", client_order_id="r1")
    assert again.order_id != o.order_id


def test_limit_maker_and_insufficient_balance_and_filters(markets):
    eng = make_engine(markets)
    with pytest.raises(EngineError) as e:
        eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT_MAKER", quantity=D("0.001"), price=D("60000"),
                  client_order_id="lm")
    assert (e.value.code, e.value.msg) == (-2010, "Order would immediately match and take.")
    with pytest.raises(EngineError) as e:
        eng.place("alice", "BTCUSDC", Side.SELL, "MARKET", quantity=D("11"), client_order_id="big")
    assert (e.value.code, e.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    cases = [
        (dict(quantity=D("0.000001"), price=D("59000")), "LOT_SIZE"),
        (dict(quantity=D("0.001"), price=D("59000.001")), "PRICE_FILTER"),
        (dict(quantity=D("0.00001"), price=D("59000")), "NOTIONAL"),
        (dict(quantity=D("0.001"), price=D("1000")), "PERCENT_PRICE_BY_SIDE"),
    ]
    for kwargs, name in cases:
        with pytest.raises(EngineError) as e:
            eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", time_in_force="GTC", client_order_id="x", **kwargs)
        assert (e.value.code, e.value.msg) == (-1013, f"Filter failure: {name}")
    with pytest.raises(EngineError) as e:
        eng.place("alice", "NOPEUSDC", Side.BUY, "MARKET", quantity=D("1"), client_order_id="y")
    assert (e.value.code, e.value.msg) == (-1121, "Invalid symbol.")
    # nothing was placed or locked by any of the rejects
    assert eng.accounts["alice"].balance("USDC") == (D("1000000"), 0) and not eng.accounts["alice"].orders


def test_market_by_quote_amount_spends_at_most_the_amount_on_the_step_grid(markets):
    eng = make_engine(markets)
    o, fills = eng.place("alice", "BTCUSDC", Side.BUY, "MARKET", quote_order_qty=D("700"), client_order_id="q")
    step = markets["BTCUSDC"].step
    assert o.status == "FILLED"
    assert o.cum_quote <= D("700") and o.executed_qty % step == 0
    # one more step at the last price would have broken the budget
    assert o.cum_quote + fills[-1].price * step > D("700")
    assert o.orig_qty == o.executed_qty and o.orig_quote_qty == D("700")
    assert total(eng, "alice", "USDC") == D("1000000") - o.cum_quote


def test_market_order_that_runs_out_of_book_expires(markets):
    eng = make_engine(markets)
    o, fills = eng.place("alice", "BTCUSDC", Side.BUY, "MARKET", quantity=D("0.05"), client_order_id="m")
    assert o.status == "EXPIRED" and o.expiry_reason == "INSUFFICIENT_LIQUIDITY"
    assert o.executed_qty == D("0.03") and len(fills) == 3
    assert eng.accounts["alice"].locked.get("USDC", 0) == 0


def test_user_events_follow_binance_order_new_trades_expired_position(markets):
    eng = make_engine(markets)
    eng.place("alice", "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.025"), price=D("60001"), time_in_force="IOC",
              client_order_id="ioc")
    events = [ev for acct, ev in eng.drain()[0] if acct.api_key == "alice"]
    kinds = [(ev["e"], ev.get("x"), ev.get("X")) for ev in events]
    assert kinds == [
        ("executionReport", "NEW", "NEW"),
        ("executionReport", "TRADE", "PARTIALLY_FILLED"),
        ("executionReport", "TRADE", "PARTIALLY_FILLED"),
        ("executionReport", "EXPIRED", "EXPIRED"),
        ("outboundAccountPosition", None, None),
    ]
    assert events[3]["eR"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    assert [e["t"] for e in events[1:3]] == sorted(e["t"] for e in events[1:3])
    assert sum(D(e["l"]) for e in events[1:3]) == D(events[3]["z"]) == D("0.02")
    position = {b["a"]: b for b in events[4]["B"]}
    free, locked = eng.accounts["alice"].balance("USDC")
    assert (D(position["USDC"]["f"]), D(position["USDC"]["l"])) == (free, locked)


def test_price_moving_through_a_resting_order_fills_it_as_maker(markets):
    eng = make_engine(markets)
    o, _ = eng.place("alice", "BTCUSDC", Side.SELL, "LIMIT", quantity=D("0.003"), price=D("59999"),
                     time_in_force="GTC", client_order_id="rest")
    eng.mm_set_level("BTCUSDC", Side.BUY, D("59999.50"), D("0.01"))  # the maker's bid moves above it
    assert o.status == "FILLED"
    fill = eng.accounts["alice"].fills["BTCUSDC"][-1]
    assert fill.is_maker and fill.price == D("59999")
    # the rest of the maker's bid rests at its price
    _, bids, _ = eng.depth("BTCUSDC", 1)
    assert bids == [(D("59999.50"), D("0.007"))]


def test_depth_diffs_replayed_on_the_snapshot_give_the_book(markets):
    eng = make_engine(markets)
    last, bids, asks = eng.depth("BTCUSDC", 1000)
    local = {Side.BUY: dict(bids), Side.SELL: dict(asks)}
    local_id = last
    proc = PriceProcess(markets["BTCUSDC"], PriceProcessConfig(volatility_bps_per_s=D("50")), D("60000"))
    for i in range(200):
        proc.step(eng, 100)
        if i % 7 == 0:
            eng.place("alice", "BTCUSDC", Side.BUY if i % 2 else Side.SELL, "MARKET", quantity=D("0.001"),
                      client_order_id=f"m{i}")
        diff = eng.books["BTCUSDC"].take_diff()
        if diff is None:
            continue
        assert diff.first_id == local_id + 1  # U = previous u + 1, no gaps
        for side, levels in ((Side.BUY, diff.bids), (Side.SELL, diff.asks)):
            for p, q in levels.items():
                if q == 0:
                    local[side].pop(p, None)
                else:
                    local[side][p] = q
        local_id = diff.last_id
    last, bids, asks = eng.depth("BTCUSDC", 1000)
    assert last == local_id
    assert sorted(local[Side.BUY].items(), reverse=True) == bids
    assert sorted(local[Side.SELL].items()) == asks


def _book_state(eng, symbol):
    return eng.depth(symbol, 1000)[1:]


def test_price_process_is_deterministic_per_seed(markets):
    states = []
    for seed in (1, 1, 2):
        eng = MatchingEngine(markets, ManualClock())
        proc = PriceProcess(markets["PENGUUSDC"], PriceProcessConfig(seed=seed), markets["PENGUUSDC"].implied_price)
        proc.seed(eng)
        for _ in range(50):
            proc.step(eng, 100)
        states.append(_book_state(eng, "PENGUUSDC"))
    assert states[0] == states[1]
    assert states[0] != states[2]
    bids, asks = states[0]
    assert len(bids) == len(asks) == PriceProcessConfig().depth_levels
    assert bids[0][0] < asks[0][0]
    tick, step = markets["PENGUUSDC"].tick, markets["PENGUUSDC"].step
    assert all(p % tick == 0 and q % step == 0 and q > 0 for p, q in bids + asks)


def test_book_level_totals_and_update_ids():
    from exchange.simulator.orders import Order

    book = Book("X")
    first = book.update_id
    orders = [Order("X", i, "", "a", Side.BUY, "LIMIT", "GTC", D("10"), D("1"), D(0), 0, remaining=D("1"))
              for i in range(3)]
    for o in orders:
        book.add(o)
    book.reduce(orders[0], D("0.4"))
    book.remove(orders[1])
    assert book.depth(Side.BUY, 5) == [(D("10"), D("1.6"))]
    diff = book.take_diff()
    assert (diff.first_id, diff.last_id) == (first + 1, first + 5)
    assert diff.bids == {D("10"): D("1.6")} and book.take_diff() is None


order_strategy = st.tuples(
    st.sampled_from(["alice", "bob"]),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from(["LIMIT_GTC", "LIMIT_IOC", "MARKET", "QUOTE", "CANCEL", "MM_STEP"]),
    st.integers(min_value=1, max_value=40),  # quantity in 0.001 BTC
    st.integers(min_value=-15, max_value=15),  # price offset in whole USDC from 60000
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(order_strategy, min_size=1, max_size=25))
def test_balances_stay_exact_and_the_book_uncrossed(markets, ops):
    """Whatever the order flow, every account's balance equals its start plus its own fills (exactly), locks
    equal what open orders hold, and the book never stays crossed."""
    eng = make_engine(markets)
    proc = PriceProcess(markets["BTCUSDC"], PriceProcessConfig(volatility_bps_per_s=D("100")), D("60000"))
    for n, (who, side, kind, q, off) in enumerate(ops):
        qty = D(q) / 1000
        price = D(60000 + off)
        try:
            if kind == "LIMIT_GTC":
                eng.place(who, "BTCUSDC", side, "LIMIT", quantity=qty, price=price, time_in_force="GTC",
                          client_order_id=f"o{n}")
            elif kind == "LIMIT_IOC":
                eng.place(who, "BTCUSDC", side, "LIMIT", quantity=qty, price=price, time_in_force="IOC",
                          client_order_id=f"o{n}")
            elif kind == "MARKET":
                eng.place(who, "BTCUSDC", side, "MARKET", quantity=qty, client_order_id=f"o{n}")
            elif kind == "QUOTE":
                eng.place(who, "BTCUSDC", side, "MARKET", quote_order_qty=qty * 1000, client_order_id=f"o{n}")
            elif kind == "CANCEL":
                open_orders = eng.open_orders(who, "BTCUSDC")
                if open_orders:
                    eng.cancel(who, "BTCUSDC", order_id=open_orders[0].order_id)
            else:
                proc.step(eng, 100)
        except EngineError as e:
            assert e.code in (-1013, -2010)
        bid, ask = eng.books["BTCUSDC"].best_price(Side.BUY), eng.books["BTCUSDC"].best_price(Side.SELL)
        assert bid is None or ask is None or bid < ask
    for key in ("alice", "bob"):
        acct = eng.accounts[key]
        fills = acct.fills["BTCUSDC"]
        base = D("10") + sum((f.qty - f.commission) if f.is_buyer else -f.qty for f in fills)
        quote = D("1000000") + sum((-f.quote_qty) if f.is_buyer else (f.quote_qty - f.commission) for f in fills)
        assert total(eng, key, "BTC") == base
        assert total(eng, key, "USDC") == quote
        held = {"BTC": D(0), "USDC": D(0)}
        for o in acct.open_orders.values():
            held[o.locked_asset] += o.locked
        assert acct.locked.get("BTC", D(0)) == held["BTC"] and acct.locked.get("USDC", D(0)) == held["USDC"]
        assert all(v >= 0 for v in list(acct.free.values()) + list(acct.locked.values()))
    # level totals equal the sum of the resting orders
    for side in (Side.BUY, Side.SELL):
        for level in eng.books["BTCUSDC"].levels(side):
            assert level.total == sum(o.remaining for o in level.orders.values())
            assert all(o.account in ("acct-1", "acct-2", SYSTEM) for o in level.orders.values())

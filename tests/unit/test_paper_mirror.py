"""The paper exchange's rules, without a socket: how the upstream's book becomes the local one (mirror.py), and what
a paper fill does to a mirrored level until the upstream speaks of it again (the simulator's engine, driven by it)."""
from __future__ import annotations

from decimal import Decimal

import pytest

import core  # noqa: F401
from core.clock import ManualClock
from core.side import Side
from exchange.simulator.config import DATA_DIR
from exchange.simulator.engine import MatchingEngine
from exchange.simulator.markets import load_markets
from exchange.simulator.mirror import LevelChange, UpstreamMirror
from exchange.simulator.paper import PaperExchangeError, paper_deposit_addresses, upstream_markets

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture(scope="module")
def markets():
    return load_markets(DATA_DIR / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json", DATA_DIR / "indexes",
                        DATA_DIR / "indexes" / "index_deployment.json", ("BTCUSDC",))


def mirrored_engine(markets, mirror, bids, asks):
    eng = MatchingEngine(markets, ManualClock())
    eng.add_account("paper", "s", {"USDC": D("1000000")})
    apply(eng, mirror.update("BTCUSDC", bids, asks))
    return eng


def apply(eng, changes):
    for c in changes:
        eng.mm_set_level("BTCUSDC", c.side, c.price, c.qty)
    eng.drain()


def book(eng):
    b = eng.books["BTCUSDC"]
    return b.depth(BUY, 100), b.depth(SELL, 100)


def test_the_first_look_sets_every_level_and_an_unchanged_book_changes_nothing():
    m = UpstreamMirror()
    first = m.update("BTCUSDC", [(D("99"), D("1")), (D("98"), D("2"))], [(D("101"), D("3"))])
    assert first == [LevelChange(BUY, D("98"), D("2")), LevelChange(BUY, D("99"), D("1")),
                     LevelChange(SELL, D("101"), D("3"))]
    assert m.update("BTCUSDC", [(D("99"), D("1")), (D("98"), D("2"))], [(D("101"), D("3"))]) == []
    assert m.symbols() == ["BTCUSDC"]


def test_withdrawals_come_before_the_levels_that_would_cross_them():
    m = UpstreamMirror()
    m.update("BTCUSDC", [(D("99"), D("1"))], [(D("101"), D("1")), (D("102"), D("1"))])
    # The market went up: the bid moves to 101.5 and the 101 ask is gone; zero-quantity rows mean "no level".
    changes = m.update("BTCUSDC", [(D("101.5"), D("1")), (D("99"), D("0"))], [(D("102"), D("1"))])
    assert changes == [LevelChange(BUY, D("99"), D(0)), LevelChange(SELL, D("101"), D(0)),
                       LevelChange(BUY, D("101.5"), D("1"))]


def test_a_paper_fill_leaves_the_level_short_until_the_upstream_changes_that_level(markets):
    m = UpstreamMirror()
    bids = [(D("59990"), D("0.5"))]
    asks = [(D("60000"), D("0.3")), (D("60001"), D("0.4"))]
    eng = mirrored_engine(markets, m, bids, asks)
    order, fills = eng.place("paper", "BTCUSDC", BUY, "MARKET", quantity=D("0.2"), client_order_id="p-1")
    assert [(f.price, f.qty) for f in fills] == [(D("60000"), D("0.2"))]
    assert book(eng)[1] == [(D("60000"), D("0.1")), (D("60001"), D("0.4"))]
    # The upstream moved elsewhere (a new bid, the 60001 ask grew): the eaten level stays short.
    apply(eng, m.update("BTCUSDC", bids + [(D("59980"), D("1"))], [(D("60000"), D("0.3")), (D("60001"), D("0.6"))]))
    assert book(eng) == ([(D("59990"), D("0.5")), (D("59980"), D("1"))],
                         [(D("60000"), D("0.1")), (D("60001"), D("0.6"))])
    # The upstream now reports 60000 again: its figure replaces the local one whole.
    apply(eng, m.update("BTCUSDC", bids, [(D("60000"), D("0.25")), (D("60001"), D("0.6"))]))
    assert book(eng) == ([(D("59990"), D("0.5"))], [(D("60000"), D("0.25")), (D("60001"), D("0.6"))])


def test_a_level_eaten_whole_stays_gone_until_the_upstream_reports_it(markets):
    m = UpstreamMirror()
    asks = [(D("60000"), D("0.1")), (D("60001"), D("0.4"))]
    eng = mirrored_engine(markets, m, [(D("59990"), D("0.5"))], asks)
    eng.place("paper", "BTCUSDC", BUY, "MARKET", quantity=D("0.1"), client_order_id="p-1")
    apply(eng, m.update("BTCUSDC", [(D("59990"), D("0.6"))], asks))
    assert book(eng)[1] == [(D("60001"), D("0.4"))]
    apply(eng, m.update("BTCUSDC", [(D("59990"), D("0.6"))], [(D("60000"), D("0.2")), (D("60001"), D("0.4"))]))
    assert book(eng)[1] == [(D("60000"), D("0.2")), (D("60001"), D("0.4"))]


def test_an_upstream_level_moving_through_a_resting_paper_order_fills_it(markets):
    m = UpstreamMirror()
    eng = mirrored_engine(markets, m, [(D("59990"), D("0.5"))], [(D("60010"), D("0.5"))])
    order, fills = eng.place("paper", "BTCUSDC", BUY, "LIMIT", quantity=D("0.1"), price=D("60000"),
                             time_in_force="GTC", client_order_id="p-rest")
    assert fills == [] and order.status == "NEW"
    apply(eng, m.update("BTCUSDC", [(D("59990"), D("0.5"))], [(D("59999"), D("0.5"))]))
    assert order.status == "FILLED" and order.executed_qty == D("0.1")
    assert book(eng)[1] == [(D("59999"), D("0.4"))]


def test_withdraw_all_empties_the_book_and_the_next_look_sets_it_afresh(markets):
    m = UpstreamMirror()
    bids, asks = [(D("59990"), D("0.5"))], [(D("60000"), D("0.3"))]
    eng = mirrored_engine(markets, m, bids, asks)
    apply(eng, m.withdraw_all("BTCUSDC"))
    assert book(eng) == ([], []) and m.symbols() == [] and m.withdraw_all("BTCUSDC") == []
    order, fills = eng.place("paper", "BTCUSDC", BUY, "MARKET", quantity=D("0.1"), client_order_id="p-2")
    assert fills == [] and order.status == "EXPIRED"  # nothing to fill on: no stale price is ever traded
    apply(eng, m.update("BTCUSDC", bids, asks))
    assert book(eng) == (bids, asks)


def test_the_filters_reference_is_the_upstream_avg_price_in_paper_mode(markets):
    eng = mirrored_engine(markets, UpstreamMirror(), [(D("59990"), D("0.5"))], [(D("60000"), D("0.5"))])
    assert eng.avg_price("BTCUSDC") == D("59995")  # no trade here yet: the mid
    eng.upstream_avg_prices["BTCUSDC"] = D("61000")
    eng.place("paper", "BTCUSDC", BUY, "MARKET", quantity=D("0.1"), client_order_id="p-1")
    assert eng.avg_price("BTCUSDC") == D("61000")  # a paper trade is not the market


def test_only_the_upstream_markets_are_served_and_the_deposit_address_is_the_papers_own(markets):
    info = {"symbols": [markets["BTCUSDC"].entry]}
    assert list(upstream_markets(info, ("BTCUSDC",))) == ["BTCUSDC"]
    with pytest.raises(PaperExchangeError, match="does not list ZZZUSDC"):
        upstream_markets(info, ("BTCUSDC", "ZZZUSDC"))
    derived = paper_deposit_addresses("key")
    assert derived["BASE"] != paper_deposit_addresses("other")["BASE"] and derived["BASE"].startswith("0x")
    assert set(paper_deposit_addresses("key", "0xabc").values()) == {"0xabc"}

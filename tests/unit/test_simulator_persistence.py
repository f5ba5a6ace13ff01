"""The exchange simulator's state survives a restart: balances, orders, trades, deposits and id counters come back
exactly, a resting order is back on its book, and nothing restored is handed out again (ids) or credited twice."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import core  # noqa: F401
from core.clock import ManualClock
from core.side import Side
from exchange.simulator import persistence
from exchange.simulator.config import TEST_API_KEY, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.engine import EngineError
from exchange.simulator.server import Simulator

D = Decimal


def make_sim(state=None) -> Simulator:  # noqa: ANN001
    cfg = SimulatorConfig(host=LOOPBACK, symbols=("BTCUSDC", "ETHUSDC"), process=PriceProcessConfig(update_ms=0))
    return Simulator(cfg, clock=ManualClock(), state=state)


def roundtrip(sim: Simulator) -> dict:
    """Through JSON text, as on disk: nothing may depend on Python objects surviving."""
    return json.loads(json.dumps(persistence.snapshot(sim)))


@pytest.fixture
def traded() -> Simulator:
    sim = make_sim()
    e = sim.engine
    ask = e.books["BTCUSDC"].best_price(Side.SELL)
    bid = e.books["BTCUSDC"].best_price(Side.BUY)
    e.place(TEST_API_KEY, "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.01"), price=ask, time_in_force="IOC",
            client_order_id="b1.BTCUSDC.0")
    # A GTC buy below the bid rests on the book.
    e.place(TEST_API_KEY, "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.01"), price=bid - 100,
            time_in_force="GTC", client_order_id="rest-1")
    sim.credit_deposit(TEST_API_KEY, "USDC", D("250.5"), "BASE", "0xabc")
    sim.dispatch()
    return sim


def test_balances_orders_trades_and_deposits_come_back_exactly(traded: Simulator) -> None:
    before = traded.engine.accounts[TEST_API_KEY]
    again = make_sim(roundtrip(traded))
    after = again.engine.accounts[TEST_API_KEY]
    assert after.free == before.free and after.locked == before.locked
    assert after.locked["USDC"] > 0  # the resting order still holds its collateral
    assert {k: (o.status, o.executed_qty, o.cum_quote) for k, o in after.orders.items()} == \
           {k: (o.status, o.executed_qty, o.cum_quote) for k, o in before.orders.items()}
    assert [(f.trade_id, f.qty, f.price, f.commission) for f in after.fills["BTCUSDC"]] == \
           [(f.trade_id, f.qty, f.price, f.commission) for f in before.fills["BTCUSDC"]]
    assert [(d.tx_id, d.amount) for d in after.deposits] == [("0xabc", D("250.5"))]
    # Queried by client order id, as the order sender does after a restart.
    assert again.engine.query(TEST_API_KEY, "BTCUSDC", orig_client_id="b1.BTCUSDC.0").status == "FILLED"


def test_a_deposit_seen_again_is_not_credited_twice(traded: Simulator) -> None:
    again = make_sim(roundtrip(traded))
    usdc = again.engine.accounts[TEST_API_KEY].free["USDC"]
    again.credit_deposit(TEST_API_KEY, "USDC", D("250.5"), "BASE", "0xabc")  # the watcher re-reads the block
    assert again.engine.accounts[TEST_API_KEY].free["USDC"] == usdc


def test_a_resting_order_is_back_on_its_book_and_cancels_cleanly(traded: Simulator) -> None:
    again = make_sim(roundtrip(traded))
    e = again.engine
    order = e.query(TEST_API_KEY, "BTCUSDC", orig_client_id="rest-1")
    level = e.books["BTCUSDC"].side(Side.BUY)[-order.price]
    assert level.orders[order.order_id] is order
    e.cancel(TEST_API_KEY, "BTCUSDC", orig_client_id="rest-1")
    assert e.accounts[TEST_API_KEY].locked["USDC"] == 0


def test_ids_go_on_and_the_market_maker_reuses_none(traded: Simulator) -> None:
    before = traded.engine.accounts[TEST_API_KEY]
    old_ids = {oid for (_, oid) in before.orders}
    old_trades = {f.trade_id for f in before.fills["BTCUSDC"]}
    again = make_sim(roundtrip(traded))
    e = again.engine
    mm_ids = {o.order_id for o in e._mm["BTCUSDC"].values()}  # noqa: SLF001  (the re-seeded ladder)
    assert not (mm_ids & old_ids)
    ask = e.books["BTCUSDC"].best_price(Side.SELL)
    order, fills = e.place(TEST_API_KEY, "BTCUSDC", Side.BUY, "LIMIT", quantity=D("0.01"), price=ask,
                           time_in_force="IOC", client_order_id="b2.BTCUSDC.0")
    assert order.order_id > max(old_ids | mm_ids)
    assert fills and min(f.trade_id for f in fills) > max(old_trades)


def test_prices_go_on_from_the_saved_mid(traded: Simulator) -> None:
    data = roundtrip(traded)
    data["mids"]["BTCUSDC"] = "12345.67"  # as if the walk had wandered far from the captured snapshot
    again = make_sim(data)
    mid = again.engine.mid_price("BTCUSDC")
    assert abs(mid - D("12345.67")) / D("12345.67") < D("0.001")


def test_a_snapshot_of_another_format_is_refused(traded: Simulator) -> None:
    data = roundtrip(traded)
    data["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        make_sim(data)


def test_save_is_atomic_and_load_of_nothing_is_none(tmp_path, traded: Simulator) -> None:  # noqa: ANN001
    path = tmp_path / "exchange.json"
    assert persistence.load(path) is None
    persistence.save(persistence.snapshot(traded), path)
    assert persistence.load(path)["accounts"][0]["api_key"] == TEST_API_KEY
    assert [p.name for p in tmp_path.iterdir()] == ["exchange.json"]  # no temp file left behind


def test_unknown_order_after_restore_is_still_unknown(traded: Simulator) -> None:
    again = make_sim(roundtrip(traded))
    with pytest.raises(EngineError):
        again.engine.query(TEST_API_KEY, "BTCUSDC", orig_client_id="never-sent")

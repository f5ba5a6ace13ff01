"""Market regimes on the simulator (exchange/simulator/regimes.py, price_process.py, replay.py): each named regime
changes the book as it says, switching is immediate and exact on the tick and step grids, a gap moves every price
and trades resting orders it crosses, a halt freezes a pair and `calm` ends it, a recorded depth stream drives a
book and hands it back to the walk."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

import core  # noqa: F401
from core.clock import ManualClock
from core.side import Side
from exchange.simulator.config import PriceProcessConfig, RegimeConfig, SimulatorConfig
from exchange.simulator.replay import load_depth_events
from exchange.simulator.server import Simulator
from tests.conftest import DATA
from world.ports import LOOPBACK

D = Decimal
BTC = "BTCUSDC"


def make_sim(**process) -> Simulator:
    cfg = SimulatorConfig(host=LOOPBACK, symbols=(BTC, "ETHUSDC"),
                          process=PriceProcessConfig(update_ms=0, trade_percent=0, **process),
                          regimes=RegimeConfig(trend_bps_per_min=D("60")))
    return Simulator(cfg, clock=ManualClock())


def top(sim: Simulator, symbol: str = BTC) -> tuple[Decimal, Decimal]:
    book = sim.engine.books[symbol]
    return book.best_price(Side.BUY), book.best_price(Side.SELL)


def ladder(sim: Simulator, side: Side, symbol: str = BTC) -> dict[Decimal, Decimal]:
    return sim.engine.mm_levels(symbol, side)


def path(sim: Simulator, steps: int) -> list[Decimal]:
    out = []
    for _ in range(steps):
        sim.step(1, dt_ms=100)
        out.append(top(sim)[0])
    return out


def total_move(prices: list[Decimal]) -> Decimal:
    return sum((abs(b - a) for a, b in zip(prices, prices[1:])), D(0))


def test_volatile_moves_the_price_ten_times_as_much_as_calm_on_the_same_seed() -> None:
    calm, wild = make_sim(), make_sim()
    wild.set_regime("volatile")
    ratio = total_move(path(wild, 300)) / total_move(path(calm, 300))
    assert D(7) < ratio < D(13)  # 10x the standard deviation, measured over 300 seeded steps


def test_thin_quotes_a_tenth_of_the_depth_at_once_and_calm_brings_it_back() -> None:
    sim = make_sim()
    process = sim.processes[BTC]
    sim.set_regime("calm")  # the walk's own ladder (BTCUSDC was seeded from a real snapshot's levels)
    calm_depth = sum(ladder(sim, Side.SELL).values())
    sim.set_regime("thin", [BTC])
    thin = ladder(sim, Side.SELL)
    assert len(thin) == sim.config.process.depth_levels  # a full ladder, requoted
    assert all(q % process.step_qty == 0 and q >= process.min_qty for q in thin.values())
    assert D("0.05") < sum(thin.values()) / calm_depth < D("0.2")
    assert sim.regimes()["regimes"] == {"calm": ["ETHUSDC"], "thin": [BTC]}
    sim.set_regime("calm")
    assert D("0.5") < sum(ladder(sim, Side.SELL).values()) / calm_depth < D("2")


def test_wide_spreads_ten_times_around_the_same_mid() -> None:
    sim = make_sim()
    tick = sim.processes[BTC].tick
    bid, ask = top(sim)
    sim.set_regime("wide")
    wide_bid, wide_ask = top(sim)
    assert (wide_ask - wide_bid) == 10 * (ask - bid)
    assert abs((wide_bid + wide_ask) - (bid + ask)) <= 2 * tick  # the mid kept (to a tick)


def test_trending_drifts_by_the_configured_bps_per_minute() -> None:
    sim = make_sim(volatility_bps_per_s=D(0))
    start = top(sim)[0]
    sim.set_regime("trending")
    end = path(sim, 600)[-1]  # one minute of 100 ms steps
    drift_bps = (end - start) / start * 10_000
    assert D(59) <= drift_bps <= D("60.5")  # 60 bps/min, compounding per step, whole ticks only
    sim.set_regime("trending", drift_bps_per_min=D(-30))
    assert path(sim, 600)[-1] < end


def test_a_gap_moves_every_price_and_trades_the_resting_orders_it_crosses() -> None:
    sim = make_sim()
    e = sim.engine
    bid, ask = top(sim)
    eth_bid = top(sim, "ETHUSDC")[0]
    # A user's sell resting 2% above the ask: a 5% gap up runs through it, and it fills as maker.
    price = (ask * D("1.02")).quantize(D("0.01"))
    sim.add_account("holder", "holder-secret", {"BTC": D(1)})
    e.place("holder", BTC, Side.SELL, "LIMIT", quantity=D("0.01"), price=price, time_in_force="GTC",
            client_order_id="rest-1")
    sim.set_regime("gap", percent=D(5))
    new_bid, new_ask = top(sim)
    assert new_bid == (bid * D("1.05")).quantize(D("0.01"), rounding="ROUND_FLOOR")
    assert new_bid < new_ask
    assert top(sim, "ETHUSDC")[0] > eth_bid * D("1.04")
    (order,) = [o for o in e.accounts["holder"].orders.values() if o.client_order_id == "rest-1"]
    assert order.status == "FILLED" and order.price == price  # at its own price, as maker


def test_a_halted_pair_is_break_its_book_still_and_calm_reopens_it() -> None:
    sim = make_sim()
    sim.set_regime("halted", [BTC])
    assert not sim.trading(BTC) and sim.trading("ETHUSDC")
    (entry,) = sim.exchange_info([BTC])["symbols"]
    assert entry["status"] == "BREAK"
    before, eth = top(sim), top(sim, "ETHUSDC")
    sim.step(20, dt_ms=100)
    assert top(sim) == before and top(sim, "ETHUSDC") != eth
    sim.set_regime("calm")
    assert sim.trading(BTC) and sim.regimes()["halted"] == []


def test_bad_requests_change_nothing() -> None:
    sim = make_sim()
    before = top(sim)
    for args, kw in ((("stormy",), {}), (("thin", ["NOPEUSDC"]), {}), (("halted",), {}),
                     (("gap",), {"percent": D(-100)})):
        with pytest.raises(ValueError):
            sim.set_regime(*args, **kw)
    assert top(sim) == before and sim.regimes()["regimes"] == {"calm": [BTC, "ETHUSDC"]}


def test_a_recorded_depth_stream_drives_the_book_then_the_walk_takes_over() -> None:
    events = load_depth_events(DATA / "binance" / "depth_update_BTCUSDT_2025-02-10_partial.json")
    recorded = {D(p): D(q) for p, q in events[0]["b"] if D(q) > 0}
    sim = make_sim()
    sim.replay(BTC, events)
    assert ladder(sim, Side.BUY) == {} and ladder(sim, Side.SELL) == {}  # the recording's book from now on
    sim.step(1, dt_ms=100)
    assert ladder(sim, Side.BUY) == recorded  # exact: the capture's prices and quantities are on BTCUSDC's grids
    assert sim.regimes()["replaying"] == []  # one event: over, the walk has the book again
    sim.step(1, dt_ms=100)
    assert abs(top(sim)[0] - max(recorded)) < max(recorded) * D("0.01")  # it went on from the replayed price


def test_a_rebased_replay_keeps_the_pair_at_its_own_price_level() -> None:
    events = load_depth_events(DATA / "binance" / "depth_update_BTCUSDT_2025-02-10_partial.json")
    sim = make_sim()
    bid = top(sim)[0]
    answer = sim.replay(BTC, events, rebase=True)
    sim.step(1, dt_ms=100)
    assert max(ladder(sim, Side.BUY)) == bid  # the recording's best bid lands on today's
    assert D(answer["ratio"]) == bid / max(D(p) for p, _ in events[0]["b"])


def test_a_capture_that_is_not_depth_updates_is_refused(tmp_path) -> None:
    bad = tmp_path / "trades.jsonl"
    bad.write_text(json.dumps({"e": "trade", "p": "1"}) + "\n")
    with pytest.raises(ValueError, match="not a depthUpdate"):
        load_depth_events(bad)

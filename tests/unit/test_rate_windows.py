"""Planning across the six real indexes under Binance's ORDERS window: whole baskets in FIFO order, at most one
exchange order per asset per batch, and no index starved. A random stream of orders over the six indexes is played
window by window (each window has the room of a fresh ORDERS window; batches are planned while a whole basket
fits): every order is served within as many windows as there are indexes with orders ahead of it."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits, plan_batch
from core.config import REPO_ROOT, Settings
from exchange.simulator.config import SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.markets import load_markets

REAL = ("SY100", "SYAI", "SYAZ", "SYDF", "SYL2", "SYME")
#: Binance's ORDERS limit (100 per 10 s) times the default rate_limit_safety (0.95).
WINDOW_ORDERS = 95
LIMITS = PlannerLimits(max_batch_notional=Decimal(10**9), in_flight_room=Decimal(10**9))


@pytest.fixture(scope="module")
def world():
    s = Settings.load(REPO_ROOT / "config" / "local.toml")
    baskets = load_indexes(s.data_dir / "indexes", {k: s.indexes[k].basket for k in REAL})
    pairs = sorted({a.symbol for b in baskets.values() for a in b.assets})
    sim = SimulatorConfig(host=LOOPBACK)
    markets = load_markets(sim.exchange_info_path, sim.indexes_dir, sim.deployment_path, pairs)
    filters = {p: m.filters for p, m in markets.items()}
    # Deep books at each pair's price: the window is the only limit, as the test means.
    asks = {p: [((m.implied_price // m.tick + i) * m.tick, Decimal(10**9) * m.step) for i in range(1, 4)]
            for p, m in markets.items()}
    return baskets, filters, asks


def test_a_batch_of_every_index_nets_to_one_order_per_distinct_pair(world) -> None:
    baskets, filters, asks = world
    orders = [PendingOrder(f"o-{k}", k, Decimal(2000)) for k in REAL]
    plan = plan_batch(orders, baskets, asks, filters, order_budget=1000, limits=LIMITS)
    distinct = {a.symbol for k in REAL for a in baskets[k].assets}
    assert len(distinct) == 155 and sum(len(baskets[k].assets) for k in REAL) == 221
    assert sorted(leg.symbol for leg in plan.legs) == sorted(distinct)  # one exchange order per pair, not per index
    assert {e.order_id for e in plan.engagements} == {o.order_id for o in orders}


@st.composite
def streams(draw):
    """Per window, the orders arriving at its start: (index, collateral in whole USDC)."""
    return [draw(st.lists(st.tuples(st.sampled_from(REAL), st.integers(100, 5000)), max_size=6))
            for _ in range(draw(st.integers(1, 6)))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(streams())
def test_no_index_waits_longer_than_the_indexes_ahead_of_it_need(world, stream) -> None:
    baskets, filters, asks = world
    pending: list[PendingOrder] = []
    arrived: dict[str, int] = {}
    ahead: dict[str, int] = {}  # indexes with orders pending ahead of the order's own index when it arrived
    served: dict[str, int] = {}
    window = 0
    while window < len(stream) or pending:
        for n, (index, usdc) in enumerate(stream[window] if window < len(stream) else []):
            order = PendingOrder(f"w{window}-{n}", index, Decimal(usdc))
            groups = list(dict.fromkeys(o.index for o in pending))  # FIFO of indexes, by their first order
            ahead[order.order_id] = groups.index(index) if index in groups else len(groups)
            arrived[order.order_id] = window
            pending.append(order)
        room = WINDOW_ORDERS
        while pending:
            plan = plan_batch(pending, baskets, asks, filters, order_budget=room, limits=LIMITS)
            assert {d.reason for d in plan.deferred} <= {"RATE_LIMIT"}
            symbols = [leg.symbol for leg in plan.legs]
            assert len(symbols) == len(set(symbols)) and len(symbols) <= room
            if not plan.engagements:
                break
            room -= len(symbols)
            done = {e.order_id for e in plan.engagements}
            served.update((oid, window) for oid in done)
            pending = [o for o in pending if o.order_id not in done]
        window += 1
        assert window <= len(stream) + len(REAL), "an order was starved"
    for oid, at in arrived.items():
        assert served[oid] - at <= ahead[oid], oid

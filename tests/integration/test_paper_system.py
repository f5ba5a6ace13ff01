"""Paper mode through the whole local world (M11 5c): `[exchange] mode = "paper"` puts the paper exchange in front
of the simulator, which plays the live exchange. A user deposits and buys an index: the order fills and mints, its
reports and invoice say "paper", the fills are the paper exchange's (at the simulator's prices), and the
simulator's account sees no order and no trade."""
from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from core.config import REPO_ROOT, Settings  # noqa: E402
from core.side import Side  # noqa: E402
from world.demo import DemoUser, run_demo  # noqa: E402
from world.launcher import LauncherOptions, LocalSystem  # noqa: E402

#: About a minute on two cores (the whole world, one deposit routed, a batch, a mint): the slow suite. The paper
#: exchange alone against the simulator is tests/integration/test_paper_exchange.py, in the default suite.
pytestmark = pytest.mark.slow

INDEX = "SY100DEV"


async def account_activity(exchange, symbols) -> tuple[dict[str, list], list]:  # noqa: ANN001
    """The house account's trades per symbol and its open orders, read through that exchange's API."""
    gw = exchange.gateway(exchange.account)
    try:
        return {s: await gw.fetch_my_trades(s, limit=1000) for s in symbols}, await gw.fetch_open_orders()
    finally:
        await gw.close()


@pytest.fixture(scope="module")
def paper_world(ray_cluster):  # noqa: ARG001  (the session's Ray cluster must be up)
    registry = Settings.load(REPO_ROOT / "config" / "local.toml").indexes
    settings = Settings(indexes={INDEX: registry[INDEX]}, exchange={"mode": "paper"})
    system = LocalSystem(LauncherOptions(gateway_port=0, namespace=f"paper-{uuid.uuid4().hex[:8]}"), settings)
    system.start()
    try:
        user = DemoUser("alice", Decimal("1000"), [("p1", Decimal("400"))], index=INDEX)
        result = asyncio.run(run_demo(system, [user], out=lambda line: None))
        yield system, result
    finally:
        system.stop()


def test_an_index_order_fills_on_paper_and_the_live_exchange_sees_nothing(paper_world) -> None:
    system, result = paper_world
    (user,) = result["users"]
    assert system.upstream is not None and system.exchange.url != system.upstream.url
    assert set(system.processes()) >= {"exchange", "paper-exchange"}
    bodies = [d.body for d in user.reports]
    assert type(bodies[-1]).__name__ == "MintInvoice" and Decimal(bodies[-1].filled_quantity) > 0
    assert {b.trading_mode for b in bodies} == {"paper"}  # every report says it
    symbols = sorted(system.symbols)
    paper_trades, _ = asyncio.run(account_activity(system.exchange, symbols))
    bought = {s: t for s, t in paper_trades.items() if t}
    assert bought and all(tr.side is Side.BUY for t in bought.values() for tr in t)
    live_trades, live_open = asyncio.run(account_activity(system.upstream, symbols))
    assert all(t == [] for t in live_trades.values()) and live_open == []
    # The invoice lines are the paper fills: the quantities the paper exchange delivered, net of its commission.
    lines = {line.symbol: line for line in bodies[-1].lines}
    assert set(lines) <= set(bought)


def test_status_and_metrics_say_paper(paper_world) -> None:
    system, _ = paper_world
    metrics = ray.get(system.actor("monitor").inspect.remote(), timeout=30)["metrics"]
    assert metrics["gauges"]["indexmaker_paper_mode"] == {"": 1}

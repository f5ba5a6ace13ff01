"""The collateral router's intake under a replay: a `chain` actor restarted while its `router.accept` call was still
running hands the same deposit over again, so two accepts of one deposit run at once, with the router's step in
between. Unserialised, the second accept wrote the deposit back as "pending" after the step had put it in a route,
and the next step routed (bridged) it a second time. Interleaved here by hand, each step waiting on an event."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Mapping, Sequence

import pytest
import redis.asyncio as aioredis

from chain.collateral_router import CollateralRouter, RouterConfig
from core.chain_events import CollateralDeposit
from core.clock import SystemClock
from core.collateral_route import FeeCharge

pytestmark = pytest.mark.slow

WAIT_S = 10.0


class GatedSink:
    """A CollateralSink whose `credit` waits for the test to let each call through, one at a time."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.entered = asyncio.Event()
        self.gates: list[asyncio.Event] = []

    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.calls.append([d.key for d in deposits])
        self.entered.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        pass

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        pass


class NoHops:
    """Route effects that never move a route past custody (only the intake is under test)."""

    async def bridge(self, key: str, amount: Decimal):  # noqa: ANN201
        raise RuntimeError("no chain in this test")


async def _entered(sink: GatedSink, n: int) -> None:
    while len(sink.calls) < n:
        sink.entered.clear()
        await asyncio.wait_for(sink.entered.wait(), WAIT_S)


def test_a_replayed_deposit_is_routed_once(redis_server) -> None:
    async def scenario() -> tuple[list[list[str]], list[str], str | None]:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushdb()
        sink = GatedSink()
        router = CollateralRouter(client, NoHops(), sink, SystemClock(), RouterConfig(namespace="intake-test"))
        deposit = CollateralDeposit(42161, "0x" + "ab" * 32, 0, 7, "0x" + "11" * 20, Decimal("100"))
        try:
            first = asyncio.ensure_future(router.accept([deposit]))
            await _entered(sink, 1)  # the first accept is crediting
            second = asyncio.ensure_future(router.accept([deposit]))  # the replay arrives meanwhile
            # Let the first accept finish, then a step batches the deposit into a route.
            sink.gates[0].set()
            assert await asyncio.wait_for(first, WAIT_S) == [deposit]
            await router.step()
            if len(sink.calls) > 1:  # the replay got as far as crediting (unserialised): let it finish too
                sink.gates[1].set()
            await asyncio.wait_for(second, WAIT_S)
            await router.step()
            routes = [r for r in await router.routes() if deposit.key in {m.deposit_key for m in r.members}]
            return sink.calls, [r.route_id for r in routes], await router.route_of(deposit.key)
        finally:
            await client.aclose()

    calls, routes, route_of = asyncio.run(scenario())
    assert len(routes) == 1, f"deposit routed {len(routes)} times: {routes}"
    assert route_of == routes[0]
    assert calls == [[calls[0][0]]], f"credited by {len(calls)} accepts (the replay must find it accepted)"

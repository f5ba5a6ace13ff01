"""The collateral router's side of a reorg after a credit, on a real redis-server with route effects that stop
where the test wants: a route that has not bridged fails once all its deposits are reversed (never while one is
live), a deposit whose money already left custody is recorded for the operator, and the users' ledgers are
debited once whatever is replayed."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import redis.asyncio as aioredis

from chain.collateral_router import CollateralRouter, RouterConfig
from chain.collateral_sink import InMemoryLedgers
from chain.route_effects import BridgeSent
from core.chain_events import CollateralDeposit
from core.clock import ManualClock
from core.collateral_route import RouteStage
from core.route_batch import BatchPolicy
from core.route_hold import RouteHoldPolicy

U = Decimal("0.000001")
A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


class Effects:
    """Bridges only when `bridging` is set (else the route stays in custody); no fill ever comes."""

    def __init__(self) -> None:
        self.bridging = False
        self.bridged: list[str] = []

    async def bridge(self, key: str, amount: Decimal) -> BridgeSent:
        if not self.bridging:
            raise RuntimeError("custody held back by the test")
        self.bridged.append(key)
        return BridgeSent("0x" + "cd" * 32, 7, amount, amount - Decimal("0.1"), Decimal("0.2"), 1, 10, 20, 10**9)

    async def find_fill(self, deposit_id: int, from_block: int):  # noqa: ANN201
        return None

    async def fill_expired(self, fill_deadline: int) -> bool:
        return False


def deposit(n: int, user: str, amount: str) -> CollateralDeposit:
    return CollateralDeposit(42161, "0x" + f"{n:02x}" * 32, 0, n, user, Decimal(amount))


def test_reversals_fail_an_unbridged_route_and_record_a_bridged_one(redis_server) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushdb()
        ledgers, effects = InMemoryLedgers(U), Effects()
        config = RouterConfig(unit=U, batch=BatchPolicy(2, None, 0), namespace="reversal-test",
                              hold=RouteHoldPolicy(8453, Decimal("0.001"), U, {42161: Decimal("1.5")}))
        router = CollateralRouter(client, effects, ledgers, ManualClock(), config)
        d1, d2, d3 = deposit(1, A, "100"), deposit(2, B, "50"), deposit(3, A, "40")
        try:
            await router.accept([d1, d2])
            [route] = await router.step()
            assert route.stage == RouteStage.CUSTODY and "route-1" in router.errors  # held back by the test
            # one live member: the route is left as it is (bridging it would move the live user's money only if
            # it were split; the operator is told)
            [r1] = await router.reverse([d1.key])
            assert (r1.user, r1.amount, r1.routed) == (A, Decimal("100"), False)
            assert (await router.route("route-1")).stage == RouteStage.CUSTODY
            assert "reorg" in router.errors["route-1"]
            assert ledgers.ledger(A).credited == 0 and ledgers.ledger(A).is_reversed(d1.key)
            # the last live member goes too: the route fails and leaves the active set; nothing is ever bridged
            await router.reverse([d2.key])
            failed = await router.route("route-1")
            assert failed.stage == RouteStage.FAILED and "reorg" in failed.failure
            effects.bridging = True
            await router.step()
            assert effects.bridged == [] and await router.active_routes() == []
            for user in (A, B):
                ledgers.ledger(user).check()
                assert ledgers.ledger(user).credited == 0 and ledgers.ledger(user).debt == 0

            # a deposit whose money already left custody: recorded for the operator, taken back from the user
            await router.accept([d3, deposit(4, B, "10")])
            [bridging] = await router.step()
            assert bridging.stage == RouteStage.BRIDGING
            held = ledgers.ledger(A).held
            [r3] = await router.reverse([d3.key, "42161:0xnot-a-deposit:0"])
            assert r3.routed and r3.amount == Decimal("40")
            record = (await router.reversed_after_routing())[d3.key]
            assert record["route"] == bridging.route_id and record["amount"] == "40"
            assert (await router.route(bridging.route_id)).stage == RouteStage.BRIDGING  # its money is on the way
            a = ledgers.ledger(A)
            a.check()
            assert held > 0 and a.credited == 0 and a.held == 0 and a.debt == 0  # hold and free collateral
            before = a.to_dict()
            await router.reverse([d3.key])  # a replay: the sink is told again and books nothing
            assert ledgers.ledger(A).to_dict() == before
            assert (await router.inspect())["reversed_after_routing"].keys() == {d3.key}
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_redis_ledgers_take_a_reversed_deposit_back_once(redis_server) -> None:
    """The chain-only sink (ledgers in Redis): the reversal is stored, a replay books nothing, and what free
    collateral cannot cover becomes the user's debt."""
    from chain.redis_ledgers import RedisLedgers
    from core.chain_events import DepositReversal

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushdb()
        try:
            ledgers = RedisLedgers(client, namespace="reversal-ledgers", unit=U)
            d1, d2 = deposit(1, A, "100"), deposit(2, A, "30")
            await ledgers.credit([d1, d2], {d1.key: Decimal("1.6")})
            led = await ledgers.ledger(A)
            led.reserve("order-1", Decimal("120"))
            await client.hset("reversal-ledgers:users", A, json.dumps(led.to_dict()))
            for _ in range(2):
                await ledgers.reverse([DepositReversal(d1.key, A, Decimal("100"))])
                after = await ledgers.ledger(A)
                after.check()
                # 1.6 from the hold, the 8.4 left free, the rest (90) is reserved by the order: owed
                assert after.is_reversed(d1.key) and after.credited == Decimal("30")
                assert (after.available, after.held, after.debt) == (0, 0, Decimal("90"))
        finally:
            await client.aclose()

    asyncio.run(scenario())

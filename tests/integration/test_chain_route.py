"""A user's deposit routed end to end on the real local world: Arbitrum custody -> Across (real SpokePools, the
world's relayer) -> Base wallet -> the exchange deposit address -> credited; fees booked to the micro-USDC;
restarts at every hop pay nothing twice; a deposit dropped by a reorg is never credited.

FAKED here: the exchange's books (world/exchange_standin.py: a fixed deposit address, "credited" = the transfer is
mined on Base). Everything on chain is real.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import pytest

from chain.collateral_router import CollateralRouter
from chain.collateral_sink import InMemoryLedgers
from chain.deposit_feed import deposits_from_batch
from chain.keys import DEV_MNEMONIC, derive_account
from chain.settings import ChainSettings, router_config
from chain.stack import ChainStack
from chain.tx_sender import TxSender
from core.clock import ManualClock
from core.collateral_route import RouteStage
from core.gas_cost import gas_cost_in_collateral
from core.route_batch import BatchPolicy
from tests.integration.chain_world import aredis, async_chains, chain_world, chain_world_module  # noqa: F401
from tests.integration.chain_world import user_transfer
from world.exchange_standin import ChainWatchingExchange
from world.relayer import AcrossRelayer

U = Decimal("0.000001")
EXCHANGE_ADDRESS = derive_account(DEV_MNEMONIC, 40).address  # FAKED: the exchange's deposit address


class Crash(BaseException):
    pass


class Rig:
    """The router with everything it drives, built from Redis and the world file only (so: restartable)."""

    def __init__(self, world, redis, ledgers, clock, settings: ChainSettings) -> None:
        self.world = world
        self.exchange: ChainWatchingExchange | None = None
        self.stack = ChainStack.build(world.state, redis, settings, mnemonic=DEV_MNEMONIC,
                                      deposit_address=lambda c, n: self.exchange.deposit_address(c, n),
                                      exchange_credited=lambda *a: self.exchange.exchange_credited(*a))
        self.exchange = ChainWatchingExchange(self.stack.base, self.stack.base_c.usdc, EXCHANGE_ADDRESS)
        self.router = CollateralRouter(redis, self.stack.effects, ledgers, clock, router_config(settings))
        self.relayer = AcrossRelayer.from_world(world.state, mnemonic=DEV_MNEMONIC)

    async def accept(self, batch) -> None:
        await self.router.accept(deposits_from_batch(batch, U))

    async def tick(self):
        self.world.mine("arbitrum")  # block production (automine makes none without transactions)
        await self.stack.deposits.poll(self.accept)
        await asyncio.to_thread(self.relayer.poll_once)
        return await self.router.step()

    async def run_until(self, done, max_ticks: int = 30):
        for _ in range(max_ticks):
            routes = await self.tick()
            if await done():
                return routes
        raise AssertionError(f"condition not reached in {max_ticks} ticks: {await self.router.inspect()}")

    async def all_credited(self, n: int = 1) -> bool:
        routes = await self.router.routes()
        return len(routes) >= n and all(r.stage == RouteStage.CREDITED for r in routes)

    async def close(self) -> None:
        await self.stack.close()


SETTINGS = ChainSettings(confirmations=2)


async def nonce(w3, address) -> int:
    return await w3.eth.get_transaction_count(address)


async def test_deposit_is_credited_bridged_and_reaches_the_exchange_with_fees_to_the_unit(
        chain_world, async_chains, aredis):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    rig = Rig(chain_world, aredis, ledgers, clock, SETTINGS)
    state = chain_world.state
    user = state.users[0].address
    custody, wallet = state.account("custody").address, state.account("base_wallet").address
    receipt, _ = await user_transfer(async_chains, chain_world, 0, custody, 100_000_000)
    try:
        await rig.run_until(rig.all_credited)
        route = (await rig.router.routes())[0]
        # on chain: custody bridged everything, the relayer delivered 99.9 to our wallet, all of it went on
        assert await async_chains.arb_c.usdc.functions.balanceOf(custody).call() == 0
        assert await async_chains.base_c.usdc.functions.balanceOf(wallet).call() == 0
        assert await rig.exchange.balance() == Decimal("99.9")
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        # the gas, recomputed from the chains' own receipts (not from the route's records)
        arb_gas = base_gas = 0
        for key in ("route-1:bridge:allowance", "route-1:bridge:deposit"):
            r = await async_chains.arb.eth.get_transaction_receipt(
                (await rig.stack.custody_sender.intent(key))["tx_hash"])
            arb_gas += r["gasUsed"] * r["effectiveGasPrice"]
        r = await async_chains.base.eth.get_transaction_receipt(route.transfer["tx_hash"])
        base_gas = r["gasUsed"] * r["effectiveGasPrice"]
        expected_fee = (Decimal("0.1") + gas_cost_in_collateral(arb_gas, 1, Decimal(3000), U)
                        + gas_cost_in_collateral(base_gas, 1, Decimal(3000), U))
        ledger = ledgers.ledger(user)
        ledger.check()
        assert ledger.credited == Decimal("100")
        assert ledger.fees_charged == expected_fee == route.fee
        assert ledger.available == Decimal("100") - expected_fee
        deposit_key = f"42161:{receipt['transactionHash'].to_0x_hex().lower()}:{receipt['logs'][0]['logIndex']}"
        assert ledgers.routed_routes == {"route-1": {deposit_key: Decimal("100") - expected_fee}}
        assert route.hops[0].amount_in == Decimal("100") and route.hops[0].amount_out == Decimal("99.9")
        assert rig.exchange.credited == {route.transfer["tx_hash"]: Decimal("99.9")}
    finally:
        await rig.close()


async def test_the_world_relayer_thread_fills_without_being_driven(chain_world, async_chains, aredis):
    """The same route with the relayer running on its own, as in the demo (the test only waits for the result)."""
    ledgers = InMemoryLedgers(U)
    rig = Rig(chain_world, aredis, ledgers, ManualClock(), replace(SETTINGS, confirmations=0))
    rig.relayer.poll_once = lambda: []  # the tick does not drive it; its own thread does
    relayer = AcrossRelayer.from_world(chain_world.state, mnemonic=DEV_MNEMONIC, poll_s=0.01).start()
    try:
        await user_transfer(async_chains, chain_world, 1, chain_world.state.account("custody").address, 5_000_000)
        await rig.run_until(rig.all_credited, max_ticks=500)
        assert await rig.exchange.balance() == Decimal("4.995")
        assert len(relayer.filled) == 1
    finally:
        relayer.stop()
        await rig.close()


@pytest.mark.parametrize("stop_at", ["custody", "bridging", "on_destination", "at_exchange"])
async def test_router_restarted_mid_route_resumes_at_that_hop_without_paying_twice(
        chain_world, async_chains, aredis, stop_at):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    state = chain_world.state
    custody, wallet = state.account("custody").address, state.account("base_wallet").address
    await user_transfer(async_chains, chain_world, 0, custody, 20_000_000)
    rig = Rig(chain_world, aredis, ledgers, clock, SETTINGS)
    if stop_at == "on_destination":
        rig.exchange = None  # the exchange is unreachable: the route stops after the fill

        async def unreachable(*a):
            raise ConnectionError("exchange API down")
        rig.stack.effects._deposit_address = unreachable
    if stop_at == "at_exchange":
        async def not_yet(*a):
            return None
        rig.stack.effects._exchange_credited = not_yet

    async def reached() -> bool:
        routes = await rig.router.routes()
        return bool(routes) and routes[0].stage == RouteStage(stop_at)

    if stop_at == "custody":
        rig.stack.effects.bridge = _crash_after(rig.stack.effects.bridge)  # dies right after the deposit is sent
        with pytest.raises(Crash):
            await rig.run_until(lambda: asyncio.sleep(0, False))
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
    else:
        await rig.run_until(reached)
    assert (await rig.router.routes())[0].stage == RouteStage(stop_at)
    await rig.close()

    again = Rig(chain_world, aredis, ledgers, clock, SETTINGS)  # a new process: Redis and the chains only
    try:
        await again.stack.recover()
        await again.run_until(again.all_credited)
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        assert await nonce(async_chains.arb, custody) == 2  # one allowance, one deposit
        assert await nonce(async_chains.base, wallet) == 1  # one transfer
        assert await again.exchange.balance() == Decimal("19.98")
        route = (await again.router.routes())[0]
        ledger = ledgers.ledger(state.users[0].address)
        ledger.check()
        assert ledger.credited == Decimal("20") and ledger.fees_charged == route.fee
        assert len(ledger._fees) == 2  # one charge per paid hop, never repeated
    finally:
        await again.close()


def _crash_after(fn):
    async def wrapper(*args, **kwargs):
        await fn(*args, **kwargs)
        raise Crash
    return wrapper


async def test_crash_right_after_broadcasting_the_transfer_sends_it_once(chain_world, async_chains, aredis):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    state = chain_world.state
    await user_transfer(async_chains, chain_world, 2, state.account("custody").address, 10_000_000)
    rig = Rig(chain_world, aredis, ledgers, clock, SETTINGS)
    original = TxSender._broadcast

    async def crash_on_transfer(self, intent):
        await original(self, intent)
        if intent["key"].endswith(":transfer"):
            raise Crash
    TxSender._broadcast = crash_on_transfer
    try:
        with pytest.raises(Crash):
            await rig.run_until(lambda: asyncio.sleep(0, False))
    finally:
        TxSender._broadcast = original
        await rig.close()
    again = Rig(chain_world, aredis, ledgers, clock, SETTINGS)
    try:
        await again.run_until(again.all_credited)
        assert await nonce(async_chains.base, state.account("base_wallet").address) == 1
        assert await again.exchange.balance() == Decimal("9.99")
    finally:
        await again.close()


async def test_batched_deposits_share_one_bridge_transfer_and_split_its_cost(chain_world, async_chains, aredis):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    settings = replace(SETTINGS, batch=BatchPolicy(max_deposits=3, max_wait_ms=60_000))
    state = chain_world.state
    custody = state.account("custody").address
    amounts = [100_000_000, 250_000_000, 1_000_003]
    for i, units in enumerate(amounts):
        await user_transfer(async_chains, chain_world, i, custody, units)
    rig = Rig(chain_world, aredis, ledgers, clock, settings)
    try:
        await rig.run_until(rig.all_credited)
        routes = await rig.router.routes()
        assert len(routes) == 1 and len(routes[0].members) == 3
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        route = routes[0]
        total = Decimal(sum(amounts)) * U
        assert route.total == total
        fees = [ledgers.ledger(state.users[i].address).fees_charged for i in range(3)]
        assert sum(fees) == route.fee  # exact: the shares add up to the cost
        for fee, units in zip(fees, amounts):  # each within a unit per hop of its proportional share
            assert abs(fee - route.fee * Decimal(units) * U / total) <= 2 * U
        assert await rig.exchange.balance() == route.hops[-1].amount_out
    finally:
        await rig.close()


async def test_batch_waits_for_its_window_then_goes(chain_world, async_chains, aredis):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    settings = replace(SETTINGS, batch=BatchPolicy(max_deposits=10, max_wait_ms=5_000))
    await user_transfer(async_chains, chain_world, 0, chain_world.state.account("custody").address, 3_000_000)
    rig = Rig(chain_world, aredis, ledgers, clock, settings)
    try:
        for _ in range(4):
            await rig.tick()
        assert await rig.router.routes() == [] and len(await rig.router.pending()) == 1
        assert ledgers.ledger(chain_world.state.users[0].address).credited == Decimal("3")  # credited already
        clock.advance(5_000)
        await rig.run_until(rig.all_credited)
    finally:
        await rig.close()


async def test_deposit_removed_by_a_reorg_is_never_credited_nor_routed(chain_world, async_chains, aredis):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    rig = Rig(chain_world, aredis, ledgers, clock, SETTINGS)
    state = chain_world.state
    try:
        await rig.tick()
        await user_transfer(async_chains, chain_world, 3, state.account("custody").address, 42_000_000)
        await rig.stack.deposits.poll(rig.accept)  # 0 confirmations: not yet
        chain_world.node("arbitrum").call("anvil_reorg", 1, [])  # the deposit's block is replaced
        for _ in range(6):
            await rig.tick()
        assert state.users[3].address.lower() not in ledgers.ledgers
        assert await rig.router.routes() == [] and await rig.router.pending() == []
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 0
    finally:
        await rig.close()

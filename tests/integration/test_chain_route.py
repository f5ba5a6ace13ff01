"""A user's deposit routed end to end on the real local world: Arbitrum custody -> Across (real SpokePools, the
world's relayer) -> Base wallet -> the deposit address the exchange API gives -> credited by the exchange and in its
balance; fees booked to the micro-USDC; restarts at every hop pay nothing twice; a deposit dropped by a reorg is
never credited.

Nothing is faked: the exchange is the project's simulator in its own process (world/local_exchange.py), watching
Base and crediting a deposit after EXCHANGE_CONFIRMATIONS, reached through exchange/gateway.py (real ccxt).
"""
from __future__ import annotations

import asyncio
import inspect
import socket
from decimal import Decimal

import pytest
import ray

from actors.exchange_deposits import gateway_deposit_callables
from chain.collateral_router import CollateralRouter, RouterConfig
from chain.collateral_sink import InMemoryLedgers
from chain.deposit_feed import hand_over
from chain.keys import DEV_MNEMONIC
from chain.stack import ChainStack
from chain.tx_sender import TxSender
from core.clock import ManualClock
from core.collateral_route import RouteStage
from core.config import ChainConfig, Settings
from core.gas_cost import gas_cost_in_collateral
from exchange.gateway import BinanceGateway
from tests.integration.chain_world import (  # noqa: F401  (fixtures)
    aredis, async_chains, chain_world, chain_world_module, exchange, local_exchange)
from tests.integration.chain_world import ExchangeSide, user_transfer
from world.relayer import AcrossRelayer

U = Decimal("0.000001")
#: The exchange credits a deposit once it has this many confirmations on Base (the Rig mines a Base block a tick).
EXCHANGE_CONFIRMATIONS = 3
CONFIG = ChainConfig(confirmations=2)


class Crash(BaseException):
    pass


class Rig:
    """The router with everything it drives, built from Redis, the world file and the exchange API only (so:
    restartable). `gateway`: the exchange client (default: a new one on the test's account); `mine_base`: whether a
    tick makes a Base block (without, the exchange never reaches its confirmations)."""

    def __init__(self, world, redis, ledgers, clock, config: ChainConfig, exchange: ExchangeSide, *,
                 gateway: BinanceGateway | None = None, mine_base: bool = True) -> None:
        self.world = world
        self.gateway = gateway or exchange.new_gateway()
        deposit_address, exchange_credited = gateway_deposit_callables(self.gateway)
        self.stack = ChainStack.build(world.state, redis, config, mnemonic=DEV_MNEMONIC,
                                      deposit_address=deposit_address, exchange_credited=exchange_credited)
        self.router = CollateralRouter(redis, self.stack.effects, ledgers, clock,
                                       RouterConfig.from_settings(Settings(chain=config)))
        self.relayer = AcrossRelayer.from_world(world.state, mnemonic=DEV_MNEMONIC)
        self.mine_base = mine_base

    async def accept(self, batch) -> None:
        await hand_over(batch, U, self.router.accept, self.router.reverse)

    async def tick(self):
        self.world.mine("arbitrum")  # block production (automine makes none without transactions)
        if self.mine_base:
            self.world.mine("base")
        for listener in self.stack.deposit_listeners:
            await listener.poll(self.accept)
        await asyncio.to_thread(self.relayer.poll_once)
        return await self.router.step()

    async def run_until(self, done, timeout_s: float = 30.0):
        """Tick until `done()` (a plain or an async predicate): the exchange credits in its own process, so the
        bound is time, not ticks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            routes = await self.tick()
            answer = done()
            if await answer if inspect.isawaitable(answer) else answer:
                return routes
            if loop.time() > deadline:
                raise AssertionError(f"condition not reached in {timeout_s} s: {await self.router.inspect()}")

    async def all_credited(self, n: int = 1) -> bool:
        routes = await self.router.routes()
        return len(routes) >= n and all(r.stage == RouteStage.CREDITED for r in routes)

    async def close(self) -> None:
        await self.stack.close()
        await self.gateway.close()


async def nonce(w3, address) -> int:
    return await w3.eth.get_transaction_count(address)


async def test_deposit_is_credited_bridged_and_reaches_the_exchange_balance_with_fees_to_the_unit(
        chain_world, async_chains, aredis, exchange):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    rig = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange)
    state = chain_world.state
    user = state.users[0].address
    custody, wallet = state.account("custody").address, state.account("base_wallet").address
    receipt, _ = await user_transfer(async_chains, chain_world, 0, custody, 100_000_000)
    try:
        await rig.run_until(rig.all_credited)
        route = (await rig.router.routes())[0]
        # on chain: custody bridged everything, the relayer delivered 99.9 to our wallet, all of it went on to the
        # address the exchange API gives this account
        address = (await exchange.gateway.fetch_deposit_address("USDC", "BASE")).address
        assert route.transfer["address"] == address
        assert await async_chains.arb_c.usdc.functions.balanceOf(custody).call() == 0
        assert await async_chains.base_c.usdc.functions.balanceOf(wallet).call() == 0
        assert await async_chains.base_c.usdc.functions.balanceOf(
            async_chains.base.to_checksum_address(address)).call() == 99_900_000
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        # at the exchange: one deposit with our transaction id, and the account's balance holds it
        [deposit] = await exchange.deposits_of(route.transfer["tx_hash"])
        assert deposit.amount == Decimal("99.9") and deposit.network == "BASE"
        assert await exchange.usdc() == Decimal("99.9")
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
        assert route.hops[-1].amount_out == Decimal("99.9")  # the exchange credited all that was sent
    finally:
        await rig.close()


async def test_the_exchange_waits_for_its_confirmations(chain_world, async_chains, aredis, exchange):
    """With no Base block on top of our transfer the exchange does not credit it, and the route waits at the
    exchange; each block after that brings it closer, and it is credited once it has EXCHANGE_CONFIRMATIONS."""
    ledgers = InMemoryLedgers(U)
    rig = Rig(chain_world, aredis, ledgers, ManualClock(), CONFIG, exchange, mine_base=False)
    await user_transfer(async_chains, chain_world, 1, chain_world.state.account("custody").address, 7_000_000)
    try:
        async def at_exchange() -> bool:
            routes = await rig.router.routes()
            return bool(routes) and routes[0].stage == RouteStage.AT_EXCHANGE

        await rig.run_until(at_exchange)
        route = (await rig.router.routes())[0]
        transfer_block = route.transfer["block"]
        for _ in range(EXCHANGE_CONFIRMATIONS - 1):
            assert await exchange.deposits_of(route.transfer["tx_hash"]) == []
            for _ in range(3):  # the router keeps asking; the exchange keeps waiting
                assert (await rig.tick())[0].stage == RouteStage.AT_EXCHANGE
            chain_world.mine("base")
        assert chain_world.head("base") - transfer_block + 1 == EXCHANGE_CONFIRMATIONS
        await rig.run_until(rig.all_credited)
        assert await exchange.usdc() == Decimal("6.993")
    finally:
        await rig.close()


async def test_the_world_relayer_thread_fills_without_being_driven(chain_world, async_chains, aredis, exchange):
    """The same route with the relayer running on its own, as in the demo (the test only waits for the result)."""
    ledgers = InMemoryLedgers(U)
    rig = Rig(chain_world, aredis, ledgers, ManualClock(), CONFIG.model_copy(update={"confirmations": 0}), exchange)
    rig.relayer.poll_once = lambda: []  # the tick does not drive it; its own thread does
    relayer = AcrossRelayer.from_world(chain_world.state, mnemonic=DEV_MNEMONIC, poll_s=0.01).start()
    try:
        await user_transfer(async_chains, chain_world, 1, chain_world.state.account("custody").address, 5_000_000)
        await rig.run_until(rig.all_credited)
        assert await exchange.usdc() == Decimal("4.995")
        assert len(relayer.filled) == 1
    finally:
        relayer.stop()
        await rig.close()


def refused_gateway(exchange: ExchangeSide) -> tuple[BinanceGateway, socket.socket]:
    """A client of the exchange API that cannot reach it: its port is bound and never listened on, so every
    connection is refused (the exchange is down). Close the socket after use."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    gateway = BinanceGateway(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", exchange.account.api_key,
                             exchange.account.secret)
    gateway.ccxt.timeout_on_exit = 0  # no TLS to wind down
    return gateway, sock


@pytest.mark.parametrize("stop_at", ["custody", "bridging", "on_destination", "at_exchange"])
async def test_router_restarted_mid_route_resumes_at_that_hop_without_paying_twice(
        chain_world, async_chains, aredis, exchange, stop_at):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    state = chain_world.state
    custody, wallet = state.account("custody").address, state.account("base_wallet").address
    await user_transfer(async_chains, chain_world, 0, custody, 20_000_000)
    down = None
    if stop_at == "on_destination":  # the exchange API is down: the route stops after the fill
        gateway, down = refused_gateway(exchange)
        rig = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange, gateway=gateway)
    else:  # at_exchange: no Base block after our transfer, so the exchange has not credited it yet
        rig = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange, mine_base=stop_at != "at_exchange")

    async def reached() -> bool:
        routes = await rig.router.routes()
        return bool(routes) and routes[0].stage == RouteStage(stop_at)

    try:
        if stop_at == "custody":
            rig.stack.effects.bridge = _crash_after(rig.stack.effects.bridge)  # dies right after the deposit is sent
            with pytest.raises(Crash):
                await rig.run_until(lambda: False)
            assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        else:
            await rig.run_until(reached)
        if stop_at == "on_destination":
            assert rig.router.errors["route-1"].startswith("ExchangeUnavailable"), rig.router.errors
        assert (await rig.router.routes())[0].stage == RouteStage(stop_at)
    finally:
        await rig.close()
        if down is not None:
            down.close()

    again = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange)  # a new process: Redis, chains, exchange API
    try:
        await again.stack.recover()
        await again.run_until(again.all_credited)
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 1
        assert await nonce(async_chains.arb, custody) == 2  # one allowance, one deposit
        assert await nonce(async_chains.base, wallet) == 1  # one transfer
        route = (await again.router.routes())[0]
        assert len(await exchange.deposits_of(route.transfer["tx_hash"])) == 1
        assert await exchange.usdc() == Decimal("19.98")
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


async def test_crash_right_after_broadcasting_the_transfer_sends_it_once(chain_world, async_chains, aredis,
                                                                          exchange):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    state = chain_world.state
    await user_transfer(async_chains, chain_world, 2, state.account("custody").address, 10_000_000)
    rig = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange)
    original = TxSender._broadcast

    async def crash_on_transfer(self, intent):
        await original(self, intent)
        if intent["key"].endswith(":transfer"):
            raise Crash
    TxSender._broadcast = crash_on_transfer
    try:
        with pytest.raises(Crash):
            await rig.run_until(lambda: False)
    finally:
        TxSender._broadcast = original
        await rig.close()
    again = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange)
    try:
        await again.run_until(again.all_credited)
        assert await nonce(async_chains.base, state.account("base_wallet").address) == 1
        route = (await again.router.routes())[0]
        assert len(await exchange.deposits_of(route.transfer["tx_hash"])) == 1
        assert await exchange.usdc() == Decimal("9.99")
    finally:
        await again.close()


async def test_batched_deposits_share_one_bridge_transfer_and_split_its_cost(chain_world, async_chains, aredis,
                                                                             exchange):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    config = CONFIG.model_copy(update={"batch_max_deposits": 3, "batch_max_wait_ms": 60_000})
    state = chain_world.state
    custody = state.account("custody").address
    amounts = [100_000_000, 250_000_000, 1_000_003]
    for i, units in enumerate(amounts):
        await user_transfer(async_chains, chain_world, i, custody, units)
    rig = Rig(chain_world, aredis, ledgers, clock, config, exchange)
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
        assert await exchange.usdc() == route.hops[-1].amount_out
    finally:
        await rig.close()


async def test_batch_waits_for_its_window_then_goes(chain_world, async_chains, aredis, exchange):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    config = CONFIG.model_copy(update={"batch_max_deposits": 10, "batch_max_wait_ms": 5_000})
    await user_transfer(async_chains, chain_world, 0, chain_world.state.account("custody").address, 3_000_000)
    rig = Rig(chain_world, aredis, ledgers, clock, config, exchange)
    try:
        for _ in range(4):
            await rig.tick()
        assert await rig.router.routes() == [] and len(await rig.router.pending()) == 1
        assert ledgers.ledger(chain_world.state.users[0].address).credited == Decimal("3")  # credited already
        clock.advance(5_000)
        await rig.run_until(rig.all_credited)
        assert await exchange.usdc() == Decimal("2.997")
    finally:
        await rig.close()


async def test_deposit_removed_by_a_reorg_is_never_credited_nor_routed(chain_world, async_chains, aredis,
                                                                       exchange):
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    rig = Rig(chain_world, aredis, ledgers, clock, CONFIG, exchange)
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


async def test_deposit_on_base_takes_only_the_last_hop_and_pays_only_its_gas(chain_world, async_chains, aredis,
                                                                            exchange):
    """USDC sent to custody on Base: credited after Base's confirmations holding only the Base transfer's gas (no
    bridge cut), then sent by custody itself straight to the exchange: no Across deposit, nothing through the Base
    wallet, and the user pays exactly that transfer's gas."""
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    config = CONFIG.model_copy(update={"base_confirmations": 3})
    rig = Rig(chain_world, aredis, ledgers, clock, config, exchange)
    state = chain_world.state
    user = state.users[1].address
    custody, wallet = state.account("custody").address, state.account("base_wallet").address
    custody_before = await async_chains.base_c.usdc.functions.balanceOf(custody).call()
    receipt, _ = await user_transfer(async_chains, chain_world, 1, custody, 30_000_000, chain="base")
    deposit_key = f"8453:{receipt['transactionHash'].to_0x_hex().lower()}:{receipt['logs'][0]['logIndex']}"
    try:
        # not before its confirmations: the listener only reads blocks with base_confirmations on top
        while chain_world.head("base") - receipt["blockNumber"] < 3:
            assert user.lower() not in ledgers.ledgers
            await rig.tick()
        await rig.run_until(lambda: user.lower() in ledgers.ledgers)
        held = ledgers.ledger(user)
        held.check()
        # the hold is Base's gas only (no bridge cut); the transfer (same tick) may already be charged from it
        assert held.credited == Decimal("30") and held.available == Decimal("29.5")
        assert held.hold(deposit_key) + held.fees_charged == Decimal("0.50")
        await rig.run_until(rig.all_credited)
        [route] = await rig.router.routes()
        assert route.origin_chain_id == route.destination_chain_id == state.chain("base").chain_id
        assert [h.hop for h in route.hops] == ["transfer:8453->exchange", "credit:exchange"]  # no bridge hop
        assert route.bridge is None
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 0
        assert await nonce(async_chains.base, wallet) == 0  # the Base wallet signed nothing
        assert await nonce(async_chains.arb, custody) == 0  # nor custody on Arbitrum
        assert await async_chains.base_c.usdc.functions.balanceOf(custody).call() == custody_before
        address = (await exchange.gateway.fetch_deposit_address("USDC", "BASE")).address
        tx = await async_chains.base.eth.get_transaction(route.transfer["tx_hash"])
        assert tx["from"] == custody and route.transfer["address"] == address
        assert await exchange.usdc() == Decimal("30")  # all of it: no bridge fee
        r = await async_chains.base.eth.get_transaction_receipt(route.transfer["tx_hash"])
        gas = gas_cost_in_collateral(r["gasUsed"] * r["effectiveGasPrice"], 1, Decimal(3000), U)
        ledger = ledgers.ledger(user)
        ledger.check()
        assert route.fee == gas == ledger.fees_charged > 0
        assert ledger.held == 0 and ledger.available == Decimal("30") - gas  # the rest of the hold came back
        assert ledgers.routed_routes == {route.route_id: {deposit_key: Decimal("30") - gas}}
    finally:
        await rig.close()


async def test_deposit_credited_then_reorged_out_is_taken_back_and_never_bridged(chain_world, async_chains, aredis,
                                                                                 exchange):
    """A reorg deeper than the confirmations drops a deposit already credited and waiting for its batch: the
    listener reports it, the router drops it from routing and the sink takes it back from the user; the batch
    window then passes and nothing is bridged; a replay of the reversal changes nothing."""
    ledgers, clock = InMemoryLedgers(U), ManualClock()
    config = CONFIG.model_copy(update={"batch_max_deposits": 10, "batch_max_wait_ms": 5_000})
    rig = Rig(chain_world, aredis, ledgers, clock, config, exchange)
    state = chain_world.state
    user = state.users[2].address
    try:
        receipt, _ = await user_transfer(async_chains, chain_world, 2, state.account("custody").address, 25_000_000)
        await rig.run_until(lambda: user.lower() in ledgers.ledgers)
        ledger = ledgers.ledger(user)
        assert ledger.credited == Decimal("25") and len(await rig.router.pending()) == 1
        depth = chain_world.head("arbitrum") - receipt["blockNumber"] + 1
        assert depth > config.confirmations
        chain_world.node("arbitrum").call("anvil_reorg", depth, [])  # the deposit's block and all after it
        deposit_key = f"42161:{receipt['transactionHash'].to_0x_hex().lower()}:{receipt['logs'][0]['logIndex']}"
        for _ in range(3):
            await rig.tick()
        ledger.check()
        assert ledger.is_reversed(deposit_key)
        assert (ledger.credited, ledger.available, ledger.held, ledger.debt) == (0, 0, 0, 0)
        assert await rig.router.pending() == [] and await rig.router.route_of(deposit_key) == "reversed"
        clock.advance(5_000)  # the batch window passes: there is nothing left to route
        for _ in range(3):
            await rig.tick()
        assert await rig.router.routes() == []
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 0
        [again] = await rig.router.reverse([deposit_key])  # a replay: told again, booked once
        assert again.amount == Decimal("25") and not again.routed
        ledger.check()
        assert ledger.credited == 0 and ledger.debt == 0
        assert await rig.router.reversed_after_routing() == {}
    finally:
        await rig.close()


async def test_reorg_after_a_credit_used_by_orders_cancels_them_records_debt_reports_and_shows_in_health(
        ray_cluster, redis_server, chain_world, async_chains, aredis, exchange):
    """The whole item on the real world: a deposit on Arbitrum credited in an order-book shard (a Ray actor), two
    orders on it, a batch engages part of the older one, then a reorg deeper than the confirmations drops the
    deposit. The router hands the reversal to the shard: the newest order's collateral is cancelled, the older
    one's unengaged rest too, the engaged part stays as the user's debt (new orders refused), the user gets the
    cancel reports and a DepositReversed, and the operator's health view and `status` name it."""
    import uuid

    from actors.order_books import IndexOrderBooks, OrderBooksOptions
    from actors.order_shards import ShardedCollateralSink
    from actors.system_view import Observation, SystemView
    from actors.metrics import Metrics
    from core.batch_planner import Engagement
    from core.collateral_ledger import CollateralLedger
    from core.side import Side
    from protocol.envelope import UserRef
    from protocol.indexmaker_app import CancelDone, DepositReversed, NewOrder, OrderAccepted, OrderProgress
    from protocol.indexmaker_plugin import IndexMakerPlugin
    from protocol.reason_codes import ReasonCode
    from world.system_status import key_figures

    index = "SY100.dev"
    tag = uuid.uuid4().hex[:8]
    shard = IndexOrderBooks.options(name=f"reorg-ob-{tag}").remote(
        0, OrderBooksOptions(redis_server.url, 1, (index,), key_prefix=f"reorg-{tag}", solver_name=None))
    clock = ManualClock()
    config = CONFIG.model_copy(update={"batch_max_deposits": 10, "batch_max_wait_ms": 60_000})
    rig = Rig(chain_world, aredis, ShardedCollateralSink([shard]), clock, config, exchange)
    state = chain_world.state
    user = state.users[0].address
    ref = UserRef(42161, user)
    try:
        receipt, _ = await user_transfer(async_chains, chain_world, 0, state.account("custody").address,
                                         100_000_000)
        deposit_key = f"42161:{receipt['transactionHash'].to_0x_hex().lower()}:{receipt['logs'][0]['logIndex']}"

        async def credited() -> bool:
            view = await shard.user.remote(user)
            return view is not None and Decimal(view["ledger"]["credited"]) == Decimal("100")

        await rig.run_until(credited)
        # hold: 1.50 gas + 0.1 bridge cut = 1.6; 98.4 free; two orders leave 8.4 free
        answers = await shard.handle.remote([NewOrder(ref, "old", index, Side.BUY, Decimal("60")),
                                             NewOrder(ref, "new", index, Side.BUY, Decimal("30"))])
        assert answers == [OrderAccepted(ref, "old"), OrderAccepted(ref, "new")]
        old_id = f"{user.lower()}:old"
        assert await shard.engage.remote("b1", [Engagement(old_id, index, Decimal("0.001"), Decimal("40"),
                                                           Decimal("40000"))]) == [(old_id, Decimal("40"))]

        depth = chain_world.head("arbitrum") - receipt["blockNumber"] + 1
        assert depth > config.confirmations
        chain_world.node("arbitrum").call("anvil_reorg", depth, [])

        async def reversed_() -> bool:
            view = await shard.user.remote(user)
            return Decimal(view["ledger"]["credited"]) == 0

        await rig.run_until(reversed_)
        view = await shard.user.remote(user)
        ledger = CollateralLedger.from_dict(view["ledger"])
        ledger.check()
        # short = 100 - 1.6 - 8.4 = 90: "new" gives its 30 (closed), "old" its unengaged 20; 40 engaged -> debt
        assert ledger.is_reversed(deposit_key)
        assert (ledger.available, ledger.held, ledger.reserved, ledger.debt) == (0, 0, Decimal("40"), Decimal("40"))
        orders = {o["cl_ord_id"]: o for o in view["orders"]}
        assert orders["new"]["status"] == "CANCELLED" and Decimal(orders["new"]["cancelled"]) == Decimal("30")
        assert Decimal(orders["old"]["cancelled"]) == Decimal("20")
        assert Decimal(orders["old"]["engaged"]) == Decimal("40") and orders["old"]["status"] != "CANCELLED"
        refused = await shard.handle.remote([NewOrder(ref, "after", index, Side.BUY, Decimal("1"))])
        assert refused[0].code == ReasonCode.DEBT_OUTSTANDING

        # the user's reports: the two cuts, "new" closed, then the reversal, which encodes to the wire message
        reports = [r.response for r in await shard.reports_since.remote(0)]
        tail = [r for r in reports if not isinstance(r, OrderAccepted)][-4:]
        assert tail[0] == CancelDone(ref, "new", Decimal("30"), Decimal("0"), Decimal("0"))
        assert isinstance(tail[1], OrderProgress) and tail[1].status == "canceled"
        assert tail[2] == CancelDone(ref, "old", Decimal("20"), Decimal("0"), Decimal("40"))
        reversed_report = tail[3]
        assert isinstance(reversed_report, DepositReversed)
        assert (reversed_report.deposit_id, reversed_report.amount, reversed_report.debt,
                reversed_report.cancelled_orders, reversed_report.code) == (
            deposit_key, Decimal("100"), Decimal("40"), ("new", "old"), ReasonCode.DEPOSIT_REVERSED)
        wire = IndexMakerPlugin.to_wire(reversed_report)
        assert wire.MSG_TYPE == "DepositReversed" and wire.reason_code == ReasonCode.DEPOSIT_REVERSED
        assert wire.debt == Decimal("40") and wire.cancelled_orders == ["new", "old"]

        # routing: the deposit left the queue, nothing is bridged when the window passes
        assert await rig.router.pending() == []
        clock.advance(60_000)
        await rig.tick()
        assert await rig.router.routes() == []
        assert await async_chains.arb_c.spoke_pool.functions.numberOfDeposits().call() == 0

        # the operator: /health's verdict is degraded with the user and the deposit named; status warns too
        info = await shard.inspect.remote()
        health = SystemView(Metrics(export=False)).update({"orders-0": Observation(info, 0.001)}, 0)
        assert health["healthy"] and health["status"] == "degraded"
        assert any(user.lower() in w and "owes 40" in w for w in health["warnings"])
        assert any(deposit_key in w and "reversed" in w for w in health["warnings"])
        _, warnings = key_figures("orders-0", info)
        assert any(deposit_key in w for w in warnings) and any("owes 40" in w for w in warnings)
    finally:
        await rig.close()
        ray.kill(shard)

"""A user's withdrawal paid on Arbitrum over the real local world: the order shard (the actor's class outside Ray)
holds it, the withdrawal actor's body applies it at the exchange (the simulator in its own process, paying from its
hot wallet on Base), bridges what reached our Base wallet with Across (real SpokePools, the world's relayer filling
Base -> Arbitrum into the Base wallet's account there), and that account pays the user. The user receives exactly
amount - fees, the shard's ledger says the same (withdrawn, fees charged, nothing held), every stage is reported
with the payment's hash at the end, a restart mid-way and a repeated request pay nothing twice."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from actors.order_books import IndexOrderBooks, OrderBooksOptions, report_of
from actors.withdrawals import WithdrawalDesk, WithdrawalsOptions
from chain.keys import DEV_MNEMONIC
from chain.deposit_feed import deposits_from_batch
from chain.stack import ChainStack
from core.chain_events import CollateralDeposit
from core.config import ChainConfig
from core.withdrawal import WithdrawalStage as S, withdrawal_id_of
from protocol.envelope import UserRef
from protocol.indexmaker_app import Withdraw, WithdrawalAccepted, WithdrawalProgress
from store.streams import shard_reports
from tests.integration.chain_world import (aredis, async_chains, chain_world, chain_world_module,  # noqa: F401
                                           user_transfer)
from world.chains import HOT_WALLET
from world.local_exchange import LocalExchange, LocalExchangeConfig
from world.relayer import AcrossRelayer

INDEX = "SY100"
PREFIX = "wr-orders"
ARBITRUM = 42161
CONFIG = ChainConfig(confirmations=1)
PAYOUT_GAS = Decimal("0.2")
WAIT_S = 120


async def test_a_withdrawal_is_paid_on_arbitrum_exactly_amount_less_fees(chain_world, async_chains, aredis,
                                                                          redis_server, monkeypatch):
    monkeypatch.setattr("actors.order_books.tune_gc_once", lambda: None)
    state = chain_world.state
    user = state.users[0].address
    ref = UserRef(ARBITRUM, user)
    usdc = async_chains.arb_c.usdc
    before = await usdc.functions.balanceOf(user).call()
    shard = IndexOrderBooks.__ray_metadata__.modified_class(0, OrderBooksOptions(
        redis_server.url, 1, (INDEX,), key_prefix=PREFIX, solver_name=None, withdrawal_minimum=Decimal("5"),
        withdrawal_chains=frozenset({ARBITRUM})))
    await shard.credit([CollateralDeposit(ARBITRUM, "0x01", 0, 1, user, Decimal("1000"))])
    assert await shard.handle([Withdraw(ref, "w-1", Decimal("250"), user, ARBITRUM, None)]) == [
        WithdrawalAccepted(ref, "w-1")]

    stack = ChainStack.build(state, aredis, CONFIG, mnemonic=DEV_MNEMONIC)
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC, origin="base", destination="arbitrum")
    wid = withdrawal_id_of(user, "w-1")
    with LocalExchange(state, LocalExchangeConfig(), hot_wallet_index=state.account(HOT_WALLET).index) as exchange:
        options = WithdrawalsOptions(redis_server.url, 1, state.account("base_wallet").address, exchange.url,
                                     exchange.ws_url, exchange.account.api_key, exchange.account.secret,
                                     key_prefix="wr-test", poll_ms=50, payout_gas=PAYOUT_GAS)

        def desk() -> WithdrawalDesk:
            return WithdrawalDesk(options, exchange=exchange.gateway(), return_route=stack.return_effects,
                                  shard_call=lambda k, reports, done: shard.withdrawal_progress(reports, done))

        async def run(d: WithdrawalDesk, until: set) -> None:
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while d.withdrawals[wid].stage not in until:
                assert asyncio.get_running_loop().time() < deadline, await d.inspect()
                await d.tick()
                chain_world.mine("base")  # block production: the exchange's payout confirms
                await asyncio.to_thread(relayer.poll_once)
                await asyncio.sleep(0.05)  # the exchange pays in its own process, at its own pace

        first = desk()
        await first.start()
        first._task.cancel()  # ticked by the test
        assert await first.submit(0, await shard.withdrawal_requests()) == 1
        # The deposit's fill can only be seen a tick after it (the relayer polls between ticks): bridging is a
        # stage some tick ends at.
        await run(first, {S.BRIDGING})
        await first.stop()  # a restart while the bridge is in flight

        second = desk()
        await second.start()
        second._task.cancel()
        assert await second.submit(0, await shard.withdrawal_requests()) == 0  # known: nothing new
        await run(second, {S.PAID})
        w = second.withdrawals[wid]
        for _ in range(3):  # more ticks, and the request pushed again: nothing moves, nothing is paid again
            await second.submit(0, [r for r in shard.shard.withdrawals.values()])
            await second.tick()
        rows = await second._exchange.fetch_withdrawals("USDC", w.withdraw_order_id)
        await second.stop()

    after = await usdc.functions.balanceOf(user).call()
    assert len(rows) == 1  # one exchange withdrawal
    assert w.exchange_fee == Decimal("0.1") and w.bridge_fee == Decimal("0.2499")  # 0.1 % of 249.9, rounded down
    assert w.gas_fee > PAYOUT_GAS  # the Base deposit's real gas and the payout's estimate
    assert w.payout == Decimal("250") - w.fees and w.payout > Decimal("248")  # gas: ~0.5 approve + deposit
    assert Decimal(after - before).scaleb(-6) == w.payout  # exactly amount - fees reached the user
    receipt = await async_chains.arb.eth.get_transaction_receipt(w.paid_tx)
    assert receipt["status"] == 1
    ledger = (await shard.user(user))["ledger"]
    assert Decimal(ledger["withdrawn"]) == w.payout and Decimal(ledger["fees_charged"]) == w.fees
    assert (Decimal(ledger["available"]), Decimal(ledger["held"])) == (Decimal("750"), Decimal("0"))
    reports = [report_of(raw).response for _, raw in await shard_reports(PREFIX, 0).since(shard._redis, 0)]
    progress = [r.report for r in reports if isinstance(r, WithdrawalProgress)]
    stages = [r.stage.value for r in progress]
    assert list(dict.fromkeys(stages)) == ["reserved", "applied", "on_base", "bridging", "bridged", "paid"]
    assert len(stages) == 7  # the stage the restart found was told once more; no other stage twice
    assert progress[-1].tx_hash == w.paid_tx and progress[-1].payout == w.payout and progress[-1].fees == w.fees
    await stack.close()
    await shard._redis.aclose()


async def test_a_withdrawals_bridged_usdc_is_nobodys_deposit_and_pays_the_user(chain_world, async_chains, aredis):
    """The return route's fill is the relayer's transfer to the address it lands on: were that address watched for
    deposits (custody's), the relayer would be credited the bridged USDC and the router would route it away before
    the user is paid. It lands where no deposit listener looks, and that address pays the user."""
    state = chain_world.state
    stack = ChainStack.build(state, aredis, CONFIG, mnemonic=DEV_MNEMONIC)
    route = stack.return_effects
    await user_transfer(async_chains, chain_world, 0, state.account("base_wallet").address, 300 * 10**6,
                        chain="base")  # USDC in our Base wallet, as the exchange's withdrawal leaves it
    sent = await route.bridge("wd-nobody:bridge", Decimal("300"))
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC, origin="base", destination="arbitrum")
    assert await asyncio.to_thread(relayer.poll_once)
    fill = await route.find_fill(sent.deposit_id, sent.destination_block)
    assert fill is not None and fill.amount == sent.output_amount

    chain_world.mine("arbitrum", CONFIG.confirmations + 1)
    chain_world.mine("base", CONFIG.base_confirmations + 1)
    credited = []
    for listener in stack.deposit_listeners:
        batch = await listener.fetch()
        credited += deposits_from_batch(batch, CONFIG.usdc_unit)
        if listener.chain_id == ARBITRUM:
            assert batch.to_block >= fill.block  # the fill's block was read
    assert credited == []

    user = state.users[1].address
    before = await async_chains.arb_c.usdc.functions.balanceOf(user).call()
    paid = await route.transfer("wd-nobody", user, fill.amount)
    assert (await async_chains.arb.eth.get_transaction_receipt(paid.tx_hash))["status"] == 1
    after = await async_chains.arb_c.usdc.functions.balanceOf(user).call()
    assert Decimal(after - before).scaleb(-6) == fill.amount
    await stack.close()

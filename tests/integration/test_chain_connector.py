"""The chain connector on a real anvil: confirmations, persisted cursor, restarts, reorgs, bounded ranges."""
from __future__ import annotations

from decimal import Decimal

from chain.connector import ChainConnector
from chain.deposit_feed import deposit_connector, deposits_from_batch
from tests.integration.chain_world import (  # noqa: F401  (fixtures)
    aredis, async_chains, chain_world, chain_world_module, user_transfer)

U = Decimal("0.000001")


def connector(world, chains, redis, confirmations=2, **kw) -> ChainConnector:
    arb = world.state.chain("arbitrum")
    return deposit_connector(chains.arb, arb.chain_id, redis, chains.arb_c.usdc,
                             world.state.account("custody").address, start_block=arb.start_block,
                             confirmations=confirmations, **kw)


async def test_deposit_is_handed_out_only_with_confirmations_and_only_once(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=2)
    receipt, _ = await user_transfer(async_chains, chain_world, 0, custody, 250_000_000)
    assert deposits_from_batch(await conn.poll(), U) == []  # 0 confirmations
    chain_world.mine("arbitrum", 1)
    assert deposits_from_batch(await conn.poll(), U) == []  # 1
    chain_world.mine("arbitrum", 1)
    batch = await conn.poll()
    deposits = deposits_from_batch(batch, U)
    assert [(d.user, d.amount, d.block_number) for d in deposits] == [
        (chain_world.state.users[0].address, Decimal("250"), receipt["blockNumber"])]
    assert deposits[0].tx_hash == receipt["transactionHash"].to_0x_hex().lower()
    chain_world.mine("arbitrum", 3)
    assert (await conn.poll()).logs == []
    # a second listener over the same store (a restarted process) resumes after the cursor: nothing again
    again = connector(chain_world, async_chains, aredis, confirmations=2)
    chain_world.mine("arbitrum", 2)
    assert (await again.poll()).logs == []


async def test_other_transfers_are_not_deposits(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=0)
    await user_transfer(async_chains, chain_world, 1, chain_world.state.users[2].address, 5_000_000)  # not to us
    await user_transfer(async_chains, chain_world, 1, custody, 7_000_000)
    deposits = deposits_from_batch(await conn.poll(), U)
    assert [(d.user, d.amount) for d in deposits] == [(chain_world.state.users[1].address, Decimal("7"))]


async def test_uncommitted_batch_comes_again_after_a_crash(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=0)
    await user_transfer(async_chains, chain_world, 0, custody, 1_000_000)

    class Crash(Exception):
        pass

    async def crashing(batch):
        raise Crash

    try:
        await conn.poll(crashing)
    except Crash:
        pass
    restarted = connector(chain_world, async_chains, aredis, confirmations=0)
    got = []

    async def keep(batch):
        got.extend(deposits_from_batch(batch, U))

    await restarted.poll(keep)
    assert [d.amount for d in got] == [Decimal("1")]
    await restarted.poll(keep)
    assert len(got) == 1


async def test_deposit_dropped_by_a_reorg_is_never_handed_out(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=2)
    await conn.poll()
    receipt, _ = await user_transfer(async_chains, chain_world, 0, custody, 99_000_000)
    chain_world.mine("arbitrum", 1)
    assert (await conn.poll()).logs == []  # 1 confirmation: not yet
    # the two newest blocks (the deposit's and the next) are replaced by empty ones
    chain_world.node("arbitrum").call("anvil_reorg", 2, [])
    chain_world.mine("arbitrum", 5)
    batches = await conn.catch_up()
    assert all(b.logs == [] for b in batches)
    assert await async_chains.arb_c.usdc.functions.balanceOf(custody).call() == 0


async def test_reorg_below_the_cursor_rereads_without_repeating(chain_world, async_chains, aredis):
    """A reorg deeper than the confirmations (after the listener processed the blocks): it is noticed by block
    hash, the cursor goes back, a re-included deposit is not handed out twice, a new one is not missed."""
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=1)
    receipt, signed = await user_transfer(async_chains, chain_world, 0, custody, 10_000_000)
    chain_world.mine("arbitrum", 1)
    first = await conn.poll()
    assert [log.tx_hash for log in first.logs] == [receipt["transactionHash"].to_0x_hex().lower()]
    # a second user's deposit, signed now but only mined inside the replacement blocks
    acct = chain_world.key(1)
    tx = await async_chains.arb_c.usdc.functions.transfer(custody, 3_000_000).build_transaction(
        {"from": acct.address, "chainId": 42161,
         "nonce": await async_chains.arb.eth.get_transaction_count(acct.address)})
    other = acct.sign_transaction(tx)
    # replace the last 2 blocks (the first deposit's block and the one above it): the first deposit is
    # re-included, and the second user's transfer lands in the new chain too
    chain_world.node("arbitrum").call("anvil_reorg", 2, [[signed.raw_transaction.to_0x_hex(), 0],
                                                          [other.raw_transaction.to_0x_hex(), 1]])
    chain_world.mine("arbitrum", 2)
    batches = await conn.catch_up()
    assert batches[0].reorg is not None and batches[0].reorg.depth >= 1
    assert batches[0].reorg.orphaned == ()  # the first deposit is back on the chain
    logs = [log for b in batches for log in b.logs]
    assert [(log.args["from"], log.args["value"]) for log in logs] == [(acct.address, 3_000_000)]


async def test_orphaned_deposit_is_reported_when_a_deep_reorg_drops_it(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=0)
    receipt, _ = await user_transfer(async_chains, chain_world, 0, custody, 10_000_000)
    first = await conn.poll()
    assert len(first.logs) == 1
    chain_world.node("arbitrum").call("anvil_reorg", 1, [])
    chain_world.mine("arbitrum", 1)
    batch = await conn.poll()
    assert batch.reorg is not None and batch.reorg.orphaned == (first.logs[0].key,)
    assert batch.logs == []


async def test_bounded_ranges_catch_up_after_a_long_stop(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    conn = connector(chain_world, async_chains, aredis, confirmations=0, max_block_range=10)
    await user_transfer(async_chains, chain_world, 0, custody, 1_000_000)
    chain_world.mine("arbitrum", 35)
    await user_transfer(async_chains, chain_world, 1, custody, 2_000_000)
    batches = await conn.catch_up()
    assert len(batches) >= 4 and all(b.to_block - b.from_block < 10 for b in batches)
    assert [log.args["value"] for b in batches for log in b.logs] == [1_000_000, 2_000_000]

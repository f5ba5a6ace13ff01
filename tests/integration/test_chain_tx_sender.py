"""The transaction sender and the index mint on a real anvil: one transaction per key, whatever crashes."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from web3.exceptions import ContractLogicError

from chain.index_minter import IndexMinter
from chain.tx_sender import ConflictingIntent, TxSender
from store.retry import RetryPolicy
from tests.integration.chain_world import aredis, async_chains, chain_world, chain_world_module  # noqa: F401


class Crash(BaseException):
    """The process dies here (BaseException: no `except Exception` on the way catches it)."""


class CrashAfterBroadcast(TxSender):
    async def _broadcast(self, intent):
        await super()._broadcast(intent)
        raise Crash


class CrashBeforeBroadcast(TxSender):
    async def _broadcast(self, intent):
        raise Crash


def minter(world, chains, redis, cls=TxSender, role="solver") -> IndexMinter:
    sender = cls(chains.base, world.state.chain("base").chain_id, world.key(role), redis)
    return IndexMinter(sender, chains.base_c.index_tokens["SY100DEV"])


async def supply_and_nonce(world, chains) -> tuple[int, int]:
    solver = world.state.account("solver").address
    return (await chains.base_c.index_tokens["SY100DEV"].functions.totalSupply().call(),
            await chains.base.eth.get_transaction_count(solver))


async def test_a_key_is_sent_once(chain_world, async_chains, aredis):
    m = minter(chain_world, async_chains, aredis)
    user = chain_world.state.users[0].address
    first = await m.mint("order-1", user, Decimal("1.5"))
    again = await m.mint("order-1", user, Decimal("1.5"))
    assert first.ok and first.sent_now and not again.sent_now and again.tx_hash == first.tx_hash
    assert await supply_and_nonce(chain_world, async_chains) == (15 * 10**17, 1)
    assert await async_chains.base_c.index_tokens["SY100DEV"].functions.balanceOf(user).call() == 15 * 10**17


async def test_mint_is_sent_once_when_the_sender_restarts_after_sending(chain_world, async_chains, aredis):
    user = chain_world.state.users[1].address
    crashing = minter(chain_world, async_chains, aredis, CrashAfterBroadcast)
    with pytest.raises(Crash):
        await crashing.mint("order-7", user, Decimal("2"))
    sent = await crashing.minted("order-7")
    assert sent is not None
    restarted = minter(chain_world, async_chains, aredis)  # a new process: only Redis is shared
    result = await restarted.mint("order-7", user, Decimal("2"))
    assert result.tx_hash == sent and not result.sent_now
    await restarted.mint("order-7", user, Decimal("2"))
    assert await supply_and_nonce(chain_world, async_chains) == (2 * 10**18, 1)


async def test_intent_recorded_but_never_sent_goes_out_once_on_recover(chain_world, async_chains, aredis):
    user = chain_world.state.users[2].address
    crashing = minter(chain_world, async_chains, aredis, CrashBeforeBroadcast)
    with pytest.raises(Crash):
        await crashing.mint("order-9", user, Decimal("3"))
    assert await supply_and_nonce(chain_world, async_chains) == (0, 0)  # nothing reached the chain
    restarted = minter(chain_world, async_chains, aredis)
    recovered = await restarted.sender.recover()
    assert [r.key for r in recovered] == ["mint:order-9"]
    assert (await restarted.mint("order-9", user, Decimal("3"))).tx_hash == recovered[0].tx_hash
    # a new mint after recovery takes the next nonce (no gap, no reuse)
    nxt = await restarted.mint("order-10", user, Decimal("1"))
    assert nxt.nonce == recovered[0].nonce + 1
    assert await supply_and_nonce(chain_world, async_chains) == (4 * 10**18, 2)


async def test_unsent_intent_is_pushed_out_before_a_new_one(chain_world, async_chains, aredis):
    user = chain_world.state.users[2].address
    with pytest.raises(Crash):
        await minter(chain_world, async_chains, aredis, CrashBeforeBroadcast).mint("a", user, Decimal("1"))
    restarted = minter(chain_world, async_chains, aredis)  # no recover() call: send() must not wait on the gap
    result = await restarted.mint("b", user, Decimal("1"))
    assert result.ok and result.nonce == 1
    assert await supply_and_nonce(chain_world, async_chains) == (2 * 10**18, 2)


async def test_same_order_with_other_numbers_is_refused(chain_world, async_chains, aredis):
    m = minter(chain_world, async_chains, aredis)
    user = chain_world.state.users[0].address
    await m.mint("order-2", user, Decimal("1"))
    with pytest.raises(ConflictingIntent):
        await m.mint("order-2", user, Decimal("2"))
    with pytest.raises(ConflictingIntent):
        await m.mint("order-2", chain_world.state.users[1].address, Decimal("1"))
    assert await supply_and_nonce(chain_world, async_chains) == (10**18, 1)


async def test_a_reverting_mint_records_nothing(chain_world, async_chains, aredis):
    not_minter = minter(chain_world, async_chains, aredis, role="base_wallet")
    with pytest.raises(ContractLogicError):
        await not_minter.mint("order-3", chain_world.state.users[0].address, Decimal("1"))
    assert await not_minter.minted("order-3") is None
    with pytest.raises(ValueError):  # 19 decimals: the solver must round before, the minter does not
        await minter(chain_world, async_chains, aredis).mint("order-4", chain_world.state.users[0].address,
                                                             Decimal("1.0000000000000000001"))


async def test_mint_dropped_by_a_reorg_is_sent_again_with_the_same_bytes(chain_world, async_chains, aredis):
    m = minter(chain_world, async_chains, aredis)
    user = chain_world.state.users[0].address
    first = await m.mint("order-5", user, Decimal("1"))
    chain_world.node("base").call("anvil_reorg", 1, [])  # the mint's block is replaced by an empty one
    assert await supply_and_nonce(chain_world, async_chains) == (0, 0)
    again = await minter(chain_world, async_chains, aredis).mint("order-5", user, Decimal("1"))
    assert again.tx_hash == first.tx_hash and again.block_hash != first.block_hash
    assert await supply_and_nonce(chain_world, async_chains) == (10**18, 1)


async def test_concurrent_mints_get_consecutive_nonces(chain_world, async_chains, aredis):
    m = minter(chain_world, async_chains, aredis)
    users = [u.address for u in chain_world.state.users]
    results = await asyncio.gather(*(m.mint(f"o-{i}", users[i % len(users)], Decimal(1)) for i in range(8)))
    assert sorted(r.nonce for r in results) == list(range(8)) and all(r.ok for r in results)
    assert await supply_and_nonce(chain_world, async_chains) == (8 * 10**18, 8)


async def test_a_mined_send_dropped_by_a_reorg_goes_out_again_before_the_next_one(chain_world, async_chains, aredis):
    m = minter(chain_world, async_chains, aredis)
    user = chain_world.state.users[0].address
    first = await m.mint("order-11", user, Decimal("1"))
    chain_world.node("base").call("anvil_reorg", 1, [])  # drops it; nobody asks for order-11 again
    second = await m.mint("order-12", user, Decimal("2"))  # nonce 1 must not wait behind the dropped nonce 0
    assert second.ok and second.nonce == first.nonce + 1
    assert await supply_and_nonce(chain_world, async_chains) == (3 * 10**18, 2)


async def test_a_transport_failure_on_broadcast_is_retried_with_the_same_bytes(chain_world, async_chains, aredis):
    class FlakyOnce(TxSender):
        failures = 0

        async def _broadcast(self, intent):
            if FlakyOnce.failures == 0:
                FlakyOnce.failures += 1
                raise ConnectionError("connection reset")  # nothing reached the node
            await super()._broadcast(intent)

    m = IndexMinter(FlakyOnce(async_chains.base, 8453, chain_world.key("solver"), aredis, retry=RetryPolicy(10, 10, 1)),
                    async_chains.base_c.index_tokens["SY100DEV"])
    result = await m.mint("order-20", chain_world.state.users[0].address, Decimal("1"))
    assert result.ok and result.sent_now and FlakyOnce.failures == 1
    assert await supply_and_nonce(chain_world, async_chains) == (10**18, 1)

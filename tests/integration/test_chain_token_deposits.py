"""Index tokens sent back to custody on the real (anvil) Base chain: each transfer becomes one per-user, per-index
credit after the confirmations (chain/token_deposit_feed.py + core/token_ledger.py), a mint to custody credits
nobody, and a reorg deeper than the confirmations reverses the credit once."""
from __future__ import annotations

from decimal import Decimal

from web3 import Web3

from chain.contracts import bind
from chain.deposit_feed import hand_over
from chain.token_deposit_feed import token_deposit_connector, token_deposits_from_batch
from core.token_ledger import TOKEN_UNIT, TokenLedger
from tests.integration.chain_world import (  # noqa: F401  (fixtures)
    aredis, async_chains, chain_world, chain_world_module)
from world.evm_signer import EvmSigner

INDEX = "SY100DEV"


def mint(world, to: str, units: int) -> None:
    """The solver's mint (the only minter): the user's tokens, or tokens straight to custody."""
    base = world.state.chain("base")
    w3 = Web3(Web3.HTTPProvider(base.rpc_url))
    EvmSigner(w3, world.key("solver")).transact(bind(w3, base).index_tokens[INDEX].functions.mint(to, units))


async def send_tokens(chains, world, user: int, to: str, units: int):
    acct = world.key(user)
    token = chains.base_c.index_tokens[INDEX]
    tx = await token.functions.transfer(to, units).build_transaction(
        {"from": acct.address, "chainId": world.state.chain("base").chain_id,
         "nonce": await chains.base.eth.get_transaction_count(acct.address, "pending")})
    signed = acct.sign_transaction(tx)
    tx_hash = await chains.base.eth.send_raw_transaction(signed.raw_transaction)
    return await chains.base.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01)


def connector(world, chains, redis, confirmations):
    base = world.state.chain("base")
    return token_deposit_connector(chains.base, base.chain_id, redis, chains.base_c.index_tokens,
                                   world.state.account("custody").address, start_block=base.start_block,
                                   confirmations=confirmations)


async def test_token_transfer_to_custody_is_credited_per_user_and_index_once(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    user = chain_world.state.users[0].address
    mint(chain_world, user, 3 * 10**16)
    mint(chain_world, custody, 10**18)  # a mint to custody: nobody's deposit
    conn = connector(chain_world, async_chains, aredis, confirmations=2)
    receipt = await send_tokens(async_chains, chain_world, 0, custody, 10**16)
    assert token_deposits_from_batch(await conn.poll(), TOKEN_UNIT) == []  # 0 confirmations
    chain_world.mine("base", 1)
    assert token_deposits_from_batch(await conn.poll(), TOKEN_UNIT) == []  # 1
    chain_world.mine("base", 1)
    ledger = TokenLedger()
    handed: list[tuple[int, int]] = []

    async def accept(deposits):
        for d in deposits:
            ledger.credit(d)

    async def reverse(keys):
        for k in keys:
            ledger.reverse(k)

    async def handler(batch):
        handed.append(await hand_over(batch, TOKEN_UNIT, accept, reverse, extract=token_deposits_from_batch))

    batch = await conn.poll(handler)
    assert handed == [(1, 0)]
    (d,) = token_deposits_from_batch(batch, TOKEN_UNIT)
    assert (d.user, d.index, d.units, d.block_number) == (user, INDEX, Decimal("0.01"), receipt["blockNumber"])
    assert ledger.of(INDEX).available == Decimal("0.01") and ledger.check()
    chain_world.mine("base", 3)
    assert (await conn.poll()).logs == []  # never handed out again


async def test_deep_reorg_reverses_the_token_credit_once(chain_world, async_chains, aredis):
    custody = chain_world.state.account("custody").address
    mint(chain_world, chain_world.state.users[1].address, 10**18)
    conn = connector(chain_world, async_chains, aredis, confirmations=0)
    await conn.poll()  # the mint's blocks
    await send_tokens(async_chains, chain_world, 1, custody, 5 * 10**17)
    ledger = TokenLedger()
    first = await conn.poll()
    for d in token_deposits_from_batch(first, TOKEN_UNIT):
        ledger.credit(d)
    assert ledger.of(INDEX).available == Decimal("0.5")
    chain_world.node("base").call("anvil_reorg", 1, [])
    chain_world.mine("base", 1)
    batch = await conn.poll()
    assert batch.reorg is not None and len(batch.reorg.orphaned) == 1
    for key in batch.reorg.orphaned:
        assert ledger.reverse(key) is not None
        assert ledger.reverse(key) is None
    assert ledger.of(INDEX).available == 0 and ledger.of(INDEX).reversed == Decimal("0.5") and ledger.check()

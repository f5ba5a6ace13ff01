"""Index tokens sent back to custody on the real (anvil) Base chain: each transfer becomes one per-user, per-index
credit after the confirmations (chain/token_deposit_feed.py + core/token_ledger.py), a mint to custody credits
nobody, and a reorg deeper than the confirmations reverses the credit once (in the ledger, and through the chain's
hand-over to the senders' shards)."""
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


class InProcessShard:
    """An order shard's token calls as its Ray handle offers them (`.credit_tokens.remote(...)`), on core's
    ShardBooks in this process: the chain's hand-over (ShardedTokenSink) against the shards' rules, no Ray."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        from core.clock import ManualClock
        from core.shard_books import ShardBooks

        self.books = ShardBooks({INDEX}, clock=ManualClock(), unit=Decimal("0.000001"), max_open_orders=10,
                                token_decimals=18, order_dust=Decimal("0.05"), rest_return_ratio=Decimal("0.005"))
        self.credit_tokens = SimpleNamespace(remote=self._credit)
        self.reverse_tokens = SimpleNamespace(remote=self._reverse)

    async def _credit(self, deposits) -> int:  # noqa: ANN001
        return len(self.books.credit_tokens(deposits).credited)

    async def _reverse(self, keys) -> int:  # noqa: ANN001
        return len(self.books.reverse_tokens(keys).reversed)


async def test_deep_reorg_after_the_shards_credit_is_taken_back_once_by_the_owner(chain_world, async_chains,
                                                                                  aredis):
    """The chain actor's path on anvil: the token listener's batches handed over to two shards (each deposit to its
    sender's), then a reorg deeper than the confirmations drops one transfer: every shard is asked, only the owner
    takes it back, once, and the other user's credit stays."""
    from actors.order_shards import ShardedTokenSink, shard_of_user
    from core.chain_events import event_key

    custody = chain_world.state.account("custody").address
    users = [u.address for u in chain_world.state.users]
    u0 = users[0]
    i1 = next(i for i, a in enumerate(users) if shard_of_user(a, 2) != shard_of_user(u0, 2))  # another shard's
    u1 = users[i1]
    mint(chain_world, u0, 10**17)
    mint(chain_world, u1, 10**17)
    shards = [InProcessShard(), InProcessShard()]
    sink = ShardedTokenSink(shards)
    conn = connector(chain_world, async_chains, aredis, confirmations=0)

    async def handler(batch):  # noqa: ANN001, ANN202
        await hand_over(batch, TOKEN_UNIT, sink.credit, sink.reverse, extract=token_deposits_from_batch)

    await conn.poll(handler)  # the mints' blocks
    await send_tokens(async_chains, chain_world, i1, custody, 2 * 10**16)
    await conn.poll(handler)
    receipt = await send_tokens(async_chains, chain_world, 0, custody, 3 * 10**16)
    await conn.poll(handler)
    owner, other = shards[shard_of_user(u0, 2)].books, shards[shard_of_user(u1, 2)].books
    assert u1.lower() not in owner.tokens and u0.lower() not in other.tokens  # each in its sender's shard
    assert owner.tokens[u0.lower()].of(INDEX).available == Decimal("0.03")
    assert other.tokens[u1.lower()].of(INDEX).available == Decimal("0.02")
    chain_world.node("base").call("anvil_reorg", 1, [])  # drops u0's transfer (the last block)
    chain_world.mine("base", 1)
    await conn.poll(handler)
    key = event_key(chain_world.state.chain("base").chain_id, "0x" + receipt["transactionHash"].hex().removeprefix(
        "0x"), receipt["logs"][0]["logIndex"])
    t0 = owner.tokens[u0.lower()].of(INDEX)
    assert (t0.available, t0.reversed, t0.debt) == (0, Decimal("0.03"), 0)
    assert owner.tokens[u0.lower()].reversals == {key: Decimal("0.03")}
    assert other.tokens[u1.lower()].of(INDEX).available == Decimal("0.02")
    assert owner.reverse_tokens([key]).replays == 1  # seen again: nothing more taken
    assert owner.tokens[u0.lower()].check() and other.tokens[u1.lower()].check()


async def test_the_users_commands_send_tokens_and_usdc_to_custody_with_the_listeners_keys(chain_world, async_chains,
                                                                                         aredis):
    """world/user_commands.py's transfers (what `deposit-tokens` and `deposit --chain base` send): the deposit key
    they return is the one the chain listener credits; a quantity beyond the wallet, below the token's unit or of
    a token the world lacks is refused before anything is sent."""
    import pytest

    from world.user_commands import UserCommandError, send_deposit, send_token_deposit

    base = chain_world.state.chain("base")
    custody = chain_world.state.account("custody").address
    user = chain_world.key(2)
    key_hex = "0x" + user.key.hex().removeprefix("0x")
    mint(chain_world, user.address, 5 * 10**16)
    conn = connector(chain_world, async_chains, aredis, confirmations=0)
    await conn.poll()
    for bad, why in (("0.06", "less than 0.06"), ("1e-19", "whole number")):
        with pytest.raises(UserCommandError, match=why):
            send_token_deposit(base, custody, key_hex, INDEX, Decimal(bad))
    with pytest.raises(UserCommandError, match=f"no SYNONE token on base.*{INDEX}"):
        send_token_deposit(base, custody, key_hex, "SYNONE", Decimal("0.01"))
    tx, block, key = send_token_deposit(base, custody, key_hex, INDEX, Decimal("0.02"))
    (d,) = token_deposits_from_batch(await conn.poll(), TOKEN_UNIT)
    assert (d.key, d.block_number, d.user, d.units) == (key, block, user.address, Decimal("0.02"))
    assert key.startswith(f"{base.chain_id}:{tx}:")

    _, _, usdc_key = send_deposit(base, custody, key_hex, Decimal("1.5"))
    usdc = async_chains.base_c.usdc
    [entry] = await usdc.events.Transfer().get_logs(from_block=block + 1, argument_filters={"to": custody})
    assert usdc_key == f"{base.chain_id}:{entry['transactionHash'].to_0x_hex().lower()}:{entry['logIndex']}"

"""Fixtures for the chain tests: one real anvil pair per test module (deployed once, ~0.3 s), reset between tests
with evm_snapshot / evm_revert, a flushed real Redis, AsyncWeb3 clients, and the exchange: the project's simulator
in a process of its own watching the module's Base chain (world/local_exchange.py), with a fresh exchange account
per test. Import the fixtures by name."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contracts import ChainContracts, bind
from chain.deployment import WorldState
from chain.keys import DEV_MNEMONIC, derive_account
from exchange.gateway import BinanceGateway, DepositRecord
from world.chains import LocalChains, LocalChainsConfig
from world.local_exchange import ExchangeAccount, LocalExchange, LocalExchangeConfig


@dataclass
class ChainWorld:
    chains: LocalChains
    state: WorldState
    #: Highest Base block a test reached before its rollback: the exchange may have read up to it (see the
    #: `exchange` fixture).
    base_high_water: int = 0

    def node(self, name: str):  # noqa: ANN201
        return self.chains.nodes[name]

    def mine(self, name: str, blocks: int = 1) -> None:
        self.node(name).call("anvil_mine", hex(blocks), "0x0")

    def head(self, name: str) -> int:
        return int(self.node(name).call("eth_blockNumber"), 16)

    def key(self, role_or_user: str | int):  # noqa: ANN201  (LocalAccount)
        if isinstance(role_or_user, int):
            return derive_account(DEV_MNEMONIC, self.state.users[role_or_user].index)
        return derive_account(DEV_MNEMONIC, self.state.account(role_or_user).index)


@dataclass
class AsyncChains:
    arb: AsyncWeb3
    base: AsyncWeb3
    arb_c: ChainContracts
    base_c: ChainContracts


@pytest.fixture(scope="module")
def chain_world_module():
    chains = LocalChains(LocalChainsConfig(users=4))
    state = chains.start()
    try:
        yield ChainWorld(chains, state)
    finally:
        chains.stop()


@pytest.fixture
def chain_world(chain_world_module):
    """The module's world, rolled back to its deployed state after each test."""
    snaps = {name: node.call("evm_snapshot") for name, node in chain_world_module.chains.nodes.items()}
    yield chain_world_module
    chain_world_module.base_high_water = max(chain_world_module.base_high_water, chain_world_module.head("base"))
    for name, node in chain_world_module.chains.nodes.items():
        assert node.call("evm_revert", snaps[name]) is True


@pytest_asyncio.fixture
async def aredis(redis_server):
    client = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def async_chains(chain_world):
    arb = AsyncWeb3(AsyncHTTPProvider(chain_world.state.chain("arbitrum").rpc_url))
    base = AsyncWeb3(AsyncHTTPProvider(chain_world.state.chain("base").rpc_url))
    yield AsyncChains(arb, base, bind(arb, chain_world.state.chain("arbitrum")),
                      bind(base, chain_world.state.chain("base")))
    await arb.provider.disconnect()
    await base.provider.disconnect()


async def user_transfer(chains: AsyncChains, world: ChainWorld, user: int, to: str, units: int, *,
                        chain: str = "arbitrum") -> Any:
    """A user's own USDC transfer on `chain` (the deposit the system must notice), signed by the user's key."""
    acct = world.key(user)
    w3, usdc = (chains.arb, chains.arb_c.usdc) if chain == "arbitrum" else (chains.base, chains.base_c.usdc)
    tx = await usdc.functions.transfer(to, units).build_transaction(
        {"from": acct.address, "chainId": world.state.chain(chain).chain_id,
         "nonce": await w3.eth.get_transaction_count(acct.address, "pending")})
    signed = acct.sign_transaction(tx)
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    return await w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01), signed


# ------------------------------------------------------------------------------------------------ the exchange
@dataclass
class ExchangeSide:
    """One exchange account of the module's simulator, seen through the real gateway (ccxt)."""

    local: LocalExchange
    account: ExchangeAccount
    gateway: BinanceGateway

    def new_gateway(self) -> BinanceGateway:
        """Another client of the same account (what a restarted process would open)."""
        return self.local.gateway(self.account)

    async def usdc(self) -> Decimal:
        """The account's free USDC on the exchange (fetch_balance)."""
        balance = (await self.gateway.fetch_balance()).get("USDC")
        return balance.free if balance is not None else Decimal(0)

    async def deposits_of(self, tx_hash: str) -> list[DepositRecord]:
        return [d for d in await self.gateway.fetch_deposits("USDC") if (d.tx_id or "").lower() == tx_hash.lower()]


@pytest.fixture(scope="module")
def local_exchange(chain_world_module, request):
    """The module's exchange simulator (one process), crediting transfers on Base after the module's
    EXCHANGE_CONFIRMATIONS (default 1: once mined)."""
    config = LocalExchangeConfig(confirmations=getattr(request.module, "EXCHANGE_CONFIRMATIONS", 1), poll_ms=20)
    with LocalExchange(chain_world_module.state, config) as exchange:
        yield exchange


@pytest_asyncio.fixture
async def exchange(local_exchange, chain_world):
    """A fresh exchange account for this test: its own deposit address, no balance, so the test sees exactly what
    it deposited.

    Base is first mined up to the highest block an earlier test reached: evm_revert rolls block numbers back but
    the exchange's read cursor only goes forward (as on a real chain), so without it a deposit in a re-used block
    number would be skipped."""
    head = chain_world.head("base")
    if chain_world.base_high_water > head:
        chain_world.mine("base", chain_world.base_high_water - head)
    account = local_exchange.open_account("test")
    side = ExchangeSide(local_exchange, account, local_exchange.gateway(account))
    try:
        yield side
    finally:
        await side.gateway.close()

"""Fixtures for the chain tests: one real anvil pair per test module (deployed once, ~0.3 s), reset between tests
with evm_snapshot / evm_revert, a flushed real Redis, and AsyncWeb3 clients. Import the fixtures by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.contracts import ChainContracts, bind
from chain.deployment import WorldState
from chain.keys import DEV_MNEMONIC, derive_account
from world.chains import LocalChains, LocalChainsConfig


@dataclass
class ChainWorld:
    chains: LocalChains
    state: WorldState

    def node(self, name: str):  # noqa: ANN201
        return self.chains.nodes[name]

    def mine(self, name: str, blocks: int = 1) -> None:
        self.node(name).call("anvil_mine", hex(blocks), "0x0")

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


async def user_transfer(chains: AsyncChains, world: ChainWorld, user: int, to: str, units: int) -> Any:
    """A user's own USDC transfer on Arbitrum (the deposit the system must notice), signed by the user's key."""
    acct = world.key(user)
    tx = await chains.arb_c.usdc.functions.transfer(to, units).build_transaction(
        {"from": acct.address, "chainId": world.state.chain("arbitrum").chain_id,
         "nonce": await chains.arb.eth.get_transaction_count(acct.address, "pending")})
    signed = acct.sign_transaction(tx)
    tx_hash = await chains.arb.eth.send_raw_transaction(signed.raw_transaction)
    return await chains.arb.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.01), signed

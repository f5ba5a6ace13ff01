"""The simulator credits a USDC transfer on the real (anvil) Base chain to its account's deposit address, once, after
the confirmations, and ccxt sees it through the gateway (fetch_deposits, fetch_balance)."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from web3 import Web3

from chain.keys import DEV_MNEMONIC, derive_account
from exchange.gateway import BinanceGateway
from exchange.simulator.chain_deposits import DepositChain
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from world.ports import LOOPBACK
from exchange.simulator.server import Simulator
from world.chains import LocalChains, LocalChainsConfig
from world.contracts_deployer import load_artifact, mint_usdc
from world.evm_signer import EvmSigner


@pytest.fixture(scope="module")
def base_world():
    chains = LocalChains(LocalChainsConfig(users=1))
    state = chains.start()
    yield chains, state
    chains.stop()


async def test_transfer_on_base_is_credited_once_after_confirmations(base_world):
    chains, state = base_world
    base = state.chain("base")
    w3 = Web3(Web3.HTTPProvider(base.rpc_url))
    cfg = SimulatorConfig(host=LOOPBACK, process=PriceProcessConfig(update_ms=0), symbols=("BTCUSDC",),
                          deposit_chains=(DepositChain("BASE", base.rpc_url, base.usdc, confirmations=3,
                                                       poll_ms=600_000, from_block=base.start_block),))
    async with Simulator(cfg) as sim:
        gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET)
        try:
            address = (await gw.fetch_deposit_address("USDC", "BASE")).address
            before = (await gw.fetch_balance()).get("USDC")
            before_free = before.free if before else Decimal(0)

            admin = EvmSigner(w3, derive_account(DEV_MNEMONIC, state.account("admin").index))
            wallet = EvmSigner(w3, derive_account(DEV_MNEMONIC, state.account("base_wallet").index))
            mint_usdc(admin, base.usdc, wallet.address, 250_000_000)
            usdc = w3.eth.contract(address=base.usdc, abi=load_artifact("ExpandedERC20").abi)
            receipt = wallet.transact(usdc.functions.transfer(Web3.to_checksum_address(address), 123_456_789))
            tx = "0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x")

            # One confirmation only: not credited yet, whatever the watcher polls.
            await sim.deposit_watchers[0].poll_once()
            assert not [d for d in await gw.fetch_deposits("USDC") if d.tx_id == tx]

            chains.nodes["base"].call("anvil_mine", hex(2), "0x0")  # now 3 confirmations

            # The watcher's own loop polls too (its first poll ran at start); a poll now sees the confirmed block.
            await asyncio.wait_for(sim.deposit_watchers[0].poll_once(), 10)
            deposits = [d for d in await gw.fetch_deposits("USDC") if d.tx_id == tx]
            assert len(deposits) == 1 and deposits[0].amount == Decimal("123.456789")
            # Re-reading the same blocks never credits twice.
            sim.deposit_watchers[0].cursor = base.start_block
            await sim.deposit_watchers[0].poll_once()
            assert len([d for d in await gw.fetch_deposits("USDC") if d.tx_id == tx]) == 1
            after = (await gw.fetch_balance())["USDC"]
            assert after.free - before_free == Decimal("123.456789")
        finally:
            await gw.close()

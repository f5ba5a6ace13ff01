"""The local chain world: what world/ deploys is what the rest of the system expects to find, on two real anvils."""
from __future__ import annotations

import time

import pytest
from web3 import Web3
from web3.exceptions import ContractLogicError

from chain.artifacts import load_artifact
from chain.bytes32 import address_to_bytes32, bytes32_to_address
from chain.contracts import bind
from chain.deployment import WorldState
from chain.keys import DEV_MNEMONIC
from tests.integration.chain_world import chain_world, chain_world_module  # noqa: F401
from world.chains import LocalChains, LocalChainsConfig
from world.evm_signer import EvmSigner
from world.relayer import AcrossRelayer

MINTER = 1


def sync(world, name):
    d = world.state.chain(name)
    w3 = Web3(Web3.HTTPProvider(d.rpc_url))
    return w3, bind(w3, d)


def test_contracts_are_where_the_world_file_says_and_differ_between_chains(chain_world, tmp_path):
    state = chain_world.state
    arb, base = state.chain("arbitrum"), state.chain("base")
    assert (arb.chain_id, base.chain_id) == (42161, 8453)
    assert {arb.usdc, arb.spoke_pool, arb.weth}.isdisjoint({base.usdc, base.spoke_pool, base.weth})
    assert (arb.spoke_pool_abi, base.spoke_pool_abi) == ("Arbitrum_SpokePool", "OP_SpokePool")
    for name in ("arbitrum", "base"):
        w3, c = sync(chain_world, name)
        assert w3.eth.chain_id == state.chain(name).chain_id
        assert c.usdc.functions.decimals().call() == 6
        assert c.spoke_pool.functions.chainId().call() == state.chain(name).chain_id
        assert c.spoke_pool.functions.numberOfDeposits().call() == 0
        assert c.spoke_pool.functions.depositQuoteTimeBuffer().call() == 3600
        assert c.spoke_pool.functions.fillDeadlineBuffer().call() == 21600
    assert arb.index_tokens == {} and set(base.index_tokens) == {"SY100DEV"}
    saved = state.save(tmp_path / "w.json")
    assert WorldState.load(saved) == state


def test_only_the_solver_mints_the_index_token(chain_world):
    state = chain_world.state
    w3, c = sync(chain_world, "base")
    token = c.index_tokens["SY100DEV"]
    assert token.functions.decimals().call() == 18
    assert token.functions.holdsRole(MINTER, state.account("solver").address).call()
    assert not token.functions.holdsRole(MINTER, state.account("admin").address).call()
    with pytest.raises(ContractLogicError):
        EvmSigner(w3, chain_world.key("admin")).transact(token.functions.mint(state.users[0].address, 1))
    EvmSigner(w3, chain_world.key("solver")).transact(token.functions.mint(state.users[0].address, 7))
    assert token.functions.balanceOf(state.users[0].address).call() == 7


def test_accounts_are_funded(chain_world):
    state = chain_world.state
    _, a = sync(chain_world, "arbitrum")
    _, b = sync(chain_world, "base")
    for user in state.users:
        assert a.usdc.functions.balanceOf(user.address).call() == 100_000 * 10**6
    assert b.usdc.functions.balanceOf(state.account("relayer").address).call() == 10_000_000 * 10**6
    assert b.usdc.functions.allowance(state.account("relayer").address, state.chain("base").spoke_pool).call() > 0


def test_relayer_fills_each_deposit_exactly_once_even_after_its_own_restart(chain_world):
    state = chain_world.state
    w3a, a = sync(chain_world, "arbitrum")
    _, b = sync(chain_world, "base")
    user = chain_world.key(0)
    recipient = state.users[1].address
    signer = EvmSigner(w3a, user)
    signer.transact(a.usdc.functions.approve(state.chain("arbitrum").spoke_pool, 30_000_000))
    for amount in (10_000_000, 20_000_000):
        quote = w3a.eth.get_block("latest")["timestamp"]
        signer.transact(a.spoke_pool.functions.depositV3(
            user.address, recipient, a.usdc.address, b.usdc.address, amount, amount - 5_000, 8453,
            "0x" + "00" * 20, quote, quote + 600, 0, b""))
    before = b.usdc.functions.balanceOf(recipient).call()
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC)
    assert len(relayer.poll_once()) == 2
    assert relayer.poll_once() == []
    assert AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC).poll_once() == []  # rescans; nothing refilled
    assert b.usdc.functions.balanceOf(recipient).call() - before == 30_000_000 - 10_000
    fills = b.spoke_pool.events.FilledRelay().get_logs(from_block=0, argument_filters={"originChainId": 42161})
    assert sorted(f["args"]["depositId"] for f in fills) == [0, 1]
    assert {bytes32_to_address(f["args"]["relayer"]) for f in fills} == {state.account("relayer").address}


def test_bytes32_addresses_round_trip():
    addr = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert bytes32_to_address(address_to_bytes32(addr)) == addr
    with pytest.raises(ValueError):
        bytes32_to_address(b"\x01" + b"\x00" * 31)


def test_interval_mining_makes_blocks_on_its_own_and_stop_ends_the_nodes(tmp_path):
    chains = LocalChains(LocalChainsConfig(users=1, block_time_s=1), state_file=tmp_path / "world.json")
    state = chains.start()
    try:
        assert WorldState.load(tmp_path / "world.json") == state
        w3 = Web3(Web3.HTTPProvider(state.chain("base").rpc_url))
        start = w3.eth.block_number
        deadline = time.monotonic() + 5
        while w3.eth.block_number == start:  # no transaction is sent: only interval mining can make a block
            assert time.monotonic() < deadline, "no block in 5 s with a 1 s block time"
            time.sleep(0.05)  # polling interval
    finally:
        processes = [n.process for n in chains.nodes.values()]
        chains.stop()
    assert all(p.poll() is not None for p in processes)
    with pytest.raises(ValueError):
        LocalChains(LocalChainsConfig(block_time_s=0))


def test_one_token_per_index_and_an_index_added_later_gets_its_token_on_resume(tmp_path):
    one = (("SY100DEV", "dev"),)
    chains = LocalChains(LocalChainsConfig(users=1, index_tokens=one), state_file=tmp_path / "world.json",
                         state_dir=tmp_path)
    first = chains.start()
    chains.stop()
    more = LocalChains(LocalChainsConfig(users=1, index_tokens=one + (("SYAI", "AI"), ("SYME", "Memes"))),
                       state_file=tmp_path / "world.json", state_dir=tmp_path)
    try:
        resumed = more.resume()
        tokens = resumed.chain("base").index_tokens
        assert set(tokens) == {"SY100DEV", "SYAI", "SYME"} and len(set(tokens.values())) == 3
        assert tokens["SY100DEV"] == first.chain("base").index_tokens["SY100DEV"]  # kept, not redeployed
        assert WorldState.load(tmp_path / "world.json") == resumed  # the new tokens are in the world file
        w3 = Web3(Web3.HTTPProvider(resumed.chain("base").rpc_url))
        for index in ("SYAI", "SYME"):
            token = w3.eth.contract(address=tokens[index], abi=load_artifact("ExpandedERC20").abi)
            assert token.functions.symbol().call() == index
            assert token.functions.holdsRole(MINTER, resumed.account("solver").address).call()
    finally:
        more.stop()

"""The `chain` and `router` Ray actors on the real local world: a deposit goes all the way to the exchange, the
router actor killed mid-way comes back by itself and pays nothing twice, mints through `chain` happen once.

FAKED: the exchange's books (world/exchange_standin.py). Chains, relayer, Redis and Ray are real.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
import ray
from web3 import Web3

from actors.chain_actor import MintRequest
from actors.chain_launch import start_chain_actors
from chain.contracts import bind
from chain.keys import DEV_MNEMONIC, derive_account
from chain.settings import ChainSettings
from world.chains import LocalChains, LocalChainsConfig
from world.evm_signer import EvmSigner
from world.relayer import AcrossRelayer

EXCHANGE = derive_account(DEV_MNEMONIC, 41).address  # FAKED: the exchange deposit address


@pytest.fixture(scope="module")
def world_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "world.json"
    chains = LocalChains(LocalChainsConfig(users=2), state_file=path)
    state = chains.start()
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC, poll_s=0.02).start()
    try:
        yield path, state
    finally:
        relayer.stop()
        chains.stop()


def wait_for(condition, timeout_s: float = 60.0, what: str = "condition"):
    """Wait for a condition that another process makes true (Ray actors): checked every 50 ms, bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
        except ray.exceptions.ActorUnavailableError:  # restarting (~2 s): not yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        time.sleep(0.05)  # polling interval of the check, not a synchronisation


def test_actors_route_a_deposit_survive_a_router_kill_and_mint_once(ray_cluster, redis_server, world_file):
    path, state = world_file
    redis_server.client().flushdb()
    settings = ChainSettings(confirmations=0, poll_s=0.02)
    chain, router = start_chain_actors(world_file=str(path), redis_url=redis_server.url, settings=settings,
                                       exchange={"kind": "standin", "address": EXCHANGE}, namespace=ray_cluster,
                                       poll_s=0.05, step_s=0.05)
    arb, base = state.chain("arbitrum"), state.chain("base")
    w3a, w3b = Web3(Web3.HTTPProvider(arb.rpc_url)), Web3(Web3.HTTPProvider(base.rpc_url))
    ca, cb = bind(w3a, arb), bind(w3b, base)
    user = derive_account(DEV_MNEMONIC, state.users[0].index)
    try:
        EvmSigner(w3a, user).transact(ca.usdc.functions.transfer(state.account("custody").address, 30_000_000))
        # the deposit is credited and queued by the actors; kill the router while the route is under way
        wait_for(lambda: ray.get(router.inspect.remote())["routes"], what="a route")
        ray.kill(router, no_restart=False)
        restarted = ray.get_actor("router", namespace=ray_cluster)
        wait_for(lambda: [r for r in ray.get(restarted.inspect.remote())["routes"] if r["stage"] == "credited"],
                 what="the route credited after the restart")
        assert ca.spoke_pool.functions.numberOfDeposits().call() == 1
        assert w3a.eth.get_transaction_count(state.account("custody").address) == 2  # allowance + deposit
        assert w3b.eth.get_transaction_count(state.account("base_wallet").address) == 1
        assert cb.usdc.functions.balanceOf(EXCHANGE).call() == 29_970_000
        ledger = ray.get(restarted.ledger.remote(user.address))
        route = ray.get(restarted.inspect.remote())["routes"][0]
        fee = sum(Decimal(h["amount_in"]) - Decimal(h["amount_out"]) + Decimal(h["gas"]) for h in route["hops"])
        assert Decimal(ledger["credited"]) == Decimal(30) and Decimal(ledger["fees_charged"]) == fee
        assert Decimal(ledger["available"]) == Decimal(30) - fee

        order = MintRequest("order-1", user.address, Decimal("2.5"))
        first = ray.get(chain.mint.remote([order, MintRequest("order-2", user.address, Decimal(1))]))
        ray.kill(chain, no_restart=False)
        again = wait_for(lambda: ray.get(ray.get_actor("chain", namespace=ray_cluster).mint.remote([order])),
                         what="the restarted chain actor")
        assert all(r.ok for r in first) and again[0].tx_hash == first[0].tx_hash
        assert cb.index_token.functions.balanceOf(user.address).call() == 35 * 10**17
        assert w3b.eth.get_transaction_count(state.account("solver").address) == 2
    finally:
        for name in ("router", "chain"):
            try:
                ray.kill(ray.get_actor(name, namespace=ray_cluster), no_restart=True)
            except ValueError:
                pass

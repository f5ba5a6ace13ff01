"""The `chain` and `router` Ray actors on the real local world: a deposit goes all the way into the exchange balance,
the router actor killed mid-way comes back by itself and pays nothing twice, mints through `chain` happen once.

Nothing is faked: chains, relayer, Redis, Ray, and the exchange (the project's simulator in its own process,
world/local_exchange.py, which the router reaches through exchange/gateway.py).
"""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
import ray
from web3 import Web3

from actors.chain_actor import TokenMint
from actors.chain_launch import start_chain_actors
from actors.exchange_deposits import ExchangeKeys
from chain.contracts import bind
from chain.keys import DEV_MNEMONIC, derive_account
from core.config import ChainConfig, ExchangeConfig, Settings
from world.chains import LocalChains, LocalChainsConfig
from world.evm_signer import EvmSigner
from world.local_exchange import ExchangeAccount, LocalExchange, LocalExchangeConfig
from world.relayer import AcrossRelayer


@pytest.fixture(scope="module")
def world_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "world.json"
    chains = LocalChains(LocalChainsConfig(users=2, index_tokens=(("SY100DEV", "dev"), ("SYAI", "AI"))),
                         state_file=path)
    state = chains.start()
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC, poll_s=0.02).start()
    exchange = LocalExchange(state, LocalExchangeConfig(confirmations=1, poll_ms=20))
    try:
        exchange.start()
        yield path, state, exchange
    finally:
        exchange.stop()
        relayer.stop()
        chains.stop()


def exchange_view(exchange: LocalExchange, account: ExchangeAccount, tx_hash: str):
    """What the exchange API shows the account: its deposit address, the deposits with `tx_hash`, its free USDC."""
    async def look():
        gw = exchange.gateway(account)
        try:
            address = (await gw.fetch_deposit_address("USDC", "BASE")).address
            deposits = [d for d in await gw.fetch_deposits("USDC") if (d.tx_id or "").lower() == tx_hash.lower()]
            usdc = (await gw.fetch_balance()).get("USDC")
            return address, deposits, usdc.free if usdc is not None else Decimal(0)
        finally:
            await gw.close()
    return asyncio.run(look())


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
    path, state, exchange = world_file
    redis_server.client().flushdb()
    settings = Settings(chain=ChainConfig(confirmations=0, receipt_poll_ms=20),
                        exchange=ExchangeConfig(rest_url=exchange.url, ws_url=exchange.ws_url))
    account = exchange.open_account("actors")
    chain, router = start_chain_actors(world_file=str(path), redis_url=redis_server.url, settings=settings,
                                       exchange_keys=ExchangeKeys(account.api_key, account.secret),
                                       namespace=ray_cluster, poll_s=0.05, step_s=0.05)
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
        route = ray.get(restarted.inspect.remote())["routes"][0]
        address, deposits, usdc = exchange_view(exchange, account, route["transfer"]["tx_hash"])
        assert route["transfer"]["address"] == address  # where the exchange API said
        assert cb.usdc.functions.balanceOf(Web3.to_checksum_address(address)).call() == 29_970_000
        assert len(deposits) == 1 and deposits[0].amount == Decimal("29.97")  # credited once by the exchange
        assert usdc == Decimal("29.97")  # and in the account's balance
        ledger = ray.get(restarted.ledger.remote(user.address))
        fee = sum(Decimal(h["amount_in"]) - Decimal(h["amount_out"]) + Decimal(h["gas"]) for h in route["hops"])
        assert Decimal(ledger["credited"]) == Decimal(30) and Decimal(ledger["fees_charged"]) == fee
        assert Decimal(ledger["available"]) == Decimal(30) - fee

        order = TokenMint("order-1", "SY100DEV", user.address, Decimal("2.5"))
        batch = [order] + [TokenMint(f"order-{i}", "SYAI" if i % 2 else "SY100DEV", user.address, Decimal(1))
                           for i in (2, 3, 4)]
        unknown = ray.get(chain.mint.remote([TokenMint("order-9", "NOPE", user.address, Decimal(1))]))
        assert not unknown[0].ok and "no token for index NOPE" in unknown[0].error
        first = ray.get(chain.mint.remote(batch))
        # One batch over two tokens: the transactions carry consecutive nonces in the batch's order.
        assert [w3b.eth.get_transaction(r.tx_hash)["nonce"] for r in first] == [0, 1, 2, 3]
        ray.kill(chain, no_restart=False)
        again = wait_for(lambda: ray.get(ray.get_actor("chain", namespace=ray_cluster).mint.remote([order])),
                         what="the restarted chain actor")
        assert all(r.ok for r in first) and again[0].tx_hash == first[0].tx_hash
        assert cb.index_tokens["SY100DEV"].functions.balanceOf(user.address).call() == 45 * 10**17
        assert cb.index_tokens["SYAI"].functions.balanceOf(user.address).call() == 10**18
        supplies = ray.get(ray.get_actor("chain", namespace=ray_cluster).index_supplies.remote())
        assert {k: Decimal(v) for k, v in supplies.items()} == {"SY100DEV": Decimal("4.5"), "SYAI": Decimal(1)}
        assert w3b.eth.get_transaction_count(state.account("solver").address) == 4
    finally:
        for name in ("router", "chain"):
            try:
                ray.kill(ray.get_actor(name, namespace=ray_cluster), no_restart=True)
            except ValueError:
                pass

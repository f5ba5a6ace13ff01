"""Benchmark of the chain side on the real local world (two anvil nodes, the Across SpokePools, the relayer).

Two figures, each against a floor measured in the same command: deposits detected per second (ChainConnector and
router) against a bare `eth_getLogs` of the same range; and a route's end-to-end time (transfer sent to exchange
credit) against the block time, with one block a second (target: within 10 block times).
The last line is one JSON object."""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from web3 import Web3  # noqa: E402

import core  # noqa: E402,F401
from actors.exchange_deposits import ExchangeKeys, deposit_gateway, gateway_deposit_callables  # noqa: E402
from chain.collateral_router import CollateralRouter, RouterConfig  # noqa: E402
from chain.collateral_sink import InMemoryLedgers  # noqa: E402
from chain.contracts import bind  # noqa: E402
from chain.deposit_feed import deposits_from_batch  # noqa: E402
from chain.keys import DEV_MNEMONIC, derive_account  # noqa: E402
from chain.stack import ChainStack  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.collateral_route import RouteStage  # noqa: E402
from core.config import ChainConfig, ExchangeConfig, Settings  # noqa: E402
from world.chains import LocalChains, LocalChainsConfig  # noqa: E402
from world.local_exchange import LocalExchange, LocalExchangeConfig  # noqa: E402
from world.redis_server import RedisServer  # noqa: E402
from world.relayer import AcrossRelayer  # noqa: E402
from world.ports import LOOPBACK  # noqa: E402  (the bench's own servers, on this machine)

U = Decimal("0.000001")


def send_deposits(state, per_user: int) -> int:
    """Each user sends `per_user` transfers to custody (signed with explicit nonces, automine)."""
    arb = state.chain("arbitrum")
    w3 = Web3(Web3.HTTPProvider(arb.rpc_url))
    usdc = bind(w3, arb).usdc
    custody = state.account("custody").address
    sent = 0
    for ref in state.users:
        acct = derive_account(DEV_MNEMONIC, ref.index)
        nonce = w3.eth.get_transaction_count(acct.address)
        tx = usdc.functions.transfer(custody, 1_000_000).build_transaction(
            {"from": acct.address, "chainId": arb.chain_id, "nonce": nonce})
        for i in range(per_user):
            signed = acct.sign_transaction({**tx, "nonce": nonce + i, "value": 0,
                                            "data": usdc.encode_abi("transfer", args=[custody, 1_000_000 + i])})
            w3.eth.send_raw_transaction(signed.raw_transaction)
            sent += 1
    return sent


async def bench_detection(redis_port: int, users: int, per_user: int) -> dict:
    chains = LocalChains(LocalChainsConfig(users=users))
    state = chains.start()
    redis = aioredis.Redis(host=LOOPBACK, port=redis_port)
    await redis.flushdb()
    try:
        t = time.perf_counter()
        n = await asyncio.to_thread(send_deposits, state, per_user)
        send_s = time.perf_counter() - t
        settings = Settings(chain=ChainConfig(confirmations=0))
        stack = ChainStack.build(state, redis, settings.chain, mnemonic=DEV_MNEMONIC)  # no exchange: detection only
        ledgers = InMemoryLedgers(U)
        router = CollateralRouter(redis, stack.effects, ledgers, SystemClock(), RouterConfig.from_settings(settings))
        accepted = 0

        async def accept(batch):
            nonlocal accepted
            accepted += len(await router.accept(deposits_from_batch(batch, U)))

        t = time.perf_counter()
        await stack.deposits.catch_up(accept)
        detect_s = time.perf_counter() - t
        assert accepted == n, (accepted, n)
        credited = sum(ledger.credited for ledger in ledgers.ledgers.values())
        assert credited == sum(Decimal(1_000_000 + i) * U for i in range(per_user)) * users
        # floor: one bare getLogs + decode over the same range
        arb = state.chain("arbitrum")
        head = await stack.arb.eth.block_number
        t = time.perf_counter()
        logs = await stack.arb_c.usdc.events.Transfer().get_logs(
            from_block=arb.start_block, to_block=head, argument_filters={"to": state.account("custody").address})
        raw_s = time.perf_counter() - t
        assert len(logs) == n
        await stack.close()
        return {"deposits": n, "send_per_s": n / send_s, "deposits_per_s": n / detect_s,
                "raw_getlogs_per_s": n / raw_s}
    finally:
        await redis.aclose()
        chains.stop()


async def measure_block_floor(w3, blocks: int = 3) -> float:
    """Mean wall time between new blocks, observed by polling every 10 ms."""
    last = await w3.eth.block_number
    stamps = []
    while len(stamps) <= blocks:
        n = await w3.eth.block_number
        if n != last:
            stamps.append(time.perf_counter())
            last = n
        await asyncio.sleep(0.01)  # polling interval
    return statistics.mean(b - a for a, b in zip(stamps, stamps[1:]))


async def bench_route(redis_port: int, block_time: float, routes: int, confirmations: int,
                      exchange_confirmations: int, exchange_poll_ms: int) -> dict:
    chains = LocalChains(LocalChainsConfig(users=max(routes, 1), block_time_s=block_time))
    state = chains.start()
    redis = aioredis.Redis(host=LOOPBACK, port=redis_port)
    await redis.flushdb()
    relayer = AcrossRelayer.from_world(state, mnemonic=DEV_MNEMONIC, poll_s=0.05).start()
    exchange = LocalExchange(state, LocalExchangeConfig(confirmations=exchange_confirmations,
                                                        poll_ms=exchange_poll_ms)).start()
    account = exchange.open_account("bench")  # a new customer: its balance is what the routes bring
    settings = Settings(chain=ChainConfig(confirmations=confirmations, receipt_poll_ms=50),
                        exchange=ExchangeConfig(rest_url=exchange.url, ws_url=exchange.ws_url))
    gateway = deposit_gateway(settings.exchange, ExchangeKeys(account.api_key, account.secret))
    deposit_address, exchange_credited = gateway_deposit_callables(gateway)
    stack = ChainStack.build(state, redis, settings.chain, mnemonic=DEV_MNEMONIC, deposit_address=deposit_address,
                             exchange_credited=exchange_credited)
    ledgers = InMemoryLedgers(U)
    router = CollateralRouter(redis, stack.effects, ledgers, SystemClock(), RouterConfig.from_settings(settings))
    stop = asyncio.Event()

    async def loop():
        async def accept(batch):
            await router.accept(deposits_from_batch(batch, U))
        while not stop.is_set():
            await stack.deposits.poll(accept)
            await router.step()
            try:
                await asyncio.wait_for(stop.wait(), 0.05)  # the listener's polling interval
            except asyncio.TimeoutError:
                pass

    try:
        floor = await measure_block_floor(stack.arb)
        task = asyncio.create_task(loop())
        times = []
        custody = state.account("custody").address
        for i in range(routes):
            acct = derive_account(DEV_MNEMONIC, state.users[i].index)
            tx = await stack.arb_c.usdc.functions.transfer(custody, 50_000_000).build_transaction(
                {"from": acct.address, "chainId": 42161,
                 "nonce": await stack.arb.eth.get_transaction_count(acct.address, "pending")})
            signed = acct.sign_transaction(tx)
            t0 = time.perf_counter()
            await stack.arb.eth.send_raw_transaction(signed.raw_transaction)
            while True:
                done = [r for r in await router.routes() if r.stage == RouteStage.CREDITED]
                if len(done) > i:
                    break
                if time.perf_counter() - t0 > 60:
                    raise TimeoutError(f"route {i} not credited in 60 s: {await router.inspect()}")
                await asyncio.sleep(0.02)  # polling interval of the measurement
            times.append(time.perf_counter() - t0)
        stop.set()
        await task
        # the exchange API shows every route's deposit credited once, and the account's balance holds them all
        credited = [r.transfer["tx_hash"].lower() for r in await router.routes()]
        seen = [d.tx_id.lower() for d in await gateway.fetch_deposits("USDC") if d.tx_id]
        assert sorted(seen) == sorted(credited), (seen, credited)
        assert (await gateway.fetch_balance())["USDC"].free == Decimal("49.95") * routes
        await stack.close()
        return {"route_seconds": statistics.median(times), "route_seconds_all": times, "block_floor_seconds": floor}
    finally:
        stop.set()
        await gateway.close()
        exchange.stop()
        relayer.stop()
        await redis.aclose()
        chains.stop()


async def main_async(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp), fsync="everysec") as server:
        detect = await bench_detection(server.port, args.users, args.per_user)
        route = await bench_route(server.port, args.block_time, args.routes, args.confirmations,
                                  args.exchange_confirmations, args.exchange_poll_ms)
    figures = {
        "deposits_per_s": round(detect["deposits_per_s"], 1),
        "route_seconds": round(route["route_seconds"], 3),
        "block_floor_seconds": round(route["block_floor_seconds"], 3),
        "route_blocks": round(route["route_seconds"] / route["block_floor_seconds"], 2),
        "route_target_blocks": 10,
        "raw_getlogs_deposits_per_s": round(detect["raw_getlogs_per_s"], 1),
        "deposits": detect["deposits"],
        "confirmations": args.confirmations,
        "exchange_confirmations": args.exchange_confirmations,
        "exchange_poll_ms": args.exchange_poll_ms,
        "routes_measured": args.routes,
    }
    print(f"detection: {detect['deposits']} deposits, connector+router {detect['deposits_per_s']:,.0f}/s "
          f"vs bare getLogs {detect['raw_getlogs_per_s']:,.0f}/s (sending them: {detect['send_per_s']:,.0f}/s)")
    print(f"route: {args.routes} deposits, each sent -> credited in "
          f"{', '.join(f'{t:.2f}' for t in route['route_seconds_all'])} s; median {route['route_seconds']:.2f} s = "
          f"{figures['route_blocks']} block times of {route['block_floor_seconds']:.3f} s "
          f"({args.confirmations} confirmations on Arbitrum, {args.exchange_confirmations} at the exchange; "
          f"target <= 10)")
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--routes", type=int, default=3)
    parser.add_argument("--block-time", type=int, default=1)
    parser.add_argument("--confirmations", type=int, default=ChainConfig().confirmations)
    parser.add_argument("--exchange-confirmations", type=int, default=LocalExchangeConfig().confirmations,
                        help="blocks the exchange waits for on Base (1: credited once mined)")
    parser.add_argument("--exchange-poll-ms", type=int, default=250, help="how often the exchange reads Base")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    figures = main()
    print(json.dumps(figures))

"""`python -m exchange.simulator --host ADDR [--port N] [--symbols A,B] [--seed S] [--update-ms MS]
[--deposit-rpc URL --deposit-token ADDR]`: run the simulator standalone on ADDR; prints its URLs and the test account's
key/secret as one JSON line, then serves until interrupted."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import core  # noqa: F401  (installs the project's decimal context)
from exchange.simulator.chain_deposits import DepositChain
from exchange.simulator.config import TEST_API_KEY, TEST_SECRET, PriceProcessConfig, SimulatorConfig
from exchange.simulator.server import Simulator


def parse_args(argv: list[str]) -> SimulatorConfig:
    ap = argparse.ArgumentParser(prog="python -m exchange.simulator", description=__doc__)
    ap.add_argument("--host", required=True, help="the address to listen on")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--symbols", default="", help="comma-separated symbols (default: every basket pair)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--update-ms", type=int, default=100, help="price process step; 0 = only via /_admin/step")
    ap.add_argument("--deposit-rpc", help="EVM RPC watched for deposits (e.g. the local Base anvil)")
    ap.add_argument("--deposit-token", help="token contract watched on --deposit-rpc (USDC)")
    ap.add_argument("--deposit-network", default="BASE")
    ap.add_argument("--deposit-confirmations", type=int, default=1)
    ap.add_argument("--deposit-from-block", type=int, default=0)
    a = ap.parse_args(argv)
    symbols = tuple(s for s in a.symbols.split(",") if s) or None
    chains = ()
    if a.deposit_rpc or a.deposit_token:
        if not (a.deposit_rpc and a.deposit_token):
            ap.error("--deposit-rpc and --deposit-token go together")
        chains = (DepositChain(a.deposit_network, a.deposit_rpc, a.deposit_token,
                               confirmations=a.deposit_confirmations, from_block=a.deposit_from_block),)
    return SimulatorConfig(host=a.host, port=a.port, symbols=symbols, deposit_chains=chains,
                           process=PriceProcessConfig(seed=a.seed, update_ms=a.update_ms))


async def main(argv: list[str]) -> None:
    sim = Simulator(parse_args(argv))
    await sim.start()
    print(json.dumps({"url": sim.url, "ws_url": sim.ws_url, "api_key": TEST_API_KEY, "secret": TEST_SECRET,
                      "markets": len(sim.markets), "admin": sim.url + "/_admin/config"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

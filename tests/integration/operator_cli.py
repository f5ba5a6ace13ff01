"""Helpers for tests that drive the system as an operator does: the `indexmaker` CLI in subprocesses (each call
its own process, its own Ray driver), a user's deposit on the local Arbitrum, and a user's websocket client."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INDEX = "SY100DEV"
WAIT_S = 180.0


def cli(env: dict[str, str], *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def explain(r: subprocess.CompletedProcess) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"


def up(env: dict[str, str], where: list[str]) -> dict:
    from world.run_file import read_run

    r = cli(env, "up", *where)
    assert r.returncode == 0, explain(r)
    return read_run(Path(where[1]))


def status(env: dict[str, str], where: list[str]) -> tuple[int, dict]:
    r = cli(env, "status", "--json", *where, timeout=120)
    return r.returncode, json.loads(r.stdout)


def down_parts(report: dict) -> list[tuple[str, str, list]]:
    """What makes `status` exit 1: the parts that are not up, with their detail and warnings (a failure message)."""
    return [(p["name"], p["detail"], p["warnings"]) for p in report["parts"] if not p["up"]]


def inspected(report: dict, prefix: str) -> list[dict]:
    return [p["inspect"] for p in report["parts"] if p["name"].startswith(prefix) and p["inspect"]]


def wait_status(env: dict[str, str], where: list[str], what: str, predicate) -> dict:  # noqa: ANN001
    """Poll `indexmaker status --json` (each call is a separate driver process) until `predicate(report)`."""
    deadline = time.monotonic() + WAIT_S
    while True:
        code, report = status(env, where)
        if code == 0 and predicate(report):
            return report
        assert time.monotonic() < deadline, f"{what}: not reached in {WAIT_S} s; last status:\n" + \
            json.dumps(report, default=str)[:3000]


def transfer(world_file: str, user_index: int, amount: Decimal) -> None:
    from web3 import Web3

    from chain.contracts import bind
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account
    from world.evm_signer import EvmSigner

    world = WorldState.load(world_file)
    arb = world.chain("arbitrum")
    w3 = Web3(Web3.HTTPProvider(arb.rpc_url))
    EvmSigner(w3, derive_account(DEV_MNEMONIC, user_index)).transact(
        bind(w3, arb).usdc.functions.transfer(world.account("custody").address, int(amount.scaleb(6))))


def token_balance(world_file: str, address: str, index: str = "SY100DEV") -> int:
    from web3 import Web3

    from chain.contracts import bind
    from chain.deployment import WorldState

    base = WorldState.load(world_file).chain("base")
    token = bind(Web3(Web3.HTTPProvider(base.rpc_url)), base).index_tokens[index]
    return token.functions.balanceOf(Web3.to_checksum_address(address)).call()


async def until(client, kinds: set[str], client_order_id: str, seen: list) -> object:  # noqa: ANN001
    """Read reports (kept in `seen`) until one of `kinds` arrives for `client_order_id`."""
    while True:
        d = await client.next_report(WAIT_S)
        seen.append(d)
        if type(d.body).__name__ in kinds and getattr(d.body, "client_order_id", None) == client_order_id:
            return d


def cli_env(namespace_prefix: str) -> dict[str, str]:
    """The CLI's environment: one Ray auth mode everywhere, a namespace of its own, no inherited Ray address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT),
               INDEXMAKER_NAMESPACE=f"{namespace_prefix}-{uuid.uuid4().hex[:8]}")
    return env


def credited(address: str, amount: Decimal):  # noqa: ANN201
    """A status predicate: the user's deposit is credited in its index-order shard."""
    def check(report: dict) -> bool:
        ledgers = {k: v for shard in inspected(report, "orders-") for k, v in shard["ledgers"].items()}
        led = ledgers.get(address.lower())
        return led is not None and Decimal(led["credited"]) == amount
    return check


async def buy_to_invoice(gateway_url: str, key: str, chain_id: int, client_order_id: str, quantity: str) -> object:
    """A user's buy of INDEX through the gateway, read until its Mint Invoice."""
    from protocol.client import GatewayClient

    client = GatewayClient(gateway_url, key, chain_id=chain_id)
    await client.connect()
    try:
        await client.new_order(client_order_id, INDEX, quantity)
        return await until(client, {"MintInvoice"}, client_order_id, [])
    finally:
        await client.close()


class ExternalLocalWorld:
    """`python -m world.external_local start --dir D` / `stop`, as an operator runs them (the world's own process,
    on its own addresses); `info` is its run file (pid, config, secrets file, addresses)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.info: dict = {}

    def _run(self, command: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INDEXMAKER_")}
        return subprocess.run([sys.executable, "-m", "world.external_local", command, "--dir", str(self.dir)],
                              cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=300)

    def start(self) -> "ExternalLocalWorld":
        r = self._run("start")
        assert r.returncode == 0, explain(r)
        self.info = json.loads((self.dir / "world-run.json").read_text())
        return self

    def stop(self) -> subprocess.CompletedProcess:
        return self._run("stop")

    def system_env(self, namespace_prefix: str) -> dict[str, str]:
        """The CLI's environment against this world: its secrets file, ports of the system's own."""
        from world.redis_server import free_port

        env = {k: v for k, v in cli_env(namespace_prefix).items() if not k.startswith("INDEXMAKER_")
               or k == "INDEXMAKER_NAMESPACE"}
        env.update(INDEXMAKER_SECRETS_FILE=self.info["secrets_file"], INDEXMAKER_PORTS__GATEWAY=str(free_port()),
                   INDEXMAKER_PORTS__INVOICES=str(free_port()))
        return env

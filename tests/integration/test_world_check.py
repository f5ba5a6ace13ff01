"""`indexmaker up --check-only` against a real world described as an external one (anvil chains, the exchange
simulator in its own process, a deployment file and a configuration written here), with one thing wrong at a time
(an unreachable RPC, a wrong chain id, an address without code, custody keys that are not the world's, a pair not
TRADING, a key without trade permission): each problem is named on one line, and a sound world passes. The index
token is deployed by `indexmaker deploy-token` first, as an operator would. On this machine without network,
config/testnet.toml names each unreachable part once, quickly, without a traceback. Last (slow): `up` on the sound
world starts only the system against it."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from web3 import Web3

import cli
from chain.artifacts import load_artifact
from chain.keys import DEV_MNEMONIC, derive_account
from core.basket import load_basket_file
from core.config import REPO_ROOT
from world.chains import LocalChains, LocalChainsConfig
from world.external_local import deployment_toml
from world.local_exchange import LocalExchange, LocalExchangeConfig
from world.ports import LOOPBACK
from world.redis_server import free_port

INDEX = "SY100DEV"
BASKET = "SY100.dev.json"
#: ExpandedERC20's roles (world/contracts_deployer.py): 1 minter, 2 burner.
MINTER, BURNER = 1, 2
ROLES = {"admin": 0, "solver": 1, "base_wallet": 3, "custody": 4}


@pytest.fixture(scope="module")
def world():
    pairs = tuple(a.symbol for a in load_basket_file(INDEX, REPO_ROOT / "data" / "indexes" / BASKET).assets)
    chains = LocalChains(LocalChainsConfig(users=0, index_tokens=()))
    state = chains.start()
    try:
        with LocalExchange(state, LocalExchangeConfig(symbols=pairs)) as exchange:
            yield state, exchange, pairs
    finally:
        chains.stop()


@pytest.fixture
def secrets(world, monkeypatch):
    _, exchange, _ = world
    monkeypatch.delenv("INDEXMAKER_SECRETS_FILE", raising=False)
    monkeypatch.setenv("INDEXMAKER_EXCHANGE_API_KEY", exchange.account.api_key)
    monkeypatch.setenv("INDEXMAKER_EXCHANGE_SECRET", exchange.account.secret)
    monkeypatch.setenv("INDEXMAKER_CHAIN_MNEMONIC", DEV_MNEMONIC)
    monkeypatch.setenv("INDEXMAKER_GATEWAY_KEY", "0x" + "11" * 32)


def admin(sim_url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(sim_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def write_world(tmp_path: Path, world, *, token: str | None, arbitrum_rpc: str | None = None,
                arbitrum_chain_id: int = 42161, custody: str | None = None) -> Path:
    """A configuration of environment "testnet" naming the module's world, and its deployment file."""
    state, exchange, _ = world
    arb, base = state.chain("arbitrum"), state.chain("base")
    described = dataclasses.replace(state, chains={**state.chains,
                                                   "arbitrum": dataclasses.replace(arb, chain_id=arbitrum_chain_id)})
    (tmp_path / "deployment.toml").write_text(deployment_toml(
        described, "testnet", {"custody": custody or derive_account(DEV_MNEMONIC, ROLES["custody"]).address}))
    token_line = f'token = {{ base = "{token}" }}' if token else ""
    config = tmp_path / "world.toml"
    config.write_text(f"""environment = "testnet"
state_dir = "{tmp_path / 'state'}"
[exchange]
rest_url = "{exchange.url}"
ws_url = "{exchange.ws_url}"
ws_api_url = "{exchange.ws_url}/ws-api/v3"
[chain]
deployment_file = "{tmp_path / 'deployment.toml'}"
arbitrum_chain_id = {arbitrum_chain_id}
base_chain_id = {base.chain_id}
arbitrum_rpc = "{arbitrum_rpc or arb.rpc_url}"
base_rpc = "{base.rpc_url}"
account_indexes = {json.dumps(ROLES).replace(':', ' =').replace('"', '')}
[chain.native_price]
{arbitrum_chain_id} = "3000"
{base.chain_id} = "3000"
[gateway]
allowed_chain_ids = [{arbitrum_chain_id}, {base.chain_id}]
[indexes.{INDEX}]
basket = "{BASKET}"
{token_line}
""")
    return config


def check_only(config: Path, capsys) -> tuple[int, list[str]]:  # noqa: ANN001
    code = cli.main(["up", "--check-only", "--config", str(config)])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line and not line.startswith("world check:")]


@pytest.fixture(scope="module")
def token(world, tmp_path_factory):
    """The index token, deployed by `indexmaker deploy-token` with the operator's (here the dev) mnemonic."""
    tmp = tmp_path_factory.mktemp("deploy")
    config = write_world(tmp, world, token=None)
    env = {**os.environ, "INDEXMAKER_CHAIN_MNEMONIC": DEV_MNEMONIC, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("INDEXMAKER_SECRETS_FILE", None)
    done = subprocess.run([sys.executable, "cli.py", "deploy-token", INDEX, "--config", str(config)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    address = done.stdout.strip()
    assert f'token = {{ base = "{address}" }}' in done.stderr  # what to put in the configuration
    return address


def test_deploy_token_deploys_a_token_the_solver_alone_mints(world, token) -> None:
    state, _, _ = world
    w3 = Web3(Web3.HTTPProvider(state.chain("base").rpc_url))
    erc20 = w3.eth.contract(address=token, abi=load_artifact("ExpandedERC20").abi)
    solver, admin_account = derive_account(DEV_MNEMONIC, ROLES["solver"]), derive_account(DEV_MNEMONIC, 0)
    assert erc20.functions.symbol().call() == INDEX and erc20.functions.decimals().call() == 18
    assert erc20.functions.holdsRole(MINTER, solver.address).call()
    assert erc20.functions.holdsRole(BURNER, solver.address).call()
    assert not erc20.functions.holdsRole(MINTER, admin_account.address).call()


def test_a_sound_world_passes(world, token, secrets, tmp_path, capsys) -> None:
    assert check_only(write_world(tmp_path, world, token=token), capsys) == (0, [])


def test_an_unreachable_rpc_is_named(world, token, secrets, tmp_path, capsys) -> None:
    dead = f"http://{LOOPBACK}:{free_port()}"
    code, lines = check_only(write_world(tmp_path, world, token=token, arbitrum_rpc=dead), capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"chain arbitrum: RPC {dead} unreachable")


def test_a_wrong_chain_id_is_named(world, token, secrets, tmp_path, capsys) -> None:
    code, lines = check_only(write_world(tmp_path, world, token=token, arbitrum_chain_id=421614), capsys)
    assert code == 1 and len(lines) == 1, lines
    assert "chain arbitrum" in lines[0] and "answers chain id 42161, the configuration says 421614" in lines[0]


def test_an_address_without_code_is_named(world, token, secrets, tmp_path, capsys) -> None:
    nothing = derive_account(DEV_MNEMONIC, 99).address  # an account: no contract there
    code, lines = check_only(write_world(tmp_path, world, token=nothing), capsys)
    assert code == 1 and lines == [f"chain base: index {INDEX}'s token at {nothing} has no code (wrong address or "
                                   f"chain?)"], lines


def test_custody_keys_that_are_not_the_worlds_are_named(world, token, secrets, tmp_path, capsys) -> None:
    other = derive_account(DEV_MNEMONIC, 98).address  # the deployment's custody: not what the mnemonic derives
    code, lines = check_only(write_world(tmp_path, world, token=token, custody=other), capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"account custody: the mnemonic derives "
                               f"{derive_account(DEV_MNEMONIC, ROLES['custody']).address} at index 4, the deployment "
                               f"file names {other}")


def test_a_pair_not_trading_is_named(world, token, secrets, tmp_path, capsys) -> None:
    _, exchange, pairs = world
    admin(exchange.url, "/_admin/market_status", {"symbol": pairs[0], "status": "BREAK"})
    try:
        code, lines = check_only(write_world(tmp_path, world, token=token), capsys)
    finally:
        admin(exchange.url, "/_admin/market_status", {"symbol": pairs[0], "status": "TRADING"})
    assert code == 1 and lines == [f"exchange {exchange.url}: indexes.{INDEX}: {pairs[0]} is BREAK, not TRADING"]


def test_a_key_without_trade_permission_is_named(world, token, secrets, tmp_path, capsys) -> None:
    _, exchange, _ = world
    admin(exchange.url, "/_admin/permissions", {"api_key": exchange.account.api_key, "can_trade": False})
    try:
        code, lines = check_only(write_world(tmp_path, world, token=token), capsys)
    finally:
        admin(exchange.url, "/_admin/permissions", {"api_key": exchange.account.api_key, "can_trade": True})
    assert code == 1 and lines == [f"exchange {exchange.url}: the API key may not trade (account canTrade is "
                                   f"false)"], lines


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def test_testnet_without_network_names_each_unreachable_part_once() -> None:
    if _resolves("testnet.binance.vision"):
        pytest.skip("this machine reaches the network: the test pins what an operator sees without it")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDEXMAKER_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "cli.py", "up", "--config", "config/testnet.toml", "--check-only"],
                          cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
                          timeout=60)
    elapsed = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out, out
    assert elapsed < 30, f"{elapsed:.1f} s"
    unreachable = [line for line in out.splitlines() if "unreachable" in line]
    assert len(unreachable) == 3, unreachable
    assert unreachable[0].startswith("exchange https://testnet.binance.vision: unreachable")
    assert unreachable[1].startswith("chain arbitrum: RPC https://sepolia-rollup.arbitrum.io/rpc unreachable")
    assert unreachable[2].startswith("chain base: RPC https://sepolia.base.org unreachable")
    assert "secret INDEXMAKER_CHAIN_MNEMONIC: missing" in out  # the custody keys are named too


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_up_on_an_external_world_starts_only_the_system_against_it(world, token, tmp_path) -> None:
    """`up` on the sound world: the world checks pass, then only the actors and the store ("local": a redis-server
    in the state dir) start; the chain actor reads the world as configured (the deployment file's contracts, the
    config's RPCs, the accounts of the operator's mnemonic); `down` stops the system and leaves the world running."""
    from chain.deployment import WorldState
    from tests.integration.operator_cli import cli, cli_env, explain, up, wait_status

    state, exchange, _ = world
    config = write_world(tmp_path, world, token=token)
    config.write_text(config.read_text() + f"[ports]\ngateway = {free_port()}\ninvoices = {free_port()}\n")
    env = cli_env("external")
    env = {k: v for k, v in env.items() if k != "INDEXMAKER_SECRETS_FILE"}
    env.update(INDEXMAKER_EXCHANGE_API_KEY=exchange.account.api_key,
               INDEXMAKER_EXCHANGE_SECRET=exchange.account.secret, INDEXMAKER_CHAIN_MNEMONIC=DEV_MNEMONIC,
               INDEXMAKER_GATEWAY_KEY="0x" + "22" * 32)
    where = ["--state-dir", str(tmp_path / "state"), "--config", str(config)]
    try:
        run = up(env, where)
        assert run["phase"] == "up" and set(run["processes"]) == {"redis"}  # no chain, no exchange of its own
        assert run["exchange_url"] == exchange.url
        seen = WorldState.load(run["world_file"])
        assert seen.chain("arbitrum").rpc_url == state.chain("arbitrum").rpc_url
        assert seen.chain("base").usdc == state.chain("base").usdc
        assert seen.chain("base").index_tokens == {INDEX: token}
        assert seen.account("custody").address == derive_account(DEV_MNEMONIC, ROLES["custody"]).address
        report = wait_status(env, where, "healthy after up", lambda r: r["healthy"])
        actors = {p["name"]: p for p in report["parts"] if p["kind"] == "actor"}
        assert {"sender", "solver", "gateway", "chain", "router", "minter", "market-0", "http"} <= set(actors)
        assert actors["chain"]["inspect"]["listening"] is True
    finally:
        r = cli(env, "down", *where)
    assert r.returncode == 0, explain(r)
    w3 = Web3(Web3.HTTPProvider(state.chain("base").rpc_url))
    assert w3.eth.chain_id == state.chain("base").chain_id  # the world goes on: it is not the system's to stop
    with urllib.request.urlopen(exchange.url + "/api/v3/ping", timeout=10) as resp:
        assert resp.status == 200

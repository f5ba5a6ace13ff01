"""An external world named by the configuration: its chains built from the config and the deployment file (accounts
derived from the operator's mnemonic), `config check` naming what only an external world must say, the store URL
(a scheme, its password from the secrets), and the exchange's three hosts reaching ccxt."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import core  # noqa: F401
from chain.deployment_file import deployment_problems, load_deployment
from chain.external_world import external_world, index_tokens
from chain.keys import DEV_MNEMONIC, derive_account
from core.config import Settings
from exchange.gateway import BinanceGateway
from world.config_check import check
from world.secrets import STORE_PASSWORD, store_url

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def external_config(tmp_path: Path, extra: str = "") -> Path:
    """config/testnet.toml with `extra` appended, its deployment file absolute (the copy lives elsewhere)."""
    text = (ROOT / "config" / "testnet.toml").read_text().replace(
        'deployment_file = "deployments/testnet.toml"',
        f'deployment_file = "{ROOT / "config" / "deployments" / "testnet.toml"}"')
    path = tmp_path / "testnet.toml"
    path.write_text(text + extra)
    return path


def test_the_world_is_the_deployment_file_with_the_configs_rpcs_tokens_and_derived_accounts(tmp_path) -> None:
    settings = Settings.load(external_config(tmp_path, f'[indexes.SY100DEV]\nbasket = "SY100.dev.json"\n'
                                               f'token = {{ base = "{TOKEN.lower()}" }}\n'))
    deployment = load_deployment(ROOT / "config" / "deployments" / "testnet.toml")
    world = external_world(settings, deployment, DEV_MNEMONIC)
    arb, base = world.chain("arbitrum"), world.chain("base")
    assert (arb.chain_id, arb.rpc_url) == (421614, "https://sepolia-rollup.arbitrum.io/rpc")
    assert (base.chain_id, base.rpc_url) == (84532, "https://sepolia.base.org")
    assert arb.usdc == deployment.chains["arbitrum"].usdc and base.spoke_pool == deployment.chains["base"].spoke_pool
    assert base.index_tokens == {"SY100DEV": TOKEN} and arb.index_tokens == {}  # checksummed, on Base only
    for role, index in settings.chain.account_indexes.items():
        assert world.account(role).address == derive_account(DEV_MNEMONIC, index).address
    assert world.users == []


def test_accounts_the_deployment_names_must_be_the_mnemonics(tmp_path) -> None:
    settings = Settings.load(external_config(tmp_path, f'[indexes.SY100DEV]\nbasket = "SY100.dev.json"\n'
                                                      f'token = {{ base = "{TOKEN}" }}\n'))
    deployment = load_deployment(ROOT / "config" / "deployments" / "testnet.toml")
    custody = derive_account(DEV_MNEMONIC, 4).address
    ours = deployment.model_copy(update={"accounts": {"custody": custody}})
    assert external_world(settings, ours, DEV_MNEMONIC).account("custody").address == custody
    other = "test test test test test test test test test test test ball"  # another mnemonic (valid checksum)
    with pytest.raises(ValueError, match=f"account custody: the mnemonic derives .* the deployment file names "
                                         f"{custody}"):
        external_world(settings, ours, other)
    assert external_world(settings, ours, other, strict=False).account("custody").address != custody
    unknown = deployment.model_copy(update={"accounts": {"treasury": custody}})
    assert any("accounts.treasury: no such role" in p for p in deployment_problems(unknown, settings))


def test_an_index_without_a_token_is_refused_unless_the_checks_name_it_themselves(tmp_path) -> None:
    settings = Settings.load(external_config(tmp_path))  # the default registry: SY100DEV, no token
    deployment = load_deployment(ROOT / "config" / "deployments" / "testnet.toml")
    with pytest.raises(ValueError, match="SY100DEV: no token address on base"):
        external_world(settings, deployment, DEV_MNEMONIC)
    assert external_world(settings, deployment, DEV_MNEMONIC, strict=False).chain("base").index_tokens == {}
    assert index_tokens(settings) == {"SY100DEV": None}


def test_config_check_names_what_an_external_world_must_say(tmp_path) -> None:
    path = external_config(tmp_path, '[indexes.SY100DEV]\nbasket = "SY100.dev.json"\ntoken = { base = "0x1234" }\n')
    text = path.read_text().replace('ws_api_url = "wss://ws-api.testnet.binance.vision/ws-api/v3"\n',
                                    'deposit_address = "base:0xabc"\n')
    text = text.replace('base_rpc = "https://sepolia.base.org"\n', "")
    path.write_text(text)
    errors = check(str(path)).errors
    assert any(e.startswith("chain.base_rpc: required outside the local world") for e in errors), errors
    assert any(e.startswith("exchange.ws_api_url: required with ws_url") for e in errors), errors
    assert any(e.startswith("indexes.SY100DEV.token.base: not an EVM address") for e in errors), errors
    assert any(e.startswith("exchange.deposit_address: not an EVM address") for e in errors), errors
    assert not any("arbitrum_rpc" in e for e in errors)


def test_the_store_url_has_a_scheme_or_is_local(tmp_path) -> None:
    assert Settings().redis_url is None  # "local": the launcher fills in the redis it starts
    assert Settings(store={"url": "rediss://r.example:6380/2"}).redis_url == "rediss://r.example:6380/2"
    assert Settings(store={"host": "10.0.0.5"}).redis_url == "redis://10.0.0.5:16379/0"
    path = tmp_path / "s.toml"
    path.write_text('[store]\nurl = "r.example:6379"\n')
    assert any("store.url must be" in e for e in check(str(path)).errors)


def test_the_store_password_comes_from_the_secrets(monkeypatch) -> None:
    monkeypatch.delenv(STORE_PASSWORD, raising=False)
    assert store_url("rediss://r.example:6380/0") == "rediss://r.example:6380/0"
    monkeypatch.setenv(STORE_PASSWORD, "p@ss/word")
    assert store_url("rediss://r.example:6380/0") == "rediss://:p%40ss%2Fword@r.example:6380/0"
    assert store_url("redis://:own@r.example/0") == "redis://:own@r.example/0"  # the URL's own password wins


def test_the_exchange_three_hosts_reach_ccxt() -> None:
    settings = Settings.load(ROOT / "config" / "live.toml")

    async def urls() -> dict:
        gw = BinanceGateway.from_config(settings.exchange, "k", "s")
        try:
            return gw.ccxt.urls["api"]
        finally:
            await gw.close()

    api = asyncio.run(urls())
    assert api["public"] == "https://api.binance.com/api/v3"
    assert api["ws"]["spot"] == "wss://stream.binance.com:9443/ws"
    assert api["ws"]["ws-api"]["spot"] == "wss://ws-api.binance.com:443/ws-api/v3"

"""External worlds' deployment files (config/deployments/): the real addresses load, a mistyped one is refused
with its reason, and `config check` holds the file against the configuration."""
from __future__ import annotations

import pytest

from chain.deployment_file import deployment_problems, load_deployment
from core.config import REPO_ROOT, Settings
from world.config_check import check

DEPLOYMENTS = REPO_ROOT / "config" / "deployments"
TESTNET = DEPLOYMENTS / "testnet.toml"


@pytest.mark.parametrize("env, arbitrum, base", [("testnet", 421614, 84532), ("live", 42161, 8453)])
def test_the_shipped_files_hold_usdc_and_the_spoke_pools_of_both_chains(env: str, arbitrum: int, base: int) -> None:
    d = load_deployment(DEPLOYMENTS / f"{env}.toml")
    assert (d.environment, d.chains["arbitrum"].chain_id, d.chains["base"].chain_id) == (env, arbitrum, base)
    settings = Settings.load(REPO_ROOT / "config" / f"{env}.toml")
    assert deployment_problems(d, settings) == []
    assert check(str(REPO_ROOT / "config" / f"{env}.toml")).errors == []
    text = (DEPLOYMENTS / f"{env}.toml").read_text()
    for chain in d.chains.values():  # each address is written with its source beside it
        for address in (chain.usdc, chain.spoke_pool):
            before = text[:text.index(address)].rsplit("\n", 3)[-3:]
            assert any(line.startswith("#") for line in before), address


def test_a_mistyped_address_is_refused_by_its_checksum(tmp_path) -> None:
    text = TESTNET.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d",
                                "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4D"))  # one letter's case
    with pytest.raises(ValueError, match="chains.arbitrum.usdc: .*EIP-55 checksum"):
        load_deployment(bad)
    bad.write_text(text.replace("0x82B564983aE7274c86695917BBf8C99ECb6F0F8F", "0x82B5"))
    with pytest.raises(ValueError, match="chains.base.spoke_pool: .*not an EVM address"):
        load_deployment(bad)


def test_what_disagrees_with_the_configuration_is_named(tmp_path) -> None:
    d = load_deployment(TESTNET)
    live = Settings.load(REPO_ROOT / "config" / "live.toml")
    assert deployment_problems(d, live) == [
        "deployment is for 'testnet', the configuration for 'live'",
        "deployment's arbitrum chain id 421614 differs from the configuration's 42161",
        "deployment's base chain id 84532 differs from the configuration's 8453"]
    f = tmp_path / "testnet.toml"
    f.write_text((REPO_ROOT / "config" / "testnet.toml").read_text().replace(
        'deployment_file = "deployments/testnet.toml"\n', ""))
    assert any("chain.deployment_file" in e for e in check(str(f)).errors)  # an external world must name one

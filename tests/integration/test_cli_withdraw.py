"""`indexmaker withdraw` on the real local world, as a user runs it: a deposit on Arbitrum (`deposit`), then a
withdrawal of part of it back to the user's address on Arbitrum, followed stage by stage until paid with the
transaction hash. The user receives exactly amount - fees on Arbitrum, and `balance` (the shard's ledger) says the
same: the amount left the available collateral, the payout is withdrawn, the routing fees charged, nothing held.
The same request again is answered as the first and pays nothing more."""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from tests.integration.operator_cli import cli, cli_env, explain, up
from world.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

DEPOSIT = Decimal("1000")
AMOUNT = Decimal("250")


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    base = tmp_path_factory.mktemp("withdraw")
    config = base / "local.toml"
    config.write_text(f'environment = "local"\n[ports]\ngateway = {free_port()}\ninvoices = {free_port()}\n'
                      f'[indexes.SY100DEV]\nbasket = "SY100.dev.json"\n')
    env = cli_env("withdraw")
    where = ["--state-dir", str(base / "state"), "--config", str(config)]
    try:
        yield env, where
    finally:
        cli(env, "down", *where)


def usdc_on_arbitrum(world_file: str, address: str) -> Decimal:
    from web3 import Web3

    from chain.contracts import bind
    from chain.deployment import WorldState

    chain = WorldState.load(world_file).chain("arbitrum")
    usdc = bind(Web3(Web3.HTTPProvider(chain.rpc_url)), chain).usdc
    return Decimal(usdc.functions.balanceOf(Web3.to_checksum_address(address)).call()).scaleb(-6)


def test_withdraw_pays_amount_less_fees_on_arbitrum_once(operator) -> None:  # noqa: ANN001
    env, where = operator
    run = up(env, where)
    r = cli(env, "dev-keys", "--json", *where)
    assert r.returncode == 0, explain(r)
    user = json.loads(r.stdout)[0]
    env["WD_USER_KEY"] = user["key"]
    r = cli(env, "deposit", str(DEPOSIT), "--key", "env:WD_USER_KEY", *where)
    assert r.returncode == 0, explain(r)
    parts = json.loads(cli(env, "balance", "--json", "--key", "env:WD_USER_KEY", *where).stdout)["parts"]
    available = Decimal(parts["available"])
    before = usdc_on_arbitrum(run["world_file"], user["address"])

    r = cli(env, "withdraw", str(AMOUNT), "--id", "wd-e2e-1", "--key", "env:WD_USER_KEY", "--timeout", "300",
            *where)
    assert r.returncode == 0, explain(r)
    stages = [line.split()[0] for line in r.stdout.splitlines()]
    assert stages == ["requesting", "accepted", "reserved", "applied", "on_base", "bridging", "bridged", "paid"], \
        explain(r)
    paid = r.stdout.splitlines()[-1]
    fees = Decimal(re.search(r"fees (\S+) USDC", paid).group(1))
    payout = Decimal(re.search(r"payout (\S+)", paid).group(1).rstrip(","))
    assert re.search(r"tx_hash 0x[0-9a-f]{64}", paid), paid
    assert payout == AMOUNT - fees and 0 < fees < 2
    after = usdc_on_arbitrum(run["world_file"], user["address"])
    assert after - before == payout  # exactly amount - fees reached the user's address

    balance = json.loads(cli(env, "balance", "--json", "--key", "env:WD_USER_KEY", *where).stdout)["parts"]
    assert Decimal(balance["withdrawn"]) == payout
    assert Decimal(balance["available"]) == available - AMOUNT
    assert Decimal(balance["fees_charged"]) == Decimal(parts["fees_charged"]) + fees
    assert Decimal(balance["held"]) == 0

    # The same request again: accepted as the first, nothing held or paid again.
    r = cli(env, "withdraw", str(AMOUNT), "--id", "wd-e2e-1", "--key", "env:WD_USER_KEY", "--timeout", "5", *where)
    assert "accepted" in r.stdout, explain(r)
    assert usdc_on_arbitrum(run["world_file"], user["address"]) == after
    again = json.loads(cli(env, "balance", "--json", "--key", "env:WD_USER_KEY", *where).stdout)["parts"]
    assert again == balance

"""`indexmaker withdraw` on the real local world, as a user runs it: a deposit on Arbitrum (`deposit`), then a
withdrawal of part of it back to the user's address on Arbitrum, followed stage by stage until paid with the
transaction hash. The user receives exactly amount - fees on Arbitrum, and `balance` (the shard's ledger) says the
same: the amount left the available collateral, the payout is withdrawn, the routing fees charged, nothing held.
The same request again is answered as the first and pays nothing more. The bridged USDC is nobody's deposit: once
the chain listener has read past the payment, the relayer whose fill brought it is credited nothing and the router
routes only the user's own deposit."""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from tests.integration.operator_cli import cli, cli_env, explain, inspected, up, wait_status
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


def arbitrum_block_of(world_file: str, tx_hash: str) -> int:
    from web3 import Web3

    from chain.deployment import WorldState

    chain = WorldState.load(world_file).chain("arbitrum")
    return Web3(Web3.HTTPProvider(chain.rpc_url)).eth.get_transaction_receipt(tx_hash)["blockNumber"]


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
    tx_hash = re.search(r"tx_hash (0x[0-9a-f]{64})", paid)
    assert tx_hash, paid
    assert payout == AMOUNT - fees and 0 < fees < 2
    after = usdc_on_arbitrum(run["world_file"], user["address"])
    assert after - before == payout  # exactly amount - fees reached the user's address

    balance = json.loads(cli(env, "balance", "--json", "--key", "env:WD_USER_KEY", *where).stdout)["parts"]
    assert Decimal(balance["withdrawn"]) == payout
    assert Decimal(balance["available"]) == available - AMOUNT
    assert Decimal(balance["fees_charged"]) == Decimal(parts["fees_charged"]) + fees
    assert Decimal(balance["held"]) == 0

    # The relayer's fill (before the payment) was read by the Arbitrum deposit listener and credited nobody.
    from chain.deployment import WorldState

    relayer = WorldState.load(run["world_file"]).account("relayer").address.lower()
    paid_block = arbitrum_block_of(run["world_file"], tx_hash.group(1))
    report = wait_status(env, where, "the Arbitrum deposit listener past the payment", lambda rep: any(
        c["deposit_cursor"] > paid_block for c in inspected(rep, "chain")))
    ledgers = {k for shard in inspected(report, "orders-") for k in shard["ledgers"]}
    assert relayer not in ledgers and user["address"].lower() in ledgers
    routers = inspected(report, "router")
    members = [m for x in routers for m in [n for r in x["routes"] for n in r["members"]] + x["pending"]]
    assert {m["user"].lower() for m in members} == {user["address"].lower()}, members

    # The same request again: accepted as the first, nothing held or paid again.
    r = cli(env, "withdraw", str(AMOUNT), "--id", "wd-e2e-1", "--key", "env:WD_USER_KEY", "--timeout", "5", *where)
    assert "accepted" in r.stdout, explain(r)
    assert usdc_on_arbitrum(run["world_file"], user["address"]) == after
    again = json.loads(cli(env, "balance", "--json", "--key", "env:WD_USER_KEY", *where).stdout)["parts"]
    assert again == balance

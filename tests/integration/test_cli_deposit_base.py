"""`indexmaker deposit --chain base` against a running `indexmaker up`: the user's USDC goes to custody's address
on Base, the command follows it through GET /balance until it is credited and routed, and the routing fee is only
the Base transfer's gas (below the Base hold; no bridge cut). Everything through the CLI in subprocesses."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.integration.operator_cli import cli, cli_env, explain, up, wait_status
from world.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_deposit_on_base_is_credited_and_routed_without_a_bridge(tmp_path) -> None:
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account
    from core.config import ChainConfig

    state_dir, config = tmp_path / "state", tmp_path / "local.toml"
    config.write_text(f'environment = "local"\n[ports]\ngateway = {free_port()}\ninvoices = {free_port()}\n')
    env = cli_env("basedep")
    where = ["--state-dir", str(state_dir), "--config", str(config)]
    try:
        run = up(env, where)
        wait_status(env, where, "healthy after up", lambda r: r["healthy"])
        world = WorldState.load(run["world_file"])
        env["BASEDEP_USER_KEY"] = derive_account(DEV_MNEMONIC, world.users[1].index).key.hex()
        keys = cli(env, "dev-keys", *where, "--json")
        assert keys.returncode == 0, explain(keys)
        assert Decimal(json.loads(keys.stdout)[1]["usdc_base"]) >= Decimal("25")

        r = cli(env, "deposit", "25", *where, "--key", "env:BASEDEP_USER_KEY", "--chain", "base",
                "--timeout", "180")
        assert r.returncode == 0, explain(r)
        assert "credited" in r.stdout and "routed" in r.stdout, r.stdout

        b = cli(env, "balance", *where, "--key", "env:BASEDEP_USER_KEY", "--json")
        assert b.returncode == 0, explain(b)
        balance = json.loads(b.stdout)
        [(key, deposit)] = balance["deposits"].items()
        assert key.startswith(f"{world.chain('base').chain_id}:") and Decimal(deposit["amount"]) == Decimal("25")
        fees = sum((Decimal(v) for v in balance["fees"].values()), Decimal(0))
        base_hold = ChainConfig().route_hold_gas[world.chain("base").chain_id]
        assert 0 < fees < base_hold  # gas only: a bridged deposit of 25 would also pay 0.025 to Across
        parts = balance["parts"]
        assert Decimal(parts["available"]) == Decimal("25") - fees and Decimal(parts["held"]) == 0
    finally:
        cli(env, "down", *where)

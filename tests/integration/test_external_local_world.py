"""The local world started on its own as if it were external (`python -m world.external_local start`), every part on
a loopback address of its own and none on 127.0.0.1 (the exchange's REST, market streams and WebSocket API on three,
each chain on its own, Redis with a password on another); then `indexmaker up --config` the file it wrote, with its
secrets file: an order flows from a deposit to a mint and its invoice; then `indexmaker down`, then the world is
stopped and nothing of it answers any more."""
from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.integration.operator_cli import (INDEX, ExternalLocalWorld, buy_to_invoice, cli, credited, explain,
                                           token_balance, transfer, up, wait_status)

DEPOSIT = Decimal("500")


def secrets_of(world: ExternalLocalWorld) -> dict[str, str]:
    from world.secrets import read_secrets_file

    return read_secrets_file(world.info["secrets_file"])


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_directory_inside_the_repository_is_refused_and_stop_without_a_world_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.integration.operator_cli import ROOT

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "world.external_local", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    inside = ROOT / "state" / "external-world"
    refused = run("start", "--dir", str(inside))
    assert refused.returncode == 2 and "inside the repository" in refused.stderr and not inside.exists()
    nothing = run("stop", "--dir", str(tmp_path))
    assert nothing.returncode == 0 and "no world running" in nothing.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_up_on_the_local_world_started_as_an_external_one_mints(tmp_path: Path) -> None:
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account

    world = ExternalLocalWorld(tmp_path / "world").start()
    try:
        where = world.info["addresses"]
        hosts = {part: urlsplit(url).hostname for part, url in where.items()}
        assert len(set(hosts.values())) == 6 and "127.0.0.1" not in hosts.values(), hosts
        # Each of the exchange's three addresses serves its part only.
        rest, streams = where["exchange_rest"], "http" + where["exchange_streams"][2:]
        with urllib.request.urlopen(rest + "/api/v3/ping", timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(streams + "/api/v3/ping", timeout=10)
        assert refused.value.code == 404
        # The store asks for its password, which only the secrets file holds.
        store = urlsplit(where["store"])
        password = secrets_of(world)["INDEXMAKER_STORE_PASSWORD"]
        assert store.password is None and password not in Path(world.info["config"]).read_text()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=store.hostname, port=store.port).ping()
        assert redis.Redis(host=store.hostname, port=store.port, password=password).ping()

        out = order_to_mint(world, tmp_path / "system", world.system_env("extlocal"), "X1")
        run = out["run"]
        assert run["processes"] == {}  # nothing of the world is the system's
        assert run["exchange_url"] == where["exchange_rest"]
    finally:
        stopped = world.stop()
    assert stopped.returncode == 0, explain(stopped)
    assert not (world.dir / "world-run.json").exists()
    for url in where.values():
        parts = urlsplit(url)
        assert not answers(parts.hostname, parts.port), f"{url} still answers after the world stopped"


def order_to_mint(world: ExternalLocalWorld, state_dir: Path, env: dict[str, str], order_id: str) -> dict:
    """`up --config` the world's file (with `env`), a deposit credited, an order to its mint and invoice, `down`.
    Returns the run file and the invoice's body."""
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account

    where = world.info["addresses"]
    state = ["--state-dir", str(state_dir), "--config", world.info["config"]]
    try:
        run = up(env, state)
        assert run["phase"] == "up"
        assert run["redis_url"] == where["store"]
        seen = WorldState.load(run["world_file"])
        assert {n: c.rpc_url for n, c in seen.chains.items()} == {"arbitrum": where["arbitrum"], "base": where["base"]}
        own = WorldState.load(world.dir / "world.json")  # the world's file: its funded users
        user = own.users[0]
        transfer(str(world.dir / "world.json"), user.index, DEPOSIT)
        wait_status(env, state, "deposit credited", credited(user.address, DEPOSIT))
        invoice = asyncio.run(buy_to_invoice(run["gateway_url"], derive_account(DEV_MNEMONIC, user.index).key,
                                             seen.chain("arbitrum").chain_id, order_id, "200"))
        minted = Decimal(invoice.body.minted_quantity)
        assert minted > 0 and invoice.body.mint_tx
        assert token_balance(run["world_file"], user.address, INDEX) >= int(  # the token has 18 decimals
            minted.quantize(Decimal("1e-18"), rounding=ROUND_DOWN).scaleb(18))
    finally:
        r = cli(env, "down", *state)
    assert r.returncode == 0, explain(r)
    assert json.loads((state_dir / "run.json").read_text())["phase"] == "down"
    return {"run": run, "invoice": invoice.body}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_paper_mode_on_an_external_world_trades_on_its_market_data_and_sends_it_nothing(tmp_path: Path) -> None:
    """`[exchange] mode = "paper"` against the same external world: `up` starts the paper exchange in front of the
    world's exchange (its market data mirrored), no exchange key is needed, the router's deposit goes to the paper
    deposit address on Base and is credited there, the order fills on paper and mints; the world's exchange
    account never sees an order."""
    from chain.keys import DEV_MNEMONIC, derive_account

    world = ExternalLocalWorld(tmp_path / "world").start()
    try:
        secrets = secrets_of(world)
        env = world.system_env("extpaper")
        env.update(INDEXMAKER_EXCHANGE__MODE="paper",
                   INDEXMAKER_PAPER__DEPOSIT_ADDRESS=derive_account(DEV_MNEMONIC, 40).address)
        out = order_to_mint(world, tmp_path / "system", env, "P1")
        run, invoice = out["run"], out["invoice"]
        assert run["exchange_mode"] == "paper" and set(run["processes"]) == {"paper-exchange"}
        assert run["upstream_url"] == world.info["addresses"]["exchange_rest"] != run["exchange_url"]
        assert invoice.trading_mode == "paper"
        rest = world.info["addresses"]["exchange_rest"]
        key = secrets["INDEXMAKER_EXCHANGE_API_KEY"]
        with urllib.request.urlopen(f"{rest}/_admin/orders?api_key={key}", timeout=10) as resp:
            assert json.loads(resp.read()) == []  # the world's exchange: no order of ours, ever
    finally:
        stopped = world.stop()
    assert stopped.returncode == 0, explain(stopped)

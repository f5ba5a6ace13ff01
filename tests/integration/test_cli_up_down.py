"""`indexmaker up` / `status` / `down` / `up` again / `invoice`, as an operator runs them, on the real local world.

One user finds a funded key (`dev-keys`), deposits on Arbitrum (`deposit`, followed until credited and routed, its
routing fee paid from the hold), buys (order A) and gets A's invoice; then buys again (order B) and the system is
taken down right after B is accepted, mid-way through its flow. `up` again resumes from the state dir: B finishes
and mints, A's and B's invoices are fetched over the websocket by `indexmaker invoice`, and nothing happened twice:
the deposit is credited once, each index order is minted once (the wallet holds exactly A + B), and the exchange
never received a second order for the same (batch, asset) — read from the exchange's own books of account, which
the simulator keeps in the state dir.

Everything runs in subprocesses through the CLI (its own Ray instance, its own namespace and ports), as an operator
would; the test process never joins that Ray instance.
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import ROUND_DOWN, Decimal

import pytest

from tests.integration.operator_cli import (INDEX, cli, cli_env, credited, down_parts, explain, inspected, status,
                                           token_balance, until, up, wait_status)
from world.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

DEPOSIT = Decimal("1000")


def user_balance(env: dict[str, str], where: list[str]) -> dict:
    r = cli(env, "balance", "--json", "--key", "env:UPDOWN_USER_KEY", *where)
    assert r.returncode == 0, explain(r)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    """A state dir, a config with free ports, the environment the CLI runs in; `down` whatever happens."""
    base = tmp_path_factory.mktemp("updown")
    state_dir = base / "state"
    config = base / "local.toml"
    config.write_text(f'environment = "local"\n[ports]\ngateway = {free_port()}\ninvoices = {free_port()}\n'
                      f'[indexes.{INDEX}]\nbasket = "SY100.dev.json"\n[indexes.SYAI]\nbasket = "SYAI.json"\n')
    env = cli_env("updown")
    where = ["--state-dir", str(state_dir), "--config", str(config)]
    try:
        yield env, where, state_dir
    finally:
        cli(env, "down", *where)


def test_up_down_up_resumes_without_doing_anything_twice(operator) -> None:  # noqa: ANN001, PLR0915
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account
    from exchange.simulator.config import TEST_API_KEY
    from protocol.client import GatewayClient
    from world.run_file import read_run

    env, where, state_dir = operator
    run = up(env, where)
    assert run["phase"] == "up" and run["resumed"] is False
    # `up` returns once the service says it is up; a part may still be answering its first inspect (the monitor's
    # first poll): status is asked until healthy, with a deadline.
    report = wait_status(env, where, "healthy after up", lambda r: r["healthy"])
    names = {p["name"] for p in report["parts"] if p["kind"] == "actor"}
    assert {"sender", "solver", "gateway", "chain", "router", "minter", "orders-0", "market-0"} <= names
    assert all(p["ray"]["state"] == "ALIVE" for p in report["parts"] if p["kind"] == "actor")

    world = WorldState.load(run["world_file"])
    user = world.users[0]
    key = derive_account(DEV_MNEMONIC, user.index)
    # A new user's way in: a funded key of the local world, a deposit followed stage by stage, the balance.
    r = cli(env, "dev-keys", "--json", *where)
    assert r.returncode == 0, explain(r)
    keys = json.loads(r.stdout)
    assert [k["address"] for k in keys] == [u.address for u in world.users]
    assert keys[0]["key"] == "0x" + key.key.hex().removeprefix("0x")
    env["UPDOWN_USER_KEY"] = keys[0]["key"]
    r = cli(env, "order", "buy", INDEX, "100", "--key", "env:UPDOWN_USER_KEY", "--url", run["gateway_url"],
            "--chain-id", str(world.chain("arbitrum").chain_id), "--timeout", "30")
    assert r.returncode == 1 and "INSUFFICIENT_COLLATERAL" in r.stdout, explain(r)  # nothing deposited yet
    r = cli(env, "deposit", str(DEPOSIT), "--key", "env:UPDOWN_USER_KEY", *where)
    assert r.returncode == 0, explain(r)
    assert [line.split()[0] for line in r.stdout.splitlines()] == ["sending", "mined", "credited", "routed"]
    wait_status(env, where, "deposit credited", credited(user.address, DEPOSIT))
    parts = user_balance(env, where)["parts"]
    assert Decimal(parts["credited"]) == DEPOSIT and Decimal(parts["held"]) == Decimal(parts["debt"]) == 0
    assert Decimal(parts["fees_charged"]) > 0  # the route's real cost, paid from the hold
    assert Decimal(parts["available"]) == DEPOSIT - Decimal(parts["fees_charged"])
    reports: list = []

    session: dict[str, int | None] = {}

    async def order_a_then_b() -> tuple[object, object]:
        client = GatewayClient(run["gateway_url"], key.key, chain_id=world.chain("arbitrum").chain_id)
        await client.connect()
        try:
            await client.new_order("A", INDEX, "300")
            inv_a = await until(client, {"MintInvoice"}, "A", reports)
            await client.new_order("B", INDEX, "250.5")
            new_b = await until(client, {"NewIndexOrderReport"}, "B", reports)
            return inv_a, new_b
        finally:
            session.update(last_seen=client.last_seen, next_seq=client.next_seq)
            await client.close()

    inv_a, new_b = asyncio.run(order_a_then_b())
    assert new_b.body.status == "new"
    # Down right after B was accepted: B is somewhere in its flow (pending, engaged, or being filled).
    r = cli(env, "down", *where)
    assert r.returncode == 0, explain(r)
    assert read_run(state_dir)["phase"] == "down"
    code, _ = status(env, where)
    assert code == 1  # nothing runs: status says so with its exit code
    for saved in ("world.json", "anvil-arbitrum.json", "anvil-base.json", "exchange.json", "gateway.key"):
        assert (state_dir / saved).is_file(), saved

    run2 = up(env, where)
    assert run2["resumed"] is True and run2["gateway_url"] == run["gateway_url"]

    async def b_finishes() -> object:
        # The user's tool logs on again where it left off: whatever B's flow produced since (also while nobody
        # was connected) is resent from the gateway's store, then the rest arrives live.
        client = GatewayClient(run2["gateway_url"], key.key, chain_id=world.chain("arbitrum").chain_id,
                               last_seen=session["last_seen"], next_seq=session["next_seq"])
        await client.connect()
        try:
            return await until(client, {"MintInvoice"}, "B", reports)
        finally:
            await client.close()

    inv_b = asyncio.run(b_finishes())

    # Both invoices, again, through the CLI (GetMintInvoice over the websocket), after the restart.
    for cl, inv in (("A", inv_a), ("B", inv_b)):
        r = cli(env, "invoice", cl, *where, "--key", "env:UPDOWN_USER_KEY", "--chain-id",
                str(world.chain("arbitrum").chain_id), "--timeout", "60")
        assert r.returncode == 0, explain(r)
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        (got,) = [x for x in lines if x.get("msg_type") == "MintInvoice"]
        assert got["client_order_id"] == cl and got["mint_tx"] == inv.body.mint_tx
        assert Decimal(got["minted_quantity"]) == Decimal(inv.body.minted_quantity)

    # Every index of the registry is served: listed with its live price, bought by name; an unknown one refused.
    r = cli(env, "indexes", "--json", *where)
    assert r.returncode == 0, explain(r)
    listed = {ix["index"]: ix for ix in json.loads(r.stdout)}
    assert set(listed) == {INDEX, "SYAI"} and len(listed["SYAI"]["assets"]) == 26
    assert all(Decimal(ix["ask_price"]) >= Decimal(ix["mid_price"]) > 0 for ix in listed.values())
    r = cli(env, "order", "buy", "SYAI", "300", "--id", "AI-1", "--key", "env:UPDOWN_USER_KEY", "--url",
            run2["gateway_url"], "--chain-id", str(world.chain("arbitrum").chain_id), "--timeout", "60")
    assert r.returncode == 0, explain(r)
    (inv_ai,) = [x for x in map(json.loads, filter(lambda x: x.startswith("{"), r.stdout.splitlines()))
                 if x.get("msg_type") == "MintInvoice"]
    assert inv_ai["symbol"] == "SYAI" and Decimal(inv_ai["minted_quantity"]) > 0
    r = cli(env, "order", "buy", "SYXX", "10", "--id", "X-1", "--key", "env:UPDOWN_USER_KEY", "--url",
            run2["gateway_url"], "--chain-id", str(world.chain("arbitrum").chain_id), "--timeout", "30")
    assert r.returncode == 1 and "UNKNOWN_INDEX" in r.stdout and f"served: {INDEX}, SYAI" in r.stdout, explain(r)

    # Nothing twice: one credit, one mint per order, one exchange order per (batch, asset).
    code, report = status(env, where)
    assert code == 0, (report["phase"], down_parts(report))
    ledgers = {k: v for shard in inspected(report, "orders-") for k, v in shard["ledgers"].items()}
    ledger = ledgers[user.address.lower()]
    assert Decimal(ledger["credited"]) == DEPOSIT
    assert Decimal(ledger["spent"]) == (Decimal(inv_a.body.collateral_spent) + Decimal(inv_b.body.collateral_spent)
                                        + Decimal(inv_ai["collateral_spent"]))
    minted = sum(Decimal(i.body.minted_quantity) for i in (inv_a, inv_b))
    assert token_balance(run2["world_file"], user.address) == int(minted.quantize(Decimal("1e-18"),
                                                                                 rounding=ROUND_DOWN).scaleb(18))
    balance = user_balance(env, where)  # the user's own view agrees: parts balance, tokens as minted
    parts = {k: Decimal(v) for k, v in balance["parts"].items()}
    assert parts["spent"] == Decimal(ledger["spent"]) and parts["credited"] + parts["debt"] == (
        parts["available"] + parts["held"] + parts["reserved"] + parts["spent"] + parts["fees_charged"])
    assert Decimal(balance["tokens"][INDEX]) == minted.quantize(Decimal("1e-18"), rounding=ROUND_DOWN)
    assert Decimal(balance["tokens"]["SYAI"]) == Decimal(inv_ai["minted_quantity"])
    (sender,) = inspected(report, "sender")
    assert sender["orders"] > 0 and set(sender["by_status"]) <= {"FILLED", "PARTIALLY_FILLED", "EXPIRED", "CANCELED"}

    r = cli(env, "down", *where)
    assert r.returncode == 0, explain(r)
    books = json.loads((state_dir / "exchange.json").read_text())
    (account,) = [a for a in books["accounts"] if a["api_key"] == TEST_API_KEY]
    cids = [o["client_order_id"] for o in account["orders"]]
    intents = Counter(cid.rsplit(".", 1)[0] for cid in cids)  # batch.symbol, without the attempt
    assert cids and max(intents.values()) == 1, intents.most_common(3)
    assert len(cids) == sender["orders"]  # every exchange order is one of the sender's intents, and vice versa

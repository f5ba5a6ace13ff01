"""The demo's flow end to end on the local world, asserted message by message.

Everything real: redis-server, two anvil nodes with the Across relayer, the exchange simulator (its own process,
watching Base for deposits), every actor on the session's Ray cluster (a namespace of its own), the websocket
gateway and three signed clients. Three users deposit USDC on Arbitrum, Alice buys, Bob buys and cancels part at
once, Carol's first order is beyond her collateral (rejected with a reason) and her second one goes through.

Checked: each user's stream in order; every order's fill reports against the assets the exchange delivered
(myTrades of the exchange account, through the exchange API); tokens minted on Base equal the filled units rounded
down to 18 decimals; USDC in = spent (assets + exchange fees) + cancelled + returned + routing fees + available.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from decimal import ROUND_DOWN, Decimal

import pytest

ray = pytest.importorskip("ray")

from core.config import Settings  # noqa: E402
from core.money import quantize_up  # noqa: E402
from protocol.reason_codes import ReasonCode  # noqa: E402
from world.demo import DEMO_INDEXES, balance_of, default_users, demo_settings, run_demo, summary  # noqa: E402
from world.launcher import LauncherOptions, LocalSystem  # noqa: E402

MICRO = Decimal("0.000001")
TOKEN_UNIT = Decimal("1e-18")


def kinds(user) -> list[str]:  # noqa: ANN001
    return [type(d.body).__name__ for d in user.reports]


def exchange_trades(system: LocalSystem, symbols: list[str]) -> dict[str, list]:
    """Every trade of the exchange account the sender trades, read back through the exchange API."""
    async def read() -> dict[str, list]:
        gw = system.exchange.gateway(system.exchange.account)
        try:
            return {s: await gw.fetch_my_trades(s, limit=1000) for s in symbols}
        finally:
            await gw.close()
    return asyncio.run(read())


@pytest.fixture(scope="module")
def demo(ray_cluster):  # noqa: ARG001  (the session's Ray cluster must be up)
    started = time.monotonic()
    system = LocalSystem(LauncherOptions(gateway_port=0, namespace=f"demo-{uuid.uuid4().hex[:8]}"), demo_settings())
    system.start()
    try:
        lines: list[str] = []
        try:
            result = asyncio.run(run_demo(system, default_users(), out=lines.append))
        except Exception:
            print("\n".join(lines))  # what the flow got to (shown by pytest on failure)
            for name in ("solver", "minter", "router", "chain", "gateway"):
                print(name, ray.get(system.actor(name).inspect.remote(), timeout=10))
            raise
        yield system, result, lines, started
    finally:
        system.stop()


def test_streams_message_by_message(demo) -> None:
    system, result, lines, started = demo
    alice, bob, carol = result["users"]
    # Alice: accepted, fills in progress, filled, then the invoice; nothing else.
    k = kinds(alice)
    assert k[0] == "NewIndexOrderReport" and alice.reports[0].body.status == "new"
    assert k[-1] == "MintInvoice" and set(k[1:-1]) == {"IndexOrderFill"}
    # Bob: accepted, then his cancel of 200 (it met the order before any batch), then fills of the rest.
    b0, b1 = bob.reports[0].body, bob.reports[1].body
    assert (b0.status, type(b1).__name__, b1.status) == ("new", "CancelIndexOrderReport", "canceled")
    assert Decimal(b1.cancelled_amount) == Decimal("200")
    assert kinds(bob)[-1] == "MintInvoice" and set(kinds(bob)[2:-1]) == {"IndexOrderFill"}
    # Carol: c0 rejected with its reason, c1 accepted, filled and minted.
    c0 = carol.reports[0].body
    assert (c0.client_order_id, c0.status, c0.reason_code) == ("c0", "rejected", ReasonCode.INSUFFICIENT_COLLATERAL)
    # What she may spend is her deposit less the hold kept for its route (core/route_hold.py), never the hold.
    hold = Settings().chain.hold_policy.hold_for(Decimal("800"), 42161)
    available = re.search(r"([0-9.]+) available", c0.reason)
    assert hold > 0 and available is not None and Decimal(available.group(1)) == Decimal("800") - hold
    assert {d.body.client_order_id for d in carol.reports[1:]} == {"c1"}
    assert [d.body for d in carol.reports if type(d.body).__name__ == "MintInvoice"][0].client_order_id == "c1"
    for u in (alice, bob, carol):
        fills = [d.body for d in u.reports if type(d.body).__name__ == "IndexOrderFill"]
        assert [f.status for f in fills[:-1]] == ["in progress"] * (len(fills) - 1) and fills[-1].status == "filled"
        assert {f.symbol for f in fills} == {u.index}  # each fill report names its order's index
        qty = [Decimal(f.filled_quantity) for f in fills]
        spent = [Decimal(f.collateral_spent) for f in fills]
        assert qty == sorted(qty) and spent == sorted(spent) and qty[0] > 0  # cumulative, never backwards
        seqs = [d.envelope.standard_header.seq_num for d in u.reports]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # no lost order, no repeated report
    assert [u.index for u in (alice, bob, carol)] == ["SY100", "SYAI", "SY100"] and set(system.baskets) == set(
        DEMO_INDEXES)
    # header, rule, one row per minted order, one per user; a blank line, one row per index
    assert len(summary(system, result)) == 2 + 3 + 3 + 1 + len(DEMO_INDEXES)
    assert any("MINTED" in line for line in lines) and any("routes[credited:3]" in line for line in lines)
    assert time.monotonic() - started < 120


def test_fill_reports_add_up_to_the_exchange_fills(demo) -> None:
    system, result, _, _ = demo
    solver = system.actor("solver")
    info = ray.get(solver.inspect.remote())
    assert info["errors"] == [] and info["outbox"] == [] and not info["batches_in_flight"]
    assigned: dict[str, Decimal] = defaultdict(Decimal)
    for u in result["users"]:
        fills = [d.body for d in u.reports if type(d.body).__name__ == "IndexOrderFill"]
        (inv,) = [d.body for d in u.reports if type(d.body).__name__ == "MintInvoice"]
        rounds = len(fills)
        basket = {a.symbol: a.quantity for a in system.baskets[u.index].assets}
        assert inv.symbol == u.index
        # The last fill report is what the invoice says was filled and spent.
        assert Decimal(fills[-1].filled_quantity) == Decimal(inv.filled_quantity)
        assert Decimal(fills[-1].collateral_spent) == Decimal(inv.collateral_spent)
        assert Decimal(inv.collateral_spent) == quantize_up(Decimal(inv.assets_value) + Decimal(inv.exchange_fee),
                                                            MICRO)
        assert {line.symbol for line in inv.lines} == set(basket)
        for line in inv.lines:
            # Each round a cohort gets floor(q * filled) base units of an asset: short by under a unit per round.
            short = Decimal(inv.filled_quantity) * basket[line.symbol] - Decimal(line.quantity)
            unit = system.filters[line.symbol].base_unit
            assert -unit * rounds < short < unit * rounds, line.symbol
            assigned[line.symbol] += Decimal(line.quantity)
    # Every unit the exchange delivered (net of the commission it kept in the asset) is in some order's invoice,
    # of whichever index, or in the solver's inventory for the next batch; nothing invented, nothing lost.
    trades = exchange_trades(system, list(system.symbols))
    inventory = info["inventory_units"]
    for symbol, rows in trades.items():
        base = symbol[: -len("USDC")]
        received = sum((t.qty - (t.commission if t.commission_asset == base else 0) for t in rows), Decimal(0))
        held = Decimal(inventory.get(symbol, 0)) * system.filters[symbol].base_unit
        assert rows and assigned[symbol] + held == received, symbol


def test_a_batch_sends_one_exchange_order_per_asset_whatever_indexes_need_it(demo) -> None:
    """SY100 and SYAI share pairs: a batch serving both buys each shared pair with one exchange order (client order
    ids are batch.symbol.attempt, core/asset_order.py)."""
    system, result, _, _ = demo
    history = ray.get(system.actor("solver").inspect.remote())["history"]
    assert history
    shared = set(system.baskets["SY100"].symbols) & set(system.baskets["SYAI"].symbols)
    for entry in history:
        symbols = [cid.split(".")[1] for cid, _, _ in entry["asset_orders"]]
        assert len(symbols) == len(set(symbols)) and set(symbols) <= set(system.symbols), entry["batch_id"]
    assert shared  # else the demo would not show netting across indexes


def test_the_shards_count_units_per_index_as_the_tokens_were_minted(demo) -> None:
    from world.demo import supply_of

    system, result, _, _ = demo
    minted: dict[str, Decimal] = defaultdict(Decimal)
    for k in range(system.o.order_shards):
        shard = system.actor(f"orders-{k}")
        assert ray.get(shard.inspect.remote())["open_per_index"] == {}
        for index, parts in ray.get(shard.holdings.remote())["indexes"].items():
            assert Decimal(parts["unminted"]) == 0
            minted[index] += Decimal(parts["minted"])
    assert set(minted) == set(DEMO_INDEXES)
    for index, units in minted.items():  # each token's supply is the units filled for its index
        assert Decimal(supply_of(system, index)) == units.scaleb(18)


def test_the_http_service_lists_every_served_index_with_its_live_price(demo) -> None:
    from world.user_commands import fetch_indexes, index_lines

    system, _, _, _ = demo
    listed = {ix["index"]: ix for ix in fetch_indexes(system.http_url)}
    assert set(listed) == set(DEMO_INDEXES)
    for index, ix in listed.items():
        assert [a["symbol"] for a in ix["assets"]] == list(system.baskets[index].symbols)
        assert Decimal(ix["ask_price"]) >= Decimal(ix["mid_price"]) > 0 and ix["missing_books"] == []
    lines = index_lines(list(listed.values()))
    assert len(lines) == len(listed) + sum(len(ix["assets"]) for ix in listed.values())


def test_invoices_carry_the_arrival_value_and_a_shortfall_whose_parts_add_up(demo) -> None:
    system, result, lines, _ = demo
    assert all("shortfall" in line for line in lines if "MINTED" in line)  # the demo shows it
    bps = Decimal(10_000)
    per_index: dict[str, int] = defaultdict(int)
    for u in result["users"]:
        fills = [d.body for d in u.reports if type(d.body).__name__ == "IndexOrderFill"]
        (inv,) = [d.body for d in u.reports if type(d.body).__name__ == "MintInvoice"]
        # Accepted while the market shards' books were live: stamped, and planned with the touch known.
        assert inv.arrival_value is not None and inv.arrival_time is not None and inv.batch_touch is not None
        mid, touch = Decimal(inv.arrival_value), Decimal(inv.arrival_touch)
        assert touch > mid > 0
        parts = [Decimal(p) for p in (inv.spread_bps, inv.delay_bps, inv.impact_bps, inv.fee_bps)]
        assert sum(parts) == Decimal(inv.shortfall_bps)  # to the last hundredth of a bp
        # The total from the invoice's own numbers, rounded UP to 0.01 bp.
        filled = Decimal(inv.filled_quantity)
        exact = ((Decimal(inv.assets_value) + Decimal(inv.exchange_fee)) / filled - mid) * bps / mid
        assert Decimal(0) <= Decimal(inv.shortfall_bps) - exact < Decimal("0.01")
        assert abs(Decimal(inv.spread_bps) - (touch - mid) * bps / mid) <= Decimal("0.005")
        # The simulator's commission is 10 bps of what was bought, itself within the slippage cap of the arrival.
        assert Decimal(9) < Decimal(inv.fee_bps) < Decimal(11)
        assert Decimal(-100) < Decimal(inv.shortfall_bps) < Decimal(120)
        assert Decimal(inv.paid_per_unit) == (Decimal(inv.assets_value) / filled).quantize(TOKEN_UNIT)
        for line in inv.lines:
            assert line.arrival_ask >= line.arrival_mid > 0 and line.shortfall_bps is not None
        # Every fill report carries the running shortfall; the last one is the invoice's total.
        assert all(f.shortfall_bps is not None for f in fills)
        assert Decimal(fills[-1].shortfall_bps) == Decimal(inv.shortfall_bps)
        per_index[u.index] += 1
    # The monitor exports each minted order's shortfall in its index's histogram; /health does not change for it.
    monitor = system.actor("monitor")
    polls = ray.get(monitor.inspect.remote())["polls"]
    assert ray.get(monitor.wait_polls.remote(polls + 1, 30.0))
    info = ray.get(monitor.inspect.remote())
    hist = info["metrics"]["histograms"]["indexmaker_shortfall_bps"]
    assert {k: h["count"] for k, h in hist.items()} == {f"index={i}": n for i, n in per_index.items()}
    health = ray.get(monitor.health.remote())
    assert health["healthy"], health["problems"]


def test_tokens_minted_and_usdc_accounted_to_the_unit(demo) -> None:
    system, result, _, _ = demo
    for u in result["users"]:
        (inv,) = [d.body for d in u.reports if type(d.body).__name__ == "MintInvoice"]
        filled = Decimal(inv.filled_quantity)
        minted = filled.quantize(TOKEN_UNIT, rounding=ROUND_DOWN)  # never more than the fills back
        assert Decimal(inv.minted_quantity) == minted
        assert balance_of(system, u.address, u.index) == int(minted.scaleb(18))  # on Base, in the user's wallet
        view = result["views"][u.name]
        (order,) = [o for o in view["orders"] if o["status"] != "rejected"] if u.bad else view["orders"]
        total = Decimal(inv.total_amount)
        # The order: spent + cancelled + returned = its amount, exactly.
        assert Decimal(inv.collateral_spent) + Decimal(inv.amount_cancelled) + Decimal(inv.amount_returned) == total
        assert Decimal(order["spent"]) == Decimal(inv.collateral_spent)
        assert Decimal(order["remaining"]) == Decimal(order["engaged"]) == 0
        # The user's USDC: deposit = available + spent + routing fees, to the micro-USDC; nothing left reserved,
        # the route's hold charged and released, nothing owed.
        ledger = view["ledger"]
        assert Decimal(ledger["credited"]) == u.deposit and Decimal(ledger["reserved"]) == 0
        assert Decimal(ledger["held"]) == 0 and Decimal(ledger["debt"]) == 0
        assert Decimal(ledger["fees_charged"]) > 0  # the route's hops were charged to the user
        assert (Decimal(ledger["available"]) + Decimal(ledger["spent"]) + Decimal(ledger["fees_charged"])
                == u.deposit)
        assert Decimal(ledger["spent"]) == Decimal(inv.collateral_spent)
        assert view["invoices"][inv.client_order_id]["mint_tx"] == inv.mint_tx


def test_the_gateway_took_every_shard_report_and_the_hand_offs_let_go_of_them(demo) -> None:
    """Each shard's reports hand-off is read by the gateway up to the shard's last report, and trimmed to the
    gateway's stored cursor: nothing waits, nothing is kept twice (store/handoff.py)."""
    import redis

    from store.streams import shard_reports

    system, _, _, _ = demo
    client = redis.Redis.from_url(system.redis.url)
    try:
        for k in range(system.o.order_shards):
            shard = ray.get(system.actor(f"orders-{k}").inspect.remote())
            deadline = time.monotonic() + 10  # the trim follows the store write the user's report waited for
            while (gateway := ray.get(system.actor("gateway").inspect.remote()))["cursors"][k] < shard["report_seq"] \
                    or client.xlen(shard_reports("orders", k).key):  # a condition on the actors' state
                assert time.monotonic() < deadline, (gateway["cursors"], shard["report_seq"])
            assert gateway["cursors"][k] == shard["report_seq"] > 0
            assert ray.get(system.actor(f"orders-{k}").inspect.remote())["undelivered"] == 0
    finally:
        client.close()


def test_check_only_on_the_running_local_world_passes_then_names_a_halted_pair(demo, tmp_path, capsys) -> None:
    """`indexmaker up --check-only` on the local world as `up` records it (the run file): the same checks as an
    external world's, against the simulator, the anvil chains and the redis it started."""
    import json
    import os
    import urllib.request

    import cli
    from world.run_file import write_run

    system, _, _, _ = demo
    config = tmp_path / "local.toml"
    config.write_text("".join(f'[indexes.{k}]\nbasket = "{e.basket}"\n' for k, e in system.settings.indexes.items()))
    write_run(tmp_path, phase="up", pid=os.getpid(), exchange_url=system.exchange.url, redis_url=system.redis.url,
              world_file=str(system.world_file))
    where = ["up", "--check-only", "--config", str(config), "--state-dir", str(tmp_path)]
    assert cli.main(where) == 0, capsys.readouterr().err
    assert "world check: ok (local)" in capsys.readouterr().out
    pair = system.symbols[0]

    def status(value: str) -> None:
        request = urllib.request.Request(system.exchange.url + "/_admin/market_status", method="POST",
                                         data=json.dumps({"symbol": pair, "status": value}).encode())
        urllib.request.urlopen(request, timeout=10).close()

    status("HALT")
    try:
        assert cli.main(where) == 1
    finally:
        status("TRADING")
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("world check:")]
    assert lines and all(f"{pair} is HALT, not TRADING" in line for line in lines), lines


def test_the_operator_switches_the_local_market_regime_and_back(demo, tmp_path, capsys) -> None:
    """`indexmaker market regime wide` on the running local world: the simulator requotes every pair with ten times
    the spread at once (its book, read back), `indexmaker market regime` shows it, `calm` brings the spread back."""
    import json
    import os
    import urllib.request

    import cli
    from world.run_file import write_run

    system, _, _, _ = demo
    write_run(tmp_path, phase="up", pid=os.getpid(), environment="local", exchange_url=system.exchange.url,
              http_url=system.http_url, world_file=str(system.world_file))
    pair = system.symbols[0]

    def spread() -> Decimal:
        with urllib.request.urlopen(f"{system.exchange.url}/_admin/book?symbol={pair}&limit=1", timeout=10) as r:
            book = json.loads(r.read())
        return Decimal(book["asks"][0][0]) - Decimal(book["bids"][0][0])

    where = ["--state-dir", str(tmp_path)]
    assert cli.main(["market", "regime", "calm", *where]) == 0, capsys.readouterr().err  # requoted at its own spread
    calm = spread()
    try:
        assert cli.main(["market", "regime", "wide", *where]) == 0, capsys.readouterr().err
        # Ten times the walk's spread (a synthetic taker may have eaten a top level of either book since: 3x)
        assert spread() >= 3 * calm
        assert cli.main(["market", "regime", *where]) == 0
        assert "wide: " in capsys.readouterr().out
        assert cli.main(["market", "regime", "stormy", *where]) == 1
        assert "unknown regime 'stormy'" in capsys.readouterr().err
    finally:
        assert cli.main(["market", "regime", "calm", *where]) == 0
    assert spread() < 3 * calm


def test_a_buyer_sends_tokens_back_with_deposit_tokens_and_sees_them_credited(demo, tmp_path, capsys,
                                                                             monkeypatch) -> None:
    """`indexmaker deposit-tokens SY100 Q` by Alice, who bought SY100 in the demo: half her tokens go to custody on
    Base, the chain listener credits them for redemption in her shard, her session gets a TokenDeposit report, and
    `indexmaker balance` shows the rest in her wallet and the deposit credited. Last in this file: it moves tokens
    the tests above count in her wallet."""
    import json
    import os

    import cli
    from protocol.client import GatewayClient
    from world.run_file import write_run

    system, result, _, _ = demo
    alice = result["users"][0]
    assert alice.index == "SY100"
    write_run(tmp_path, phase="up", pid=os.getpid(), environment="local", exchange_url=system.exchange.url,
              http_url=system.http_url, world_file=str(system.world_file))
    where = ["--state-dir", str(tmp_path)]
    monkeypatch.setenv("DEMO_ALICE_KEY", "0x" + alice.key.key.hex().removeprefix("0x"))
    held = balance_of(system, alice.address, "SY100")
    assert held > 0
    sent = held // 2
    quantity = Decimal(sent).scaleb(-18)

    async def deposit_and_read_the_report():  # noqa: ANN202
        client = GatewayClient(system.gateway_url, alice.key.key, chain_id=system.settings.chain.arbitrum_chain_id,
                               last_seen=alice.reports[-1].seq_num)
        await client.connect()
        try:
            code = await asyncio.to_thread(cli.main, ["deposit-tokens", "SY100", f"{quantity:f}", "--key",
                                                      "env:DEMO_ALICE_KEY", *where])
            while True:  # her stream after the demo's last report: the token deposit's comes next
                report = await client.next_report(timeout=60)
                if report.msg_type == "TokenDeposit":
                    return code, report
        finally:
            await client.close()

    code, report = asyncio.run(deposit_and_read_the_report())
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "mined" in out.out and f"credited   {quantity:f} SY100 for redemption" in out.out, out.out
    body = report.body
    assert (report.msg_type, body.status, body.symbol, body.quantity, body.available, body.debt) == (
        "TokenDeposit", "credited", "SY100", quantity, quantity, 0)
    assert balance_of(system, alice.address, "SY100") == held - sent

    assert cli.main(["balance", "--json", "--key", "env:DEMO_ALICE_KEY", *where]) == 0
    balance = json.loads(capsys.readouterr().out)
    assert Decimal(balance["tokens"]["SY100"]) == Decimal(held - sent).scaleb(-18)  # the wallet
    credited = {k: Decimal(v) for k, v in balance["tokens_credited"]["SY100"].items()}
    assert credited == {"credited": quantity, "available": quantity, "reserved": 0, "redeemed": 0, "reversed": 0,
                        "debt": 0}
    [(key, deposit)] = balance["token_deposits"].items()
    assert key == body.deposit_id and key.startswith(f"{system.state.chain('base').chain_id}:")
    assert (deposit["index"], Decimal(deposit["units"]), deposit["reversed"]) == ("SY100", quantity, False)
    assert Decimal(balance["parts"]["credited"]) == alice.deposit  # the USDC side untouched
    assert cli.main(["balance", "--key", "env:DEMO_ALICE_KEY", *where]) == 0
    text = capsys.readouterr().out
    assert f"credited for redemption {quantity:f}: {quantity:f} available" in text, text
    # Restart-safe and once: the chain's cursor is past it and a re-read books nothing.
    chain = ray.get(system.actor("chain").inspect.remote(), timeout=30)
    assert chain["token_deposits_forwarded"] >= 1 and chain["last_error"] is None
    view = ray.get(system.shard(alice.address).user.remote(alice.address), timeout=30)
    assert list(view["tokens"]["deposits"]) == [key]
